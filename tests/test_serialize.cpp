// Saving and loading: safetensors round trips, files read and written by Python (numpy only),
// strict loading, corrupted and truncated files, atomic writes, optimizer state, checkpoints
// and an interrupted training run that resumes bitwise identically.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;
namespace fs = std::filesystem;

namespace {

// A fresh empty directory for one test.
fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("tg_serialize_{}_{}", name, ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

// A file made of a raw JSON header and data bytes.
std::string raw_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

int run_python(const fs::path& dir, const std::string& script, const std::string& args) {
  write_bytes(dir / "script.py", script);
  const std::string cmd = fmt::format("/usr/bin/python3 {} {}", (dir / "script.py").string(), args);
  return std::system(cmd.c_str());
}

class Model : public nn::Module {
 public:
  explicit Model(std::uint64_t seed, double p = 0.0) : gen_(seed) {
    body_ = register_module("body",
                            std::make_shared<nn::Sequential>(nn::Sequential{
                                nn::Conv2d(1, 2, 3, {.padding = "same", .generator = &gen_}), nn::ReLU(), nn::Flatten(),
                                nn::Linear(2 * 4 * 4, 6, {.activation = nn::Activation::tanh, .generator = &gen_})}));
    drop_ = register_module("drop", std::make_shared<nn::Dropout>(p, &dropout_gen_));
    head_ = register_module("head", std::make_shared<nn::Linear>(6, 2, nn::LinearOptions{.generator = &gen_}));
    steps_ = register_buffer("steps", zeros({1}, int64));
  }
  Tensor forward(const Tensor& x) override { return (*head_)((*drop_)((*body_)(x))); }
  Generator& dropout_generator() { return dropout_gen_; }

 private:
  Generator gen_;
  Generator dropout_gen_{99};
  std::shared_ptr<nn::Sequential> body_;
  std::shared_ptr<nn::Dropout> drop_;
  std::shared_ptr<nn::Linear> head_;
  Tensor steps_;
};

void check_same_state(const nn::Module& a, const nn::Module& b) {
  const auto sa = nn::state_dict(a), sb = nn::state_dict(b);
  REQUIRE(sa.size() == sb.size());
  for (std::size_t i = 0; i < sa.size(); ++i) {
    INFO(sa[i].first);
    CHECK(sa[i].first == sb[i].first);
    CHECK(sa[i].second.dtype() == sb[i].second.dtype());
    CHECK(std::memcmp(sa[i].second.data_ptr(), sb[i].second.data_ptr(),
                      sa[i].second.numel() * dtype_size(sa[i].second.dtype())) == 0);
  }
}

}  // namespace

TEST_CASE("a module saved and loaded has the same parameters and buffers") {
  const fs::path dir = temp_dir("roundtrip");
  Model a(1), b(2);
  {
    NoGradGuard no_grad;
    nn::state_dict(a).back().second.fill_(7);
  }
  nn::save(a, dir / "m.safetensors");
  nn::load(b, dir / "m.safetensors");
  check_same_state(a, b);
  const auto file = nn::load_safetensors(dir / "m.safetensors");
  CHECK(file.metadata.at("format") == "tapegrad.module");
  CHECK(file.tensors.front().first == "body.0.weight");
  CHECK(file.tensors.back().first == "steps");
  CHECK(read_bytes(dir / "m.safetensors").size() % 8 == 0);  // header padded: data 8-byte aligned
  fs::remove_all(dir);
}

TEST_CASE("a file written by tapegrad reads in Python with numpy alone") {
  const fs::path dir = temp_dir("to_python");
  xt::xarray<std::int64_t> ints = xt::xarray<std::int64_t>::from_shape({2, 1});
  ints(0, 0) = -3;
  ints(1, 0) = std::int64_t{1} << 40;
  nn::NamedTensors tensors{{"w", Tensor({{1.5, -2.0, 3.25}, {0.0, 4.0, -0.5}})},
                           {"d", Tensor(xt::xarray<double>{0.1, 1e-300, -7.0})},
                           {"n", Tensor(ints)},
                           {"s", scalar_tensor(2.5, float64)}};
  nn::save_safetensors(dir / "t.safetensors", tensors, {{"epoch", "3"}, {"note", "héllo"}});
  const std::string script = R"PY(
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
kinds = {'F32': '<f4', 'F64': '<f8', 'I64': '<i8'}
def get(name):
    e = header[name]
    b, end = e['data_offsets']
    return np.frombuffer(data[b:end], dtype=kinds[e['dtype']]).reshape(e['shape'])
import zlib
meta = header['__metadata__']
assert {k: v for k, v in meta.items() if not k.startswith('tapegrad.')} == {'epoch': '3', 'note': 'héllo'}, meta
# The CRC-32 of the rest of the metadata, checksums included: "key\0value\0" in key order.
rest = b''.join(k.encode() + b'\0' + v.encode() + b'\0' for k, v in sorted(meta.items()) if k != 'tapegrad.metadata_crc32')
assert meta['tapegrad.metadata_crc32'] == '%08x' % zlib.crc32(rest), meta
for name in ('w', 'd', 'n', 's'):  # each tensor's CRC-32, as any reader can check it
    b, end = header[name]['data_offsets']
    assert meta['tapegrad.crc32.' + name] == '%08x' % zlib.crc32(data[b:end]), name
assert header['w']['dtype'] == 'F32' and get('w').shape == (2, 3)
assert np.array_equal(get('w'), np.array([[1.5, -2.0, 3.25], [0.0, 4.0, -0.5]], dtype=np.float32))
assert np.array_equal(get('d'), np.array([0.1, 1e-300, -7.0]))
assert np.array_equal(get('n'), np.array([[-3], [1 << 40]], dtype=np.int64))
assert get('s').shape == () and get('s')[()] == 2.5
print('python read OK')
)PY";
  CHECK(run_python(dir, script, (dir / "t.safetensors").string()) == 0);
  fs::remove_all(dir);
}

TEST_CASE("a file written from Python with numpy loads into a module") {
  const fs::path dir = temp_dir("from_python");
  const std::string script = R"PY(
import json, struct, sys
import numpy as np
w = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
b = np.array([-1.0, 2.0], dtype=np.float32)
# unsorted keys in the header, bias data first: readers must follow the offsets
header = {'weight': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [8, 32]},
          'bias': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]},
          '__metadata__': {'format': 'pt'}}
h = json.dumps(header).encode()
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<Q', len(h)) + h + b.tobytes() + w.tobytes())
)PY";
  REQUIRE(run_python(dir, script, (dir / "py.safetensors").string()) == 0);
  nn::Linear fc(3, 2);
  nn::load(fc, dir / "py.safetensors");
  CHECK(fc.weight().array<float>() == xt::xarray<float>{{0.0f, 0.25f, 0.5f}, {0.75f, 1.0f, 1.25f}});
  CHECK(fc.bias().array<float>() == xt::xarray<float>{-1.0f, 2.0f});
  fs::remove_all(dir);
}

TEST_CASE("loading is strict and names the key; a failed load changes nothing") {
  const fs::path dir = temp_dir("strict");
  nn::Linear fc(3, 2);
  const fs::path p = dir / "x.safetensors";
  const xt::xarray<float> before = fc.weight().array<float>();

  nn::save_safetensors(p, {{"weight", zeros({2, 3})}});
  CHECK_THROWS_WITH_AS(nn::load(fc, p), doctest::Contains("missing key 'bias' (needed by Linear)"), Error);
  nn::save_safetensors(p, {{"weight", zeros({2, 3})}, {"bias", zeros({2})}, {"extra", zeros({1})}});
  CHECK_THROWS_WITH_AS(nn::load(fc, p), doctest::Contains("unexpected key 'extra'"), Error);
  nn::save_safetensors(p, {{"weight", zeros({3, 2})}, {"bias", zeros({2})}});
  CHECK_THROWS_WITH_AS(nn::load(fc, p),
                       doctest::Contains("'weight' has shape [3, 2] but the module's has shape [2, 3]"), Error);
  nn::save_safetensors(p, {{"weight", zeros({2, 3}, float64)}, {"bias", zeros({2})}});
  CHECK_THROWS_WITH_AS(nn::load(fc, p), doctest::Contains("'weight' is float64 but the module's is float32"), Error);
  CHECK(fc.weight().array<float>() == before);
  CHECK_THROWS_WITH_AS(nn::load(fc, dir / "absent.safetensors"), doctest::Contains("cannot open"), Error);
  CHECK_THROWS_WITH_AS(nn::save_safetensors(p, {{"a", zeros({1})}, {"a", zeros({1})}}),
                       doctest::Contains("the name 'a' appears twice"), Error);
  fs::remove_all(dir);
}

TEST_CASE("a file cut at every offset is rejected with a clear error") {
  const fs::path dir = temp_dir("truncated");
  Model m(3);
  nn::save(m, dir / "m.safetensors");
  const std::string bytes = read_bytes(dir / "m.safetensors");
  REQUIRE(bytes.size() > 200);
  std::size_t rejected = 0;
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    try {
      nn::parse_safetensors(bytes.substr(0, cut), "cut");
    } catch (const Error& e) {
      ++rejected;
      continue;
    }
    FAIL("a file cut at ", cut, " of ", bytes.size(), " bytes was accepted");
  }
  CHECK(rejected == bytes.size());
  // Extra bytes after the data are rejected too.
  CHECK_THROWS_WITH_AS(nn::parse_safetensors(bytes + "x", "long"), doctest::Contains("data bytes"), Error);
  fs::remove_all(dir);
}

TEST_CASE("corrupted headers are rejected, never crash") {
  const fs::path dir = temp_dir("corrupt");
  Model m(4);
  nn::save(m, dir / "m.safetensors");
  const std::string bytes = read_bytes(dir / "m.safetensors");
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  // Flip each header byte (and each byte of the length): the load either fails with tg::Error or,
  // when the change is harmless (a space in the padding, a metadata letter), loads the same values.
  std::size_t rejected = 0;
  for (std::size_t i = 0; i < 8 + n; ++i) {
    for (unsigned char mask : {0x01, 0x80}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      Model fresh(5);
      try {
        nn::load_state_dict(fresh, nn::parse_safetensors(bad, "flipped").tensors, "flipped");
        check_same_state(m, fresh);
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  CHECK(rejected > n);

  auto rejects = [](const std::string& file, const std::string& what) {
    INFO(what);
    CHECK_THROWS_WITH_AS(nn::parse_safetensors(file, "crafted"), doctest::Contains(what.c_str()), Error);
  };
  const std::string eight(8, 'x');
  rejects("", "shorter than the 8-byte header length");
  rejects(raw_file("{}", "").substr(0, 6), "shorter than the 8-byte header length");
  std::string huge = raw_file("{}", "");
  huge[7] = 0x7f;
  rejects(huge, "header length");
  rejects(raw_file("{\"a\": ", ""), "invalid JSON");
  rejects(raw_file("[1, 2]", ""), "expected a JSON object");
  rejects(raw_file(R"({"a": {"dtype": "F32", "shape": [2]}})", eight), "needs dtype, shape and data_offsets");
  rejects(raw_file(R"({"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}})", "xxxx"), "dtype BF16");
  rejects(raw_file(R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", eight),
          "non-negative integers");
  rejects(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})", eight), "out of range");
  rejects(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 0]}})", eight), "out of range");
  rejects(raw_file(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", eight), "needs 12");
  rejects(raw_file(R"({"a": {"dtype": "F32", "shape": [4611686018427387904, 8], "data_offsets": [0, 8]}})", eight),
          "overflows");
  rejects(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                   eight),
          "previous tensor ends at");  // overlap
  rejects(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", eight), "start at 4");  // gap
  rejects(raw_file(R"({"__metadata__": {"k": 3}})", ""), "metadata 'k' is not a string");
  // Unsorted offsets in the header are fine as long as they tile the data.
  const auto ok = nn::parse_safetensors(raw_file(R"({"b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
                                                     "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                                                 eight),
                                        "crafted");
  CHECK(ok.tensors.size() == 2);
  CHECK(ok.tensors[0].first == "a");
  fs::remove_all(dir);
}

TEST_CASE("writes are atomic: a failed or killed save leaves the previous file intact") {
  const fs::path dir = temp_dir("atomic");
  const fs::path p = dir / "m.safetensors";
  Model m(6);
  nn::save(m, p);
  const std::string original = read_bytes(p);

  // Renaming over a directory fails: the temporary file is removed, nothing else changes.
  fs::create_directories(dir / "taken.safetensors");
  CHECK_THROWS_WITH_AS(nn::save(m, dir / "taken.safetensors"), doctest::Contains("cannot replace"), Error);
  CHECK_THROWS_WITH_AS(nn::save(m, dir / "missing_dir" / "m.safetensors"), doctest::Contains("cannot create a file in"),
                       Error);
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.exists();
  CHECK(entries == 2);  // m.safetensors and the directory

  // A process killed while writing a large file never leaves a damaged target.
  const pid_t child = ::fork();
  if (child == 0) {
    nn::save_safetensors(p, {{"big", zeros({40'000'000})}});
    ::_exit(0);
  }
  ::usleep(30'000);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  const std::string after = read_bytes(p);
  if (after != original) {  // the child finished first: then the file is the complete new one
    const auto file = nn::parse_safetensors(after, "after");
    CHECK(file.tensors.at(0).first == "big");
  }
  fs::remove_all(dir);
}

TEST_CASE("optimizer state saves to a file and loads strictly") {
  const fs::path dir = temp_dir("optim");
  Tensor p = Tensor(xt::xarray<double>{1.0, 2.0}).requires_grad_();
  optim::SGD sgd(TensorList{p}, {.lr = 0.1, .momentum = 0.9});
  p.set_grad(Tensor(xt::xarray<double>{1.0, -1.0}));
  sgd.step();
  nn::save(sgd, dir / "o.safetensors");
  Tensor q = Tensor(xt::xarray<double>{1.0, 2.0}).requires_grad_();
  optim::SGD other(TensorList{q}, {.lr = 0.5, .momentum = 0.9});
  nn::load(other, dir / "o.safetensors");
  CHECK(other.lr() == 0.1);
  CHECK(other.state_dict().at("state.0.momentum_buffer").array<double>() == xt::xarray<double>{1.0, -1.0});
  optim::Adam adam(TensorList{q}, {});
  CHECK_THROWS_WITH_AS(nn::load(adam, dir / "o.safetensors"),
                       doctest::Contains("holds the state of a SGD optimizer, not of Adam"), Error);
  optim::SGD plain(TensorList{q}, {.lr = 0.1});
  CHECK_THROWS_WITH_AS(nn::load(plain, dir / "o.safetensors"),
                       doctest::Contains("unexpected key 'state.0.momentum_buffer'"), Error);
  fs::remove_all(dir);
}

namespace {
// Trains `model` for epochs [from, to) on a fixed dataset, shuffled by `shuffle` each epoch.
void train(Model& model, optim::Optimizer& opt, Generator& shuffle, int from, int to) {
  Generator data(123);
  const Tensor x = randn({24, 1, 4, 4}, data);
  const Tensor y = randn({24, 2}, data);
  for (int epoch = from; epoch < to; ++epoch) {
    const Tensor order = randperm(24, shuffle);
    for (std::size_t b = 0; b < 24; b += 8) {
      const Tensor idx = slice(order, 0, std::int64_t(b), std::int64_t(b + 8));
      opt.zero_grad();
      const Tensor loss = mean(pow(model(index_select(x, 0, idx)) - index_select(y, 0, idx), 2.0));
      loss.backward();
      opt.step();
    }
  }
}
}  // namespace

TEST_CASE("a checkpoint resumes training bitwise identically") {
  const fs::path dir = temp_dir("resume");
  // Uninterrupted: 6 epochs.
  Model full(10, 0.25);
  optim::Adam full_opt(full.parameters(), {.lr = 0.01, .weight_decay = 1e-3, .amsgrad = true});
  Generator full_shuffle(77);
  train(full, full_opt, full_shuffle, 0, 6);

  // Interrupted after 3 epochs, saved, restored into fresh objects built from other seeds.
  {
    Model first(10, 0.25);
    optim::Adam first_opt(first.parameters(), {.lr = 0.01, .weight_decay = 1e-3, .amsgrad = true});
    Generator shuffle(77);
    train(first, first_opt, shuffle, 0, 3);
    nn::save_checkpoint(dir / "ckpt.safetensors", first, first_opt, 3, &shuffle,
                        {{"dropout_generator", first.dropout_generator().state()}});
  }
  Model resumed(555, 0.25);
  optim::Adam resumed_opt(resumed.parameters(), {.lr = 0.01, .weight_decay = 1e-3, .amsgrad = true});
  Generator shuffle(1);
  const nn::CheckpointInfo info = nn::load_checkpoint(dir / "ckpt.safetensors", resumed, resumed_opt, &shuffle);
  CHECK(info.epoch == 3);
  resumed.dropout_generator().set_state(info.metadata.at("dropout_generator"));
  train(resumed, resumed_opt, shuffle, int(info.epoch), 6);
  check_same_state(full, resumed);

  // The comparison can fail: resuming without the shuffle generator's state ends elsewhere.
  Model careless(556, 0.25);
  optim::Adam careless_opt(careless.parameters(), {.lr = 0.01, .weight_decay = 1e-3, .amsgrad = true});
  nn::load_checkpoint(dir / "ckpt.safetensors", careless, careless_opt);
  careless.dropout_generator().set_state(info.metadata.at("dropout_generator"));
  Generator fresh_shuffle(77);
  train(careless, careless_opt, fresh_shuffle, 3, 6);
  CHECK_FALSE(xt::all(
      xt::equal(nn::state_dict(careless)[0].second.array<float>(), nn::state_dict(full)[0].second.array<float>())));

  // Strictness: another optimizer kind, or a model of another shape, is refused without change.
  optim::SGD sgd(resumed.parameters(), {.lr = 0.1});
  CHECK_THROWS_WITH_AS(nn::load_checkpoint(dir / "ckpt.safetensors", resumed, sgd), doctest::Contains("not of SGD"),
                       Error);
  nn::Linear other(3, 3);
  optim::Adam other_opt(other.parameters(), {});
  CHECK_THROWS_WITH_AS(nn::load_checkpoint(dir / "ckpt.safetensors", other, other_opt),
                       doctest::Contains("missing key 'weight'"), Error);
  CHECK_THROWS_WITH_AS(nn::save_checkpoint(dir / "x.safetensors", other, other_opt, 1, nullptr, {{"epoch", "2"}}),
                       doctest::Contains("'epoch' is reserved"), Error);
  nn::save(other, dir / "plain.safetensors");
  CHECK_THROWS_WITH_AS(nn::load_checkpoint(dir / "plain.safetensors", other, other_opt),
                       doctest::Contains("not a tapegrad checkpoint"), Error);
  fs::remove_all(dir);
}

TEST_CASE("a checkpoint resumes in a new process, bitwise identically") {
  auto make_optimizer = [](Model& m) {
    return optim::SGD(m.parameters(), {.lr = 0.05, .momentum = 0.9, .nesterov = true});
  };
  if (const char* child_dir = std::getenv("TG_RESUME_CHILD")) {
    // The child: fresh objects from other seeds, state from the file, three more epochs.
    const fs::path dir = child_dir;
    Model model(31337, 0.25);
    auto opt = make_optimizer(model);
    Generator shuffle(0);
    const auto info = nn::load_checkpoint(dir / "ckpt.safetensors", model, opt, &shuffle);
    model.dropout_generator().set_state(info.metadata.at("dropout_generator"));
    train(model, opt, shuffle, int(info.epoch), 6);
    nn::save(model, dir / "final.safetensors");
    return;
  }
  const fs::path dir = temp_dir("resume_process");
  Model full(12, 0.25);
  auto full_opt = make_optimizer(full);
  Generator full_shuffle(8);
  train(full, full_opt, full_shuffle, 0, 6);

  Model first(12, 0.25);
  auto first_opt = make_optimizer(first);
  Generator shuffle(8);
  train(first, first_opt, shuffle, 0, 3);
  nn::save_checkpoint(dir / "ckpt.safetensors", first, first_opt, 3, &shuffle,
                      {{"dropout_generator", first.dropout_generator().state()}});

  const fs::path exe = fs::read_symlink("/proc/self/exe");
  const std::string cmd = fmt::format("TG_RESUME_CHILD='{}' '{}' --test-case='*new process*' > '{}' 2>&1", dir.string(),
                                      exe.string(), (dir / "child.log").string());
  const int status = std::system(cmd.c_str());
  INFO(read_bytes(dir / "child.log"));
  REQUIRE(status == 0);
  Model resumed(4, 0.25);
  nn::load(resumed, dir / "final.safetensors");
  check_same_state(full, resumed);
  fs::remove_all(dir);
}
