#include "tapegrad/nn/dropout.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/ops/dropout.hpp"

namespace tg::nn {

Dropout::Dropout(double p, Generator* generator) : p_(p), generator_(generator) {
  TG_CHECK(p >= 0 && p < 1, "Dropout: p must be in [0, 1), got {}", p);
}

Tensor Dropout::forward(const Tensor& x) {
  return dropout(x, p_, is_training(), generator_ ? *generator_ : default_generator());
}

std::string Dropout::extra_repr() const { return fmt::format("p={}", p_); }

}  // namespace tg::nn
