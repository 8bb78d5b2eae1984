// Conformance of sin, cos, erf and the smooth activations (softplus, gelu, elu, silu) with
// PyTorch: forward values, gradients and one second-order check per op against
// tests/conformance/activation.json, on random, 0-d and empty inputs and on NaN, ±inf and ±0
// (compared exactly). Tolerances: see conformance_support.hpp.
#include "conformance_support.hpp"
#include "tapegrad/autograd/check.hpp"

using namespace tg;
using namespace tg::conformance;

namespace {

using In = const TensorList&;
using P = const Json&;

GeluApproximate approximate_from(const Json& name) {
  const std::string s = name.get<std::string>();
  TG_CHECK(s == "none" || s == "tanh", "conformance: unknown gelu approximation \"{}\"", s);
  return s == "tanh" ? GeluApproximate::tanh : GeluApproximate::none;
}

const OpTable& activation_ops() {
  static const OpTable ops = {
      {"sin", [](In x, P) { return sin(x[0]); }},
      {"cos", [](In x, P) { return cos(x[0]); }},
      {"erf", [](In x, P) { return erf(x[0]); }},
      {"silu", [](In x, P) { return silu(x[0]); }},
      {"softplus",
       [](In x, P p) { return softplus(x[0], p.at("beta").get<double>(), p.at("threshold").get<double>()); }},
      {"gelu", [](In x, P p) { return gelu(x[0], approximate_from(p.at("approximate"))); }},
      {"elu", [](In x, P p) { return elu(x[0], p.at("alpha").get<double>()); }},
  };
  return ops;
}

}  // namespace

TEST_CASE("conformance with PyTorch: special functions and activations") {
  run_op_cases("activation.json", activation_ops());
}

TEST_CASE("conformance with PyTorch: every op in activation.json is tested") {
  check_coverage("activation.json", activation_ops());
}
