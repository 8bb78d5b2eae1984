#include "tapegrad/nn/module_check.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/grad_mode.hpp"

namespace tg::nn {
namespace {
// Writes the trial values into the module's parameters and reseeds its random source.
void prepare(Module& module, const TensorList& values, const ModuleCheckOptions& options) {
  NoGradGuard no_grad;
  TensorList params = module.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(values[i + 1]);
  if (options.generator) options.generator->seed(options.seed);
}
}  // namespace

GradcheckResult check_module(Module& module, const Tensor& input, ModuleCheckOptions options) {
  module.to(float64);
  TensorList inputs{input.detach().to(float64).clone().requires_grad_(options.check_input)};
  for (const Tensor& p : module.parameters()) inputs.push_back(p.detach().clone().requires_grad_(p.requires_grad()));
  TG_CHECK(inputs.size() > 1 || options.check_input, "check_module: {} has no parameters and check_input is off",
           module.repr());

  TensorList saved_buffers;
  for (const Tensor& b : module.buffers()) saved_buffers.push_back(b.detach().clone());

  // The module's forward as one op of (input, parameters...): its backward reruns the forward
  // with the graph on and asks the engine for the gradients of the module's own leaves.
  auto fn = [&module, options](const TensorList& in) -> Tensor {
    prepare(module, in, options);
    Tensor out;
    {
      NoGradGuard no_grad;
      out = module.forward(in[0].detach());
    }
    return record({.name = "check_module", .inputs = in, .saved = in}, out,
                  [&module, options](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                    TensorList values;
                    const std::size_t n = module.parameters().size() + 1;
                    for (std::size_t i = 0; i < n; ++i) values.push_back(ctx.saved(i));
                    prepare(module, values, options);
                    GradModeGuard grad_on(true);
                    TensorList params = module.parameters();
                    Tensor x = values[0].detach().requires_grad_(ctx.needs_grad(0));
                    TensorList targets;
                    std::vector<std::size_t> where;  // input index of each target
                    for (std::size_t i = 0; i < n; ++i) {
                      if (!ctx.needs_grad(i)) continue;
                      targets.push_back(i == 0 ? x : params[i - 1]);
                      where.push_back(i);
                    }
                    const Tensor y = module.forward(x);
                    const TensorList found = grad({y}, targets, {.grad_outputs = {g}, .allow_unused = true});
                    TensorList grads(n);
                    for (std::size_t k = 0; k < found.size(); ++k)
                      grads[where[k]] = found[k].defined() ? found[k] : zeros_like(targets[k]);
                    return grads;
                  });
  };

  const TensorList originals = module.parameters();
  TensorList original_values;
  for (const Tensor& p : originals) original_values.push_back(p.detach().clone());
  GradcheckResult result = gradcheck(fn, inputs, options.gradcheck);

  NoGradGuard no_grad;
  for (std::size_t i = 0; i < originals.size(); ++i) Tensor(originals[i]).copy_(original_values[i]);
  TensorList buffers = module.buffers();
  for (std::size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved_buffers[i]);
  if (!result.passed) result.message = module.repr() + ": " + result.message;
  return result;
}

}  // namespace tg::nn
