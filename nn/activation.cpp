#include "tapegrad/nn/activation.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/ops/activation.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/softmax.hpp"

namespace tg::nn {

Tensor apply_activation(Activation act, const Tensor& x) {
  switch (act) {
    case Activation::none:
      return x;
    case Activation::relu:
      return relu(x);
    case Activation::sigmoid:
      return sigmoid(x);
    case Activation::tanh:
      return tanh(x);
    case Activation::softmax:
      return softmax(x, -1);
    case Activation::gelu:
      return gelu(x);
  }
  return x;
}

std::string activation_name(Activation act) {
  switch (act) {
    case Activation::none:
      return "none";
    case Activation::relu:
      return "relu";
    case Activation::sigmoid:
      return "sigmoid";
    case Activation::tanh:
      return "tanh";
    case Activation::softmax:
      return "softmax";
    case Activation::gelu:
      return "gelu";
  }
  return "?";
}

Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor LeakyReLU::forward(const Tensor& x) { return leaky_relu(x, negative_slope_); }
std::string LeakyReLU::extra_repr() const { return fmt::format("negative_slope={}", negative_slope_); }
Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }

namespace {
// A float as Python's repr writes it: 1.0, not fmt's 1.
std::string python_float(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";
  return s;
}
}  // namespace

Tensor GELU::forward(const Tensor& x) { return gelu(x, approximate_); }
std::string GELU::extra_repr() const {
  return approximate_ == GeluApproximate::tanh ? "approximate='tanh'" : "approximate='none'";
}
Tensor ELU::forward(const Tensor& x) { return elu(x, alpha_); }
std::string ELU::extra_repr() const { return "alpha=" + python_float(alpha_); }
Tensor SiLU::forward(const Tensor& x) { return silu(x); }
Tensor Softplus::forward(const Tensor& x) { return softplus(x, beta_, threshold_); }
std::string Softplus::extra_repr() const {
  return fmt::format("beta={}, threshold={}", python_float(beta_), python_float(threshold_));
}

namespace {
void check_dim(const Module& m, const Tensor& x, int dim) {
  const auto rank = static_cast<int>(x.ndim());
  TG_CHECK(dim >= -rank && dim < rank, "{}: expected an input with axis {}, got shape {}", m.repr(), dim,
           shape_str(x.shape()));
}
}  // namespace

Tensor Softmax::forward(const Tensor& x) {
  check_dim(*this, x, dim_);
  return softmax(x, dim_);
}
std::string Softmax::extra_repr() const { return fmt::format("dim={}", dim_); }

Tensor LogSoftmax::forward(const Tensor& x) {
  check_dim(*this, x, dim_);
  return log_softmax(x, dim_);
}
std::string LogSoftmax::extra_repr() const { return fmt::format("dim={}", dim_); }

Tensor Softmax::forward_logits(const Tensor& x) {
  TG_CHECK(has_logits() && (dim_ == -1 || x.ndim() == 2), "{}: its softmax is not over the last axis of an input {}",
           repr(), shape_str(x.shape()));
  return x;
}

}  // namespace tg::nn
