#include "tapegrad/nn/distributed_data_parallel.hpp"

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/distributed/distributed.hpp"

namespace tg::nn {

namespace {

// "name dtype [shape]" per parameter and buffer, one per line: what every rank must agree on.
std::string model_signature(const Module& m) {
  std::string s;
  for (const auto& [name, t] : m.named_parameters())
    s += fmt::format("parameter {} {} {}\n", name, t.dtype(), shape_str(t.shape()));
  for (const auto& [name, t] : m.named_buffers())
    s += fmt::format("buffer {} {} {}\n", name, t.dtype(), shape_str(t.shape()));
  return s;
}

Tensor string_tensor(const std::string& s) {
  Tensor t = zeros({s.size()}, int64);
  auto* p = static_cast<std::int64_t*>(t.mutable_data_ptr());
  for (std::size_t i = 0; i < s.size(); ++i) p[i] = static_cast<unsigned char>(s[i]);
  return t;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t begin = 0;
  while (begin < s.size()) {
    const std::size_t end = s.find('\n', begin);
    out.push_back(s.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

// Throws, on every rank alike, when some rank's model differs from rank 0's.
void check_same_model(const Module& m) {
  const std::string mine = model_signature(m);
  const Tensor lengths =
      distributed::all_gather(Tensor(xt::xarray<std::int64_t>{static_cast<std::int64_t>(mine.size())}));
  const Tensor all = distributed::all_gather(string_tensor(mine));
  const std::int64_t* len = lengths.data<std::int64_t>();
  const std::int64_t* chars = all.data<std::int64_t>();
  std::vector<std::string> signatures;
  for (std::size_t r = 0, at = 0; r < lengths.numel(); at += static_cast<std::size_t>(len[r]), ++r) {
    std::string s(static_cast<std::size_t>(len[r]), ' ');
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(chars[at + i]);
    signatures.push_back(std::move(s));
  }
  const auto reference = lines(signatures[0]);
  for (std::size_t r = 1; r < signatures.size(); ++r) {
    if (signatures[r] == signatures[0]) continue;
    const auto theirs = lines(signatures[r]);
    std::size_t i = 0;
    while (i < reference.size() && i < theirs.size() && reference[i] == theirs[i]) ++i;
    const std::string a = i < reference.size() ? reference[i] : "nothing more";
    const std::string b = i < theirs.size() ? theirs[i] : "nothing more";
    throw Error(fmt::format(
        "DistributedDataParallel: rank {}'s model differs from rank 0's: entry {} is '{}' on rank 0 and '{}' on rank "
        "{} ({} against {} parameters and buffers); every rank must build the same model",
        r, i, a, b, r, reference.size(), theirs.size()));
  }
}

using Clock = std::chrono::steady_clock;

}  // namespace

// The buckets and their progress through one backward. Hooks and the end-of-backward callback
// reach it through a weak_ptr, so that a wrapper destroyed first leaves them doing nothing.
struct DistributedDataParallel::State {
  struct Bucket {
    Dtype dtype = float32;
    std::vector<std::size_t> params;   // indices into `params`
    std::vector<std::size_t> offsets;  // of each parameter's values in the buffer
    std::size_t numel = 0;             // gradient values; then one "had a gradient" flag per parameter
    std::size_t ready = 0;
    Tensor buffer;
    distributed::Work work;
  };
  TensorList params;
  std::vector<std::size_t> bucket_of;  // per parameter
  std::vector<bool> ready;             // per parameter, this backward
  std::vector<Bucket> buckets;
  std::vector<std::size_t> hook_handles;  // per parameter
  std::size_t next_to_start = 0;
  bool expecting_backward = false;
  bool broadcast_buffers = true;
  std::shared_ptr<Module> module;
  SyncStats stats, current;

  void start(Bucket& b) {
    b.buffer = zeros({b.numel + b.params.size()}, b.dtype);
    char* base = static_cast<char*>(b.buffer.mutable_data_ptr());
    const std::size_t size = dtype_size(b.dtype);
    for (std::size_t k = 0; k < b.params.size(); ++k) {
      const Tensor g = params[b.params[k]].grad();
      if (!g.defined()) continue;
      std::memcpy(base + b.offsets[k] * size, g.data_ptr(), g.numel() * size);
      if (b.dtype == float32)
        static_cast<float*>(b.buffer.mutable_data_ptr())[b.numel + k] = 1;
      else
        static_cast<double*>(b.buffer.mutable_data_ptr())[b.numel + k] = 1;
    }
    b.work = distributed::all_reduce_async(b.buffer, distributed::ReduceOp::sum);
    current.bytes += b.numel * size;
  }

  void start_ready_buckets() {
    while (next_to_start < buckets.size() && buckets[next_to_start].ready == buckets[next_to_start].params.size()) {
      start(buckets[next_to_start++]);
      ++current.started_in_backward;
    }
    // MPI moves non-blocking collectives along only inside MPI calls: give it one.
    for (std::size_t i = 0; i < next_to_start; ++i) buckets[i].work.test();
  }

  void on_gradient_ready(std::size_t i) {
    if (!expecting_backward || ready[i]) return;
    ready[i] = true;
    ++buckets[bucket_of[i]].ready;
    start_ready_buckets();
  }

  template <class T>
  void write_back(Bucket& b) {
    const T* values = b.buffer.data<T>();
    const T world = static_cast<T>(distributed::world_size());
    for (std::size_t k = 0; k < b.params.size(); ++k) {
      Tensor& p = params[b.params[k]];
      if (values[b.numel + k] == 0) continue;  // no rank had a gradient: it stays undefined
      xt::xarray<T> g = xt::xarray<T>::from_shape(p.shape());
      const T* src = values + b.offsets[k];
      for (std::size_t j = 0; j < g.size(); ++j) g.data()[j] = src[j] / world;
      p.set_grad(Tensor(std::move(g)));
    }
  }

  void finish() {
    if (!expecting_backward) return;
    expecting_backward = false;
    while (next_to_start < buckets.size()) start(buckets[next_to_start++]);
    const auto t0 = Clock::now();
    for (Bucket& b : buckets) b.work.wait();
    current.wait_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    for (Bucket& b : buckets) {
      if (b.dtype == float32)
        write_back<float>(b);
      else
        write_back<double>(b);
      b.buffer = Tensor();
    }
    if (broadcast_buffers) {
      NoGradGuard no_grad;
      for (Tensor& t : module->buffers()) distributed::broadcast(t, 0);
    }
    current.buckets = buckets.size();
    stats = current;
  }

  void reset_for_backward() {
    std::fill(ready.begin(), ready.end(), false);
    for (Bucket& b : buckets) b.ready = 0;
    next_to_start = 0;
    current = {};
  }
};

DistributedDataParallel::DistributedDataParallel(AnyModule module, DistributedOptions options)
    : module_(module.ptr()), state_(std::make_shared<State>()) {
  TG_CHECK(options.bucket_cap_bytes > 0, "DistributedDataParallel: bucket_cap_bytes must be positive");
  register_module("module", module_);
  check_same_model(*module_);
  {
    NoGradGuard no_grad;
    for (Tensor& t : module_->parameters()) distributed::broadcast(t, 0);
    for (Tensor& t : module_->buffers()) distributed::broadcast(t, 0);
  }
  State& s = *state_;
  s.module = module_;
  s.broadcast_buffers = options.broadcast_buffers;
  for (const Tensor& p : module_->parameters())
    if (p.requires_grad()) s.params.push_back(p);
  TG_CHECK(!s.params.empty(), "DistributedDataParallel: the module has no parameter that requires grad");
  // Last layers first: their gradients are final first.
  for (std::size_t n = s.params.size(); n-- > 0;) {
    const Tensor& p = s.params[n];
    const std::size_t bytes = p.numel() * dtype_size(p.dtype());
    if (s.buckets.empty() || s.buckets.back().dtype != p.dtype() ||
        (s.buckets.back().numel > 0 &&
         (s.buckets.back().numel * dtype_size(p.dtype()) + bytes) > options.bucket_cap_bytes))
      s.buckets.emplace_back().dtype = p.dtype();
    State::Bucket& b = s.buckets.back();
    b.params.push_back(n);
    b.offsets.push_back(b.numel);
    b.numel += p.numel();
  }
  s.bucket_of.resize(s.params.size());
  for (std::size_t b = 0; b < s.buckets.size(); ++b)
    for (std::size_t i : s.buckets[b].params) s.bucket_of[i] = b;
  s.ready.assign(s.params.size(), false);
  std::weak_ptr<State> weak = state_;
  for (std::size_t i = 0; i < s.params.size(); ++i)
    s.hook_handles.push_back(s.params[i].register_post_accumulate_grad_hook([weak, i](const Tensor&) {
      if (auto state = weak.lock()) state->on_gradient_ready(i);
    }));
}

DistributedDataParallel::~DistributedDataParallel() {
  for (std::size_t i = 0; i < state_->params.size(); ++i)
    state_->params[i].remove_post_accumulate_grad_hook(state_->hook_handles[i]);
}

Tensor DistributedDataParallel::prepare(const Tensor& out) {
  if (sync_ && is_grad_enabled() && !state_->expecting_backward) {
    state_->reset_for_backward();
    state_->expecting_backward = true;
    std::weak_ptr<State> weak = state_;
    autograd::queue_backward_callback([weak] {
      if (auto state = weak.lock()) state->finish();
    });
  }
  return out;
}

Tensor DistributedDataParallel::forward(const Tensor& x) { return prepare(module_->forward(x)); }

bool DistributedDataParallel::has_logits() const { return module_->has_logits(); }

Tensor DistributedDataParallel::forward_logits(const Tensor& x) { return prepare(module_->forward_logits(x)); }

const DistributedDataParallel::SyncStats& DistributedDataParallel::last_sync() const { return state_->stats; }

}  // namespace tg::nn
