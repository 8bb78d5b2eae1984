// Type promotion against PyTorch (tests/conformance/promotion.json): binary ops on operands of
// different dtypes, 0-d tensors and integer or floating scalars give PyTorch's result dtype and
// values, and each floating operand's gradient comes back in that operand's own dtype.
#include "conformance_support.hpp"
#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;
using namespace tg::conformance;

namespace {

using In = const TensorList&;
using P = const Json&;

/// The case's scalar as an integer or a floating Scalar, as the case wrote it.
Scalar scalar_of(P p) {
  if (p.at("integral").get<bool>()) return Scalar(p.at("scalar").get<std::int64_t>());
  return Scalar(p.at("scalar").get<double>());
}

OpFn unary(Tensor (*f)(const Tensor&)) {
  return [f](In x, P) { return f(x[0]); };
}
OpFn binary(Tensor (*f)(const Tensor&, const Tensor&)) {
  return [f](In x, P) { return f(x[0], x[1]); };
}

const OpTable& promotion_ops() {
  static const OpTable ops = {
      {"add", binary(add)},
      {"sub", binary(sub)},
      {"mul", binary(mul)},
      {"div", binary(div)},
      {"pow", binary(pow)},
      {"maximum", binary(maximum)},
      {"minimum", binary(minimum)},
      {"eq", binary(eq)},
      {"ne", binary(ne)},
      {"lt", binary(lt)},
      {"le", binary(le)},
      {"gt", binary(gt)},
      {"ge", binary(ge)},
      {"where", [](In x, P) { return where(x[0], x[1], x[2]); }},
      {"add_scalar", [](In x, P p) { return x[0] + scalar_of(p); }},
      {"sub_scalar", [](In x, P p) { return x[0] - scalar_of(p); }},
      {"rsub_scalar", [](In x, P p) { return scalar_of(p) - x[0]; }},
      {"mul_scalar", [](In x, P p) { return x[0] * scalar_of(p); }},
      {"div_scalar", [](In x, P p) { return x[0] / scalar_of(p); }},
      {"rdiv_scalar", [](In x, P p) { return scalar_of(p) / x[0]; }},
      {"pow_scalar", [](In x, P p) { return pow(x[0], scalar_of(p)); }},
      {"exp", unary(exp)},
      {"log", unary(log)},
      {"sqrt", unary(sqrt)},
      {"sigmoid", unary(sigmoid)},
      {"tanh", unary(tanh)},
  };
  return ops;
}

/// Whether PyTorch computes part of the case in float32: a float32 operand's share (the sum of a
/// 0-d float64 operand's gradient over float32 elements), or an int64 operand taken as float32 in
/// a backward (pow's log of an int64 base). Such float64 results are held to float32's tolerance.
bool float32_inside(const Json& c) {
  for (const Json& in : c.at("inputs"))
    if (in.at("dtype") != "float64") return true;
  return c.at("output").at("dtype") != "float64";
}

/// Compares in `dtype` exactly, but with float32's tolerance when `loose`.
void check_value(const Tensor& got, const Json& expected, Dtype dtype, bool loose, const std::string& what) {
  REQUIRE_MESSAGE(got.defined(), what, ": undefined");
  CHECK_MESSAGE(got.dtype() == dtype, what, ": dtype ", got.dtype(), ", PyTorch's is ", dtype);
  if (loose && dtype == float64) return check_close(got.detach().to(float32), expected, float32, what);
  check_close(got, expected, dtype, what);
}

void run_case(const Json& c, const OpFn& fn) {
  const std::string name = c.at("name").get<std::string>();
  INFO("case ", name);
  TensorList inputs;
  for (const Json& in : c.at("inputs")) {
    Tensor t = tensor_from(in, dtype_from(in.at("dtype")));
    if (in.at("requires_grad").get<bool>()) t.requires_grad_();
    inputs.push_back(t);
  }
  const Tensor out = fn(inputs, c.at("params"));
  const Json& expected = c.at("output");
  const Dtype out_dtype = dtype_from(expected.at("dtype"));
  const bool loose = float32_inside(c);
  check_value(out, expected, out_dtype, loose, name + " output");
  if (!c.contains("grads")) {
    CHECK_MESSAGE(!out.requires_grad(), name, ": output requires grad, PyTorch's does not");
    return;
  }
  REQUIRE_MESSAGE(out.requires_grad(), name, ": output does not require grad");
  out.backward(tensor_from(c.at("weight"), out_dtype));
  const Json& grads = c.at("grads");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (grads[i].is_null()) continue;
    check_value(inputs[i].grad(), grads[i], dtype_from(grads[i].at("dtype")), loose,
                fmt::format("{} d/d x{}", name, i));
  }
}

}  // namespace

TEST_CASE("conformance with PyTorch: type promotion of every binary op") {
  const Json& cases = load("promotion.json").at("cases");
  for (const auto& [op, fn] : promotion_ops()) {
    SUBCASE(op.c_str()) {
      std::size_t n = 0;
      for (const Json& c : cases)
        if (c.at("op") == op) run_case(c, fn), ++n;
      CHECK_MESSAGE(n > 0, op, ": no cases in promotion.json");
    }
  }
}

TEST_CASE("conformance with PyTorch: every op in promotion.json is tested") {
  check_coverage("promotion.json", promotion_ops());
}

TEST_CASE("result_type follows torch.result_type") {
  const Tensor f32 = zeros({2}), f64 = zeros({2}, float64), i64 = zeros({2}, int64);
  const Tensor f64_0d = scalar_tensor(1, float64), i64_0d = scalar_tensor(1, int64);
  CHECK(result_type(f32, f64) == float64);
  CHECK(result_type(i64, f32) == float32);
  CHECK(result_type(f32, f64_0d) == float32);  // a 0-d operand of the same kind does not widen
  CHECK(result_type(i64, f64_0d) == float64);  // ... but a floating one lifts an int64 tensor
  CHECK(result_type(f32, i64_0d) == float32);
  CHECK(result_type(i64, Scalar(2)) == int64);
  CHECK(result_type(i64, Scalar(0.5)) == float32);
  CHECK(result_type(f64, Scalar(0.5)) == float64);
  CHECK(result_type(f32, Scalar(0.5f)) == float32);
}

TEST_CASE("the accuracy of integer predictions divides as PyTorch does") {
  // The reproduction from the issue: sum(eq(pred, y)) / 4.0 gave 0.
  const Tensor pred = Tensor(xt::xarray<std::int64_t>{1, 2, 3, 4}), y = Tensor(xt::xarray<std::int64_t>{1, 2, 3, 0});
  const Tensor correct = sum(eq(pred, y));
  CHECK((correct / 4.0).item() == 0.75);
  CHECK((correct * 0.25).item() == 0.75);
  CHECK((correct / 4).item() == 0.75);  // true division, even by an integer
  CHECK((correct / 4).dtype() == float32);
  CHECK(div(scalar_tensor(3, int64), scalar_tensor(2, int64)).item() == 1.5);
  CHECK((correct + 1).dtype() == int64);
}

TEST_CASE("int64 arithmetic wraps on overflow and refuses negative integer powers") {
  const auto big = std::numeric_limits<std::int64_t>::max();
  const Tensor x = Tensor(xt::xarray<std::int64_t>{big, std::numeric_limits<std::int64_t>::min()});
  CHECK((x + 1).array<std::int64_t>()(0) == std::numeric_limits<std::int64_t>::min());
  CHECK((-x).array<std::int64_t>()(1) == std::numeric_limits<std::int64_t>::min());
  CHECK((x * 2).array<std::int64_t>()(0) == -2);
  CHECK(pow(Tensor(xt::xarray<std::int64_t>{3}), 40).dtype() == int64);
  CHECK_THROWS_WITH_AS(pow(Tensor(xt::xarray<std::int64_t>{3}), -1),
                       "pow: integers to negative integer powers are not allowed (exponent -1)", Error);
}

TEST_CASE("a float32 operand promoted to float64 gets its gradient through the conversion") {
  Tensor a = Tensor(xt::xarray<float>{1.5f, -2.0f}).requires_grad_();
  Tensor b = Tensor(xt::xarray<double>{0.25, 4.0}).requires_grad_();
  const Tensor y = a * b;
  CHECK(y.dtype() == float64);
  sum(y).backward();
  CHECK(a.grad().dtype() == float32);
  CHECK(a.grad().array<float>()(1) == 4.0f);
  CHECK(b.grad().array<double>()(0) == 1.5);
}
