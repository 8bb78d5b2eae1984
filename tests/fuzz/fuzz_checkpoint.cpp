// load_checkpoint on any bytes, into a model and an Adam optimizer built like the seeds' (an
// in-memory file: nothing is written to disk). A refused file must leave both unchanged.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tapegrad/autograd/error.hpp"
#include "tapegrad/nn/activation.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/nn/sequential.hpp"
#include "tapegrad/nn/train/checkpoint.hpp"
#include "tapegrad/optim/adam.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const int fd = ::memfd_create("checkpoint", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  for (std::size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) std::abort();
    done += static_cast<std::size_t>(n);
  }
  tg::Generator init(1), shuffle(2);
  tg::nn::Sequential net{tg::nn::Linear(4, 3, {.generator = &init}), tg::nn::ReLU(),
                         tg::nn::Linear(3, 2, {.generator = &init})};
  tg::optim::Adam opt(net.parameters(), {.lr = 0.01});
  tg::TensorList before;
  for (const tg::Tensor& p : net.parameters()) before.push_back(p.clone());
  const std::string shuffle_before = shuffle.state();
  try {
    (void)tg::nn::load_checkpoint("/proc/self/fd/" + std::to_string(fd), net, opt, &shuffle);
  } catch (const tg::Error&) {
    // All or nothing: a refused checkpoint changed neither the model nor the generator.
    const tg::TensorList after = net.parameters();
    for (std::size_t i = 0; i < after.size(); ++i)
      if (std::memcmp(after[i].data_ptr(), before[i].data_ptr(), after[i].numel() * sizeof(float)) != 0) std::abort();
    if (shuffle.state() != shuffle_before) std::abort();
  }
  ::close(fd);
  return 0;
}
