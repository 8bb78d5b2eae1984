// The IDX reader on any bytes (raw, or gzip when they start with 1f 8b).
#include <cstddef>
#include <cstdint>

#include "tapegrad/autograd/error.hpp"
#include "tapegrad/datasets/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const tg::datasets::IdxArray a = tg::datasets::parse_idx({data, size}, "fuzz input");
    (void)tg::datasets::idx_to_tensor(a);
  } catch (const tg::Error&) {
  }
  return 0;
}
