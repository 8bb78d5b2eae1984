// The training and inference workloads in libtorch's C++ frontend (Debian's libtorch-dev), the
// C++ reference for tapegrad's numbers. Prints JSON lines like the other benchmark programs.
#include <fmt/format.h>
#include <torch/torch.h>
#include <zlib.h>

#include "bench_common.hpp"

namespace {

std::vector<std::uint8_t> read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  gzclose(f);
  return out;
}

// IDX payload after the header (magic + dims).
torch::Tensor read_idx(const std::string& path) {
  std::vector<std::uint8_t> bytes = read_gz(path);
  const int ndim = bytes[3];
  std::vector<int64_t> dims;
  for (int i = 0; i < ndim; ++i) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * i;
    dims.push_back((int64_t(p[0]) << 24) | (int64_t(p[1]) << 16) | (int64_t(p[2]) << 8) | p[3]);
  }
  auto t = torch::empty(dims, torch::kUInt8);
  std::memcpy(t.data_ptr(), bytes.data() + 4 + 4 * ndim, static_cast<std::size_t>(t.numel()));
  return t;
}

torch::nn::Sequential tutorial_model() {
  using namespace torch::nn;
  return Sequential(Conv2d(Conv2dOptions(1, 32, 3)), ReLU(), MaxPool2d(MaxPool2dOptions(2)), Flatten(),
                    Linear(5408, 10));
}

torch::nn::Sequential deep_model() {
  using namespace torch::nn;
  return Sequential(Conv2d(Conv2dOptions(1, 32, 3)), ReLU(), MaxPool2d(MaxPool2dOptions(2)),
                    Conv2d(Conv2dOptions(32, 64, 3)), ReLU(), MaxPool2d(MaxPool2dOptions(2)), Flatten(), Dropout(0.5),
                    Linear(1600, 10));
}

// One epoch as Keras runs it: the first 48,000 images (validation_split 0.2), shuffled.
double train_epoch(torch::nn::Sequential model, const torch::Tensor& x_u8, const torch::Tensor& y, int batch,
                   int max_steps) {
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-3).eps(1e-7));
  const int64_t n = 48000;
  auto perm = torch::randperm(n);
  auto xs = x_u8.slice(0, 0, n);
  auto ys = y.slice(0, 0, n).to(torch::kLong);
  model->train();
  const auto t0 = std::chrono::steady_clock::now();
  int steps = 0;
  for (int64_t s = 0; s < n && (max_steps == 0 || steps < max_steps); s += batch, ++steps) {
    auto idx = perm.slice(0, s, std::min(n, s + batch));
    auto xb = xs.index_select(0, idx).unsqueeze(1).to(torch::kFloat).div_(255.0);
    auto yb = ys.index_select(0, idx);
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model->forward(xb), yb);
    loss.backward();
    opt.step();
  }
  const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  return dt.count() * (max_steps ? static_cast<double>((n + batch - 1) / batch) / steps : 1.0);
}

}  // namespace

int main(int argc, char** argv) {
  const auto [threads, quick, only, data] = bench::parse_args(argc, argv, "libtorch training benchmarks");
  torch::set_num_threads(threads);
  torch::manual_seed(0);
  auto selected = [&](const std::string& workload) { return bench::selected(only, workload); };

  auto x_train = read_idx(data + "/train-images-idx3-ubyte.gz");
  auto y_train = read_idx(data + "/train-labels-idx1-ubyte.gz");
  auto x_test = read_idx(data + "/t10k-images-idx3-ubyte.gz");
  const int steps = quick ? 200 : 0;
  const std::string impl = "libtorch";
  if (selected("train_tutorial_b32"))
    bench::emit(impl, "train_tutorial_b32_epoch", train_epoch(tutorial_model(), x_train, y_train, 32, steps), "epoch",
                threads);
  if (selected("train_tutorial_b128"))
    bench::emit(impl, "train_tutorial_b128_epoch", train_epoch(tutorial_model(), x_train, y_train, 128, steps), "epoch",
                threads);
  if (selected("inference")) {
    auto model = tutorial_model();
    model->eval();
    auto xt = x_test.unsqueeze(1).to(torch::kFloat).div_(255.0);
    const double t = bench::best_of(
        [&] {
          torch::NoGradGuard no_grad;
          for (int64_t s = 0; s < 10000; s += 1000) model->forward(xt.slice(0, s, s + 1000)).argmax(1);
        },
        3, 1);
    bench::emit(impl, "inference_test_set", t, "10000 images", threads);
  }
  if (selected("train_deep_b32"))
    bench::emit(impl, "train_deep_b32_epoch", train_epoch(deep_model(), x_train, y_train, 32, steps), "epoch", threads);
  bench::emit(impl, "peak_rss", 0.0, "MiB", threads, fmt::format("\"peak_rss_mib\": {:.1f}", bench::peak_rss_mib()));
}
