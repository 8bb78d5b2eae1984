// Data-parallel scaling under MPI (scripts/bench-distributed.sh runs it with 1 and 2 ranks):
// images per second of the tutorial or deep model at a fixed batch per rank (weak scaling), the
// allreduce cost of one step's gradients, and how much of it DistributedDataParallel hides behind
// backward. Prints one JSON line (rank 0).
//   mpirun -np 2 build-bench/benchmarks/mpi_scaling --model tutorial --batch 128 --steps 150
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>
#include <xtensor/xadapt.hpp>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;
using Clock = std::chrono::steady_clock;

namespace {

nn::Sequential make_model(const std::string& kind) {
  const nn::Conv2dOptions relu{.activation = nn::Activation::relu};
  if (kind == "deep")
    return nn::Sequential{nn::Conv2d(1, 32, 3, relu), nn::MaxPool2d(2), nn::Conv2d(32, 64, 3, relu),
                          nn::MaxPool2d(2),           nn::Flatten(),    nn::Dropout(0.5),
                          nn::Linear(1600, 10)};
  return nn::Sequential{nn::Conv2d(1, 32, 3, relu), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(5408, 10)};
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  distributed::Environment env(argc, argv);
  CLI::App app{"tapegrad's data-parallel scaling benchmark"};
  std::string kind = "tutorial", data;
  std::size_t batch = 128, steps = 150, warmup = 10, bucket_kib = 64;
  int threads = 1;
  bool independent = false, lockstep = false;
  if (const char* dir = std::getenv("TG_MNIST_DIR")) data = dir;
  app.add_option("--model", kind)->check(CLI::IsMember({"tutorial", "deep"}));
  app.add_option("--batch", batch, "samples per rank per step");
  app.add_option("--steps", steps, "timed steps");
  app.add_option("--threads", threads, "threads per rank");
  app.add_option("--bucket-kib", bucket_kib, "DistributedDataParallel's bucket size");
  app.add_option("--data", data, "directory of the MNIST files");
  app.add_flag("--independent", independent,
               "each rank trains its own model, no communication: the machine's ceiling for N processes");
  app.add_flag("--lockstep", lockstep,
               "with --independent: a barrier after every step, so the ranks run in step as under "
               "DistributedDataParallel but exchange nothing");
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);
  tune_malloc_for_training();

  const datasets::MNIST train(datasets::Split::train, {.root = data, .download = false});
  manual_seed(0);
  auto model = std::make_shared<nn::Sequential>(make_model(kind));
  nn::DistributedDataParallel ddp(model, {.bucket_cap_bytes = bucket_kib * 1024});
  nn::Module& net = independent ? static_cast<nn::Module&>(*model) : ddp;
  optim::Adam opt(net.parameters(), {.lr = 1e-3, .formula = optim::AdamOptions::Formula::keras});
  datasets::DistributedSampler sampler(train.size(), {.rank = static_cast<std::size_t>(env.rank()),
                                                      .world_size = static_cast<std::size_t>(env.world_size())});
  const std::vector<std::size_t> shard = sampler.indices();

  double wait = 0, step_time = 0;
  std::vector<double> step_seconds;  // each timed step's own time on this rank
  std::size_t buckets_in_backward = 0, buckets = 0, bytes = 0;
  distributed::barrier();
  Clock::time_point t0 = Clock::now();
  for (std::size_t step = 0; step < warmup + steps; ++step) {
    if (step == warmup) {
      distributed::barrier();
      t0 = Clock::now();
    }
    const auto s0 = Clock::now();
    const std::size_t first = (step * batch) % (shard.size() - batch);
    const datasets::Batch b = train.get_batch(std::span(shard).subspan(first, batch));
    opt.zero_grad();
    cross_entropy(net.forward(b.x), b.y).backward();
    opt.step();
    if (independent && lockstep) distributed::barrier();
    if (step >= warmup) {
      step_seconds.push_back(seconds_since(s0));
      wait += ddp.last_sync().wait_seconds;
      buckets_in_backward += ddp.last_sync().started_in_backward;
      buckets = ddp.last_sync().buckets;
      bytes = ddp.last_sync().bytes;
    }
  }
  distributed::barrier();
  step_time = seconds_since(t0) / static_cast<double>(steps);

  // The same gradients' allreduce alone, blocking, as one message: the communication cost of a
  // step that nothing hides.
  Tensor flat = zeros({bytes / 4});
  const int reps = 50;
  distributed::all_reduce(flat);
  distributed::barrier();
  const auto c0 = Clock::now();
  for (int i = 0; i < reps; ++i) distributed::all_reduce(flat);
  const double allreduce = seconds_since(c0) / reps;

  const double exposed = wait / static_cast<double>(steps);
  // Had the ranks waited for each other at every step, each step would have cost the slowest
  // rank's time: the mean over steps of the maximum over ranks (meaningful with --independent,
  // where the ranks run free: the cost of their jitter to a synchronous step).
  xt::xarray<double> mine = xt::adapt(step_seconds, {std::size_t{1}, step_seconds.size()});
  const Tensor all_steps = distributed::all_gather(Tensor(std::move(mine)));
  double mean_of_max = 0;
  for (std::size_t i = 0; i < steps; ++i) {
    double slowest = 0;
    for (std::size_t r = 0; r < all_steps.shape(0); ++r)
      slowest = std::max(slowest, all_steps.data<double>()[r * steps + i]);
    mean_of_max += slowest / static_cast<double>(steps);
  }
  const double images_per_second = static_cast<double>(batch * static_cast<std::size_t>(env.world_size())) / step_time;
  if (env.rank() == 0)
    fmt::print(
        "{{\"workload\": \"{}_{}_b{}\", \"ranks\": {}, \"threads_per_rank\": {}, \"step_seconds\": {:.6f}, "
        "\"images_per_second\": {:.1f}, \"synchronous_step_seconds\": {:.6f}, \"gradient_bytes\": {}, \"buckets\": {}, "
        "\"buckets_started_in_backward\": "
        "{:.2f}, \"allreduce_seconds\": {:.6f}, \"exposed_wait_seconds\": {:.6f}, \"hidden_fraction\": {:.3f}}}\n",
        independent ? (lockstep ? "lockstep" : "independent") : "ddp", kind, batch, env.world_size(), threads,
        step_time, images_per_second, mean_of_max, bytes, buckets,
        static_cast<double>(buckets_in_backward) / static_cast<double>(steps), allreduce, exposed,
        !independent && env.world_size() > 1 && allreduce > 0 ? std::clamp(1.0 - exposed / allreduce, 0.0, 1.0) : 0.0);
  return 0;
}
