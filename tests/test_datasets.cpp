// IDX reader, MNIST/Fashion-MNIST loading and downloading, Dataset and DataLoader.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"
#include "temp_dir.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace tg::datasets;
using Bytes = std::vector<std::uint8_t>;

namespace {

using tg::testing::TempDir;

void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

Bytes read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void put_u32(Bytes& b, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}

/// An IDX file: magic 00 00 type rank, big-endian dims, then `payload` as given.
Bytes idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims) put_u32(b, d);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

std::uint32_t crc32(const Bytes& data) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (auto byte : data) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

/// A valid gzip file holding `data` in stored (uncompressed) deflate blocks: no zlib needed here.
Bytes gzip_bytes(const Bytes& data) {
  Bytes out{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  std::size_t pos = 0;
  do {
    const std::size_t len = std::min<std::size_t>(65535, data.size() - pos);
    const bool last = pos + len == data.size();
    out.push_back(last ? 1 : 0);
    out.push_back(static_cast<std::uint8_t>(len));
    out.push_back(static_cast<std::uint8_t>(len >> 8));
    out.push_back(static_cast<std::uint8_t>(~len));
    out.push_back(static_cast<std::uint8_t>(~len >> 8));
    out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(pos),
               data.begin() + static_cast<std::ptrdiff_t>(pos + len));
    pos += len;
  } while (pos < data.size());
  for (std::uint32_t v : {crc32(data), static_cast<std::uint32_t>(data.size())}) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  return out;
}

/// n synthetic 28×28 images (pixel (i + p) mod 256) and their labels i mod 10.
Bytes mnist_images(std::uint32_t n, std::uint32_t rows = 28, std::uint32_t cols = 28) {
  Bytes pixels(std::size_t{n} * rows * cols);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t p = 0; p < rows * cols; ++p) pixels[i * rows * cols + p] = static_cast<std::uint8_t>(i + p);
  return idx_bytes(0x08, {n, rows, cols}, pixels);
}

Bytes mnist_labels(std::uint32_t n, std::uint8_t bad_at = 255, std::uint8_t bad_value = 0) {
  Bytes labels(n);
  for (std::size_t i = 0; i < n; ++i) labels[i] = static_cast<std::uint8_t>(i % 10);
  if (bad_at < n) labels[bad_at] = bad_value;
  return idx_bytes(0x08, {n}, labels);
}

/// The tg::Error message `f` throws; fails the test when it throws nothing.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const tg::Error& e) {
    return e.what();
  }
  FAIL("expected a tg::Error");
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// An MNIST-format source that reads only where the test says: no environment, no system dirs.
MnistSource test_source(const std::vector<std::string>& mirrors = {}) {
  MnistSource s = mnist_source();
  s.name = "TestMNIST";
  s.cache_name = "test-mnist";
  s.dir_env = "TG_TEST_DATASETS_UNSET_DIR";
  s.mirrors_env = "TG_TEST_DATASETS_UNSET_MIRRORS";
  s.mirrors = mirrors;
  s.system_dirs = {};
  // The tests' files are made up: no known content (or size) to check them against.
  for (RemoteFile* f : {&s.train_images, &s.train_labels, &s.test_images, &s.test_labels}) {
    f->content_sha256.clear();
    f->size = 0;
  }
  return s;
}

/// `python3 -m http.server` on 127.0.0.1 on a port it picks itself, serving `dir`; stopped at the end.
class HttpServer {
 public:
  explicit HttpServer(const fs::path& dir)
      : HttpServer(
            {"/usr/bin/python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", dir.string()}) {}

  /// A server that answers every request with a redirect to itself.
  static HttpServer redirect_loop() {
    return HttpServer({"/usr/bin/python3", "-u", "-c", R"(
import http.server
class Loop(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", self.path)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Loop)
print("Serving HTTP on 127.0.0.1 port %d" % server.server_address[1])
server.serve_forever()
)"});
  }

  HttpServer(HttpServer&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), output_(std::exchange(other.output_, -1)), port_(other.port_) {}

  explicit HttpServer(const std::vector<std::string>& command) {
    if (!fs::exists("/usr/bin/python3")) return;
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::vector<const char*> argv;
    for (const auto& word : command) argv.push_back(word.c_str());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, const_cast<char* const*>(argv.data()), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    output_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      return;
    }
    // It prints "Serving HTTP on 127.0.0.1 port N (...) ...\n" once it listens. The pipe stays
    // open: a write to a closed pipe would kill the server.
    std::string line;
    pollfd p{output_, POLLIN, 0};
    while (line.find('\n') == std::string::npos && ::poll(&p, 1, 10000) > 0) {
      char buf[256];
      const ssize_t n = ::read(output_, buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    if (const auto at = line.find(" port "); at != std::string::npos) port_ = std::atoi(line.c_str() + at + 6);
  }
  ~HttpServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    if (output_ >= 0) ::close(output_);
  }
  bool ok() const { return port_ > 0; }
  std::string url(const std::string& path = "") const { return fmt::format("http://127.0.0.1:{}/{}", port_, path); }

 private:
  pid_t pid_ = -1;
  int output_ = -1;
  int port_ = 0;
};

/// Where the real MNIST files are: $TG_MNIST_DIR, else ../shared/data/mnist next to the repository.
std::optional<fs::path> real_mnist_dir() {
  const char* env = std::getenv("TG_MNIST_DIR");
  const fs::path dir = env && *env ? fs::path(env) : fs::path(TG_SOURCE_DIR) / ".." / "shared" / "data" / "mnist";
  if (fs::exists(dir / "train-images-idx3-ubyte.gz") || fs::exists(dir / "train-images-idx3-ubyte")) return dir;
  return std::nullopt;
}

}  // namespace

TEST_CASE("read_idx reads raw and gzip'd files, by content whatever the name") {
  TempDir tmp;
  const Bytes file = idx_bytes(0x08, {2, 3}, {1, 2, 3, 4, 5, 255});
  write_file(tmp / "a-idx2-ubyte", file);
  write_file(tmp / "a-idx2-ubyte.gz", gzip_bytes(file));
  write_file(tmp / "gzip-under-raw-name", gzip_bytes(file));
  write_file(tmp / "raw-under-gz-name.gz", file);
  for (const char* name : {"a-idx2-ubyte", "a-idx2-ubyte.gz", "gzip-under-raw-name", "raw-under-gz-name.gz"}) {
    INFO(name);
    const IdxArray a = read_idx(tmp / name, {.type = IdxType::u8, .rank = 2});
    CHECK(a.dims == tg::Shape{2, 3});
    CHECK(a.bytes == Bytes{1, 2, 3, 4, 5, 255});
    const tg::Tensor t = idx_to_tensor(a);
    CHECK(t.dtype() == tg::int64);
    CHECK(t.shape() == tg::Shape{2, 3});
    CHECK(t.data<std::int64_t>()[5] == 255);
  }
}

TEST_CASE("read_idx converts big-endian multi-byte elements") {
  TempDir tmp;
  // int32 -2 and 258; float32 1.5 (0x3fc00000).
  write_file(tmp / "ints", idx_bytes(0x0C, {2}, {0xff, 0xff, 0xff, 0xfe, 0, 0, 1, 2}));
  write_file(tmp / "floats", gzip_bytes(idx_bytes(0x0D, {1, 1}, {0x3f, 0xc0, 0, 0})));
  const tg::Tensor ints = idx_to_tensor(read_idx(tmp / "ints"));
  CHECK(ints.data<std::int64_t>()[0] == -2);
  CHECK(ints.data<std::int64_t>()[1] == 258);
  const tg::Tensor floats = idx_to_tensor(read_idx(tmp / "floats", {.type = IdxType::f32}));
  CHECK(floats.dtype() == tg::float32);
  CHECK(floats.shape() == tg::Shape{1, 1});
  CHECK(floats.item() == 1.5);
}

TEST_CASE("read_idx errors name the file and what is wrong") {
  TempDir tmp;
  const Bytes good = idx_bytes(0x08, {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  auto check = [&](const std::string& name, const Bytes& bytes, const std::string& what, IdxExpect expect = {}) {
    INFO(name);
    write_file(tmp / name, bytes);
    const std::string msg = error_of([&] { read_idx(tmp / name, expect); });
    INFO(msg);
    CHECK(contains(msg, (tmp / name).string()));
    CHECK(contains(msg, what));
  };
  check("bad-magic", {0x12, 0x34, 0x08, 0x01, 0, 0, 0, 0}, "not an IDX file");
  check("unknown-type", idx_bytes(0x07, {1}, {0}), "not an IDX file");
  check("too-short", {0, 0}, "fewer than the 4-byte magic");
  check("wrong-type", idx_bytes(0x0C, {1}, {0, 0, 0, 1}), "type int (0x0c), expected ubyte", {.type = IdxType::u8});
  check("wrong-rank", good, "has 2 dimensions, expected 3", {.rank = 3});
  check("header-cut", Bytes(good.begin(), good.begin() + 9), "truncated");
  check("truncated", Bytes(good.begin(), good.end() - 1), "truncated");
  Bytes trailing = good;
  trailing.push_back(0);
  check("trailing", trailing, "1 trailing bytes");
  const Bytes gz = gzip_bytes(good);
  check("gzip-truncated.gz", Bytes(gz.begin(), gz.end() - 12), "truncated");
  check("gzip-trailer-cut.gz", Bytes(gz.begin(), gz.end() - 4), "truncated");
  check("gzip-short-data.gz", gzip_bytes(Bytes(good.begin(), good.end() - 3)), "truncated");
  check("gzip-trailing.gz", gzip_bytes(trailing), "1 trailing bytes");
  Bytes corrupt = gz;
  corrupt[corrupt.size() - 9] ^= 0xff;  // last data byte: the CRC no longer matches
  check("gzip-corrupt.gz", corrupt, "corrupt gzip data");
  check("huge-claim.gz", gzip_bytes(idx_bytes(0x08, {0xffffff, 0xffff}, {})), "truncated");
  CHECK_THROWS_WITH_AS(read_idx(tmp / "missing"), doctest::Contains("missing' does not exist"), tg::Error);
}

TEST_CASE("MNIST reads a split, scales per batch and checks the files") {
  TempDir tmp;
  write_file(tmp / "train-images-idx3-ubyte.gz", gzip_bytes(mnist_images(25)));
  write_file(tmp / "train-labels-idx1-ubyte", mnist_labels(25));
  const MNIST train(test_source(), Split::train, {.root = tmp.path, .download = false});
  CHECK(train.size() == 25);
  CHECK(train.directory() == tmp.path);
  CHECK(train.pixels().size() == 25 * 784);
  const std::vector<std::size_t> idx{3, 0, 24};
  const Batch b = train.get_batch(idx);
  CHECK(b.x.shape() == tg::Shape{3, 1, 28, 28});
  CHECK(b.x.dtype() == tg::float32);
  CHECK(b.y.shape() == tg::Shape{3});
  CHECK(b.y.dtype() == tg::int64);
  CHECK(b.x.data<float>()[0] == 3.0f / 255.0f);
  CHECK(b.x.data<float>()[784 + 255] == 1.0f);
  CHECK(b.x.data<float>()[2 * 784 + 1] == 25.0f / 255.0f);
  CHECK(b.y.data<std::int64_t>()[0] == 3);
  CHECK(b.y.data<std::int64_t>()[2] == 4);
  const tg::Tensor slice = train.images(10, 12);
  CHECK(slice.shape() == tg::Shape{2, 1, 28, 28});
  CHECK(slice.data<float>()[0] == 10.0f / 255.0f);
  CHECK(train.images().shape() == tg::Shape{25, 1, 28, 28});
  CHECK(train.labels().shape() == tg::Shape{25});
  CHECK(train.labels().data<std::int64_t>()[13] == 3);
  CHECK_THROWS_WITH_AS(train.images(20, 26), doctest::Contains("outside the 25 images"), tg::Error);
  // A batch large enough to be split across the threads: every pixel is its byte / 255, and an
  // index out of range is caught before any work starts.
  const int threads_before = tg::get_num_threads();
  tg::set_num_threads(2);
  std::vector<std::size_t> many(40);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = (i * 7) % 25;
  const Batch big = train.get_batch(many);
  bool all_match = true;
  for (std::size_t i = 0; i < many.size(); ++i) {
    for (std::size_t p = 0; p < 784; ++p)
      all_match &= big.x.data<float>()[i * 784 + p] == static_cast<float>(train.pixels()[many[i] * 784 + p]) / 255.0f;
    all_match &= big.y.data<std::int64_t>()[i] == train.raw_labels()[many[i]];
  }
  CHECK(all_match);
  many[37] = 25;
  CHECK_THROWS_WITH_AS(train.get_batch(many), doctest::Contains("index 25 out of range for 25 examples"), tg::Error);
  tg::set_num_threads(threads_before);

  auto load_error = [&](const Bytes& images, const Bytes& labels) {
    TempDir d;
    write_file(d / "t10k-images-idx3-ubyte", images);
    write_file(d / "t10k-labels-idx1-ubyte.gz", gzip_bytes(labels));
    return error_of([&] { MNIST(test_source(), Split::test, {.root = d.path, .download = false}); });
  };
  std::string msg = load_error(mnist_images(5), mnist_labels(4));
  CHECK(contains(msg, "holds 5 images but"));
  CHECK(contains(msg, "t10k-labels-idx1-ubyte.gz' holds 4 labels"));
  msg = load_error(mnist_images(5), mnist_labels(5, 2, 10));
  CHECK(contains(msg, "t10k-labels-idx1-ubyte.gz' holds label 10 at index 2; labels must be below 10"));
  msg = load_error(mnist_images(5, 28, 27), mnist_labels(5));
  CHECK(contains(msg, "t10k-images-idx3-ubyte' holds images of 28×27 pixels"));
  msg = load_error(idx_bytes(0x08, {5, 784}, Bytes(5 * 784)), mnist_labels(5));
  CHECK(contains(msg, "t10k-images-idx3-ubyte' has 2 dimensions, expected 3"));
  const Bytes whole = mnist_images(5);
  msg = load_error(Bytes(whole.begin(), whole.end() - 100), mnist_labels(5));
  CHECK(contains(msg, "t10k-images-idx3-ubyte' is truncated"));
}

TEST_CASE("MNIST looks in the given directory, then $<dir_env>, then $TAPEGRAD_DATA, then the cache") {
  TempDir given, env_dir, data_root, cache;
  auto fill = [](const fs::path& dir, std::uint32_t n) {
    fs::create_directories(dir);
    write_file(dir / "train-images-idx3-ubyte", mnist_images(n));
    write_file(dir / "train-labels-idx1-ubyte", mnist_labels(n));
  };
  fill(given.path, 1);
  fill(env_dir.path, 2);
  fill(data_root / "test-mnist", 3);
  fill(cache.path, 4);
  MnistSource source = test_source();
  source.dir_env = "TG_TEST_DATASETS_ENV_DIR";
  const char* old_root = std::getenv("TAPEGRAD_DATA");
  const std::string saved_root = old_root ? old_root : "";
  ::setenv("TG_TEST_DATASETS_ENV_DIR", env_dir.path.c_str(), 1);
  ::setenv("TAPEGRAD_DATA", data_root.path.c_str(), 1);
  const MnistOptions options{.download = false, .cache_dir = cache.path};
  MnistOptions with_root = options;
  with_root.root = given.path;
  CHECK(MNIST(source, Split::train, with_root).size() == 1);
  CHECK(MNIST(source, Split::train, options).size() == 2);
  ::unsetenv("TG_TEST_DATASETS_ENV_DIR");
  CHECK(MNIST(source, Split::train, options).size() == 3);
  ::unsetenv("TAPEGRAD_DATA");
  CHECK(MNIST(source, Split::train, options).size() == 4);
  // A directory the caller gives must hold the files: no fallback to another place, which would
  // hide a mistyped path behind whatever that place holds.
  fs::remove(given / "train-labels-idx1-ubyte");
  const std::string half = error_of([&] { MNIST(source, Split::train, with_root); });
  CHECK(contains(half,
                 "the directory given, '" + given.path.string() + "', has no labels file train-labels-idx1-ubyte.gz"));
  with_root.root = given / "mistyped";
  CHECK_THROWS_WITH_AS(MNIST(source, Split::train, with_root), doctest::Contains("mistyped', does not exist"),
                       tg::Error);
  with_root.root = cache / "train-images-idx3-ubyte";  // a regular file
  CHECK_THROWS_WITH_AS(MNIST(source, Split::train, with_root), doctest::Contains("is not a directory"), tg::Error);
  if (old_root) ::setenv("TAPEGRAD_DATA", saved_root.c_str(), 1);
}

TEST_CASE("MNIST with no files and no download says where it looked and how to get them") {
  TempDir tmp;
  const std::string msg = error_of([&] {
    MNIST(test_source({"https://example.invalid/mnist/"}), Split::train,
          {.download = false, .cache_dir = tmp / "cache"});
  });
  INFO(msg);
  CHECK(contains(msg, "cannot find the train files train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz"));
  CHECK(contains(msg, "$TG_TEST_DATASETS_UNSET_DIR is not set"));
  CHECK(contains(msg, (tmp / "cache").string() + " (the download cache)"));
  CHECK(contains(msg, "downloading is off"));
  CHECK(contains(msg, "download them from https://example.invalid/mnist/"));
}

TEST_CASE("sha256_file") {
  TempDir tmp;
  write_file(tmp / "abc", {'a', 'b', 'c'});
  CHECK(sha256_file(tmp / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("download_file against a local HTTP server: good, corrupted and missing files") {
  TempDir served, cache;
  const Bytes good = gzip_bytes(mnist_labels(30));
  write_file(served / "good.gz", good);
  const std::string good_sha = sha256_file(served / "good.gz");
  write_file(served / "corrupt.gz", gzip_bytes(mnist_labels(31)));
  HttpServer server(served.path);
  if (!server.ok()) {
    MESSAGE("skipped: could not start /usr/bin/python3 -m http.server");
    return;
  }

  std::vector<DownloadProgress> seen;
  const DownloadOptions options{.mirrors = {server.url()},
                                .progress = [&](const DownloadProgress& p) { seen.push_back(p); }};
  const fs::path got = download_file({"good.gz", good_sha}, cache / "sub", options);
  CHECK(got == cache / "sub" / "good.gz");
  CHECK(read_file(got) == good);
  REQUIRE(!seen.empty());
  CHECK(seen.back().done);
  CHECK(seen.back().received == good.size());
  CHECK(seen.back().url == server.url("good.gz"));

  // The corrupted file (its bytes do not hash to the expected value) is rejected and not kept.
  std::string msg = error_of([&] { download_file({"corrupt.gz", good_sha}, cache.path, options); });
  CHECK(contains(msg, "could not download 'corrupt.gz'"));
  CHECK(contains(msg, server.url("corrupt.gz") + ": SHA-256 mismatch"));
  CHECK(contains(msg, "expected " + good_sha));
  // A server error is reported with its status.
  msg = error_of([&] { download_file({"missing.gz", good_sha}, cache.path, options); });
  CHECK(contains(msg, server.url("missing.gz") + ": HTTP 404"));
  // Nothing but the good file was kept: no corrupt file, no temporary file.
  std::set<std::string> kept;
  for (const auto& e : fs::recursive_directory_iterator(cache.path)) kept.insert(e.path().filename().string());
  CHECK(kept == std::set<std::string>{"sub", "good.gz"});

  // Mirrors are tried in order: a failing one is reported, the next one serves the file.
  const fs::path again = download_file({"good.gz", good_sha}, cache / "again",
                                       {.mirrors = {server.url("nowhere/"), server.url()}, .quiet = true});
  CHECK(read_file(again) == good);
  // A mismatch on every mirror lists each of them.
  msg = error_of([&] {
    download_file({"corrupt.gz", good_sha}, cache.path,
                  {.mirrors = {server.url("nowhere/"), server.url()}, .quiet = true});
  });
  CHECK(contains(msg, server.url("nowhere/corrupt.gz") + ": HTTP 404"));
  CHECK(contains(msg, server.url("corrupt.gz") + ": SHA-256 mismatch"));
  CHECK_THROWS_WITH_AS(download_file({"x", "abc"}, cache.path, options), doctest::Contains("not 64 hex digits"),
                       tg::Error);
}

TEST_CASE("MNIST downloads missing files into the cache, verified, then reads them from there") {
  TempDir served, cache;
  write_file(served / "train-images-idx3-ubyte.gz", gzip_bytes(mnist_images(12)));
  write_file(served / "train-labels-idx1-ubyte.gz", gzip_bytes(mnist_labels(12)));
  HttpServer server(served.path);
  if (!server.ok()) {
    MESSAGE("skipped: could not start /usr/bin/python3 -m http.server");
    return;
  }
  MnistSource source = test_source({server.url()});
  source.train_images.sha256 = sha256_file(served / "train-images-idx3-ubyte.gz");
  source.train_labels.sha256 = sha256_file(served / "train-labels-idx1-ubyte.gz");
  int reports = 0;
  const MnistOptions options{.cache_dir = cache.path, .progress = [&](const DownloadProgress&) { ++reports; }};
  const MNIST train(source, Split::train, options);
  CHECK(train.size() == 12);
  CHECK(train.directory() == cache.path);
  CHECK(reports > 0);
  CHECK(fs::exists(cache / "train-images-idx3-ubyte.gz"));
  // Now found in the cache: no download even without mirrors.
  source.mirrors = {};
  CHECK(MNIST(source, Split::train, {.cache_dir = cache.path, .quiet = true}).size() == 12);

  // The test split is not served: the error lists the places and the download failure.
  const std::string msg =
      error_of([&] { MNIST(test_source({server.url()}), Split::test, {.cache_dir = cache / "t", .quiet = true}); });
  INFO(msg);
  CHECK(contains(msg, "cannot find the test files"));
  CHECK(contains(msg, server.url("t10k-images-idx3-ubyte.gz") + ": HTTP 404"));
  CHECK(contains(msg, "To get the files, download them from " + server.url()));
  CHECK(!fs::exists(cache / "t" / "t10k-images-idx3-ubyte.gz"));
}

TEST_CASE("the real MNIST files") {
  const auto dir = real_mnist_dir();
  if (!dir) {
    MESSAGE("skipped: no MNIST files in $TG_MNIST_DIR or " TG_SOURCE_DIR "/../shared/data/mnist");
    return;
  }
  const MNIST train(Split::train, {.root = *dir, .download = false});
  const MNIST test(Split::test, {.root = *dir, .download = false});
  REQUIRE(train.size() == 60000);
  REQUIRE(test.size() == 10000);
  std::array<int, 10> train_counts{}, test_counts{};
  for (auto l : train.raw_labels()) ++train_counts[l];
  for (auto l : test.raw_labels()) ++test_counts[l];
  CHECK(train_counts == std::array<int, 10>{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949});
  CHECK(test_counts == std::array<int, 10>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009});
  CHECK(train.raw_labels()[0] == 5);
  CHECK(train.raw_labels()[59999] == 8);
  CHECK(test.raw_labels()[0] == 7);
  const auto pixels = train.pixels();
  CHECK(*std::min_element(pixels.begin(), pixels.end()) == 0);
  CHECK(*std::max_element(pixels.begin(), pixels.end()) == 255);

  DataLoader loader(train, {.batch_size = 32, .shuffle = true, .seed = 1, .prefetch = true});
  CHECK(loader.size() == 1875);
  std::size_t batches = 0, examples = 0;
  float lo = 1, hi = 0;
  for (const auto& [x, y] : loader) {
    ++batches;
    examples += y.numel();
    const float* p = x.data<float>();
    for (std::size_t i = 0; i < x.numel(); ++i) lo = std::min(lo, p[i]), hi = std::max(hi, p[i]);
  }
  CHECK(batches == 1875);
  CHECK(examples == 60000);
  CHECK(lo == 0.0f);
  CHECK(hi == 1.0f);
}

TEST_CASE("Fashion-MNIST from Debian's package, when installed") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: dataset-fashion-mnist is not installed");
    return;
  }
  MnistOptions options{.download = false, .cache_dir = "/nonexistent-tg-cache"};
  for (const auto& [split, per_class] : {std::pair{Split::train, 6000}, std::pair{Split::test, 1000}}) {
    const FashionMNIST data(split, options);
    CHECK(data.size() == 10 * static_cast<std::size_t>(per_class));
    CHECK(data.classes().at(9) == "Ankle boot");
    std::array<int, 10> counts{};
    for (auto l : data.raw_labels()) ++counts[l];
    for (int c : counts) CHECK(c == per_class);
  }
}

namespace {

/// x = index, y = 2·index: shows which examples each batch holds.
tg::Tensor column(std::size_t n, double scale) {
  auto a = xt::xarray<double>::from_shape({n, std::size_t{1}});
  for (std::size_t i = 0; i < n; ++i) a(i, 0) = scale * static_cast<double>(i);
  return tg::Tensor(std::move(a));
}

std::vector<std::vector<double>> epoch_rows(DataLoader& loader) {
  std::vector<std::vector<double>> out;
  for (const auto& batch : loader) {
    const double* x = batch.x.data<double>();
    const double* y = batch.y.data<double>();
    std::vector<double> rows(x, x + batch.x.numel());
    for (std::size_t i = 0; i < rows.size(); ++i) REQUIRE(y[i] == 2 * rows[i]);
    out.push_back(rows);
  }
  return out;
}

/// A user's own Dataset: example i is (i, i²); optionally fails at one index.
struct Squares : Dataset {
  std::size_t n = 0;
  std::size_t fail_at = SIZE_MAX;
  std::size_t size() const override { return n; }
  Batch get_batch(std::span<const std::size_t> indices) const override {
    auto x = xt::xarray<float>::from_shape({indices.size()});
    auto y = xt::xarray<float>::from_shape({indices.size()});
    for (std::size_t i = 0; i < indices.size(); ++i) {
      TG_CHECK(indices[i] != fail_at, "Squares: example {} is broken", indices[i]);
      x(i) = static_cast<float>(indices[i]);
      y(i) = x(i) * x(i);
    }
    return {tg::Tensor(std::move(x)), tg::Tensor(std::move(y))};
  }
};

}  // namespace

TEST_CASE("DataLoader batches in order, keeps or drops the last partial batch") {
  const TensorDataset data(column(10, 1), column(10, 2));
  DataLoader loader(data, {.batch_size = 3});
  CHECK(loader.size() == 4);
  const auto rows = epoch_rows(loader);
  CHECK(rows == std::vector<std::vector<double>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}});
  DataLoader dropping(data, {.batch_size = 3, .drop_last = true});
  CHECK(dropping.size() == 3);
  CHECK(epoch_rows(dropping).size() == 3);
  DataLoader exact(data, {.batch_size = 5, .drop_last = true});
  CHECK(epoch_rows(exact).size() == 2);
  DataLoader big(data, {.batch_size = 64, .drop_last = true});
  CHECK(big.size() == 0);
  CHECK(big.begin() == big.end());
  DataLoader fours(data, {.batch_size = 4});
  const auto it = fours.begin();
  CHECK(it->x.shape() == tg::Shape{4, 1});
}

TEST_CASE("DataLoader shuffles from its seed: same seed same order, new order each epoch") {
  const TensorDataset data(column(50, 1), column(50, 2));
  DataLoader a(data, {.batch_size = 8, .shuffle = true, .seed = 7});
  DataLoader b(data, {.batch_size = 8, .shuffle = true, .seed = 7});
  DataLoader c(data, {.batch_size = 8, .shuffle = true, .seed = 8});
  const auto a1 = epoch_rows(a), a2 = epoch_rows(a);
  CHECK(a1 == epoch_rows(b));
  CHECK(a2 == epoch_rows(b));
  CHECK(a1 != a2);
  CHECK(a1 != epoch_rows(c));
  std::multiset<double> all;
  for (const auto& batch : a1) all.insert(batch.begin(), batch.end());
  CHECK(all.size() == 50);
  CHECK(std::set<double>(all.begin(), all.end()).size() == 50);
  CHECK(a1.back().size() == 2);
  // The loader's state is its epoch: a loader set to epoch 1 gives a's second epoch.
  CHECK(a.epoch() == 2);
  DataLoader resumed(data, {.batch_size = 8, .shuffle = true, .seed = 7});
  resumed.set_epoch(1);
  CHECK(epoch_rows(resumed) == a2);
  CHECK(resumed.epoch() == 2);
}

TEST_CASE("DataLoader prefetch gives the same batches, stops cleanly and passes errors on") {
  const TensorDataset data(column(37, 1), column(37, 2));
  DataLoader plain(data, {.batch_size = 4, .shuffle = true, .seed = 3});
  DataLoader prefetching(data, {.batch_size = 4, .shuffle = true, .seed = 3, .prefetch = true});
  for (int epoch = 0; epoch < 3; ++epoch) CHECK(epoch_rows(plain) == epoch_rows(prefetching));

  // Leaving an epoch early stops the background thread.
  for (int epoch = 0; epoch < 5; ++epoch) {
    int seen = 0;
    for (const auto& batch : prefetching) {
      CHECK(batch.x.shape(0) == 4);
      if (++seen == 2) break;
    }
  }

  auto squares = std::make_shared<Squares>();
  squares->n = 20;
  squares->fail_at = 13;
  for (bool prefetch : {false, true}) {
    DataLoader loader(squares, {.batch_size = 5, .prefetch = prefetch});
    auto it = loader.begin();
    CHECK(it->y.data<float>()[4] == 16.0f);
    ++it;
    CHECK_THROWS_WITH_AS(++it, doctest::Contains("Squares: example 13 is broken"), tg::Error);
  }
}

TEST_CASE("Subset maps indices onto its dataset") {
  const auto data = std::make_shared<TensorDataset>(column(10, 1), column(10, 2));
  const Subset last(data, 7, 10);
  CHECK(last.size() == 3);
  DataLoader loader(last, {.batch_size = 2});
  CHECK(epoch_rows(loader) == std::vector<std::vector<double>>{{7, 8}, {9}});
  const Subset picked(data, std::vector<std::size_t>{4, 1});
  const std::vector<std::size_t> idx{1, 0, 1};
  CHECK(picked.get_batch(idx).x.data<double>()[0] == 1.0);
  CHECK_THROWS_WITH_AS(Subset(data, 8, 11), doctest::Contains("range [8, 11) outside a dataset of 10 examples"),
                       tg::Error);
  CHECK_THROWS_WITH_AS(Subset(data, std::vector<std::size_t>{10}), doctest::Contains("index 10 out of range"),
                       tg::Error);
  const std::vector<std::size_t> bad{3};
  CHECK_THROWS_WITH_AS(last.get_batch(bad), doctest::Contains("index 3 out of range for a subset of 3"), tg::Error);
}

TEST_CASE("Dataset and DataLoader bad input") {
  CHECK_THROWS_WITH_AS(TensorDataset(column(3, 1), column(4, 1)), doctest::Contains("same number of rows"), tg::Error);
  CHECK_THROWS_WITH_AS(DataLoader(TensorDataset(column(3, 1), column(3, 1)), {.batch_size = 0}),
                       doctest::Contains("batch_size must be positive"), tg::Error);
  const std::vector<std::size_t> idx{0, 5};
  CHECK_THROWS_WITH_AS(take_rows(column(3, 1), idx),
                       doctest::Contains("index 5 out of range for a tensor of shape [3, 1]"), tg::Error);
  CHECK_THROWS_WITH_AS(DataLoader(std::shared_ptr<const Dataset>(), {}), doctest::Contains("null"), tg::Error);
}

namespace {
Bytes large_idx(std::size_t n) {
  Bytes payload(n);
  std::uint32_t x = 12345;
  for (auto& b : payload) b = static_cast<std::uint8_t>((x = x * 1103515245u + 12345u) >> 24);  // incompressible
  return idx_bytes(0x08, {static_cast<std::uint32_t>(n)}, payload);
}
}  // namespace

TEST_CASE("a gzip'd IDX file must be whole: trailer, CRC and nothing after it, whatever its size") {
  // Over 512 KiB of data, where zlib's gzread used to skip the trailer check.
  const Bytes raw = large_idx(700000);
  const Bytes gz = gzip_bytes(raw);
  const std::string name = "large.gz";
  CHECK(parse_idx(gz, name).bytes.size() == 700000);
  for (std::size_t cut = 1; cut <= 10; ++cut) {
    INFO("cut ", cut, " bytes");
    CHECK_THROWS_WITH_AS(parse_idx(Bytes(gz.begin(), gz.end() - static_cast<std::ptrdiff_t>(cut)), name),
                         doctest::Contains("large.gz' is truncated"), tg::Error);
  }
  Bytes garbage = gz;
  garbage.insert(garbage.end(), {'x', 'y', 'z'});
  CHECK_THROWS_WITH_AS(parse_idx(garbage, name), doctest::Contains("3 bytes of trailing garbage"), tg::Error);
  // A flipped bit anywhere in the compressed data fails the CRC-32 (or the inflate itself).
  std::size_t rejected = 0, same = 0, flips = 0;
  for (std::size_t at = 10; at + 8 < gz.size(); at += gz.size() / 97) {
    Bytes bad = gz;
    bad[at] ^= static_cast<std::uint8_t>(1u << (at % 8));
    ++flips;
    try {
      if (parse_idx(bad, name).bytes == parse_idx(gz, name).bytes) ++same;
    } catch (const tg::Error&) {
      ++rejected;
    }
  }
  CHECK(rejected + same == flips);
  CHECK(same == 0);
  // Two gzip members one after the other (as `cat a.gz b.gz` makes) are one stream of data.
  const Bytes head(raw.begin(), raw.begin() + 100), tail(raw.begin() + 100, raw.end());
  Bytes two = gzip_bytes(head);
  const Bytes second = gzip_bytes(tail);
  two.insert(two.end(), second.begin(), second.end());
  CHECK(parse_idx(two, name).bytes == parse_idx(gz, name).bytes);
}

TEST_CASE("a header claiming more data than a gzip stream holds costs no memory") {
  // 2^40 - 1 bytes claimed, a few bytes held: read without allocating the claim, then rejected.
  const Bytes forged = gzip_bytes(idx_bytes(0x08, {0xffffff, 0xffff}, Bytes(64, 7)));
  CHECK_THROWS_WITH_AS(parse_idx(forged, "forged.gz"), doctest::Contains("is truncated"), tg::Error);
  // More than 2^40 elements, even among the dims that are not 0, is refused outright.
  CHECK_THROWS_WITH_AS(parse_idx(idx_bytes(0x08, {0, 0x10000, 0x10000, 0x10000}, {}), "huge"),
                       doctest::Contains("more than 2^40 elements"), tg::Error);
}

TEST_CASE("local dataset files are checked against the content's SHA-256, once per file version") {
  TempDir data, cache;
  const char* old_cache = std::getenv("XDG_CACHE_HOME");
  const std::string saved_cache = old_cache ? old_cache : "";
  ::setenv("XDG_CACHE_HOME", cache.path.c_str(), 1);
  const Bytes images = mnist_images(3), labels = mnist_labels(3);
  write_file(data / "train-images-idx3-ubyte.gz", gzip_bytes(images));
  write_file(data / "train-labels-idx1-ubyte", labels);  // raw: checked by content just the same
  auto content_sha = [&](const Bytes& b) {
    write_file(cache / "content", b);
    return sha256_file(cache / "content");
  };
  MnistSource source = test_source();
  source.train_images.content_sha256 = content_sha(images);
  source.train_labels.content_sha256 = content_sha(labels);
  CHECK(MNIST(source, Split::train, {.root = data.path, .download = false}).size() == 3);
  const Bytes verdicts = read_file(cache / "tapegrad" / "verified-files.tsv");
  CHECK(std::count(verdicts.begin(), verdicts.end(), '\n') == 2);
  // Another file under the same name (all labels 0, a valid IDX file) is refused, naming both hashes.
  Bytes zeros = mnist_labels(3);
  std::fill(zeros.begin() + 8, zeros.end(), 0);
  write_file(data / "train-labels-idx1-ubyte", zeros);
  const std::string msg = error_of([&] { MNIST(source, Split::train, {.root = data.path, .download = false}); });
  CHECK(contains(msg, "train-labels-idx1-ubyte' is not the file expected"));
  CHECK(contains(msg, content_sha(zeros)));
  CHECK(contains(msg, "expected " + source.train_labels.content_sha256));
  if (old_cache)
    ::setenv("XDG_CACHE_HOME", saved_cache.c_str(), 1);
  else
    ::unsetenv("XDG_CACHE_HOME");
}

TEST_CASE("Fashion-MNIST refuses MNIST's digits under the same file names") {
  const auto dir = real_mnist_dir();
  if (!dir) {
    MESSAGE("skipped: the MNIST files are not here");
    return;
  }
  const std::string msg = error_of([&] { FashionMNIST(Split::test, {.root = *dir, .download = false}); });
  CHECK(contains(msg, "is not the file expected"));
  CHECK(contains(msg, "Fashion-MNIST test"));
}

TEST_CASE("concurrent downloads of one file each get their own temporary file") {
  TempDir served, cache;
  const Bytes good = gzip_bytes(mnist_labels(3000));
  write_file(served / "good.gz", good);
  const std::string sha = sha256_file(served / "good.gz");
  HttpServer server(served.path);
  if (!server.ok()) {
    MESSAGE("skipped: could not start /usr/bin/python3 -m http.server");
    return;
  }
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < errors.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        download_file({"good.gz", sha}, cache.path, {.mirrors = {server.url()}, .quiet = true});
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) CHECK(e.empty());
  CHECK(read_file(cache / "good.gz") == good);
  std::set<std::string> kept;
  for (const auto& e : fs::directory_iterator(cache.path)) kept.insert(e.path().filename().string());
  CHECK(kept == std::set<std::string>{"good.gz"});
  // A file longer than it should be stops as soon as it passes its size.
  const std::string msg = error_of([&] {
    download_file({"good.gz", sha, "", 1000}, cache / "capped", {.mirrors = {server.url()}, .quiet = true});
  });
  CHECK(contains(msg, "sends more than the 1000 bytes the file has"));
}

TEST_CASE("a redirect loop ends with an error of its own") {
  TempDir cache;
  HttpServer server = HttpServer::redirect_loop();
  if (!server.ok()) {
    MESSAGE("skipped: could not start a python3 server");
    return;
  }
  const std::string msg = error_of([&] {
    download_file({"x.gz", std::string(64, 'a')}, cache.path, {.mirrors = {server.url()}, .quiet = true});
  });
  CHECK(contains(msg, "more than 10 redirects"));
}

TEST_CASE("a damaged IDX file is refused: every truncation, every flipped bit of a gzip'd file or of a header") {
  const Bytes raw = mnist_labels(40);
  const Bytes gz = gzip_bytes(raw);
  const IdxExpect labels{.type = IdxType::u8, .rank = 1};
  const Bytes original = parse_idx(raw, "original", labels).bytes;
  std::size_t variants = 0, rejected = 0, harmless = 0;
  auto judge = [&](const Bytes& variant) {
    ++variants;
    try {
      if (parse_idx(variant, "variant", labels).bytes == original)
        ++harmless;  // a flip in the gzip header's time or OS byte, which no reader uses
      else
        FAIL_CHECK("a damaged file read as other values");
    } catch (const tg::Error&) {
      ++rejected;
    }
  };
  for (const Bytes& file : {raw, gz})
    for (std::size_t n = 0; n < file.size(); ++n)
      judge(Bytes(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(n)));
  for (std::size_t i = 0; i < gz.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      Bytes flipped = gz;
      flipped[i] ^= static_cast<std::uint8_t>(1 << bit);
      judge(flipped);
    }
  // A raw file's data has no checksum (MNIST's files are checked by their known SHA-256 instead):
  // its header's bits are the ones a reader can judge.
  for (std::size_t i = 0; i < 8; ++i)
    for (int bit = 0; bit < 8; ++bit) {
      Bytes flipped = raw;
      flipped[i] ^= static_cast<std::uint8_t>(1 << bit);
      judge(flipped);
    }
  MESSAGE("IDX files: ", variants, " variants, ", rejected, " refused, ", harmless, " harmless");
  CHECK(rejected + harmless == variants);
}

TEST_CASE("DistributedSampler: disjoint shards of equal size, the same order on every rank, from (seed, epoch)") {
  for (const std::size_t n : {0u, 1u, 2u, 10u, 11u, 12u}) {
    for (const bool drop_last : {false, true}) {
      const std::size_t world = 3;
      std::vector<std::size_t> all;
      std::size_t size = 0;
      for (std::size_t r = 0; r < world; ++r) {
        DistributedSampler s(n, {.rank = r, .world_size = world, .seed = 7, .drop_last = drop_last});
        s.set_epoch(2);
        const auto idx = s.indices();
        CHECK(idx.size() == s.size());
        if (r == 0) size = idx.size();
        CHECK(idx.size() == size);
        all.insert(all.end(), idx.begin(), idx.end());
      }
      CHECK(size == (drop_last ? n / world : (n + world - 1) / world));
      std::sort(all.begin(), all.end());
      // Every sample once, plus the repeats that pad the last round (or minus the dropped ones).
      const std::size_t distinct = static_cast<std::size_t>(std::unique(all.begin(), all.end()) - all.begin());
      CHECK(distinct == std::min(n, size * world));
    }
  }
  // Another epoch another order; the same (seed, epoch) the same order, whatever came before.
  DistributedSampler a(100, {.rank = 1, .world_size = 2, .seed = 3});
  DistributedSampler b(100, {.rank = 1, .world_size = 2, .seed = 3});
  a.set_epoch(0);
  const auto first = a.indices();
  a.set_epoch(1);
  CHECK(a.indices() != first);
  b.set_epoch(5);
  b.set_epoch(0);
  CHECK(b.indices() == first);
  CHECK_THROWS_WITH_AS(DistributedSampler(10, {.rank = 2, .world_size = 2}),
                       doctest::Contains("rank 2 is not a rank of a world of 2"), tg::Error);
}

TEST_CASE("DataLoader takes a DistributedSampler's shard") {
  const tg::Tensor x = tg::reshape(tg::arange(10.0), {10, 1});
  auto sampler =
      std::make_shared<DistributedSampler>(10, DistributedSamplerOptions{.rank = 1, .world_size = 3, .shuffle = false});
  DataLoader loader(TensorDataset(x, x), {.batch_size = 2, .sampler = sampler});
  CHECK(loader.size() == 2);
  std::vector<double> got;
  for (const auto& [bx, by] : loader)
    for (std::size_t i = 0; i < bx.numel(); ++i) got.push_back(bx.data<float>()[i]);
  // Positions 1, 4, 7 and the padding's 10 → 0 (repeated from the start).
  CHECK(got == std::vector<double>{1, 4, 7, 0});
  CHECK_THROWS_WITH_AS(DataLoader(TensorDataset(x, x), {.shuffle = true, .sampler = sampler}),
                       doctest::Contains("shuffle and sampler exclude each other"), tg::Error);
}
