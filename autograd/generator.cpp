#include "tapegrad/autograd/generator.hpp"

#include <sstream>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/xarray.hpp"

namespace tg {

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(std::uint64_t seed) { default_generator().seed(seed); }

Generator::Generator(const Generator& other) {
  const auto held = other.lock();
  engine_ = other.engine_;
}

Generator& Generator::operator=(const Generator& other) {
  if (this == &other) return *this;
  std::scoped_lock both(mutex_, other.mutex_);
  engine_ = other.engine_;
  return *this;
}

void Generator::seed(std::uint64_t s) {
  const auto held = lock();
  engine_.seed(s);
}

double Generator::uniform() {
  const auto held = lock();
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
}

std::string Generator::state() const {
  const auto held = lock();
  std::ostringstream os;
  os << engine_;
  return os.str();
}

void Generator::set_state(const std::string& state) {
  std::istringstream is(state);
  std::mt19937_64 restored;
  is >> restored;
  TG_CHECK(!is.fail(), "Generator::set_state: the text is not a saved generator state");
  // mt19937_64 reads any 312 numbers; all zero is the one state it never leaves (every draw 0).
  std::istringstream words(state);
  bool any_nonzero = false;
  for (std::uint64_t w; words >> w;) any_nonzero |= w != 0;
  TG_CHECK(any_nonzero, "Generator::set_state: the state is all zeros, which would draw only zeros");
  const auto held = lock();
  engine_ = restored;
}

namespace {
template <class Dist>
Tensor fill_random(const Shape& shape, Dtype dtype, Dist dist, Generator& gen, std::string_view op) {
  return dispatch_float(dtype, op, [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
    const auto held = gen.lock();
    for (auto& v : a) v = static_cast<T>(dist(gen.engine()));
    return Tensor(std::move(a));
  });
}
}  // namespace

Tensor uniform(const Shape& shape, double low, double high, Generator& gen, Dtype dtype) {
  TG_CHECK(low < high, "uniform: needs low < high, got [{}, {})", low, high);
  return fill_random(shape, dtype, std::uniform_real_distribution<double>(low, high), gen, "uniform");
}

Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, Dtype dtype) {
  TG_CHECK(stddev >= 0, "normal: standard deviation must be >= 0, got {}", stddev);
  if (stddev == 0) return full(shape, mean, dtype);
  return fill_random(shape, dtype, std::normal_distribution<double>(mean, stddev), gen, "normal");
}

Tensor rand(const Shape& shape, Generator& gen, Dtype dtype) { return uniform(shape, 0.0, 1.0, gen, dtype); }
Tensor randn(const Shape& shape, Generator& gen, Dtype dtype) { return normal(shape, 0.0, 1.0, gen, dtype); }

Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& gen) {
  TG_CHECK(low < high, "randint: needs low < high, got [{}, {})", low, high);
  xt::xarray<std::int64_t> a = xt::xarray<std::int64_t>::from_shape(shape);
  std::uniform_int_distribution<std::int64_t> dist(low, high - 1);
  const auto held = gen.lock();
  for (auto& v : a) v = dist(gen.engine());
  return Tensor(std::move(a));
}

Tensor randperm(std::size_t n, Generator& gen) {
  xt::xarray<std::int64_t> a = xt::xarray<std::int64_t>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) a(i) = static_cast<std::int64_t>(i);
  // Fisher-Yates with our own index draws, so the order does not depend on std::shuffle's
  // unspecified algorithm.
  const auto held = gen.lock();
  for (std::size_t i = n; i > 1; --i) {
    const auto j = static_cast<std::size_t>(gen.engine()() % i);
    std::swap(a(i - 1), a(j));
  }
  return Tensor(std::move(a));
}

}  // namespace tg
