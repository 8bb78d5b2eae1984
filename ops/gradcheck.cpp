#include "tapegrad/ops/gradcheck.hpp"

#include <cmath>
#include <limits>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"

namespace tg {
namespace {

std::vector<std::size_t> differentiable_inputs(const TensorList& inputs) {
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!t.defined() || !t.requires_grad()) continue;
    TG_CHECK(t.dtype() == float64, "gradcheck: input {} is {}; gradient checks need float64 inputs", i, t.dtype());
    idx.push_back(i);
  }
  TG_CHECK(!idx.empty(), "gradcheck: no input requires grad");
  return idx;
}

// fn at `inputs` with input `which` replaced by `value`, as a flat vector. As PyTorch's gradcheck
// does, fn runs with grad mode on and its inputs requiring grad as the originals do (fresh leaves),
// so that a function may take gradients itself (a gradient penalty, a Hessian-vector product).
std::vector<double> evaluate(const DifferentiableFn& fn, TensorList inputs, std::size_t which, const Tensor& value) {
  GradModeGuard grad_on(true);
  for (Tensor& t : inputs)
    if (t.defined()) t = t.detach().requires_grad_(t.requires_grad());
  inputs[which] = value.detach().requires_grad_();  // `which` is always an input that requires grad
  const Tensor out = fn(inputs).detach();
  TG_CHECK(is_floating(out.dtype()), "gradcheck: the function returned a {} tensor", out.dtype());
  const xt::xarray<double>& a = out.to(float64).array<double>();
  return {a.begin(), a.end()};
}

Tensor shifted(const Tensor& x, const xt::xarray<double>& direction, double step) {
  xt::xarray<double> v = x.array<double>();
  for (std::size_t k = 0; k < v.size(); ++k) v.data()[k] += step * direction.data()[k];
  return Tensor(std::move(v));
}

// d(sum(fn(inputs) * seed))/d(input) for each differentiable input (zeros where unused).
TensorList vjp(const DifferentiableFn& fn, const TensorList& inputs, const std::vector<std::size_t>& which,
               const xt::xarray<double>& seed_values) {
  const Tensor out = fn(inputs);
  xt::xarray<double> seed = seed_values;
  seed.reshape(out.shape());
  TensorList targets;
  for (std::size_t i : which) targets.push_back(inputs[i]);
  // An output without a graph has zero analytic gradient (as for the constant first-order
  // gradients of a linear op in gradgradcheck); the numeric side still catches an op that
  // forgot to record itself.
  TensorList grads = out.requires_grad()
                         ? grad({out}, targets, {.grad_outputs = {Tensor(seed).to(out.dtype())}, .allow_unused = true})
                         : TensorList(targets.size());
  for (std::size_t j = 0; j < grads.size(); ++j)
    if (!grads[j].defined())
      grads[j] = zeros_like(targets[j]);
    else
      grads[j] = grads[j].to(float64);
  return grads;
}

struct Worst {
  double excess = -std::numeric_limits<double>::infinity();
  GradcheckResult result;
  void offer(double numeric, double analytic, const GradcheckOptions& o, std::size_t input, std::size_t position) {
    const double err = std::abs(numeric - analytic);
    const double here =
        std::isfinite(err) ? err - (o.atol + o.rtol * std::abs(numeric)) : std::numeric_limits<double>::infinity();
    if (here > excess) {
      excess = here;
      result.input = input, result.position = position;
      result.numeric = numeric, result.analytic = analytic;
    }
  }
};

xt::xarray<double> random_direction(const Shape& shape, Generator& gen) {
  return randn(shape, gen, float64).array<double>();
}

}  // namespace

GradcheckResult gradcheck(const DifferentiableFn& fn, const TensorList& inputs, GradcheckOptions options) {
  GradModeGuard grad_on(true);  // the analytic side needs a graph, whatever the caller's mode
  const std::vector<std::size_t> which = differentiable_inputs(inputs);
  const std::size_t out_numel = evaluate(fn, inputs, which[0], inputs[which[0]].detach()).size();
  std::size_t in_numel = 0;
  for (std::size_t i : which) in_numel += inputs[i].numel();
  const bool full = in_numel * std::max<std::size_t>(out_numel, 1) <= options.max_full_jacobian;

  Worst worst;
  Generator gen(options.seed);
  if (full) {
    // Analytic Jacobian, one row per output element.
    std::vector<TensorList> rows;
    for (std::size_t r = 0; r < out_numel; ++r) {
      xt::xarray<double> seed = xt::zeros<double>({out_numel});
      seed(r) = 1.0;
      rows.push_back(vjp(fn, inputs, which, seed));
    }
    // Numeric Jacobian, one column per input element, compared as it comes.
    for (std::size_t j = 0; j < which.size(); ++j) {
      const Tensor& x = inputs[which[j]];
      xt::xarray<double> unit = xt::zeros<double>(x.shape());
      for (std::size_t k = 0; k < x.numel(); ++k) {
        unit.data()[k] = 1.0;
        const auto plus = evaluate(fn, inputs, which[j], shifted(x, unit, options.eps));
        const auto minus = evaluate(fn, inputs, which[j], shifted(x, unit, -options.eps));
        unit.data()[k] = 0.0;
        for (std::size_t r = 0; r < out_numel; ++r) {
          const double numeric = (plus[r] - minus[r]) / (2 * options.eps);
          worst.offer(numeric, rows[r][j].data<double>()[k], options, which[j], k);
        }
      }
    }
  } else {
    // Random projections: u · J · v, numerically and analytically.
    Shape out_shape = {out_numel};
    for (int p = 0; p < options.projections; ++p) {
      const xt::xarray<double> u = random_direction(out_shape, gen);
      const TensorList grads = vjp(fn, inputs, which, u);
      for (std::size_t j = 0; j < which.size(); ++j) {
        const Tensor& x = inputs[which[j]];
        const xt::xarray<double> v = random_direction(x.shape(), gen);
        const auto plus = evaluate(fn, inputs, which[j], shifted(x, v, options.eps));
        const auto minus = evaluate(fn, inputs, which[j], shifted(x, v, -options.eps));
        double numeric = 0, analytic = 0;
        for (std::size_t r = 0; r < out_numel; ++r) numeric += u.data()[r] * (plus[r] - minus[r]) / (2 * options.eps);
        const double* g = grads[j].data<double>();
        for (std::size_t k = 0; k < x.numel(); ++k) analytic += g[k] * v.data()[k];
        worst.offer(numeric, analytic, options, which[j], static_cast<std::size_t>(p));
      }
    }
  }
  GradcheckResult result = worst.result;
  result.passed = worst.excess <= 0;
  result.message =
      fmt::format("gradcheck {} ({}): worst at input {} {} {}: numeric {:.10g}, analytic {:.10g}",
                  result.passed ? "passed" : "FAILED", full ? "full Jacobian" : "random projections", result.input,
                  full ? "element" : "projection", result.position, result.numeric, result.analytic);
  return result;
}

GradcheckResult gradgradcheck(const DifferentiableFn& fn, const TensorList& inputs, GradcheckOptions options) {
  const std::vector<std::size_t> which = differentiable_inputs(inputs);
  Generator gen(options.seed + 1);
  Tensor out_weights;
  TensorList grad_weights;
  {
    NoGradGuard no_grad;
    TensorList detached;
    for (const Tensor& t : inputs) detached.push_back(t.defined() ? t.detach() : t);
    out_weights = randn(fn(detached).shape(), gen, float64);
    for (std::size_t i : which) grad_weights.push_back(randn(inputs[i].shape(), gen, float64));
  }
  // s(x) = Σ_i <d(w · fn(x))/dx_i, r_i>: its gradient holds Hessian-vector products.
  DifferentiableFn first_order = [&](const TensorList& given) {
    // Inputs that do not require grad (given so by a caller) still need a graph here.
    GradModeGuard grad_on(true);
    TensorList xs = given;
    for (std::size_t i : which)
      if (!xs[i].requires_grad()) xs[i] = xs[i].detach().requires_grad_();
    TensorList targets;
    for (std::size_t i : which) targets.push_back(xs[i]);
    const Tensor out = fn(xs);
    TensorList grads = grad(
        {out}, targets, {.grad_outputs = {out_weights.to(out.dtype())}, .create_graph = true, .allow_unused = true});
    Tensor total = scalar_tensor(0.0, float64);
    for (std::size_t j = 0; j < grads.size(); ++j)
      if (grads[j].defined()) total = add(total, sum(mul(grads[j].to(float64), grad_weights[j])));
    return total;
  };
  GradcheckResult r = gradcheck(first_order, inputs, options);
  r.message = "gradgradcheck: " + r.message;
  return r;
}

}  // namespace tg
