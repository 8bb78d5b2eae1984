// The safetensors parser on any bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tapegrad/autograd/error.hpp"
#include "tapegrad/nn/serialize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)tg::nn::parse_safetensors(std::string(reinterpret_cast<const char*>(data), size), "fuzz input");
  } catch (const tg::Error&) {
  }
  return 0;
}
