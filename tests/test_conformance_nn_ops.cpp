// Conformance of the ops of CNNs and classifiers (conv2d, pooling, batch_norm, softmax,
// log_softmax, losses) with PyTorch: forward values, gradients and one second-order check per
// op against tests/conformance/nn_ops.json. Dropout is not compared: its mask comes from
// tapegrad's generator, so PyTorch's numbers cannot be reproduced. Tolerances: see
// conformance_support.hpp (float64 rtol 1e-10, atol 1e-12; float32 rtol 1e-5, atol 5e-6).
#include "conformance_support.hpp"
#include "tapegrad/ops/conv.hpp"
#include "tapegrad/ops/loss.hpp"
#include "tapegrad/ops/norm.hpp"
#include "tapegrad/ops/pool.hpp"
#include "tapegrad/ops/softmax.hpp"

using namespace tg;
using namespace tg::conformance;

namespace {

using In = const TensorList&;
using P = const Json&;

Size2 size2(const Json& v) { return {v.at(0).get<std::int64_t>(), v.at(1).get<std::int64_t>()}; }

Padding padding(const Json& v) {
  if (v.is_string()) return Padding(std::string_view(v.get_ref<const std::string&>()));
  return {v.at(0).get<std::int64_t>(), v.at(1).get<std::int64_t>()};
}

Reduction reduction(const Json& p) {
  const std::string r = p.at("reduction");
  return r == "mean" ? Reduction::mean : r == "sum" ? Reduction::sum : Reduction::none;
}

OpFn cross_entropy_fn() {
  return [](In x, P p) {
    return cross_entropy(x[0], x[1], {.reduction = reduction(p), .label_smoothing = p.at("label_smoothing")});
  };
}

const OpTable& nn_ops() {
  static const OpTable ops = {
      {"conv2d",
       [](In x, P p) {
         return conv2d(x[0], x[1], x.size() > 2 ? x[2] : Tensor(),
                       {.stride = size2(p.at("stride")),
                        .padding = padding(p.at("padding")),
                        .dilation = size2(p.at("dilation")),
                        .groups = p.at("groups").get<std::int64_t>()});
       }},
      {"max_pool2d",
       [](In x, P p) {
         return max_pool2d(x[0], {.kernel = size2(p.at("kernel_size")),
                                  .stride = size2(p.at("stride")),
                                  .padding = size2(p.at("padding"))});
       }},
      {"avg_pool2d",
       [](In x, P p) {
         return avg_pool2d(x[0], {.kernel = size2(p.at("kernel_size")),
                                  .stride = size2(p.at("stride")),
                                  .padding = size2(p.at("padding")),
                                  .count_include_pad = p.at("count_include_pad").get<bool>()});
       }},
      {"global_avg_pool2d", [](In x, P) { return global_avg_pool2d(x[0]); }},
      // Inputs x, weight, bias (if affine), running_mean, running_var; the running statistics
      // are updated in place in training and compared after the call.
      {"batch_norm",
       [](In x, P p) {
         const BatchNormArgs options{.training = p.at("training"), .momentum = p.at("momentum"), .eps = p.at("eps")};
         if (!p.at("affine").get<bool>()) return batch_norm(x[0], x[1], x[2], {}, {}, options);
         return batch_norm(x[0], x[3], x[4], x[1], x[2], options);
       }},
      {"softmax", [](In x, P p) { return softmax(x[0], p.at("axis").get<int>()); }},
      {"log_softmax", [](In x, P p) { return log_softmax(x[0], p.at("axis").get<int>()); }},
      {"cross_entropy", cross_entropy_fn()},
      {"cross_entropy_probs", cross_entropy_fn()},
      {"nll_loss", [](In x, P p) { return nll_loss(x[0], x[1], {.reduction = reduction(p)}); }},
      {"mse_loss", [](In x, P p) { return mse_loss(x[0], x[1], {.reduction = reduction(p)}); }},
      {"binary_cross_entropy_with_logits",
       [](In x, P p) { return binary_cross_entropy_with_logits(x[0], x[1], {.reduction = reduction(p)}); }},
  };
  return ops;
}

}  // namespace

TEST_CASE("conformance with PyTorch: CNN and loss ops") { run_op_cases("nn_ops.json", nn_ops()); }

TEST_CASE("conformance with PyTorch: every op in nn_ops.json is tested") { check_coverage("nn_ops.json", nn_ops()); }
