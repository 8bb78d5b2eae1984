// Fits y = 3x - 1 with the installed package: proves headers, library and config are usable.
#include <cmath>
#include <cstdio>
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
  return (std::abs(w.item() - 3.0) < 1e-2 && std::abs(b.item() + 1.0) < 1e-2) ? 0 : 1;
}
