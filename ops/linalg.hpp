#pragma once
// Matrix products (kernels/blas.hpp).
#include <string_view>

#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// a [M,K] @ b [K,N] → [M,N]; batched: a [...,M,K] @ b [...,K,N] → [...,M,N] with the batch
/// dims broadcast. 1-D operands act as a row (a) or a column (b) vector, as in NumPy.
Tensor matmul(const Tensor& a, const Tensor& b);

/// x [...,in] @ weight[out,in]^T + bias[out] → [...,out], in one GEMM (bias may be undefined).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});

/// Einstein summation, as torch.einsum: "ij,jk->ik" (matmul), "bij,bjk->bik", "bhqd,bhkd->bhqk",
/// "ij->ji", "ii" is not supported (an index twice in one operand is refused), "ij->" (sum),
/// "i,j->ij" (outer), "bi,bi->b". One letter per axis; without "->" the output is the indices that
/// appear once, in alphabetical order. Operands are contracted left to right, each pair as one
/// batched matmul. Float operands of one dtype; twice differentiable.
Tensor einsum(std::string_view equation, const TensorList& operands);

}  // namespace tg
