#pragma once
// Differentiable elementwise ops with NumPy broadcasting.
#include "tapegrad/autograd/broadcast.hpp"  // broadcast_shapes
#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// a + b elementwise, with broadcasting.
Tensor add(const Tensor& a, const Tensor& b);
/// a - b elementwise, with broadcasting.
Tensor sub(const Tensor& a, const Tensor& b);
/// a * b elementwise, with broadcasting.
Tensor mul(const Tensor& a, const Tensor& b);
/// a / b elementwise, with broadcasting.
Tensor div(const Tensor& a, const Tensor& b);
/// -x.
Tensor neg(const Tensor& x);
/// a ** b, elementwise with broadcasting.
Tensor pow(const Tensor& a, const Tensor& b);
/// x ** exponent.
Tensor pow(const Tensor& x, double exponent);
/// e ** x.
Tensor exp(const Tensor& x);
/// Natural logarithm.
Tensor log(const Tensor& x);
/// Square root.
Tensor sqrt(const Tensor& x);
/// |x|; the gradient is sign(x), so 0 at 0.
Tensor abs(const Tensor& x);
/// max(x, 0); the gradient at 0 is 0.
Tensor relu(const Tensor& x);
/// x for x > 0, slope * x otherwise.
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
/// 1 / (1 + exp(-x)).
Tensor sigmoid(const Tensor& x);
/// Hyperbolic tangent.
Tensor tanh(const Tensor& x);
/// min(max(x, low), high); gradient 1 inside [low, high], 0 outside.
Tensor clamp(const Tensor& x, double low, double high);
/// max(a, b) elementwise with broadcasting; on ties each side gets half the gradient.
Tensor maximum(const Tensor& a, const Tensor& b);
/// min(a, b) elementwise with broadcasting; on ties each side gets half the gradient.
Tensor minimum(const Tensor& a, const Tensor& b);
/// cond ? a : b elementwise (cond: any dtype, nonzero is true; not differentiable in cond).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// Scalar forms (the scalar takes the tensor's dtype).
/// a + b for a scalar b, which takes a's dtype.
Tensor add(const Tensor& a, double b);
/// a * b for a scalar b, which takes a's dtype.
Tensor mul(const Tensor& a, double b);

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
Tensor operator+(const Tensor& a, double b);
/// scalar a + b.
Tensor operator+(double a, const Tensor& b);
/// a - scalar b.
Tensor operator-(const Tensor& a, double b);
/// scalar a - b.
Tensor operator-(double a, const Tensor& b);
/// a * scalar b.
Tensor operator*(const Tensor& a, double b);
/// scalar a * b.
Tensor operator*(double a, const Tensor& b);
/// a / scalar b (computed as a * (1/b)).
Tensor operator/(const Tensor& a, double b);
/// scalar a / b.
Tensor operator/(double a, const Tensor& b);

}  // namespace tg
