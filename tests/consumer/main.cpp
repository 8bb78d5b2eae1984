// Fits y = 3x - 1 with the installed package: proves headers, library and config are usable,
// the opt-in xtensor interop and TG_CHECK among them.
#include <cmath>
#include <cstdio>
#include <tapegrad/autograd/check.hpp>
#include <tapegrad/autograd/xarray.hpp>
#include <tapegrad/tapegrad.hpp>

int main() {
  tg::Tensor x = tg::Tensor({0.0, 1.0, 2.0, 3.0});
  tg::Tensor y = x * 3.0 - 1.0;
  tg::Tensor w = tg::zeros({1}).requires_grad_();
  tg::Tensor b = tg::zeros({1}).requires_grad_();
  for (int step = 0; step < 500; ++step) {
    tg::Tensor loss = tg::mean(tg::pow(x * w + b - y, 2.0));
    w.zero_grad(), b.zero_grad();
    loss.backward();
    tg::NoGradGuard no_grad;
    w.add_(w.grad(), -0.05);
    b.add_(b.grad(), -0.05);
  }
  std::printf("w=%.3f b=%.3f\n", w.item(), b.item());
  const tg::Tensor from_xtensor(xt::xarray<double>{{1.0, 2.0}, {3.0, 4.0}});
  TG_CHECK(from_xtensor.array<double>()(1, 0) == 3.0, "consumer: xtensor interop read {}",
           from_xtensor.array<double>()(1, 0));
  return (std::abs(w.item() - 3.0) < 1e-2 && std::abs(b.item() + 1.0) < 1e-2) ? 0 : 1;
}
