// Conformance of the core ops (elementwise, reductions, shape, matmul, linear) with PyTorch:
// forward values, gradients and one second-order check per op against
// tests/conformance/core.json, including PyTorch's conventions at kinks and ties. Tolerances:
// see conformance_support.hpp (float64 rtol 1e-10, atol 1e-12; float32 rtol 1e-5, atol 5e-6).
#include "conformance_support.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;
using namespace tg::conformance;

namespace {

using In = const TensorList&;
using P = const Json&;

OpFn unary(Tensor (*f)(const Tensor&)) {
  return [f](In x, P) { return f(x[0]); };
}
OpFn binary(Tensor (*f)(const Tensor&, const Tensor&)) {
  return [f](In x, P) { return f(x[0], x[1]); };
}

/// A reduction over all axes (params.axes null) or the given ones.
OpFn reduction(Tensor (*all)(const Tensor&), Tensor (*some)(const Tensor&, const Axes&, bool)) {
  return [all, some](In x, P p) {
    return p.at("axes").is_null() ? all(x[0]) : some(x[0], p.at("axes").get<Axes>(), p.at("keepdims").get<bool>());
  };
}

const OpTable& core_ops() {
  static const OpTable ops = {
      {"add", binary(add)},
      {"sub", binary(sub)},
      {"mul", binary(mul)},
      {"div", binary(div)},
      {"maximum", binary(maximum)},
      {"minimum", binary(minimum)},
      {"pow", binary(pow)},
      {"pow_scalar", [](In x, P p) { return pow(x[0], p.at("exponent").get<double>()); }},
      {"neg", unary(neg)},
      {"exp", unary(exp)},
      {"log", unary(log)},
      {"sqrt", unary(sqrt)},
      {"abs", unary(abs)},
      {"relu", unary(relu)},
      {"sigmoid", unary(sigmoid)},
      {"tanh", unary(tanh)},
      {"leaky_relu", [](In x, P p) { return leaky_relu(x[0], p.at("negative_slope").get<double>()); }},
      {"clamp", [](In x, P p) { return clamp(x[0], p.at("low").get<double>(), p.at("high").get<double>()); }},
      {"where", [](In x, P) { return where(x[0], x[1], x[2]); }},
      {"add_scalar", [](In x, P p) { return x[0] + p.at("scalar").get<double>(); }},
      {"sub_scalar", [](In x, P p) { return x[0] - p.at("scalar").get<double>(); }},
      {"mul_scalar", [](In x, P p) { return x[0] * p.at("scalar").get<double>(); }},
      {"div_scalar", [](In x, P p) { return x[0] / p.at("scalar").get<double>(); }},
      {"rsub_scalar", [](In x, P p) { return p.at("scalar").get<double>() - x[0]; }},
      {"rdiv_scalar", [](In x, P p) { return p.at("scalar").get<double>() / x[0]; }},
      {"sum", reduction(sum, sum)},
      {"mean", reduction(mean, mean)},
      {"max", reduction(max, max)},
      {"min", reduction(min, min)},
      {"argmax",
       [](In x, P p) {
         return p.at("axis").is_null() ? argmax(x[0])
                                       : argmax(x[0], p.at("axis").get<int>(), p.at("keepdims").get<bool>());
       }},
      {"reshape", [](In x, P p) { return reshape(x[0], p.at("shape").get<std::vector<std::int64_t>>()); }},
      {"flatten", [](In x, P p) { return flatten(x[0], p.at("start_axis").get<int>(), p.at("end_axis").get<int>()); }},
      {"permute", [](In x, P p) { return permute(x[0], p.at("perm").get<std::vector<int>>()); }},
      {"transpose", [](In x, P p) { return transpose(x[0], p.at("axis0").get<int>(), p.at("axis1").get<int>()); }},
      {"squeeze",
       [](In x, P p) { return p.at("axis").is_null() ? squeeze(x[0]) : squeeze(x[0], p.at("axis").get<int>()); }},
      {"unsqueeze", [](In x, P p) { return unsqueeze(x[0], p.at("axis").get<int>()); }},
      {"broadcast_to", [](In x, P p) { return broadcast_to(x[0], p.at("shape").get<Shape>()); }},
      {"concat", [](In x, P p) { return concat(x, p.at("axis").get<int>()); }},
      {"stack", [](In x, P p) { return stack(x, p.at("axis").get<int>()); }},
      {"slice",
       [](In x, P p) {
         return slice(x[0], p.at("axis").get<int>(), p.at("start").get<std::int64_t>(),
                      p.at("stop").get<std::int64_t>(), p.at("step").get<std::int64_t>());
       }},
      {"index_select", [](In x, P p) { return index_select(x[0], p.at("axis").get<int>(), x[1]); }},
      {"gather", [](In x, P p) { return gather(x[0], p.at("axis").get<int>(), x[1]); }},
      {"matmul", binary(matmul)},
      {"linear", [](In x, P) { return linear(x[0], x[1], x.size() > 2 ? x[2] : Tensor()); }},
  };
  return ops;
}

}  // namespace

TEST_CASE("conformance with PyTorch: core ops") { run_op_cases("core.json", core_ops()); }

TEST_CASE("conformance with PyTorch: every core op in core.json is tested") { check_coverage("core.json", core_ops()); }

TEST_CASE("conformance comparison rejects values past the tolerance") {
  const Json expected = Json::parse(R"({"shape": [2], "values": [1.0, -2.0]})");
  const Tensor exact64 = Tensor(xt::xarray<double>{1.0, -2.0});
  CHECK(mismatch(exact64, expected, float64).empty());
  CHECK(mismatch(Tensor(xt::xarray<double>{1.0, -2.0 + 1e-12}), expected, float64).empty());
  CHECK(mismatch(Tensor(xt::xarray<double>{1.0, -2.0 + 1e-9}), expected, float64).find("element 1 of [2]") !=
        std::string::npos);
  CHECK(mismatch(Tensor(xt::xarray<float>{1.0f, -2.0f + 1e-6f}), expected, float32).empty());
  CHECK_FALSE(mismatch(Tensor(xt::xarray<float>{1.0f + 1e-4f, -2.0f}), expected, float32).empty());
  CHECK(mismatch(Tensor(xt::xarray<double>{1.0, NAN}), expected, float64).find("nan") != std::string::npos);
  CHECK(mismatch(exact64, expected, float32).find("dtype") != std::string::npos);
  CHECK(mismatch(Tensor(xt::xarray<double>{{1.0, -2.0}}), expected, float64).find("shape") != std::string::npos);
  const Json indices = Json::parse(R"({"shape": [2], "values": [3, 1]})");
  CHECK(mismatch(Tensor(xt::xarray<std::int64_t>{3, 1}), indices, int64).empty());
  CHECK_FALSE(mismatch(Tensor(xt::xarray<std::int64_t>{3, 2}), indices, int64).empty());
}
