// Data-parallel training over MPI, run by ctest under mpiexec with 1, 2 and 3 ranks. Every rank
// runs every test case in the same order (the collectives must line up), so the checks here are
// CHECKs, never REQUIREs that would skip a collective on one rank only.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <xtensor/xadapt.hpp>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;

namespace {

int my_rank() { return distributed::rank(); }
int world() { return distributed::world_size(); }

// Every rank's copy of t, bitwise equal to rank 0's.
bool same_on_every_rank(const Tensor& t) {
  const Tensor all = distributed::all_gather(reshape(t.detach(), {1, static_cast<std::int64_t>(t.numel())}));
  const std::size_t bytes = t.numel() * dtype_size(t.dtype());
  const auto* base = static_cast<const char*>(all.data_ptr());
  bool same = true;
  for (int r = 1; r < world(); ++r)
    same = same && std::memcmp(base, base + static_cast<std::size_t>(r) * bytes, bytes) == 0;
  return same;
}

bool module_same_on_every_rank(const nn::Module& m) {
  bool same = true;
  for (const auto& [name, p] : m.named_parameters()) same = same_on_every_rank(p) && same;
  for (const auto& [name, b] : m.named_buffers()) same = same_on_every_rank(b) && same;
  return same;
}

// Largest |a - b| / max(|b|, 1e-30) over the parameters of two modules of the same layout.
double max_relative_difference(const nn::Module& a, const nn::Module& b) {
  const auto pa = a.parameters(), pb = b.parameters();
  double worst = 0;
  for (std::size_t i = 0; i < pa.size(); ++i) {
    const double* x = pa[i].data<double>();
    const double* y = pb[i].data<double>();
    for (std::size_t j = 0; j < pa[i].numel(); ++j)
      worst = std::max(worst, std::abs(x[j] - y[j]) / std::max(std::abs(y[j]), 1e-30));
  }
  return worst;
}

void copy_values(nn::Module& to, const nn::Module& from) {
  NoGradGuard no_grad;
  auto dst = to.parameters();
  const auto src = from.parameters();
  for (std::size_t i = 0; i < dst.size(); ++i)
    std::memcpy(dst[i].mutable_data_ptr(), src[i].data_ptr(), src[i].numel() * dtype_size(src[i].dtype()));
}

std::shared_ptr<nn::Sequential> mlp(std::uint64_t seed) {
  manual_seed(seed);
  auto m = std::make_shared<nn::Sequential>(nn::Sequential{nn::Linear(5, 8), nn::Tanh(), nn::Linear(8, 3)});
  m->to(float64);
  return m;
}

// The same global data on every rank: x [n, 5], class targets [n].
datasets::Batch global_data(std::size_t n, std::uint64_t seed) {
  Generator gen(seed);
  Tensor x = randn({n, 5}, gen, float64);
  xt::xarray<std::int64_t> y = xt::xarray<std::int64_t>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) y(i) = static_cast<std::int64_t>((i * 7 + seed) % 3);
  return {x, Tensor(std::move(y))};
}

Tensor rows(const Tensor& t, std::size_t begin, std::size_t end) {
  return slice(t, 0, static_cast<std::int64_t>(begin), static_cast<std::int64_t>(end));
}

}  // namespace

TEST_CASE("collectives on float32, float64 and int64 tensors") {
  const auto r = static_cast<double>(my_rank());
  const auto w = static_cast<double>(world());
  for (const Dtype d : {float32, float64, int64}) {
    Tensor t = full({2, 3}, r + 1, d);
    distributed::all_reduce(t);
    CHECK(t.dtype() == d);
    CHECK(t.data_ptr() != nullptr);
    CHECK(sum(t).item() == doctest::Approx(6 * w * (w + 1) / 2));
    Tensor lo = full({4}, r, d), hi = full({4}, r, d);
    distributed::all_reduce(lo, distributed::ReduceOp::min);
    distributed::all_reduce(hi, distributed::ReduceOp::max);
    CHECK(max(lo).item() == 0);
    CHECK(min(hi).item() == w - 1);
    Tensor b = full({3}, r * 10, d);
    distributed::broadcast(b, world() - 1);
    CHECK(b.data_ptr() != nullptr);
    CHECK(max(b).item() == (w - 1) * 10);
  }
  Tensor mean = full({5}, r, float64);
  distributed::all_reduce(mean, distributed::ReduceOp::mean);
  CHECK(max(mean).item() == doctest::Approx((w - 1) / 2));
  // all_gather: rank r sends r rows (rank 0 none), in rank order.
  const Tensor mine = full({static_cast<std::size_t>(my_rank()), 2}, r, float32);
  const Tensor gathered = distributed::all_gather(mine);
  CHECK(gathered.shape() == Shape{static_cast<std::size_t>(world() * (world() - 1) / 2), 2});
  std::size_t row = 0;
  for (int k = 0; k < world(); ++k)
    for (int i = 0; i < k; ++i, ++row) CHECK(gathered.data<float>()[2 * row] == static_cast<float>(k));
  CHECK(distributed::all_gather(scalar_tensor(r)).shape() == Shape{static_cast<std::size_t>(world())});
  // Empty tensors pass through every collective.
  Tensor empty = zeros({0, 4});
  distributed::all_reduce(empty);
  distributed::broadcast(empty);
  CHECK(empty.shape() == Shape{0, 4});
  // Non-blocking.
  Tensor async = full({1000}, r + 1, float64);
  distributed::Work work = distributed::all_reduce_async(async, distributed::ReduceOp::mean);
  work.wait();
  CHECK(async.data<double>()[999] == doctest::Approx((w + 1) / 2));
}

TEST_CASE("collectives refuse tensors that differ between ranks, on every rank") {
  if (world() == 1) return;
  Tensor t = zeros({my_rank() == 1 ? 4u : 3u});
  CHECK_THROWS_WITH_AS(distributed::all_reduce(t), doctest::Contains("the ranks passed different tensors"), Error);
  Tensor d = zeros({3}, my_rank() == 1 ? float64 : float32);
  CHECK_THROWS_WITH_AS(distributed::broadcast(d), doctest::Contains("different tensors"), Error);
  const Tensor g = zeros({2, my_rank() == 1 ? 3u : 2u});
  CHECK_THROWS_WITH_AS(distributed::all_gather(g), doctest::Contains("every axis but the first must agree"), Error);
  // A strided view on one rank only: every rank throws (none is left waiting in MPI).
  Tensor base = zeros({2, 2});
  Tensor v = my_rank() == 1 ? transpose(base) : base;
  CHECK_THROWS_WITH_AS(distributed::all_reduce(v), doctest::Contains("a rank passed a strided view"), Error);
  // The collectives still line up afterwards.
  Tensor ok = ones({2});
  distributed::all_reduce(ok);
  CHECK(ok.data<float>()[0] == static_cast<float>(world()));
}

TEST_CASE("DistributedDataParallel: N ranks at batch B equal one process at batch N*B (SGD 1e-12, Adam 1e-10)") {
  for (const bool adam : {false, true}) {
    CAPTURE(adam);
    // Each rank starts from different weights: the wrapper gives them rank 0's.
    auto local = mlp(100 + static_cast<std::uint64_t>(my_rank()));
    nn::DistributedDataParallel ddp(local, {.bucket_cap_bytes = 200});  // several buckets
    auto reference = mlp(999);
    copy_values(*reference, *local);
    auto make_opt = [&](const TensorList& params) -> std::shared_ptr<optim::Optimizer> {
      if (adam) return std::make_shared<optim::Adam>(params, optim::AdamOptions{.lr = 0.01});
      return std::make_shared<optim::SGD>(params, optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
    };
    auto opt = make_opt(ddp.parameters());
    auto ref_opt = make_opt(reference->parameters());
    const std::size_t B = 4, N = static_cast<std::size_t>(world());
    CHECK(ddp.last_sync().buckets == 0);
    bool identical = true;
    double worst = 0;
    for (int step = 0; step < 5; ++step) {
      const auto [x, y] = global_data(N * B, 1000 + static_cast<std::uint64_t>(step));
      const std::size_t first = B * static_cast<std::size_t>(my_rank());
      opt->zero_grad();
      cross_entropy(ddp(rows(x, first, first + B)), rows(y, first, first + B)).backward();
      opt->step();
      ref_opt->zero_grad();
      cross_entropy((*reference)(x), y).backward();
      ref_opt->step();
      identical = module_same_on_every_rank(*local) && identical;
      worst = std::max(worst, max_relative_difference(*local, *reference));
    }
    CHECK(identical);
    CHECK(worst <= (adam ? 1e-10 : 1e-12));
    CHECK(ddp.last_sync().buckets > 1);
    CHECK(ddp.last_sync().started_in_backward == ddp.last_sync().buckets);
  }
}

namespace {
// Three layers: `always` is used by every rank, `rank0` on rank 0 only, `never` by no rank.
struct Branches : nn::Module {
  std::shared_ptr<nn::Linear> always, rank0, never;
  Branches() {
    manual_seed(5);
    always = register_module("always", std::make_shared<nn::Linear>(3, 2));
    rank0 = register_module("rank0", std::make_shared<nn::Linear>(3, 2));
    never = register_module("never", std::make_shared<nn::Linear>(3, 2));
    to(float64);
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = (*always)(x);
    if (distributed::rank() == 0) out = add(out, (*rank0)(x));
    return out;
  }
};
}  // namespace

TEST_CASE("DistributedDataParallel: parameters without a gradient on some or all ranks") {
  auto m = std::make_shared<Branches>();
  nn::DistributedDataParallel ddp(m);
  optim::SGD opt(ddp.parameters(), {.lr = 0.5});
  const Tensor x = full({2, 3}, 1.0 + my_rank(), float64);
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    sum(ddp(x)).backward();
    CHECK(m->always->weight().grad().defined());
    CHECK(m->rank0->weight().grad().defined());  // rank 0's gradient / world on every rank
    CHECK_FALSE(m->never->weight().grad().defined());
    opt.step();
  }
  CHECK(module_same_on_every_rank(*m));
  // rank0's weight gradient: rank 0's own (2 rows of ones → column sums 2) divided by world.
  CHECK(m->rank0->weight().grad().data<double>()[0] == doctest::Approx(2.0 / world()));
}

TEST_CASE("DistributedDataParallel: gradient accumulation over 2 micro-batches with NoSync") {
  auto local = mlp(7 + static_cast<std::uint64_t>(my_rank()));
  nn::DistributedDataParallel ddp(local);
  auto reference = mlp(1);
  copy_values(*reference, *local);
  optim::SGD opt(ddp.parameters(), {.lr = 0.2});
  optim::SGD ref_opt(reference->parameters(), {.lr = 0.2});
  const std::size_t B = 3, N = static_cast<std::size_t>(world());
  bool identical = true;
  double worst = 0;
  for (int step = 0; step < 3; ++step) {
    // Two micro-batches of N*B each; rank r takes its B rows of each.
    const auto [x, y] = global_data(2 * N * B, 50 + static_cast<std::uint64_t>(step));
    opt.zero_grad();
    for (std::size_t micro = 0; micro < 2; ++micro) {
      const std::size_t first = micro * N * B + B * static_cast<std::size_t>(my_rank());
      const Tensor loss = mul(cross_entropy(ddp(rows(x, first, first + B)), rows(y, first, first + B)), 0.5);
      if (micro == 0) {
        nn::DistributedDataParallel::NoSync no_sync(ddp);
        // Within NoSync the forward (which arms the synchronization) must run too.
        const Tensor l0 = mul(cross_entropy(ddp(rows(x, first, first + B)), rows(y, first, first + B)), 0.5);
        l0.backward();
      } else {
        loss.backward();
      }
    }
    opt.step();
    ref_opt.zero_grad();
    cross_entropy((*reference)(x), y).backward();
    ref_opt.step();
    identical = module_same_on_every_rank(*local) && identical;
    worst = std::max(worst, max_relative_difference(*local, *reference));
  }
  CHECK(identical);
  CHECK(worst <= 1e-12);
}

TEST_CASE("DistributedDataParallel: uneven batches, the last rank's last batch empty") {
  // 3 rows per rank but the last rank has none: each rank's loss is its sum scaled so that the
  // average over the ranks is the mean over all rows.
  auto local = mlp(11);
  nn::DistributedDataParallel ddp(local);
  auto reference = mlp(11);
  copy_values(*reference, *local);
  optim::SGD opt(ddp.parameters(), {.lr = 0.3});
  optim::SGD ref_opt(reference->parameters(), {.lr = 0.3});
  const std::size_t B = 3, N = static_cast<std::size_t>(world());
  const std::size_t total = world() == 1 ? B : (N - 1) * B;
  const auto [x, y] = global_data(total, 77);
  const std::size_t first = std::min(total, B * static_cast<std::size_t>(my_rank()));
  const std::size_t last = std::min(total, first + B);
  opt.zero_grad();
  const Tensor out = ddp(rows(x, first, last));
  CHECK(out.shape(0) == last - first);
  mul(cross_entropy(out, rows(y, first, last), {.reduction = Reduction::sum}),
      static_cast<double>(N) / static_cast<double>(total))
      .backward();
  opt.step();
  ref_opt.zero_grad();
  cross_entropy((*reference)(x), y).backward();
  ref_opt.step();
  CHECK(module_same_on_every_rank(*local));
  CHECK(max_relative_difference(*local, *reference) <= 1e-12);
}

TEST_CASE("DistributedDataParallel: buffers (BatchNorm's running statistics) stay equal") {
  manual_seed(3);
  auto m = std::make_shared<nn::Sequential>(nn::Sequential{nn::Linear(4, 6), nn::BatchNorm1d(6), nn::Linear(6, 2)});
  nn::DistributedDataParallel ddp(m);
  optim::SGD opt(ddp.parameters(), {.lr = 0.1});
  Generator gen(40 + static_cast<std::uint64_t>(my_rank()));  // different data on every rank
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    sum(ddp(randn({8, 4}, gen))).backward();
    opt.step();
  }
  CHECK(module_same_on_every_rank(*m));
}

TEST_CASE("DistributedDataParallel: a model that differs between ranks is refused on every rank") {
  if (world() == 1) return;
  manual_seed(1);
  auto m = std::make_shared<nn::Sequential>(
      nn::Sequential{nn::Linear(4, my_rank() == 1 ? 7u : 6u), nn::Tanh(), nn::Linear(my_rank() == 1 ? 7u : 6u, 2)});
  CHECK_THROWS_WITH_AS(nn::DistributedDataParallel{m}, doctest::Contains("rank 1's model differs from rank 0's"),
                       Error);
  CHECK_THROWS_WITH_AS(nn::DistributedDataParallel{m}, doctest::Contains("0.weight"), Error);
}

namespace {
std::shared_ptr<nn::Sequential> small_classifier() {
  manual_seed(21);
  auto m = std::make_shared<nn::Sequential>(
      nn::Sequential{nn::Linear(5, 16), nn::ReLU(), nn::Linear(16, 3), nn::Softmax(1)});
  m->to(float64);
  return m;
}

void compile(nn::Model& model) {
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
}

// A directory every rank agrees on (rank 0's name).
std::filesystem::path shared_directory() {
  Tensor pid = scalar_tensor(static_cast<double>(getpid()), int64);
  distributed::broadcast(pid);
  auto dir = std::filesystem::temp_directory_path() / fmt::format("tg-distributed-{}", pid.item<std::int64_t>());
  if (my_rank() == 0) std::filesystem::create_directories(dir);
  distributed::barrier();
  return dir;
}
}  // namespace

TEST_CASE("Model under MPI: the same logs and weights on every rank; evaluate and predict over all samples") {
  const auto [x, y] = global_data(203, 9);  // not a multiple of the ranks: the shards are padded
  nn::Model model(small_classifier());
  model.distribute();
  compile(model);
  const std::size_t batch = 6 * static_cast<std::size_t>(world());
  const nn::History history =
      model.fit(x, y, {.epochs = 3, .batch_size = batch, .validation_split = 0.2, .verbose = 0});
  CHECK(module_same_on_every_rank(model.module()));
  for (const std::string key : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
    CAPTURE(key);
    const auto values = history.at(key);
    CHECK(values.size() == 3);
    xt::xarray<double> v = xt::adapt(values, {values.size()});
    CHECK(same_on_every_rank(Tensor(v)));
  }
  // evaluate and predict equal a single process's on the same weights.
  nn::Model single(small_classifier());
  compile(single);
  single.load_state(model.state());
  const nn::Logs mine = model.evaluate(x, y), theirs = single.evaluate(x, y);
  CHECK(mine.at("loss") == doctest::Approx(theirs.at("loss")).epsilon(1e-12));
  CHECK(mine.at("accuracy") == theirs.at("accuracy"));
  const Tensor p = model.predict(x, {.batch_size = 7}), q = single.predict(x, {.batch_size = 7});
  CHECK(p.shape() == q.shape());
  CHECK(max(abs(sub(p, q))).item() <= 1e-6);
  if (world() > 1)
    CHECK_THROWS_WITH_AS(model.fit(x, y, {.batch_size = 2 * static_cast<std::size_t>(world()) + 1, .verbose = 0}),
                         doctest::Contains("does not split evenly"), Error);
}

TEST_CASE("Model under MPI: a checkpoint written by rank 0 resumes on every rank as an uninterrupted run") {
  const auto [x, y] = global_data(150, 12);
  const auto dir = shared_directory();
  const nn::FitOptions fit{.epochs = 4, .batch_size = 10 * static_cast<std::size_t>(world()), .seed = 5, .verbose = 0};

  nn::Model straight(small_classifier());
  straight.distribute();
  compile(straight);
  straight.fit(x, y, fit);

  nn::Model first(small_classifier());
  first.distribute();
  compile(first);
  nn::FitOptions half = fit;
  half.epochs = 2;
  first.fit(x, y, half);
  if (first.is_chief()) nn::save_checkpoint(dir / "ckpt.safetensors", first.module(), first.optimizer(), 2);
  distributed::barrier();

  nn::Model resumed(small_classifier());
  resumed.distribute();
  compile(resumed);
  const nn::CheckpointInfo info = nn::load_checkpoint(dir / "ckpt.safetensors", resumed.module(), resumed.optimizer());
  nn::FitOptions rest = fit;
  rest.initial_epoch = static_cast<int>(info.epoch);
  resumed.fit(x, y, rest);
  CHECK(info.epoch == 2);
  CHECK(max_relative_difference(resumed.module(), straight.module()) == 0.0);
  distributed::barrier();
  if (my_rank() == 0) std::filesystem::remove_all(dir);
}

int main(int argc, char** argv) {
  distributed::Environment env(argc, argv);
  set_num_threads(1);  // the ranks share this machine's cores
  doctest::Context context(argc, argv);
  const int failed = context.run();
  // The job fails when any rank failed.
  Tensor status = scalar_tensor(failed, int64);
  distributed::all_reduce(status, distributed::ReduceOp::max);
  return static_cast<int>(status.item());
}
