// The tapegrad side of the guest test (tests/guest/host.cpp): a module the host loads with
// dlopen, which pulls in libtapegrad, runs ops of every kernel family and a training step.
#include <exception>
#include <iostream>

#include "tapegrad/tapegrad.hpp"

/// tapegrad's own thread count: its pool has this many threads, the caller's among them.
extern "C" int tg_guest_threads() { return tg::get_num_threads(); }

extern "C" int tg_guest_run() {
  using namespace tg;
  try {
    Generator gen(0);
    // GEMMs: float32 (oneDNN), float64 (OpenBLAS), large enough to be split over the threads.
    const Tensor a = randn({256, 256}, gen), b = randn({256, 256}, gen, float64);
    (void)matmul(a, a);
    (void)matmul(b, b);
    // Convolutions on every path: direct (few taps), oneDNN (many channels), float64 (im2col).
    const Tensor x = randn({4, 16, 12, 12}, gen);
    (void)conv2d(x, randn({8, 16, 3, 3}, gen));
    (void)conv2d(x.to(float64), randn({8, 16, 3, 3}, gen, float64));
    // A training step of the tutorial's model, with every setting tapegrad has at its default.
    nn::Sequential model{nn::Conv2d(1, 8, 3, {.activation = nn::Activation::relu}), nn::MaxPool2d(2), nn::Flatten(),
                         nn::Linear(8 * 13 * 13, 10)};
    optim::Adam opt(model.parameters(), {.lr = 1e-3});
    const Tensor images = rand({16, 1, 28, 28}, gen);
    const Tensor labels = randint(0, 10, {16}, gen);
    opt.zero_grad();
    const Tensor loss = cross_entropy(model.forward(images), labels);
    loss.backward();
    opt.step();
    return loss.item() > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "guest: " << e.what() << "\n";
    return 1;
  }
}
