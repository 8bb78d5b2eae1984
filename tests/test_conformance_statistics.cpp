// Conformance of masked_fill, tril, triu, logsumexp, var, std, the vector norm, cumsum, sort and
// topk with PyTorch: forward values, gradients and one second-order check per op against
// tests/conformance/statistics.json, on random, 0-d and empty inputs and on NaN and ±inf
// (compared exactly). Indices are compared as int64. Tolerances: see conformance_support.hpp.
#include "conformance_support.hpp"

using namespace tg;
using namespace tg::conformance;

namespace {

using In = const TensorList&;
using P = const Json&;

// "axes": a list, or null for all elements.
Axes axes_from(const Json& p, const Tensor& x) {
  const Json& a = p.at("axes");
  if (!a.is_null()) return a.get<Axes>();
  Axes all(x.ndim());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  return all;
}

ValuesIndices sorted(In x, P p) { return sort(x[0], p.at("axis").get<int>(), p.at("descending").get<bool>()); }

ValuesIndices top(In x, P p) {
  return topk(x[0], p.at("k").get<std::int64_t>(), p.at("axis").get<int>(), p.at("largest").get<bool>());
}

const OpTable& statistics_ops() {
  static const OpTable ops = {
      {"masked_fill", [](In x, P p) { return masked_fill(x[0], x[1], value_from<double>(p.at("value"))); }},
      {"tril", [](In x, P p) { return tril(x[0], p.at("diagonal").get<std::int64_t>()); }},
      {"triu", [](In x, P p) { return triu(x[0], p.at("diagonal").get<std::int64_t>()); }},
      {"logsumexp", [](In x, P p) { return logsumexp(x[0], axes_from(p, x[0]), p.at("keepdims").get<bool>()); }},
      {"var",
       [](In x, P p) {
         return var(x[0], axes_from(p, x[0]), p.at("correction").get<std::int64_t>(), p.at("keepdims").get<bool>());
       }},
      {"std",
       [](In x, P p) {
         return tg::std(x[0], axes_from(p, x[0]), p.at("correction").get<std::int64_t>(), p.at("keepdims").get<bool>());
       }},
      {"norm",
       [](In x, P p) {
         return norm(x[0], value_from<double>(p.at("p")), p.at("axes").get<Axes>(), p.at("keepdims").get<bool>());
       }},
      {"cumsum", [](In x, P p) { return cumsum(x[0], p.at("axis").get<int>()); }},
      {"sort", [](In x, P p) { return sorted(x, p).values; }},
      {"sort_indices", [](In x, P p) { return sorted(x, p).indices; }},
      {"topk", [](In x, P p) { return top(x, p).values; }},
      {"topk_indices", [](In x, P p) { return top(x, p).indices; }},
  };
  return ops;
}

}  // namespace

TEST_CASE("conformance with PyTorch: masking, statistics and sorting") {
  run_op_cases("statistics.json", statistics_ops());
}

TEST_CASE("conformance with PyTorch: every op in statistics.json is tested") {
  check_coverage("statistics.json", statistics_ops());
}
