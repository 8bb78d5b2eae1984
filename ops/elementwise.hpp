#pragma once
// Differentiable elementwise ops with NumPy broadcasting.
#include "tapegrad/autograd/broadcast.hpp"  // broadcast_shapes
#include "tapegrad/autograd/scalar.hpp"
#include "tapegrad/autograd/tensor.hpp"

namespace tg {

// Type promotion, as torch.result_type: binary ops (arithmetic, pow, maximum/minimum,
// comparisons, where's branches) first convert both operands to one dtype.
//   - Tensors of the same kind (both with axes, or both 0-d): promote_types, so float32 with
//     float64 is float64, int64 with a float is that float.
//   - A 0-d tensor with a tensor with axes: the latter's dtype, unless the 0-d one is floating and
//     the other int64; then the 0-d one's.
//   - A Scalar: an integer keeps the tensor's dtype; a floating value keeps a float tensor's dtype
//     and turns an int64 tensor into float32 (default_float).
// The conversions are differentiable. Division is true division: int64 / int64 is float32.
// docs/semantics.md has the table.

/// The dtype a binary op computes in for operands a and b.
Dtype result_type(const Tensor& a, const Tensor& b);
/// The dtype a binary op computes in for a tensor and a scalar.
Dtype result_type(const Tensor& a, Scalar b);

/// a + b elementwise, with broadcasting.
Tensor add(const Tensor& a, const Tensor& b);
/// a - b elementwise, with broadcasting.
Tensor sub(const Tensor& a, const Tensor& b);
/// a * b elementwise, with broadcasting.
Tensor mul(const Tensor& a, const Tensor& b);
/// a / b elementwise, with broadcasting; true division (int64 operands give float32).
Tensor div(const Tensor& a, const Tensor& b);
/// -x.
Tensor neg(const Tensor& x);
/// a ** b, elementwise with broadcasting.
Tensor pow(const Tensor& a, const Tensor& b);
/// x ** exponent; an int64 tensor with an integer exponent stays int64 (a negative one throws).
Tensor pow(const Tensor& x, Scalar exponent);
/// e ** x.
Tensor exp(const Tensor& x);
/// Natural logarithm.
Tensor log(const Tensor& x);
/// Square root.
Tensor sqrt(const Tensor& x);
/// |x|; the gradient is sign(x), so 0 at 0. int64 stays int64.
Tensor abs(const Tensor& x);
/// max(x, 0); the gradient at 0 is 0. int64 stays int64.
Tensor relu(const Tensor& x);
/// x for x > 0, slope * x otherwise.
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
/// 1 / (1 + exp(-x)).
Tensor sigmoid(const Tensor& x);
/// Hyperbolic tangent.
Tensor tanh(const Tensor& x);
/// min(max(x, low), high); gradient 1 inside [low, high], 0 outside. An int64 x stays int64 with
/// integer bounds and becomes float32 with a floating one, as in PyTorch.
Tensor clamp(const Tensor& x, Scalar low, Scalar high);
/// max(a, b) elementwise with broadcasting; on ties each side gets half the gradient.
Tensor maximum(const Tensor& a, const Tensor& b);
/// min(a, b) elementwise with broadcasting; on ties each side gets half the gradient.
Tensor minimum(const Tensor& a, const Tensor& b);
/// cond ? a : b elementwise (cond: any dtype, nonzero is true; not differentiable in cond).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// Scalar forms (the result's dtype: result_type(a, b)).
/// a + b for a scalar b.
Tensor add(const Tensor& a, Scalar b);
/// a * b for a scalar b.
Tensor mul(const Tensor& a, Scalar b);

// Comparisons: int64 tensors of 0 and 1, not differentiable.
/// a == b → int64 0/1, with broadcasting.
Tensor eq(const Tensor& a, const Tensor& b);
/// a != b → int64 0/1, with broadcasting.
Tensor ne(const Tensor& a, const Tensor& b);
/// a < b → int64 0/1, with broadcasting.
Tensor lt(const Tensor& a, const Tensor& b);
/// a <= b → int64 0/1, with broadcasting.
Tensor le(const Tensor& a, const Tensor& b);
/// a > b → int64 0/1, with broadcasting.
Tensor gt(const Tensor& a, const Tensor& b);
/// a >= b → int64 0/1, with broadcasting.
Tensor ge(const Tensor& a, const Tensor& b);

/// add(a, b).
Tensor operator+(const Tensor& a, const Tensor& b);
/// sub(a, b).
Tensor operator-(const Tensor& a, const Tensor& b);
/// mul(a, b).
Tensor operator*(const Tensor& a, const Tensor& b);
/// div(a, b).
Tensor operator/(const Tensor& a, const Tensor& b);
/// neg(x).
Tensor operator-(const Tensor& x);
/// a + scalar b.
Tensor operator+(const Tensor& a, Scalar b);
/// scalar a + b.
Tensor operator+(Scalar a, const Tensor& b);
/// a - scalar b.
Tensor operator-(const Tensor& a, Scalar b);
/// scalar a - b.
Tensor operator-(Scalar a, const Tensor& b);
/// a * scalar b.
Tensor operator*(const Tensor& a, Scalar b);
/// scalar a * b.
Tensor operator*(Scalar a, const Tensor& b);
/// a / scalar b, true division (computed as a * (1/b)).
Tensor operator/(const Tensor& a, Scalar b);
/// scalar a / b, true division.
Tensor operator/(Scalar a, const Tensor& b);

}  // namespace tg
