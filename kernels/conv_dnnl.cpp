// float32 convolutions through oneDNN, for the layers where the im2col path is slowest: many
// input channels (oneDNN's direct kernels, chosen for the CPU at run time, read the input in
// place instead of writing a column matrix several times its size). Its convolutions want
// blocked layouts (nChw16c and the like): inputs are reordered into them and results back to
// NCHW, which costs a pass over each tensor, far less than im2col's column matrix.
// Threads: tapegrad splits the batch over its own pool and runs oneDNN on one thread per chunk
// (kernels/omp_guard.hpp says why).

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tapegrad/kernels/check.hpp"
#include "tapegrad/kernels/conv_paths.hpp"
#include "tapegrad/kernels/error.hpp"
#include "tapegrad/kernels/omp_guard.hpp"
#include "tapegrad/kernels/parallel.hpp"

namespace tg::kernels::dnnl_conv {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dims = memory::dims;

enum class Kind { forward, backward_data, backward_weights };

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

memory::dim dim(std::size_t v) { return static_cast<memory::dim>(v); }

// One convolution over n samples: tapegrad's layouts (NCHW, OIHW or GOIHW) and the same
// shapes with the layout left to oneDNN.
struct Descs {
  memory::desc x, w, y, bias, x_any, w_any, y_any;
  dims strides, dilates, pad_l, pad_r;
};

Descs make_descs(const ConvGeometry& g, std::size_t n) {
  constexpr auto f32 = memory::data_type::f32;
  const dims xd{dim(n), dim(g.c_in), dim(g.h), dim(g.w)}, yd{dim(n), dim(g.c_out), dim(g.oh), dim(g.ow)};
  const bool grouped = g.groups > 1;
  const dims wd = grouped ? dims{dim(g.groups), dim(g.cg_out()), dim(g.cg_in()), dim(g.kh), dim(g.kw)}
                          : dims{dim(g.c_out), dim(g.c_in), dim(g.kh), dim(g.kw)};
  Descs d;
  d.x = memory::desc(xd, f32, tag::nchw);
  d.y = memory::desc(yd, f32, tag::nchw);
  d.w = memory::desc(wd, f32, grouped ? tag::goihw : tag::oihw);
  d.bias = memory::desc({dim(g.c_out)}, f32, tag::x);
  d.x_any = memory::desc(xd, f32, tag::any);
  d.y_any = memory::desc(yd, f32, tag::any);
  d.w_any = memory::desc(wd, f32, tag::any);
  d.strides = {dim(g.sh), dim(g.sw)};
  d.dilates = {dim(g.dh) - 1, dim(g.dw) - 1};  // oneDNN counts the gaps: 0 is no dilation
  d.pad_l = {dim(g.pad_top), dim(g.pad_left)};
  // The bottom and right padding the output size actually reaches: with stride > 1 the floor in
  // the output size can leave some of the requested padding unused, and oneDNN wants the sizes
  // to agree exactly (the difference may be negative: input rows that no window reaches).
  d.pad_r = {(dim(g.oh) - 1) * dim(g.sh) + (dim(g.kh) - 1) * dim(g.dh) + 1 - dim(g.h) - dim(g.pad_top),
             (dim(g.ow) - 1) * dim(g.sw) + (dim(g.kw) - 1) * dim(g.dw) + 1 - dim(g.w) - dim(g.pad_left)};
  return d;
}

// A primitive with the layouts it wants for its two operands and its result (forward: x, w → y;
// backward data: gy, w → dx; backward weights: gy, x → dw), or unsupported.
struct Plan {
  bool supported = false;
  dnnl::primitive primitive;
  memory::desc first, second, result, scratchpad;
};

// The plan of a primitive descriptor, unsupported when oneDNN chose its GEMM-based or
// reference implementation: tapegrad's im2col path is as fast or faster than those.
template <class Primitive, class PrimitiveDesc>
Plan adopt(const PrimitiveDesc& pd, const memory::desc& first, const memory::desc& second, const memory::desc& result) {
  const std::string_view impl = pd.impl_info_str();
  if (!impl.starts_with("jit") && !impl.starts_with("brg")) return Plan{};
  return Plan{.supported = true,
              .primitive = Primitive(pd),
              .first = first,
              .second = second,
              .result = result,
              .scratchpad = pd.scratchpad_desc()};
}

Plan make_plan(Kind kind, const ConvGeometry& g, std::size_t n, bool bias, bool relu) {
  using namespace dnnl;
  const Descs d = make_descs(g, n);
  try {
    primitive_attr attr;
    attr.set_scratchpad_mode(scratchpad_mode::user);  // one per call: chunks run concurrently
    const convolution_forward::desc plain(prop_kind::forward_training, algorithm::convolution_direct, d.x_any, d.w_any,
                                          d.y_any, d.strides, d.dilates, d.pad_l, d.pad_r);
    switch (kind) {
      case Kind::forward: {
        if (relu) {
          post_ops ops;
          ops.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
          attr.set_post_ops(ops);
        }
        const convolution_forward::primitive_desc pd(
            bias ? convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, d.x_any,
                                             d.w_any, d.bias, d.y_any, d.strides, d.dilates, d.pad_l, d.pad_r)
                 : plain,
            attr, cpu_engine());
        return adopt<convolution_forward>(pd, pd.src_desc(), pd.weights_desc(), pd.dst_desc());
      }
      case Kind::backward_data: {
        const convolution_backward_data::primitive_desc pd(
            {algorithm::convolution_direct, d.x_any, d.w_any, d.y_any, d.strides, d.dilates, d.pad_l, d.pad_r}, attr,
            cpu_engine(), convolution_forward::primitive_desc(plain, cpu_engine()));
        return adopt<convolution_backward_data>(pd, pd.diff_dst_desc(), pd.weights_desc(), pd.diff_src_desc());
      }
      case Kind::backward_weights: {
        const convolution_backward_weights::primitive_desc pd(
            {algorithm::convolution_direct, d.x_any, d.w_any, d.y_any, d.strides, d.dilates, d.pad_l, d.pad_r}, attr,
            cpu_engine(), convolution_forward::primitive_desc(plain, cpu_engine()));
        return adopt<convolution_backward_weights>(pd, pd.diff_dst_desc(), pd.src_desc(), pd.diff_weights_desc());
      }
    }
  } catch (const dnnl::error&) {
    // no implementation for this geometry
  }
  return Plan{};
}

// Plans are costly to make (oneDNN tries its implementations in turn) and a model makes the
// same few convolutions every step, so they are kept, keyed by everything that shapes them.
// Shared, not referenced: another thread may start the cache over while a plan runs.
std::shared_ptr<const Plan> find_plan(Kind kind, const ConvGeometry& g, std::size_t n, bool bias, bool relu) {
  static std::mutex mutex;
  static std::map<std::vector<std::size_t>, std::shared_ptr<const Plan>> plans;
  const std::vector<std::size_t> key{static_cast<std::size_t>(kind),
                                     n,
                                     g.c_in,
                                     g.h,
                                     g.w,
                                     g.c_out,
                                     g.kh,
                                     g.kw,
                                     g.oh,
                                     g.ow,
                                     g.sh,
                                     g.sw,
                                     g.dh,
                                     g.dw,
                                     g.pad_top,
                                     g.pad_left,
                                     g.groups,
                                     bias,
                                     relu};
  std::lock_guard<std::mutex> lock(mutex);
  if (plans.size() > 256) plans.clear();  // a program sweeping shapes: start over, not grow without end
  std::shared_ptr<const Plan>& plan = plans[key];
  if (!plan) plan = std::make_shared<const Plan>(make_plan(kind, g, n, bias, relu));
  return plan;
}

// `user` (tapegrad's layout) as the layout `wanted`: the same memory when they agree, else a
// reordered copy.
memory as_layout(memory user, const memory::desc& wanted) {
  if (user.get_desc() == wanted) return user;
  memory m(wanted, cpu_engine());
  dnnl::reorder(user, m).execute(thread_stream(), user, m);
  return m;
}

// The number of chunks a batch of n samples is split into: one per thread.
std::size_t chunk_count(std::size_t n) { return std::min<std::size_t>(static_cast<std::size_t>(num_threads()), n); }

// Runs body(chunk, n0, n1, plan, descs) for samples [n0, n1) of each of `chunks` chunks of the
// batch, one chunk per thread, after checking that every chunk size has a plan; false (nothing
// run) when one has none. Rethrows what a chunk threw.
template <class Body>
bool over_batch(Kind kind, const ConvGeometry& g, std::size_t chunks, bool bias, bool relu, Body body) {
  if (g.n == 0) return false;
  // Plans are made on one OpenMP thread too: oneDNN's JIT kernels fix their thread count when
  // the primitive is created, and would otherwise open a team of every core inside each chunk.
  const OneOpenMPThread one_thread;
  for (std::size_t nb : {g.n / chunks, (g.n + chunks - 1) / chunks})
    if (!find_plan(kind, g, nb, bias, relu)->supported) return false;
  std::exception_ptr failure;
  std::mutex failure_mutex;
  parallel_for(chunks, 1, [&](std::size_t begin, std::size_t end) {
    const OneOpenMPThread one_thread_here;
    for (std::size_t t = begin; t < end; ++t) {
      const std::size_t n0 = g.n * t / chunks, n1 = g.n * (t + 1) / chunks;
      try {
        const std::shared_ptr<const Plan> plan = find_plan(kind, g, n1 - n0, bias, relu);
        body(t, n0, n1, *plan, make_descs(g, n1 - n0));
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        failure = std::current_exception();
      }
    }
  });
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const dnnl::error& e) {
      detail::fail("conv2d: oneDNN failed on x [{}, {}, {}, {}] and weight [{}, {}, {}, {}]: {}", g.n, g.c_in, g.h, g.w,
                   g.c_out, g.cg_in(), g.kh, g.kw, e.what());
    }
  }
  return true;
}

// Runs the plan with its three operands and writes the result into `result_user`.
// (oneDNN's handles are shared references: passing them by value copies no data.)
void execute(const Plan& p, int first_arg, const memory& first, int second_arg, const memory& second, int result_arg,
             memory result_user, const float* bias = nullptr, std::size_t c_out = 0) {
  dnnl::stream& stream = thread_stream();
  const memory a = as_layout(first, p.first), b = as_layout(second, p.second);
  const bool in_place = result_user.get_desc() == p.result;
  memory r = in_place ? result_user : memory(p.result, cpu_engine());
  const memory scratch(p.scratchpad, cpu_engine());
  std::unordered_map<int, memory> args{
      {first_arg, a}, {second_arg, b}, {result_arg, r}, {DNNL_ARG_SCRATCHPAD, scratch}};
  if (bias)
    args.emplace(DNNL_ARG_BIAS,
                 memory({{dim(c_out)}, memory::data_type::f32, tag::x}, cpu_engine(), const_cast<float*>(bias)));
  p.primitive.execute(stream, args);
  if (!in_place) dnnl::reorder(r, result_user).execute(stream, r, result_user);
  stream.wait();
}

// oneDNN's memory objects take non-const handles; tapegrad's inputs are only read.
float* handle(const float* p) { return const_cast<float*>(p); }

}  // namespace

bool forward(const float* x, const float* w, const float* bias, const ConvGeometry& g, bool relu, float* y) {
  const std::size_t x_sample = g.c_in * g.h * g.w, y_sample = g.c_out * g.out_plane();
  return over_batch(Kind::forward, g, chunk_count(g.n), bias != nullptr, relu,
                    [&](std::size_t, std::size_t n0, std::size_t, const Plan& p, const Descs& d) {
                      const memory xm(d.x, cpu_engine(), handle(x + n0 * x_sample));
                      const memory wm(d.w, cpu_engine(), handle(w));
                      const memory ym(d.y, cpu_engine(), y + n0 * y_sample);
                      execute(p, DNNL_ARG_SRC, xm, DNNL_ARG_WEIGHTS, wm, DNNL_ARG_DST, ym, bias, g.c_out);
                    });
}

bool backward_data(const float* gy, const float* w, const ConvGeometry& g, float* dx) {
  const std::size_t x_sample = g.c_in * g.h * g.w, y_sample = g.c_out * g.out_plane();
  return over_batch(Kind::backward_data, g, chunk_count(g.n), false, false,
                    [&](std::size_t, std::size_t n0, std::size_t, const Plan& p, const Descs& d) {
                      const memory gm(d.y, cpu_engine(), handle(gy + n0 * y_sample));
                      const memory wm(d.w, cpu_engine(), handle(w));
                      const memory dxm(d.x, cpu_engine(), dx + n0 * x_sample);
                      execute(p, DNNL_ARG_DIFF_DST, gm, DNNL_ARG_WEIGHTS, wm, DNNL_ARG_DIFF_SRC, dxm);
                    });
}

bool backward_weights(const float* gy, const float* x, const ConvGeometry& g, float* dw) {
  const std::size_t x_sample = g.c_in * g.h * g.w, y_sample = g.c_out * g.out_plane();
  const std::size_t w_size = g.c_out * g.patch();
  // Chunk 0 writes dw itself; the others write partial sums, added in afterwards.
  const std::size_t chunks = chunk_count(g.n);  // once: partial is sized for exactly these chunks
  std::vector<float> partial(chunks > 1 ? (chunks - 1) * w_size : 0);
  const bool done = over_batch(Kind::backward_weights, g, chunks, false, false,
                               [&](std::size_t t, std::size_t n0, std::size_t, const Plan& p, const Descs& d) {
                                 const memory gm(d.y, cpu_engine(), handle(gy + n0 * y_sample));
                                 const memory xm(d.x, cpu_engine(), handle(x + n0 * x_sample));
                                 const memory dwm(d.w, cpu_engine(), t == 0 ? dw : partial.data() + (t - 1) * w_size);
                                 execute(p, DNNL_ARG_DIFF_DST, gm, DNNL_ARG_SRC, xm, DNNL_ARG_DIFF_WEIGHTS, dwm);
                               });
  if (!done) return false;
  for (std::size_t c = 1; c < chunks; ++c) {
    const float* part = partial.data() + (c - 1) * w_size;
    for (std::size_t i = 0; i < w_size; ++i) dw[i] += part[i];
  }
  return true;
}

}  // namespace tg::kernels::dnnl_conv
