// Nothing lost, nothing silent: damaged files are refused (every byte cut off, every bit
// flipped), saves leave no debris after a kill -9 and respect the umask, generators are safe to
// share between threads, and bad hyper-parameters or a diverging loss stop with a clear message.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"
#include "temp_dir.hpp"

using namespace tg;
namespace fs = std::filesystem;

namespace {

using Bytes = std::string;

using tg::testing::TempDir;

Bytes read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

nn::Sequential small_net(std::uint64_t seed) {
  Generator gen(seed);
  return nn::Sequential{nn::Linear(4, 3, {.generator = &gen}), nn::ReLU(), nn::Linear(3, 2, {.generator = &gen})};
}

// Whether two files' tensors are the same names, dtypes, shapes and bytes.
// The same tensors, and every metadata entry of `b` in `a` with the same value (a flip in the name
// of the metadata's checksum turns it into an entry of no meaning, leaving the others as they were).
bool same_tensors(const nn::SafetensorsFile& a, const nn::SafetensorsFile& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (const auto& [key, value] : b.metadata)
    if (auto it = a.metadata.find(key); it == a.metadata.end() || it->second != value) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const Tensor &x = a.tensors[i].second, &y = b.tensors[i].second;
    if (a.tensors[i].first != b.tensors[i].first || x.dtype() != y.dtype() || x.shape() != y.shape() ||
        std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * dtype_size(x.dtype())) != 0)
      return false;
  }
  return true;
}

struct Sweep {
  std::size_t variants = 0, rejected = 0, harmless = 0;
};

// Every truncation and every single-bit flip of `file`: each is either refused by `parse`
// (tg::Error) or parses to the same tensors and metadata as the original (a flip in JSON
// whitespace, say).
// Nothing may parse to different values.
Sweep sweep_safetensors(const Bytes& file) {
  const nn::SafetensorsFile original = nn::parse_safetensors(file, "original");
  Sweep s;
  auto judge = [&](const Bytes& variant) {
    ++s.variants;
    try {
      const nn::SafetensorsFile parsed = nn::parse_safetensors(variant, "variant");
      if (same_tensors(parsed, original)) {
        ++s.harmless;
      } else {
        FAIL_CHECK("a damaged file parsed to other values");
      }
    } catch (const Error&) {
      ++s.rejected;
    }
  };
  for (std::size_t n = 0; n < file.size(); ++n) judge(file.substr(0, n));
  for (std::size_t i = 0; i < file.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      Bytes flipped = file;
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
      judge(flipped);
    }
  return s;
}

}  // namespace

TEST_CASE("a damaged model or checkpoint file is refused: every truncation, every flipped bit") {
  TempDir dir;
  nn::Sequential net = small_net(1);
  nn::save(net, dir / "model.safetensors");
  const Sweep model = sweep_safetensors(read_bytes(dir / "model.safetensors"));
  MESSAGE("model file: ", model.variants, " variants, ", model.rejected, " refused, ", model.harmless,
          " harmless (same tensors and metadata)");
  CHECK(model.rejected + model.harmless == model.variants);

  optim::Adam opt(net.parameters(), {.lr = 0.1});
  Generator gen(3);
  const Tensor loss = sum(net(randn({5, 4}, gen)));
  loss.backward();
  opt.step();
  nn::save_checkpoint(dir / "ckpt.safetensors", net, opt, 4, &gen);
  const Sweep ckpt = sweep_safetensors(read_bytes(dir / "ckpt.safetensors"));
  MESSAGE("checkpoint file: ", ckpt.variants, " variants, ", ckpt.rejected, " refused, ", ckpt.harmless,
          " harmless (same tensors and metadata)");
  CHECK(ckpt.rejected + ckpt.harmless == ckpt.variants);
}

TEST_CASE("a weight changed on disk fails its checksum, naming the tensor; checksums stay out of the metadata") {
  TempDir dir;
  nn::Sequential net = small_net(2);
  nn::save(net, dir / "model.safetensors");
  Bytes file = read_bytes(dir / "model.safetensors");
  const nn::SafetensorsFile parsed = nn::parse_safetensors(file);
  CHECK(parsed.metadata.count("format") == 1);
  for (const auto& [key, value] : parsed.metadata) CHECK_FALSE(key.starts_with("tapegrad.crc32."));
  // The last byte is the top of the last float of the last tensor: its sign bit.
  file.back() = static_cast<char>(file.back() ^ 0x80);
  std::ofstream(dir / "model.safetensors", std::ios::binary | std::ios::trunc) << file;
  nn::Sequential other = small_net(3);
  CHECK_THROWS_WITH_AS(nn::load(other, dir / "model.safetensors"),
                       doctest::Contains("tensor '2.bias' fails its checksum"), Error);
  CHECK_THROWS_WITH_AS(nn::save_safetensors(dir / "x.safetensors", {}, {{"tapegrad.crc32.w", "0"}}),
                       doctest::Contains("is reserved"), Error);
  CHECK_THROWS_WITH_AS(nn::save_safetensors(dir / "x.safetensors", {}, {{"tapegrad.metadata_crc32", "0"}}),
                       doctest::Contains("is reserved"), Error);
}

TEST_CASE("a checkpoint's metadata changed on disk (its epoch) fails its checksum") {
  TempDir dir;
  nn::save_safetensors(dir / "c.safetensors", {{"w", ones({2})}}, {{"epoch", "3"}});
  Bytes file = read_bytes(dir / "c.safetensors");
  CHECK(nn::parse_safetensors(file).metadata.at("epoch") == "3");
  const std::size_t at = file.find("\"3\"");
  REQUIRE(at != std::string::npos);
  file[at + 1] = '7';  // a digit for a digit: still valid JSON, another epoch
  CHECK_THROWS_WITH_AS(nn::parse_safetensors(file, "c.safetensors"),
                       doctest::Contains("c.safetensors: the metadata fails its checksum"), Error);
}

TEST_CASE("saves respect the umask and clean up what a killed save left behind") {
  TempDir dir;
  const mode_t old = ::umask(022);
  nn::Sequential net = small_net(4);
  nn::save(net, dir / "model.safetensors");
  struct stat st {};
  REQUIRE(::stat((dir / "model.safetensors").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  ::umask(old);
  // A temporary of a process that no longer runs (pid 2^22 + 1 is above Linux's pid limit) goes at
  // the next save into the directory; one of a live process (this one) stays.
  const fs::path stale = dir / ".model.safetensors.tmp-4194305-0123456789abcdef";
  const fs::path live = dir / fmt::format(".model.safetensors.tmp-{}-0123456789abcdef", ::getpid());
  std::ofstream(stale) << "partial";
  std::ofstream(live) << "in progress";
  nn::save(net, dir / "model.safetensors");
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(live));
}

TEST_CASE("kill -9 during save_checkpoint: the file always loads, old or new, and no temporary file stays") {
  TempDir dir;
  const fs::path path = dir / "ckpt.safetensors";
  {
    nn::Sequential net = small_net(5);
    optim::Adam opt(net.parameters(), {.lr = 0.01});
    nn::save_checkpoint(path, net, opt, 0);
  }
  constexpr int kills = 40;
  int corrupt = 0;
  for (int k = 0; k < kills; ++k) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // Saves as fast as it can until killed: epochs k*1000, k*1000 + 1, ...
      nn::Sequential net = small_net(6);
      optim::Adam opt(net.parameters(), {.lr = 0.01});
      for (std::int64_t epoch = k * 1000;; ++epoch) nn::save_checkpoint(path, net, opt, epoch);
    }
    ::usleep(static_cast<useconds_t>(2000 + 997 * (k % 13)));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    nn::Sequential net = small_net(7);
    optim::Adam opt(net.parameters(), {.lr = 0.01});
    try {
      nn::load_checkpoint(path, net, opt);
    } catch (const Error& e) {
      ++corrupt;
      MESSAGE(e.what());
    }
  }
  std::size_t left_before = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) left_before += e.path() != path;
  // The next save removes what a kill between naming the file and renaming it left.
  {
    nn::Sequential net = small_net(8);
    optim::Adam opt(net.parameters(), {.lr = 0.01});
    nn::save_checkpoint(path, net, opt, 1);
  }
  std::size_t left_after = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) left_after += e.path() != path;
  MESSAGE(kills, " kills: ", corrupt, " unloadable files, ", left_before, " temporary files before the next save, ",
          left_after, " after it");
  CHECK(corrupt == 0);
  CHECK(left_after == 0);
}

TEST_CASE("generators are safe to share: models built and trained on two threads at once") {
  // With Dropout, layer initialization and shuffles all drawing from the default generator
  // (ThreadSanitizer reported races here before the generator had a lock).
  std::atomic<int> failures{0};
  auto train = [&](std::uint64_t seed) {
    try {
      Generator data(seed);
      nn::Model model(nn::Sequential{nn::Linear(4, 8), nn::Dropout(0.3), nn::Linear(8, 2)});
      model.compile({.optimizer = "adam", .loss = "categorical_crossentropy"});
      const Tensor x = randn({64, 4}, data);
      const Tensor y = randint(0, 2, {64}, data);
      model.fit(x, y, {.epochs = 3, .batch_size = 8, .verbose = 0});
    } catch (const std::exception& e) {
      ++failures;
    }
  };
  std::thread a(train, 1), b(train, 2);
  a.join();
  b.join();
  CHECK(failures == 0);
}

TEST_CASE("Generator::set_state refuses text that is not a state, and the all-zero state") {
  Generator gen(1);
  CHECK_THROWS_WITH_AS(gen.set_state("not a state"), doctest::Contains("not a saved generator state"), Error);
  std::string zeros;
  for (int i = 0; i < 312; ++i) zeros += "0 ";
  zeros += "0";
  CHECK_THROWS_WITH_AS(gen.set_state(zeros), doctest::Contains("all zeros"), Error);
  Generator other(2);
  other.set_state(gen.state());
  CHECK(other.uniform() == gen.uniform());
}

TEST_CASE("a huge batch size is one batch of all samples, not zero batches") {
  Generator gen(5);
  const Tensor x = randn({20, 4}, gen);
  const Tensor y = randint(0, 2, {20}, gen);
  nn::Model model(nn::Sequential{nn::Linear(4, 2), nn::Softmax()});
  model.compile({.optimizer = "sgd", .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
  const std::size_t huge = std::numeric_limits<std::size_t>::max();
  const nn::History h = model.fit(x, y, {.epochs = 1, .batch_size = huge, .verbose = 0});
  CHECK(h["loss"].front() > 0);
  const nn::Logs score = model.evaluate(x, y, {.batch_size = huge});
  CHECK(score.at("loss") > 0);
  const datasets::DataLoader loader(datasets::TensorDataset(x, y), {.batch_size = huge});
  CHECK(loader.size() == 1);
  // No samples: the output for an empty batch, [0, classes], not the input.
  CHECK(model.predict(zeros({0, 4})).shape() == Shape{0, 2});
}

TEST_CASE("a diverging loss stops fit with a message, or TerminateOnNaN stops it quietly") {
  Generator gen(6);
  Tensor x = randn({16, 3}, gen);
  x.mutable_array<float>()(9, 1) = std::numeric_limits<float>::infinity();  // the second batch of 8
  const Tensor y = randint(0, 2, {16}, gen);
  nn::Model model(nn::Sequential{nn::Linear(3, 2), nn::Softmax()});
  model.compile({.optimizer = "sgd", .loss = "categorical_crossentropy"});
  CHECK_THROWS_WITH_AS(model.fit(x, y, {.epochs = 2, .batch_size = 8, .shuffle = false, .verbose = 0}),
                       doctest::Contains("at epoch 1, batch 2: the training diverged"), Error);
  // The weights are those after the first batch: finite.
  for (const Tensor& p : model.parameters())
    for (float v : p.array<float>()) CHECK(std::isfinite(v));
  const nn::History h = model.fit(x, y,
                                  {.epochs = 2,
                                   .batch_size = 8,
                                   .shuffle = false,
                                   .verbose = 0,
                                   .callbacks = {std::make_shared<nn::TerminateOnNaN>()}});
  CHECK(h.epoch().size() == 1);
  CHECK(std::isnan(h["loss"].front()));
  for (const Tensor& p : model.parameters())
    for (float v : p.array<float>()) CHECK(std::isfinite(v));
}

TEST_CASE("a tensor too large to allocate is a tg::Error naming its size") {
  CHECK_THROWS_WITH_AS(zeros({0, std::size_t{1} << 40, std::size_t{1} << 40}), doctest::Contains("is too large"),
                       Error);
#if defined(__SANITIZE_ADDRESS__)
  MESSAGE("4 TiB not tried under AddressSanitizer: its operator new stops the process instead of throwing");
#else
  CHECK_THROWS_WITH_AS(zeros({std::size_t{1} << 20, std::size_t{1} << 20}), doctest::Contains("cannot allocate shape"),
                       Error);
#endif
}
