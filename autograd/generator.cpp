#include "tapegrad/autograd/generator.hpp"

#include <sstream>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/detail/generator_state.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/xarray.hpp"

namespace tg {

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(std::uint64_t seed) { default_generator().seed(seed); }

Generator::Generator(std::uint64_t seed) : state_(std::make_unique<State>()) { state_->engine.seed(seed); }

Generator::Generator(const Generator& other) : state_(std::make_unique<State>()) {
  const std::lock_guard held(other.state_->mutex);
  state_->engine = other.state_->engine;
}

Generator& Generator::operator=(const Generator& other) {
  if (this == &other) return *this;
  std::scoped_lock both(state_->mutex, other.state_->mutex);
  state_->engine = other.state_->engine;
  return *this;
}

Generator::~Generator() = default;

void Generator::seed(std::uint64_t s) { LockedEngine(*this).engine().seed(s); }

Generator::result_type Generator::operator()() { return LockedEngine(*this).engine()(); }

double Generator::uniform() {
  LockedEngine locked(*this);
  return std::uniform_real_distribution<double>(0.0, 1.0)(locked.engine());
}

std::string Generator::state() const {
  const std::lock_guard held(state_->mutex);
  std::ostringstream os;
  os << state_->engine;
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
  LockedEngine(*this).engine() = restored;
}

namespace {
template <class Dist>
Tensor fill_random(const Shape& shape, Dtype dtype, Dist dist, Generator& gen, std::string_view op) {
  return dispatch_float(dtype, op, [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
    LockedEngine locked(gen);
    for (auto& v : a) v = static_cast<T>(dist(locked.engine()));
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
  LockedEngine locked(gen);
  for (auto& v : a) v = dist(locked.engine());
  return Tensor(std::move(a));
}

Tensor randperm(std::size_t n, Generator& gen) {
  xt::xarray<std::int64_t> a = xt::xarray<std::int64_t>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) a(i) = static_cast<std::int64_t>(i);
  // Fisher-Yates with our own index draws, so the order does not depend on std::shuffle's
  // unspecified algorithm.
  LockedEngine locked(gen);
  for (std::size_t i = n; i > 1; --i) {
    const auto j = static_cast<std::size_t>(locked.engine()() % i);
    std::swap(a(i - 1), a(j));
  }
  return Tensor(std::move(a));
}

}  // namespace tg
