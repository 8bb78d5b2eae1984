// A training-like loop in which rank 1 fails at step 3 (tests/distributed/faults.py runs it under
// mpiexec): "throw" throws out of the Environment's scope, "kill" ends rank 1 with SIGKILL. The
// other ranks are then inside a collective that rank 1 will never join.
#include <signal.h>

#include <cstdio>
#include <string>

#include "tapegrad/tapegrad.hpp"

namespace {
void train(int argc, char** argv, const std::string& mode) {
  tg::distributed::Environment env(argc, argv);
  for (int step = 0;; ++step) {
    if (env.rank() == 1 && step == 3) {
      if (mode == "kill") raise(SIGKILL);
      throw tg::Error("a deliberate failure at step 3");
    }
    tg::Tensor t = tg::ones({1000});
    tg::distributed::all_reduce(t);
  }
}
}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "throw";
  try {
    train(argc, argv, mode);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fault: %s\n", e.what());
    return 1;
  }
  return 0;
}
