// The tests' main: doctest's, except that a run at an instruction set this CPU lacks
// (TG_CPU_CAPABILITY, set by CTest for the forced-level runs) is skipped (exit 77), not failed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "autograd/error.hpp"
#include "autograd/runtime.hpp"

int main(int argc, char** argv) {
  try {
    (void)tg::cpu_capability();
  } catch (const tg::Error& e) {
    std::printf("skipped: %s\n", e.what());
    return 77;
  }
  return doctest::Context(argc, argv).run();
}
