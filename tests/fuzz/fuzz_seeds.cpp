// Writes the fuzz targets' seed corpus: valid files of each format, made by tapegrad itself.
// Usage: fuzz_seeds DIR  (creates DIR/idx, DIR/gzip, DIR/safetensors, DIR/checkpoint)
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tapegrad/nn/activation.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/nn/sequential.hpp"
#include "tapegrad/nn/serialize.hpp"
#include "tapegrad/nn/train/checkpoint.hpp"
#include "tapegrad/optim/adam.hpp"

namespace fs = std::filesystem;

namespace {

std::string idx(std::uint8_t type, const std::vector<std::uint32_t>& dims, std::size_t element_size) {
  std::string b{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  std::size_t n = 1;
  for (std::uint32_t d : dims) {
    for (int shift : {24, 16, 8, 0}) b += static_cast<char>((d >> shift) & 0xff);
    n *= d;
  }
  for (std::size_t i = 0; i < n * element_size; ++i) b += static_cast<char>(i * 37 % 251);
  return b;
}

// A gzip member (RFC 1952) of `data`, with zlib's deflate.
std::string gzip(const std::string& data) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

void put(const fs::path& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR\n");
    return 2;
  }
  const fs::path dir = argv[1];
  for (const char* sub : {"idx", "gzip", "safetensors", "checkpoint"}) fs::create_directories(dir / sub);
  const std::string labels = idx(0x08, {10}, 1), images = idx(0x08, {3, 4, 4}, 1), floats = idx(0x0D, {2, 3}, 4);
  put(dir / "idx" / "labels", labels);
  put(dir / "idx" / "images", images);
  put(dir / "idx" / "floats", floats);
  put(dir / "idx" / "labels.gz", gzip(labels));
  // The gzip target puts its own 10-byte member header in front: the seeds are what follows it.
  for (const auto& [name, data] : {std::pair{"labels", labels}, {"images", images}, {"floats", floats}})
    put(dir / "gzip" / name, gzip(data).substr(10));

  tg::Generator init(1), shuffle(2);
  tg::nn::Sequential net{tg::nn::Linear(4, 3, {.generator = &init}), tg::nn::ReLU(),
                         tg::nn::Linear(3, 2, {.generator = &init})};
  tg::nn::save(net, dir / "safetensors" / "model.safetensors");
  tg::optim::Adam opt(net.parameters(), {.lr = 0.01});
  tg::nn::save_checkpoint(dir / "checkpoint" / "fresh.safetensors", net, opt, 0, &shuffle);
  tg::nn::save_checkpoint(dir / "safetensors" / "checkpoint.safetensors", net, opt, 3, &shuffle);
  return 0;
}
