#pragma once
// Reads tests/conformance/*.json (made by scripts/make_conformance.py with PyTorch) and compares
// tapegrad's values with them.
//
// Tolerances, |got - expected| <= atol + rtol * |expected| elementwise (the inputs are O(1),
// so a fixed atol covers summation-order noise in results that cancel to near zero):
//   float64: rtol 1e-10, atol 1e-12   (observed worst: 2% of that)
//   float32: rtol 1e-5,  atol 5e-6    (observed worst: 15% of that, in conv2d)
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

namespace tg::conformance {

using Json = nlohmann::json;

/// tests/conformance/<file>, parsed once per process.
inline const Json& load(const std::string& file) {
  static std::map<std::string, Json> cache;
  auto it = cache.find(file);
  if (it != cache.end()) return it->second;
  const std::string path = std::string(TG_SOURCE_DIR) + "/tests/conformance/" + file;
  std::ifstream in(path);
  TG_CHECK(in.good(), "conformance: cannot open {} (regenerate with scripts/make_conformance.py)", path);
  return cache.emplace(file, Json::parse(in)).first->second;
}

inline Dtype dtype_from(const std::string& name) {
  if (name == "float64") return float64;
  if (name == "float32") return float32;
  TG_CHECK(name == "int64", "conformance: unknown dtype \"{}\"", name);
  return int64;
}

/// One value of a file: a number, or "nan", "inf" or "-inf" (JSON has no such numbers).
template <class T>
T value_from(const Json& v) {
  if (!v.is_string()) return v.get<T>();
  const std::string s = v.get<std::string>();
  if constexpr (std::is_floating_point_v<T>) {
    if (s == "nan") return std::numeric_limits<T>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<T>::infinity();
    if (s == "-inf") return -std::numeric_limits<T>::infinity();
  }
  detail::fail("conformance: the value \"{}\" is not a number, \"nan\", \"inf\" or \"-inf\"", s);
}

/// A tensor from {"shape": [...], "values": [...]} in `dtype`.
inline Tensor tensor_from(const Json& a, Dtype dtype) {
  const Shape shape = a.at("shape").get<Shape>();
  const Json& v = a.at("values");
  auto fill = [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> arr = xt::xarray<T>::from_shape(shape);
    TG_CHECK(arr.size() == v.size(), "conformance: {} values for shape {}", v.size(), shape_str(shape));
    for (std::size_t i = 0; i < v.size(); ++i) arr.data()[i] = value_from<T>(v[i]);
    return Tensor(std::move(arr));
  };
  if (dtype == float64) return fill(0.0);
  if (dtype == float32) return fill(0.0f);
  return fill(std::int64_t{0});
}

struct Tolerance {
  double rtol;
  double atol;
};

inline Tolerance tolerance(Dtype dtype) { return dtype == float64 ? Tolerance{1e-10, 1e-12} : Tolerance{1e-5, 5e-6}; }

/// Empty when `got` matches `expected` ({"shape", "values"}) in shape, dtype and values within
/// tolerance(dtype); otherwise says where and by how much (the worst element).
inline std::string mismatch(const Tensor& got, const Json& expected, Dtype dtype) {
  if (!got.defined()) return "undefined tensor";
  if (got.dtype() != dtype) return fmt::format("dtype: expected {}, got {}", dtype, got.dtype());
  const Shape shape = expected.at("shape").get<Shape>();
  if (got.shape() != shape) return fmt::format("shape: expected {}, got {}", shape_str(shape), shape_str(got.shape()));
  const Tensor exp = tensor_from(expected, dtype == int64 ? int64 : float64);
  if (dtype == int64) {
    const auto& g = got.array<std::int64_t>();
    const auto& e = exp.array<std::int64_t>();
    for (std::size_t i = 0; i < g.size(); ++i)
      if (g.data()[i] != e.data()[i])
        return fmt::format("element {} of {}: expected {}, got {}", i, shape_str(shape), e.data()[i], g.data()[i]);
    return {};
  }
  const Tensor g64 = got.detach().to(float64);
  const double* g = g64.data<double>();
  const double* e = exp.data<double>();
  const std::size_t n = exp.numel();
  const Tolerance tol = tolerance(dtype);
  double worst_excess = 1.0;  // |diff| / allowed of the worst element past its tolerance
  std::size_t worst = n;
  for (std::size_t i = 0; i < n; ++i) {
    // NaN only where PyTorch has NaN, an infinity only where it has the same one.
    if (!std::isfinite(e[i]) || !std::isfinite(g[i])) {
      const bool same = std::isnan(e[i]) ? std::isnan(g[i]) : g[i] == e[i];
      if (!same) return fmt::format("element {} of {}: expected {}, got {}", i, shape_str(shape), e[i], g[i]);
      continue;
    }
    const double allowed = tol.atol + tol.rtol * std::abs(e[i]);
    const double excess = std::abs(g[i] - e[i]) / allowed;
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  if (worst == n) return {};
  return fmt::format("element {} of {}: expected {:.17g}, got {:.17g} (|diff| {:.3g} > allowed {:.3g})", worst,
                     shape_str(shape), e[worst], g[worst], std::abs(g[worst] - e[worst]),
                     tol.atol + tol.rtol * std::abs(e[worst]));
}

/// CHECKs that `got` matches `expected` (see mismatch), naming `what` on failure.
inline void check_close(const Tensor& got, const Json& expected, Dtype dtype, const std::string& what) {
  const std::string problem = mismatch(got, expected, dtype);
  CHECK_MESSAGE(problem.empty(), what, ": ", problem);
}

/// Runs one op on a case's inputs (in the file's order) with the case's "params".
using OpFn = std::function<Tensor(const TensorList& inputs, const Json& params)>;

/// Double backward, on fresh inputs: h_i = d sum(output * weight)/d input_i recorded with
/// create_graph, then the gradients of sum_i sum(h_i * v_i) (zeros where undefined).
inline void check_second_order(const Json& c, const OpFn& fn) {
  const std::string name = c.at("name").get<std::string>() + " " + c.at("dtype").get<std::string>() + " second order";
  const Dtype dtype = dtype_from(c.at("dtype"));
  TensorList inputs, diff;
  for (const Json& in : c.at("inputs")) {
    Tensor t = tensor_from(in, dtype_from(in.at("dtype")));
    if (in.at("requires_grad").get<bool>()) diff.push_back(t.requires_grad_());
    inputs.push_back(t);
  }
  const Tensor out = fn(inputs, c.at("params"));
  const TensorList hs = grad(
      {out}, diff, {.grad_outputs = {tensor_from(c.at("weight"), dtype)}, .create_graph = true, .allow_unused = true});
  const Json& so = c.at("second_order");
  Tensor total;
  for (std::size_t i = 0; i < diff.size(); ++i) {
    if (!hs[i].defined() || !hs[i].requires_grad()) continue;
    const Tensor term = sum(hs[i] * tensor_from(so.at("v")[i], dtype));
    total = total.defined() ? total + term : term;
  }
  TensorList g2(diff.size());
  if (total.defined()) g2 = grad({total}, diff, {.allow_unused = true});
  for (std::size_t i = 0; i < diff.size(); ++i)
    check_close(g2[i].defined() ? g2[i] : zeros_like(diff[i]), so.at("grads")[i], dtype,
                fmt::format("{}: d/d input {}", name, i));
}

/// Builds the inputs, runs `fn`, compares the output, backpropagates the stored weight as the
/// seed (= gradient of sum(output * weight)) and compares each input's gradient; state the op
/// updates in place (batch_norm's running statistics) is compared with "extra_outputs".
inline void run_op_case(const Json& c, const OpFn& fn) {
  const std::string name = c.at("name").get<std::string>() + " " + c.at("dtype").get<std::string>();
  INFO("case ", name);
  const Dtype dtype = dtype_from(c.at("dtype"));
  TensorList inputs;
  std::map<std::string, std::size_t> by_name;
  for (const Json& in : c.at("inputs")) {
    Tensor t = tensor_from(in, dtype_from(in.at("dtype")));
    if (in.at("requires_grad").get<bool>()) t.requires_grad_();
    by_name[in.at("name")] = inputs.size();
    inputs.push_back(t);
  }
  const Tensor out = fn(inputs, c.at("params"));
  const Json& expected_out = c.at("output");
  // int64 outputs: integer values, or an explicit dtype when there are no values.
  const bool int_out = expected_out.contains("dtype")
                           ? expected_out.at("dtype") == "int64"
                           : !expected_out.at("values").empty() && expected_out.at("values")[0].is_number_integer();
  check_close(out, expected_out, int_out ? int64 : dtype, name + " output");
  if (c.contains("extra_outputs"))
    for (const auto& [key, value] : c.at("extra_outputs").items())
      check_close(inputs.at(by_name.at(key)), value, dtype, name + " " + key);
  if (!c.contains("grads")) return;
  REQUIRE_MESSAGE(out.requires_grad(), name, ": output does not require grad");
  out.backward(tensor_from(c.at("weight"), dtype));
  const Json& grads = c.at("grads");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (grads[i].is_null()) continue;
    check_close(inputs[i].grad(), grads[i], dtype, name + " d/d " + c.at("inputs")[i].at("name").get<std::string>());
  }
  if (c.contains("second_order")) check_second_order(c, fn);
}

using OpTable = std::vector<std::pair<std::string, OpFn>>;

/// One SUBCASE per op of `ops`, each running every case of that op in `file` (both dtypes).
inline void run_op_cases(const std::string& file, const OpTable& ops) {
  const Json& cases = load(file).at("cases");
  for (const auto& [op, fn] : ops) {
    SUBCASE(op.c_str()) {
      std::set<std::string> dtypes;
      for (const Json& c : cases)
        if (c.at("op") == op) {
          run_op_case(c, fn);
          dtypes.insert(c.at("dtype").get<std::string>());
        }
      const bool both = dtypes == std::set<std::string>{"float32", "float64"};
      CHECK_MESSAGE(both, op, ": no cases in ", file, " for both dtypes");
    }
  }
}

/// Fails when `file` has an op without a runner in `ops` (so new data cannot go untested), and
/// lists the ops covered.
inline void check_coverage(const std::string& file, const OpTable& ops) {
  const Json& data = load(file);
  std::set<std::string> in_file;
  for (const Json& c : data.at("cases")) in_file.insert(c.at("op").get<std::string>());
  std::string covered;
  for (const auto& entry : ops) {
    covered += (covered.empty() ? "" : ", ") + entry.first;
    in_file.erase(entry.first);
  }
  for (const std::string& op : in_file) FAIL_CHECK(file, " has cases for op ", op, " that no test runs");
  MESSAGE(file, " (PyTorch ", data.at("torch").get<std::string>(), ", ", data.at("cases").size(),
          " cases, float64 and float32): ", covered);
}

}  // namespace tg::conformance
