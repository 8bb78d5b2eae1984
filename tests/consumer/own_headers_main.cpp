// A user's project whose own include directory holds nn/module.hpp and autograd/tensor.hpp, as
// tapegrad's tree does: both libraries' headers compile side by side, each getting its own.
#include <cstdio>
#include <tapegrad/tapegrad.hpp>

#include "autograd/tensor.hpp"
#include "nn/module.hpp"

int main() {
  user_project::Module own_module;
  user_project::Tensor own_tensor;
  tg::nn::Linear layer(2, 1);
  tg::Tensor y = layer.forward(tg::ones({4, 2}));
  std::printf("own module: %d layers, own tensor: %.1f, tapegrad output: [%zu, %zu]\n", own_module.layers,
              own_tensor.value, y.shape()[0], y.shape()[1]);
  return (own_module.layers == 3 && own_tensor.value == 2.0 && y.shape()[0] == 4 && y.shape()[1] == 1) ? 0 : 1;
}
