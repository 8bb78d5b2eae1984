// The IDX reader's gzip path: every input is a gzip member header followed by the fuzzer's bytes
// (deflate data, trailer, further members, garbage).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tapegrad/autograd/error.hpp"
#include "tapegrad/datasets/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> file{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  file.insert(file.end(), data, data + size);
  try {
    (void)tg::datasets::parse_idx(file, "fuzz input");
  } catch (const tg::Error&) {
  }
  return 0;
}
