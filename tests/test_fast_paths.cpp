// The fast paths of the elementwise kernels and the engine, each against a plain reference:
// SIMD forward kernels (bodies and scalar tails), broadcasting with merged axes, the fused
// backward of the activations against their composed (create_graph) form, and in-place
// gradient accumulation when gradient tensors are shared.
#include <cmath>
#include <limits>
#include <xtensor/xmath.hpp>
#include <xtensor/xvectorize.hpp>

#include "op_test_support.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;

namespace {

template <class T>
xt::xarray<T> filled(const Shape& shape, std::uint64_t seed, double low, double high) {
  Generator gen(seed);
  return uniform(shape, low, high, gen, float64).to(dtype_of<T>()).template array<T>();
}

// |got - want| <= tol * max(1, |want|) everywhere (NaN only where want is NaN).
template <class T>
void check_close(const xt::xarray<T>& got, const xt::xarray<T>& want, double tol) {
  REQUIRE(got.shape() == want.shape());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = static_cast<double>(got.data()[i]), w = static_cast<double>(want.data()[i]);
    INFO("element ", i, ": got ", g, ", want ", w);
    if (std::isnan(w)) {
      CHECK(std::isnan(g));
    } else if (std::isinf(w)) {
      CHECK(g == w);
    } else {
      CHECK(std::abs(g - w) <= tol * std::max(1.0, std::abs(w)));
    }
  }
}

// Sizes around the SIMD widths (16 floats, 8 doubles with AVX-512; less elsewhere).
const std::vector<std::size_t> kSizes = {1, 7, 8, 9, 15, 16, 17, 31, 33, 100};

}  // namespace

TEST_CASE_TEMPLATE("SIMD unary kernels match the scalar functions, bodies and tails", T, float, double) {
  const double tol = std::is_same_v<T, float> ? 4e-7 : 4e-16;
  for (std::size_t n : kSizes) {
    INFO("size ", n);
    xt::xarray<T> x = filled<T>({n}, n, -12.0, 12.0);
    // Large, infinite and zero arguments where the size allows.
    const T inf = std::numeric_limits<T>::infinity();
    const std::vector<T> specials = {T(0), T(-0.0), T(90), T(-90), T(1000), T(-1000), inf, -inf};
    for (std::size_t i = 0; i < std::min(n, specials.size()); ++i) x(n - 1 - i) = specials[i];
    const Tensor t(x);
    const auto sigmoid_ref = [](T v) { return T(1) / (T(1) + std::exp(-v)); };
    check_close<T>(exp(t).array<T>(), xt::xarray<T>(xt::exp(x)), tol);
    check_close<T>(tanh(t).array<T>(), xt::xarray<T>(xt::tanh(x)), tol);
    check_close<T>(sigmoid(t).array<T>(), xt::xarray<T>(xt::vectorize(sigmoid_ref)(x)), tol);
    check_close<T>(relu(t).array<T>(), xt::xarray<T>(xt::maximum(x, T(0))), 0.0);
    // gelu's SIMD body takes xsimd's erf, its tail std::erf: they differ by up to 1e-14 in double
    // where 1 + erf cancels (x < -2).
    const auto gelu_ref = [](T v) { return v / T(2) * (T(1) + std::erf(v / std::sqrt(T(2)))); };
    check_close<T>(gelu(t).array<T>(), xt::xarray<T>(xt::vectorize(gelu_ref)(x)),
                   std::is_same_v<T, float> ? 8 * tol : 5e-14);
    check_close<T>(neg(t).array<T>(), xt::xarray<T>(-x), 0.0);
    const xt::xarray<T> pos = xt::xarray<T>(xt::abs(x));
    check_close<T>(log(Tensor(pos)).array<T>(), xt::xarray<T>(xt::log(pos)), tol);
    check_close<T>(sqrt(Tensor(pos)).array<T>(), xt::xarray<T>(xt::sqrt(pos)), 0.0);
  }
  // sigmoid never overflows and keeps tiny values for very negative inputs.
  const Tensor s = sigmoid(Tensor(xt::xarray<T>({T(-80), T(-30), T(30), T(80)})));
  CHECK(s.array<T>()(0) > T(0));
  CHECK(std::abs(static_cast<double>(s.array<T>()(0)) / std::exp(-80.0) - 1.0) < 1e-5);
  CHECK(s.array<T>()(3) == T(1));
}

TEST_CASE("broadcasting binary ops match xtensor on odd shapes, every dtype") {
  // Scalars, trailing suffixes (bias onto rows), size-1 axes on either side, inner axes that
  // do not merge, sizes that leave SIMD tails, and empty tensors.
  const std::vector<std::pair<Shape, Shape>> pairs = {{{}, {17}},
                                                      {{33}, {}},
                                                      {{5, 17}, {17}},
                                                      {{17}, {5, 17}},
                                                      {{3, 4, 19}, {4, 19}},
                                                      {{3, 4, 19}, {19}},
                                                      {{6, 1}, {1, 35}},
                                                      {{2, 3, 1, 5}, {4, 1}},
                                                      {{7, 1, 9}, {7, 3, 1}},
                                                      {{1, 1, 33}, {2, 1, 1}},
                                                      {{4, 33}, {4, 1}},
                                                      {{2, 1, 3, 1}, {4, 1, 5}},
                                                      {{1}, {1}},
                                                      {{0, 3}, {3}},
                                                      {{2, 0}, {1, 0}},
                                                      {{1, 16}, {16, 1}}};
  for (const auto& [sa, sb] : pairs) {
    INFO(shape_str(sa), " with ", shape_str(sb));
    const xt::xarray<double> a = filled<double>(sa, 1, 0.5, 2.0), b = filled<double>(sb, 2, 0.5, 2.0);
    const xt::xarray<double> sum_ref = a + b, diff_ref = a - b, prod_ref = a * b, quot_ref = a / b;
    const xt::xarray<double> max_ref = xt::maximum(a, b);
    for (Dtype d : {float32, float64}) {
      INFO(d);
      const Tensor ta = Tensor(a).to(d), tb = Tensor(b).to(d);
      const double tol = d == float32 ? 1e-6 : 1e-15;
      check_close<double>((ta + tb).to(float64).array<double>(), sum_ref, tol);
      check_close<double>((ta - tb).to(float64).array<double>(), diff_ref, tol);
      check_close<double>((ta * tb).to(float64).array<double>(), prod_ref, tol);
      check_close<double>((ta / tb).to(float64).array<double>(), quot_ref, tol);
      check_close<double>(maximum(ta, tb).to(float64).array<double>(), max_ref, tol);
    }
    // int64 runs the scalar loops over the same plan; comparisons give int64.
    const xt::xarray<std::int64_t> ia = xt::cast<std::int64_t>(a * 10.0), ib = xt::cast<std::int64_t>(b * 10.0);
    const xt::xarray<std::int64_t> isum = ia + ib;
    CHECK((Tensor(ia) + Tensor(ib)).array<std::int64_t>() == isum);
    const xt::xarray<std::int64_t> lt_ref = xt::cast<std::int64_t>(ia < ib);
    CHECK(lt(Tensor(ia), Tensor(ib)).array<std::int64_t>() == lt_ref);
  }
}

TEST_CASE("broadcast gradients reach both operands through the fast paths") {
  using tg::testing::input;
  for (const auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{{{5, 17}, {17}}, {{}, {9}}, {{6, 1}, {1, 11}}}) {
    INFO(shape_str(sa), " with ", shape_str(sb));
    CHECK_GRADCHECK([](const TensorList& in) { return in[0] * in[1] + in[0] / (in[1] + 3.0); },
                    {input(sa, 3), input(sb, 4)});
  }
}

TEST_CASE_TEMPLATE("fused activation backwards equal their composed create_graph form", T, float, double) {
  constexpr Dtype d = std::is_same_v<T, float> ? float32 : float64;
  using Fn = Tensor (*)(const Tensor&);
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
      {"relu", static_cast<Fn>(relu)},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.125); }},
      {"sigmoid", static_cast<Fn>(sigmoid)},
      {"tanh", static_cast<Fn>(tanh)},
      {"exp", static_cast<Fn>(exp)},
      {"gelu", [](const Tensor& x) { return gelu(x); }},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.75); }},
      // Bounds that float32 cannot hold: the values next to them must pick the same side.
      {"clamp inexact bounds", [](const Tensor& x) { return clamp(x, 0.1, 0.3); }}};
  for (std::size_t n : {7u, 16u, 37u}) {
    xt::xarray<T> xv = filled<T>({n}, 10 + n, -3.0, 3.0);
    // The kinks themselves: exactly 0 and exactly the clamp bounds.
    xv(0) = T(0);
    xv(1) = T(-0.5);
    xv(2) = T(0.75);
    xv(3) = T(0.1);
    xv(4) = std::nextafter(T(0.1), T(1));
    xv(5) = T(0.3);
    xv(6) = std::nextafter(T(0.3), T(0));
    const Tensor seed = Tensor(filled<T>({n}, 20 + n, -2.0, 2.0));
    for (const auto& [name, f] : ops) {
      INFO(name, " size ", n);
      const Tensor x = Tensor(xv).requires_grad_();
      f(x).backward(seed);
      const Tensor fused = x.grad();
      const Tensor composed = grad({f(x)}, {x}, {.grad_outputs = {seed}, .create_graph = true})[0];
      REQUIRE(fused.dtype() == d);
      // gelu: xsimd's erf in the fused kernel, std::erf in the composed form (a few ulp apart).
      const double tol = std::is_same_v<T, float> ? 1e-6 : (std::string(name) == "gelu" ? 5e-14 : 1e-15);
      check_close<T>(fused.array<T>(), composed.detach().array<T>(), tol);
    }
  }
}

TEST_CASE("in-place gradient accumulation never writes into a shared gradient") {
  SUBCASE("one gradient tensor handed to several inputs (add gives {g, g})") {
    const Tensor x = Tensor({0.5, -1.0, 2.0}).to(float64).requires_grad_();
    const Tensor u = exp(x), v = exp(x);
    const Tensor s = u + v;      // d s = g to u and to v, one tensor
    const Tensor t = s + u + s;  // u collects 1 + 2, v collects 2
    sum(t).backward();
    const xt::xarray<double> ex = xt::exp(x.detach().array<double>());
    check_close<double>(x.grad().array<double>(), xt::xarray<double>(5.0 * ex), 1e-15);
  }
  SUBCASE("a leaf used many times, and .grad held by the caller across backwards") {
    const Tensor x = Tensor({1.0, 2.0}).to(float64).requires_grad_();
    sum(x + x + x * x).backward();  // 2 + 2x
    const Tensor first = x.grad();
    const xt::xarray<double> first_values = first.array<double>();
    sum(x * 3.0).backward();
    CHECK(first.array<double>() == first_values);  // the held tensor kept its values
    CHECK(x.grad().array<double>() == xt::xarray<double>({7, 9}));
    sum(x * 3.0).backward();  // no one holds .grad now: accumulates in place
    CHECK(x.grad().array<double>() == xt::xarray<double>({10, 12}));
  }
  SUBCASE("a seed given to backward is never modified") {
    const Tensor y = Tensor({1.0, 2.0}).to(float64).requires_grad_();
    const Tensor seed = Tensor({3.0, 4.0}).to(float64);
    y.backward(seed);  // y's .grad starts as the seed's storage
    y.backward(seed);
    CHECK(seed.array<double>() == xt::xarray<double>({3, 4}));
    CHECK(y.grad().array<double>() == xt::xarray<double>({6, 8}));
  }
  SUBCASE("tg::grad of an intermediate that is used twice") {
    const Tensor x = Tensor({1.0, -2.0}).to(float64).requires_grad_();
    const Tensor a = x * 2.0;
    const Tensor b = a + a;
    const Tensor c = b * a;  // 2a² → d/da = 4a... through b too: c = (a + a) a
    const Tensor ga = grad({sum(c)}, {a})[0];
    check_close<double>(ga.array<double>(), xt::xarray<double>(4.0 * a.detach().array<double>()), 1e-15);
  }
  SUBCASE("create_graph accumulation stays differentiable") {
    const Tensor x = Tensor({0.3, 0.7}).to(float64).requires_grad_();
    const Tensor y = sum(x * x * x + x * x);  // dy = 3x² + 2x, d²y = 6x + 2
    const Tensor dy = grad({y}, {x}, {.create_graph = true})[0];
    const Tensor d2 = grad({sum(dy)}, {x})[0];
    check_close<double>(d2.array<double>(), xt::xarray<double>(6.0 * x.detach().array<double>() + 2.0), 1e-14);
  }
}
