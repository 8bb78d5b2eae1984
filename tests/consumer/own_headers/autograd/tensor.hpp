// A user's own header that shares its path with one of tapegrad's (autograd/tensor.hpp).
#pragma once

namespace user_project {
struct Tensor {
  double value = 2.0;
};
}  // namespace user_project
