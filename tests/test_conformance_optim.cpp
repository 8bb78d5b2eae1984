// Conformance of the optimizers and learning-rate schedulers with PyTorch (and of the Keras
// Adam formula with its definition, computed in NumPy): tests/conformance/optim.json holds a
// parameter, five fixed gradients and the parameter after each step; schedulers hold the lr of
// each of 12 epochs; gradient clipping cases hold gradients before and after. Tolerances: see
// conformance_support.hpp; learning rates rtol 1e-12.
#include <limits>
#include <memory>

#include "conformance_support.hpp"
#include "tapegrad/autograd/check.hpp"
#include "tapegrad/optim/adam.hpp"
#include "tapegrad/optim/clip_grad.hpp"
#include "tapegrad/optim/lr_scheduler.hpp"
#include "tapegrad/optim/rmsprop.hpp"
#include "tapegrad/optim/sgd.hpp"

using namespace tg;
using namespace tg::conformance;

namespace {

using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(const TensorList&, const Json&)>;

std::pair<double, double> betas(const Json& p) {
  return {p.at("betas")[0].get<double>(), p.at("betas")[1].get<double>()};
}

const std::vector<std::pair<std::string, MakeOptimizer>>& optimizers() {
  static const std::vector<std::pair<std::string, MakeOptimizer>> table = {
      {"sgd",
       [](const TensorList& ps, const Json& p) {
         return std::make_unique<optim::SGD>(ps, optim::SGDOptions{.lr = p.at("lr"),
                                                                   .momentum = p.at("momentum"),
                                                                   .dampening = p.at("dampening"),
                                                                   .weight_decay = p.at("weight_decay"),
                                                                   .nesterov = p.at("nesterov")});
       }},
      {"adam",
       [](const TensorList& ps, const Json& p) {
         return std::make_unique<optim::Adam>(ps, optim::AdamOptions{.lr = p.at("lr"),
                                                                     .betas = betas(p),
                                                                     .eps = p.at("eps").get<double>(),
                                                                     .weight_decay = p.at("weight_decay"),
                                                                     .amsgrad = p.at("amsgrad")});
       }},
      {"adamw",
       [](const TensorList& ps, const Json& p) {
         return std::make_unique<optim::AdamW>(ps, optim::AdamWOptions{.lr = p.at("lr"),
                                                                       .betas = betas(p),
                                                                       .eps = p.at("eps").get<double>(),
                                                                       .weight_decay = p.at("weight_decay"),
                                                                       .amsgrad = p.at("amsgrad")});
       }},
      {"keras_adam",
       [](const TensorList& ps, const Json& p) {
         return std::make_unique<optim::Adam>(ps, optim::AdamOptions{.lr = p.at("lr"),
                                                                     .betas = betas(p),
                                                                     .eps = p.at("eps").get<double>(),
                                                                     .formula = optim::AdamOptions::Formula::keras});
       }},
      {"rmsprop",
       [](const TensorList& ps, const Json& p) {
         return std::make_unique<optim::RMSprop>(ps, optim::RMSpropOptions{.lr = p.at("lr"),
                                                                           .alpha = p.at("alpha"),
                                                                           .eps = p.at("eps"),
                                                                           .weight_decay = p.at("weight_decay"),
                                                                           .momentum = p.at("momentum"),
                                                                           .centered = p.at("centered")});
       }},
  };
  return table;
}

void run_optimizer_case(const Json& c, const MakeOptimizer& make) {
  const std::string name = c.at("name").get<std::string>() + " " + c.at("dtype").get<std::string>();
  INFO("case ", name);
  const Dtype dtype = dtype_from(c.at("dtype"));
  Tensor param = tensor_from(c.at("initial"), dtype).requires_grad_();
  auto optimizer = make({param}, c.at("params"));
  const Json& grads = c.at("grads");
  for (std::size_t step = 0; step < grads.size(); ++step) {
    param.set_grad(tensor_from(grads[step], dtype));
    optimizer->step();
    check_close(param, c.at("expected")[step], dtype, fmt::format("{} after step {}", name, step + 1));
  }
}

/// lrs[e] is the learning rate in force during epoch e; step() (or step(metrics[e])) ends it.
void run_scheduler_case(const Json& c) {
  INFO("case ", c.at("name").get<std::string>());
  const Json& p = c.at("params");
  Tensor w = zeros({1}).requires_grad_();
  optim::SGD sgd({w}, {.lr = c.at("base_lr").get<double>()});
  const std::string kind = c.at("scheduler");
  std::unique_ptr<optim::LRScheduler> scheduler;
  std::unique_ptr<optim::ReduceLROnPlateau> plateau;
  if (kind == "step_lr") {
    scheduler =
        std::make_unique<optim::StepLR>(sgd, p.at("step_size").get<std::int64_t>(), p.at("gamma").get<double>());
  } else if (kind == "exponential_lr") {
    scheduler = std::make_unique<optim::ExponentialLR>(sgd, p.at("gamma").get<double>());
  } else if (kind == "cosine_annealing_lr") {
    scheduler = std::make_unique<optim::CosineAnnealingLR>(sgd, p.at("T_max").get<std::int64_t>(),
                                                           p.at("eta_min").get<double>());
  } else if (kind == "linear_lr") {
    scheduler =
        std::make_unique<optim::LinearLR>(sgd, p.at("start_factor").get<double>(), p.at("end_factor").get<double>(),
                                          p.at("total_iters").get<std::int64_t>());
  } else {
    REQUIRE(kind == "reduce_lr_on_plateau");
    using Options = optim::ReduceLROnPlateauOptions;
    plateau = std::make_unique<optim::ReduceLROnPlateau>(
        sgd, Options{.mode = p.at("mode") == "max" ? Options::Mode::max : Options::Mode::min,
                     .factor = p.at("factor"),
                     .patience = p.at("patience"),
                     .threshold = p.at("threshold"),
                     .cooldown = p.at("cooldown"),
                     .min_lr = p.at("min_lr")});
  }
  const Json& lrs = c.at("lrs");
  for (std::size_t epoch = 0; epoch < lrs.size(); ++epoch) {
    const double expected = lrs[epoch].get<double>();
    INFO("epoch ", epoch);
    CHECK(sgd.lr() == doctest::Approx(expected).epsilon(1e-12));
    if (plateau)
      plateau->step(c.at("metrics")[epoch].get<double>());
    else
      scheduler->step();
  }
}

void run_clip_case(const Json& c) {
  const std::string name = c.at("name").get<std::string>() + " " + c.at("dtype").get<std::string>();
  INFO("case ", name);
  const Dtype dtype = dtype_from(c.at("dtype"));
  const Json& p = c.at("params");
  TensorList params;
  for (const Json& g : c.at("grads")) {
    Tensor param = zeros(g.at("shape").get<Shape>(), dtype).requires_grad_();
    param.set_grad(tensor_from(g, dtype));
    params.push_back(param);
  }
  if (c.at("clip") == "norm") {
    const double norm_type =
        p.at("norm_type").is_string() ? std::numeric_limits<double>::infinity() : p.at("norm_type").get<double>();
    const double total = optim::clip_grad_norm_(params, p.at("max_norm").get<double>(), norm_type);
    CHECK(total == doctest::Approx(c.at("total_norm").get<double>()).epsilon(tolerance(dtype).rtol));
  } else {
    optim::clip_grad_value_(params, p.at("clip_value").get<double>());
  }
  for (std::size_t i = 0; i < params.size(); ++i)
    check_close(params[i].grad(), c.at("expected")[i], dtype, fmt::format("{} gradient {}", name, i));
}

}  // namespace

TEST_CASE("conformance with PyTorch: optimizers") {
  const Json& cases = load("optim.json").at("optimizers");
  for (const auto& [kind, make] : optimizers()) {
    SUBCASE(kind.c_str()) {
      std::size_t n = 0;
      for (const Json& c : cases)
        if (c.at("optimizer") == kind) run_optimizer_case(c, make), ++n;
      CHECK_MESSAGE(n > 0, "no cases for ", kind);
    }
  }
}

TEST_CASE("conformance with PyTorch: schedulers") {
  const Json& cases = load("optim.json").at("schedulers");
  for (const std::string kind :
       {"step_lr", "exponential_lr", "cosine_annealing_lr", "linear_lr", "reduce_lr_on_plateau"}) {
    SUBCASE(kind.c_str()) {
      std::size_t n = 0;
      for (const Json& c : cases)
        if (c.at("scheduler") == kind) run_scheduler_case(c), ++n;
      CHECK_MESSAGE(n > 0, "no cases for ", kind);
    }
  }
}

TEST_CASE("conformance with PyTorch: gradient clipping") {
  for (const std::string kind : {"norm", "value"}) {
    SUBCASE(("clip_grad_" + kind + "_").c_str()) {
      std::size_t n = 0;
      for (const Json& c : load("optim.json").at("clip_grad"))
        if (c.at("clip") == kind) run_clip_case(c), ++n;
      CHECK_MESSAGE(n > 0, "no cases for clip_grad_", kind, "_");
    }
  }
}

TEST_CASE("conformance with PyTorch: every optimizer and scheduler in optim.json is tested") {
  const Json& data = load("optim.json");
  std::set<std::string> known = {"step_lr", "exponential_lr", "cosine_annealing_lr", "linear_lr",
                                 "reduce_lr_on_plateau"};
  for (const auto& entry : optimizers()) known.insert(entry.first);
  for (const Json& c : data.at("optimizers"))
    CHECK_MESSAGE(known.count(c.at("optimizer")), c.at("name"), " has no runner");
  for (const Json& c : data.at("schedulers"))
    CHECK_MESSAGE(known.count(c.at("scheduler")), c.at("name"), " has no runner");
  for (const Json& c : data.at("clip_grad"))
    CHECK_MESSAGE((c.at("clip") == "norm" || c.at("clip") == "value"), c.at("name"), " has no runner");
  MESSAGE(
      "optim.json (PyTorch ", data.at("torch").get<std::string>(), "): ", data.at("optimizers").size(),
      " optimizer cases (SGD, Adam, AdamW, Keras Adam, RMSprop; float64 and float32), ", data.at("schedulers").size(),
      " scheduler cases (StepLR, ExponentialLR, CosineAnnealingLR, LinearLR, ReduceLROnPlateau), ",
      data.at("clip_grad").size(), " gradient clipping cases (clip_grad_norm_ with norms 1, 2, inf; clip_grad_value_)");
}
