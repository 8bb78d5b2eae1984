// Losses. Each computes per-sample values (one fused kernel where it pays), then the reduction
// as an ordinary mean/sum op.
#include "tapegrad/ops/loss.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"
#include "tapegrad/ops/softmax.hpp"

namespace tg {
namespace {

Tensor reduce(const Tensor& values, Reduction r) {
  switch (r) {
    case Reduction::mean:
      return mean(values);
    case Reduction::sum:
      return sum(values);
    case Reduction::none:
      break;
  }
  return values;
}

void check_logits(const Tensor& logits, std::string_view op, std::string_view name) {
  TG_CHECK(logits.ndim() == 2, "{}: expected {} of rank 2 [N,C], got shape {}", op, name, shape_str(logits.shape()));
  TG_CHECK(is_floating(logits.dtype()), "{}: expected float {}, got {} {}", op, name, logits.dtype(),
           shape_str(logits.shape()));
}

// Class-index targets: int64 [N] with every value in [0, C).
void check_class_targets(const Tensor& logits, const Tensor& target, std::string_view op, std::string_view name) {
  const std::size_t n = logits.shape(0), c = logits.shape(1);
  TG_CHECK(target.dtype() == int64,
           "{}: class-index target must be int64, got {} {} (for {} {}); convert with to(tg::int64), or pass float "
           "probabilities of shape [{}, {}]",
           op, target.dtype(), shape_str(target.shape()), name, shape_str(logits.shape()), n, c);
  TG_CHECK(target.shape() == Shape{n}, "{}: target has shape {}, expected [{}] class indices for {} {}", op,
           shape_str(target.shape()), n, name, shape_str(logits.shape()));
  const std::int64_t* t = target.data<std::int64_t>();
  for (std::size_t i = 0; i < n; ++i)
    TG_CHECK(t[i] >= 0 && static_cast<std::size_t>(t[i]) < c,
             "{}: target[{}] = {} is out of range for {} classes ({} {}); expected class indices in [0, {})", op, i,
             t[i], c, name, shape_str(logits.shape()), c);
}

// The smoothed one-hot target distribution [N,C]: (1-ε)[j == t_i] + ε/C.
Tensor target_distribution(const Tensor& target, std::size_t c, double eps, Dtype dtype) {
  const std::size_t n = target.numel();
  return dispatch_float(dtype, "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    xt::xarray<T> d = xt::xarray<T>::from_shape({n, c});
    std::fill(d.begin(), d.end(), static_cast<T>(eps / static_cast<double>(c)));
    const std::int64_t* t = target.data<std::int64_t>();
    for (std::size_t i = 0; i < n; ++i) d.data()[i * c + static_cast<std::size_t>(t[i])] += static_cast<T>(1.0 - eps);
    return Tensor(std::move(d));
  });
}

// Per-row cross-entropy with class indices, with m = max_j z_ij and log s = log Σ_j exp(z_ij - m):
// log s + (1-ε)(m - z[i,t_i]) + ε/C Σ_j (m - z_ij), kept in differences from m for float32
// accuracy at large logits. d = g_i * (softmax(z)_ij - dist_ij)
Tensor cross_entropy_rows(const Tensor& z, const Tensor& target, double eps) {
  const std::size_t n = z.shape(0), c = z.shape(1);
  Tensor rows, row_max, log_sum;
  dispatch_float(z.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    xt::xarray<T> r = xt::xarray<T>::from_shape({n});
    xt::xarray<T> mx = xt::xarray<T>::from_shape({n});
    xt::xarray<T> ls = xt::xarray<T>::from_shape({n});
    const T* pz = z.data<T>();
    const std::int64_t* t = target.data<std::int64_t>();
    const T on = static_cast<T>(1.0 - eps), off = static_cast<T>(eps / static_cast<double>(c));
    for (std::size_t i = 0; i < n; ++i) {
      const T* row = pz + i * c;
      T m = -std::numeric_limits<T>::infinity();
      for (std::size_t j = 0; j < c; ++j) m = std::max(m, row[j]);
      T s = 0, below = 0;
      for (std::size_t j = 0; j < c; ++j) {
        s += std::exp(row[j] - m);
        below += m - row[j];
      }
      const T log_s = std::log(s);
      mx.data()[i] = m;
      ls.data()[i] = log_s;
      r.data()[i] = log_s + on * (m - row[t[i]]) + (eps > 0 ? off * below : T(0));
    }
    rows = Tensor(std::move(r));
    row_max = Tensor(std::move(mx));
    log_sum = Tensor(std::move(ls));
  });
  return record({.name = "cross_entropy", .inputs = {z}, .saved = {z, target, row_max, log_sum}}, rows,
                [eps, n, c](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& logits = ctx.saved(0);
                  const Tensor& t = ctx.saved(1);
                  if (ctx.create_graph()) {
                    const Tensor dist = target_distribution(t, c, eps, logits.dtype());
                    return {mul(sub(softmax(logits, 1), dist), reshape(g, {static_cast<std::int64_t>(n), 1}))};
                  }
                  return {dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
                    using T = decltype(tag);
                    xt::xarray<T> d = xt::xarray<T>::from_shape({n, c});
                    const T* pz = logits.data<T>();
                    const T* pm = ctx.saved(2).data<T>();
                    const T* pl = ctx.saved(3).data<T>();
                    const T* pg = g.data<T>();
                    const std::int64_t* pt = t.data<std::int64_t>();
                    const T on = static_cast<T>(1.0 - eps), off = static_cast<T>(eps / static_cast<double>(c));
                    for (std::size_t i = 0; i < n; ++i) {
                      const T gi = pg[i], mi = pm[i], li = pl[i];
                      const T* row = pz + i * c;
                      T* out = d.data() + i * c;
                      for (std::size_t j = 0; j < c; ++j) out[j] = gi * (std::exp((row[j] - mi) - li) - off);
                      out[pt[i]] -= gi * on;
                    }
                    return Tensor(std::move(d));
                  })};
                });
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options) {
  check_logits(logits, "cross_entropy", "logits");
  const double eps = options.label_smoothing;
  TG_CHECK(eps >= 0.0 && eps <= 1.0, "cross_entropy: label_smoothing must be in [0, 1], got {}", eps);
  if (target.dtype() == int64 || target.shape() != logits.shape()) {
    check_class_targets(logits, target, "cross_entropy", "logits");
    return reduce(cross_entropy_rows(logits, target, eps), options.reduction);
  }
  // Probability targets: -Σ_j t'_ij log_softmax(z)_ij with t' = (1-ε) t + ε/C.
  TG_CHECK(target.dtype() == logits.dtype(), "cross_entropy: probability target is {} but logits are {}",
           target.dtype(), logits.dtype());
  Tensor t = target;
  if (eps > 0) t = add(mul(target, 1.0 - eps), eps / static_cast<double>(logits.shape(1)));
  return reduce(neg(sum(mul(t, log_softmax(logits, 1)), {1})), options.reduction);
}

// d nll(lp)_i = -g_i at [i, t_i]
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const LossOptions& options) {
  check_logits(log_probs, "nll_loss", "log_probs");
  check_class_targets(log_probs, target, "nll_loss", "log_probs");
  const std::size_t n = log_probs.shape(0), c = log_probs.shape(1);
  Tensor rows = dispatch_float(log_probs.dtype(), "nll_loss", [&](auto tag) {
    using T = decltype(tag);
    xt::xarray<T> r = xt::xarray<T>::from_shape({n});
    const T* p = log_probs.data<T>();
    const std::int64_t* t = target.data<std::int64_t>();
    for (std::size_t i = 0; i < n; ++i) r.data()[i] = -p[i * c + static_cast<std::size_t>(t[i])];
    return Tensor(std::move(r));
  });
  rows = record({.name = "nll_loss", .inputs = {log_probs}, .saved = {target}}, rows,
                [n, c, dtype = log_probs.dtype()](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor one_hot = target_distribution(ctx.saved(0), c, 0.0, dtype);
                  return {mul(one_hot, reshape(neg(g), {static_cast<std::int64_t>(n), 1}))};
                });
  return reduce(rows, options.reduction);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, const LossOptions& options) {
  TG_CHECK(input.shape() == target.shape(), "mse_loss: input {} and target {} must have the same shape",
           shape_str(input.shape()), shape_str(target.shape()));
  TG_CHECK(is_floating(input.dtype()) && input.dtype() == target.dtype(),
           "mse_loss: input ({}) and target ({}) must have the same float dtype", input.dtype(), target.dtype());
  const Tensor d = sub(input, target);
  return reduce(mul(d, d), options.reduction);
}

// max(z,0) - z t + log(1 + exp(-|z|)); d = g (sigmoid(z) - t), -g z
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, const LossOptions& options) {
  TG_CHECK(logits.shape() == target.shape(),
           "binary_cross_entropy_with_logits: logits {} and target {} must have the same shape",
           shape_str(logits.shape()), shape_str(target.shape()));
  TG_CHECK(is_floating(logits.dtype()) && logits.dtype() == target.dtype(),
           "binary_cross_entropy_with_logits: logits ({}) and target ({}) must have the same float dtype",
           logits.dtype(), target.dtype());
  Tensor values = dispatch_float(logits.dtype(), "binary_cross_entropy_with_logits", [&](auto tag) {
    using T = decltype(tag);
    xt::xarray<T> r = xt::xarray<T>::from_shape(logits.shape());
    const T* z = logits.data<T>();
    const T* t = target.data<T>();
    for (std::size_t i = 0; i < r.size(); ++i)
      r.data()[i] = std::max(z[i], T(0)) - z[i] * t[i] + std::log1p(std::exp(-std::abs(z[i])));
    return Tensor(std::move(r));
  });
  values = record({.name = "binary_cross_entropy_with_logits", .inputs = {logits, target}, .saved = {logits, target}},
                  values, [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                    const Tensor& z = ctx.saved(0);
                    return {ctx.needs_grad(0) ? mul(g, sub(sigmoid(z), ctx.saved(1))) : Tensor(),
                            ctx.needs_grad(1) ? mul(g, neg(z)) : Tensor()};
                  });
  return reduce(values, options.reduction);
}

Tensor one_hot(const Tensor& labels, std::size_t num_classes, Dtype dtype) {
  TG_CHECK(labels.defined() && labels.dtype() == int64, "one_hot: expected int64 labels, got {}",
           labels.defined() ? fmt::format("{}", labels.dtype()) : "an undefined tensor");
  TG_CHECK(num_classes > 0, "one_hot: num_classes must be positive");
  Shape shape = labels.shape();
  shape.push_back(num_classes);
  Tensor out = zeros(shape, dtype);
  const std::int64_t* src = labels.data<std::int64_t>();
  dispatch_float(dtype, "one_hot", [&](auto t) {
    using T = decltype(t);
    T* dst = out.mutable_array<T>().data();
    for (std::size_t i = 0; i < labels.numel(); ++i) {
      TG_CHECK(src[i] >= 0 && static_cast<std::size_t>(src[i]) < num_classes,
               "one_hot: label {} at position {} is outside [0, {})", src[i], i, num_classes);
      dst[i * num_classes + static_cast<std::size_t>(src[i])] = T(1);
    }
  });
  return out;
}

}  // namespace tg
