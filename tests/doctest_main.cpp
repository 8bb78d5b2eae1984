// The tests' main: doctest's, except that a run at an instruction set this CPU lacks
// (TG_CPU_CAPABILITY, set by CTest for the forced-level runs) is skipped (exit 77), not failed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "tapegrad/autograd/error.hpp"
#include "tapegrad/autograd/runtime.hpp"

int main(int argc, char** argv) {
  try {
    const std::string_view level = tg::to_string(tg::cpu_capability());
    // A forced level that did not take effect would test the default level twice, silently.
    if (const char* wanted = std::getenv("TG_CPU_CAPABILITY"); wanted && *wanted && level != wanted) {
      std::printf("TG_CPU_CAPABILITY=%s, but the kernels run at %.*s\n", wanted, static_cast<int>(level.size()),
                  level.data());
      return 1;
    }
  } catch (const tg::Error& e) {
    std::printf("skipped: %s\n", e.what());
    return 77;
  }
  return doctest::Context(argc, argv).run();
}
