// conv2d: forward against hand-computed values and a direct-loop reference, gradients (first and
// second order) over strides, padding, dilation, groups and odd shapes, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;

namespace {

struct Case {
  const char* name;
  Shape x, w;
  Conv2dArgs options;
  bool bias = true;
};

// Direct seven-loop convolution with explicit padding (top, left), for comparison.
xt::xarray<double> reference_conv(const xt::xarray<double>& x, const xt::xarray<double>& w, const xt::xarray<double>* b,
                                  std::size_t sh, std::size_t sw, std::ptrdiff_t pt, std::ptrdiff_t pl, std::size_t dh,
                                  std::size_t dw, std::size_t groups, std::size_t oh, std::size_t ow) {
  const std::size_t n = x.shape()[0], c_in = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
  const std::size_t c_out = w.shape()[0], cg = w.shape()[1], kh = w.shape()[2], kw = w.shape()[3];
  xt::xarray<double> y = xt::zeros<double>({n, c_out, oh, ow});
  for (std::size_t s = 0; s < n; ++s)
    for (std::size_t o = 0; o < c_out; ++o) {
      const std::size_t grp = o / (c_out / groups);
      for (std::size_t r = 0; r < oh; ++r)
        for (std::size_t q = 0; q < ow; ++q) {
          double acc = b ? (*b)(o) : 0.0;
          for (std::size_t c = 0; c < cg; ++c)
            for (std::size_t i = 0; i < kh; ++i)
              for (std::size_t j = 0; j < kw; ++j) {
                const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(r * sh + i * dh) - pt;
                const std::ptrdiff_t iw = static_cast<std::ptrdiff_t>(q * sw + j * dw) - pl;
                if (ih < 0 || iw < 0 || ih >= static_cast<std::ptrdiff_t>(h) || iw >= static_cast<std::ptrdiff_t>(wd))
                  continue;
                acc += x(s, grp * cg + c, ih, iw) * w(o, c, i, j);
              }
          y(s, o, r, q) = acc;
        }
    }
  (void)c_in;
  return y;
}

std::vector<Case> cases() {
  return {
      {"plain 3x3", {2, 3, 5, 5}, {4, 3, 3, 3}, {}},
      {"stride 2", {2, 2, 7, 6}, {3, 2, 3, 3}, {.stride = 2}},
      {"padding 1", {1, 2, 4, 5}, {3, 2, 3, 3}, {.padding = 1}},
      {"dilation 2", {2, 2, 7, 7}, {2, 2, 3, 3}, {.dilation = 2}},
      {"groups 2", {2, 4, 5, 5}, {6, 2, 3, 3}, {.groups = 2}},
      {"non-square kernel, stride and padding", {1, 3, 6, 7}, {2, 3, 2, 4}, {.stride = {2, 1}, .padding = {1, 2}}},
      {"batch 1, odd sizes, no bias", {1, 1, 7, 5}, {2, 1, 3, 2}, {}, false},
      {"1x1 pointwise", {3, 4, 3, 3}, {5, 4, 1, 1}, {}},
      {"1x1 pointwise, batch 1, groups 2", {1, 4, 3, 3}, {2, 2, 1, 1}, {.groups = 2}},
      {"everything", {2, 4, 9, 8}, {4, 2, 3, 2}, {.stride = 2, .padding = {2, 1}, .dilation = {2, 3}, .groups = 2}},
      {"same, stride 1, even kernel", {1, 2, 5, 6}, {3, 2, 2, 4}, {.padding = "same"}},
      {"same, stride 2", {2, 1, 7, 6}, {2, 1, 3, 3}, {.stride = 2, .padding = "same"}},
      {"valid", {1, 2, 5, 5}, {2, 2, 3, 3}, {.padding = "valid"}},
      // Few input taps take the direct (not GEMM) path; these rows are wider than a SIMD batch
      // and C_out is not a multiple of its channel block.
      {"first layer of MNIST, direct", {2, 1, 28, 28}, {6, 1, 3, 3}, {}},
      {"3 channels, padding 2, dilation 2, direct", {1, 3, 17, 21}, {5, 3, 3, 3}, {.padding = 2, .dilation = 2}},
  };
}

Tensor random(const Shape& s, Generator& gen) { return randn(s, gen, float64); }

}  // namespace

TEST_CASE("conv2d forward: hand-computed 2x2 sums") {
  Tensor x = reshape(arange(1, 17, 1, float64), {1, 1, 4, 4});
  Tensor w = ones({1, 1, 2, 2}, float64);
  Tensor y = conv2d(x, w, Tensor(xt::xarray<double>{0.5}));
  // Window sums of [[1..4],[5..8],[9..12],[13..16]]: 1+2+5+6 = 14, then +4 per step right, +16 down.
  const xt::xarray<double> expected = {{{{14.5, 18.5, 22.5}, {30.5, 34.5, 38.5}, {46.5, 50.5, 54.5}}}};
  CHECK(y.array<double>() == expected);

  Tensor ys = conv2d(x, w, {}, {.stride = 2, .padding = 1});
  // Padded windows at stride 2: corners see one, edges two, the middle four elements.
  const xt::xarray<double> expected_s = {{{{1, 2 + 3, 4}, {5 + 9, 6 + 7 + 10 + 11, 8 + 12}, {13, 14 + 15, 16}}}};
  CHECK(ys.array<double>() == expected_s);
}

TEST_CASE("conv2d forward matches a direct loop, float64 and float32") {
  Generator gen(7);
  for (const Case& c : cases()) {
    INFO(c.name);
    Tensor x = random(c.x, gen), w = random(c.w, gen), b = random({c.w[0]}, gen);
    Tensor y = conv2d(x, w, c.bias ? b : Tensor(), c.options);
    // Resolve the padding the way the header documents it.
    std::ptrdiff_t pt = 0, pl = 0;
    const std::size_t sh = static_cast<std::size_t>(c.options.stride.h),
                      sw = static_cast<std::size_t>(c.options.stride.w);
    const std::size_t dh = static_cast<std::size_t>(c.options.dilation.h),
                      dw = static_cast<std::size_t>(c.options.dilation.w);
    std::size_t oh = 0, ow = 0;
    auto resolve = [&](std::size_t in, std::size_t k, std::size_t s, std::size_t d, std::int64_t explicit_pad,
                       std::ptrdiff_t& before, std::size_t& out) {
      const std::size_t span = d * (k - 1) + 1;
      if (c.options.padding.kind == Padding::Kind::same) {
        out = (in + s - 1) / s;
        const std::ptrdiff_t total = std::max<std::ptrdiff_t>(
            static_cast<std::ptrdiff_t>((out - 1) * s + span) - static_cast<std::ptrdiff_t>(in), 0);
        before = total / 2;
      } else {
        before = c.options.padding.kind == Padding::Kind::valid ? 0 : explicit_pad;
        out = (in + 2 * static_cast<std::size_t>(before) - span) / s + 1;
      }
    };
    resolve(c.x[2], c.w[2], sh, dh, c.options.padding.size.h, pt, oh);
    resolve(c.x[3], c.w[3], sw, dw, c.options.padding.size.w, pl, ow);
    const xt::xarray<double> bias = b.array<double>();
    const auto expected = reference_conv(x.array<double>(), w.array<double>(), c.bias ? &bias : nullptr, sh, sw, pt, pl,
                                         dh, dw, static_cast<std::size_t>(c.options.groups), oh, ow);
    REQUIRE(y.shape() == Shape(expected.shape().begin(), expected.shape().end()));
    CHECK(xt::allclose(y.array<double>(), expected, 1e-12, 1e-12));
    if (c.options.padding.kind == Padding::Kind::same && sh == 1) CHECK(y.shape(2) == c.x[2]);

    Tensor y32 = conv2d(x.to(float32), w.to(float32), c.bias ? b.to(float32) : Tensor(), c.options);
    CHECK(xt::allclose(y32.to(float64).array<double>(), expected, 1e-4, 1e-4));
  }
}

TEST_CASE("conv2d gradients (float64) over every configuration") {
  Generator gen(11);
  for (const Case& c : cases()) {
    INFO(c.name);
    Tensor x = random(c.x, gen).requires_grad_();
    Tensor w = random(c.w, gen).requires_grad_();
    Tensor b = c.bias ? random({c.w[0]}, gen).requires_grad_() : Tensor();
    const Conv2dArgs o = c.options;
    auto r = gradcheck([o](const TensorList& in) { return conv2d(in[0], in[1], in[2], o); }, {x, w, b});
    INFO(r.message);
    CHECK(r);
  }
}

TEST_CASE("conv2d second-order gradients") {
  Generator gen(13);
  const std::vector<Case> selected = {
      {"stride 2, padding 1", {1, 2, 5, 5}, {2, 2, 3, 3}, {.stride = 2, .padding = 1}},
      {"dilation 2, groups 2", {2, 2, 5, 5}, {2, 1, 2, 2}, {.dilation = 2, .groups = 2}},
      {"same, even kernel", {1, 1, 4, 3}, {2, 1, 2, 2}, {.padding = "same"}},
  };
  for (const Case& c : selected) {
    INFO(c.name);
    Tensor x = random(c.x, gen).requires_grad_();
    Tensor w = random(c.w, gen).requires_grad_();
    Tensor b = random({c.w[0]}, gen).requires_grad_();
    const Conv2dArgs o = c.options;
    // tanh makes the loss non-linear in the output, so the Hessian has x-x and w-w blocks too.
    auto r = gradgradcheck([o](const TensorList& in) { return tanh(conv2d(in[0], in[1], in[2], o)); }, {x, w, b});
    INFO(r.message);
    CHECK(r);
  }
}

TEST_CASE("conv2d_relu equals relu(conv2d): values, gradients, second order") {
  Generator gen(19);
  const std::vector<Case> selected = {
      {"direct path, padding 1", {2, 1, 20, 19}, {5, 1, 3, 3}, {.padding = 1}},
      {"GEMM path, stride 2, groups 2", {2, 4, 7, 6}, {4, 2, 3, 3}, {.stride = 2, .groups = 2}},
      {"no bias", {1, 2, 6, 6}, {3, 2, 2, 2}, {}, false},
  };
  for (const Case& c : selected) {
    INFO(c.name);
    Tensor x = random(c.x, gen).requires_grad_();
    Tensor w = random(c.w, gen).requires_grad_();
    Tensor b = c.bias ? random({c.w[0]}, gen).requires_grad_() : Tensor();
    const Conv2dArgs o = c.options;
    for (Dtype d : {float64, float32}) {
      Tensor xd = x.detach().to(d).requires_grad_(), wd = w.detach().to(d).requires_grad_();
      Tensor bd = c.bias ? b.detach().to(d).requires_grad_() : Tensor();
      Tensor g = randn(conv2d(xd.detach(), wd.detach(), {}, o).shape(), gen, d);
      Tensor fused = conv2d_relu(xd, wd, bd, o);
      const TensorList gf = tg::grad({sum(mul(fused, g))}, c.bias ? TensorList{xd, wd, bd} : TensorList{xd, wd});
      Tensor plain = relu(conv2d(xd, wd, bd, o));
      const TensorList gp = tg::grad({sum(mul(plain, g))}, c.bias ? TensorList{xd, wd, bd} : TensorList{xd, wd});
      CHECK(xt::allclose(fused.to(float64).array<double>(), plain.to(float64).array<double>(), 1e-6, 1e-6));
      for (std::size_t i = 0; i < gf.size(); ++i)
        CHECK(xt::allclose(gf[i].to(float64).array<double>(), gp[i].to(float64).array<double>(), 1e-5, 1e-5));
    }
    auto fn = [o](const TensorList& in) { return conv2d_relu(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), o); };
    const TensorList inputs = c.bias ? TensorList{x, w, b} : TensorList{x, w};
    auto r = gradcheck(fn, inputs);
    INFO(r.message);
    CHECK(r);
    auto sq = [o](const TensorList& in) {
      return pow(conv2d_relu(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), o), 2.0);
    };
    auto r2 = gradgradcheck(sq, inputs);
    INFO(r2.message);
    CHECK(r2);
  }
}

TEST_CASE("conv2d_relu weight and bias gradients when the input needs none (one fused pass)") {
  Generator gen(23);
  for (Dtype d : {float64, float32}) {
    for (bool with_bias : {true, false}) {
      INFO("dtype " << d << ", bias " << with_bias);
      Tensor x = randn({3, 2, 17, 18}, gen, d);  // a constant input, as a first layer's
      Tensor w = randn({5, 2, 3, 3}, gen, d).requires_grad_();
      Tensor b = with_bias ? randn({5}, gen, d).requires_grad_() : Tensor();
      const Conv2dArgs o{.padding = 1};
      Tensor g = randn({3, 5, 17, 18}, gen, d);
      const TensorList params = with_bias ? TensorList{w, b} : TensorList{w};
      const TensorList gf = tg::grad({sum(mul(conv2d_relu(x, w, b, o), g))}, params);
      const TensorList gp = tg::grad({sum(mul(relu(conv2d(x, w, b, o)), g))}, params);
      for (std::size_t i = 0; i < gf.size(); ++i)
        CHECK(xt::allclose(gf[i].to(float64).array<double>(), gp[i].to(float64).array<double>(), 1e-4, 1e-4));
    }
  }
  Tensor x = randn({2, 1, 9, 10}, gen, float64);
  Tensor w = randn({3, 1, 3, 3}, gen, float64).requires_grad_(), b = randn({3}, gen, float64).requires_grad_();
  auto r = gradcheck([x](const TensorList& in) { return conv2d_relu(x, in[0], in[1]); }, {w, b});
  INFO(r.message);
  CHECK(r);
}

TEST_CASE("conv2d gradient ops are differentiable on their own") {
  Generator gen(17);
  const Conv2dArgs o{.stride = 2, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2};
  const Shape xs = {2, 4, 6, 7}, ws = {4, 2, 3, 2};
  Tensor x = random(xs, gen).requires_grad_();
  Tensor w = random(ws, gen).requires_grad_();
  const Shape ys = conv2d(x.detach(), w.detach(), {}, o).shape();
  Tensor g = random(ys, gen).requires_grad_();
  auto r1 = gradcheck([&](const TensorList& in) { return conv2d_backward_input(in[0], in[1], xs, o); }, {g, w});
  INFO(r1.message);
  CHECK(r1);
  auto r2 = gradcheck([&](const TensorList& in) { return conv2d_backward_weight(in[0], in[1], ws, o); }, {g, x});
  INFO(r2.message);
  CHECK(r2);
}

TEST_CASE("conv2d backward works in float32 and agrees with float64") {
  Generator gen(19);
  Tensor x = random({2, 3, 6, 6}, gen), w = random({4, 3, 3, 3}, gen), b = random({4}, gen);
  TensorList g64, g32;
  for (Dtype d : {float64, float32}) {
    Tensor xd = x.to(d).detach().requires_grad_(), wd = w.to(d).detach().requires_grad_();
    Tensor bd = b.to(d).detach().requires_grad_();
    sum(mul(conv2d(xd, wd, bd, {.stride = 2, .padding = 1}), conv2d(xd, wd, bd, {.stride = 2, .padding = 1})))
        .backward();
    (d == float64 ? g64 : g32) = {xd.grad(), wd.grad(), bd.grad()};
  }
  for (std::size_t i = 0; i < 3; ++i)
    CHECK(xt::allclose(g32[i].to(float64).array<double>(), g64[i].array<double>(), 1e-3, 1e-3));
}

TEST_CASE("conv2d rejects bad input with clear messages") {
  Tensor x = zeros({2, 4, 5, 5});
  Tensor w = zeros({6, 4, 3, 3});
  CHECK_THROWS_WITH_AS(conv2d(zeros({4, 5, 5}), w), doctest::Contains("conv2d: expected input x of rank 4"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({6, 4, 3})), doctest::Contains("expected weight of rank 4"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({6, 3, 3, 3})),
                       doctest::Contains("x [2, 4, 5, 5] has 4 channels but weight [6, 3, 3, 3] with groups 1 "
                                         "expects C_in = weight.shape[1] * groups = 3"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({6, 1, 3, 3}), {}, {.groups = 3}),
                       doctest::Contains("groups 3 must divide both C_in (4"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({6, 4, 7, 3})), doctest::Contains("padded input is only 5x5 (x [2, 4, 5, 5]"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({6, 4, 3, 3}), {}, {.dilation = 3}), doctest::Contains("the kernel spans 7x7"),
                       Error);
  CHECK_NOTHROW(conv2d(x, zeros({6, 4, 7, 3}), {}, {.padding = 1}));
  CHECK_THROWS_WITH_AS(conv2d(x, w, {}, {.stride = 0}),
                       doctest::Contains("conv2d: stride must be positive, got [0, 0]"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, {}, {.stride = {1, -2}}), doctest::Contains("stride must be positive"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, {}, {.padding = -1}), doctest::Contains("padding must be non-negative"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, zeros({5})), doctest::Contains("bias has shape [5], expected [6]"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w.to(float64)), doctest::Contains("must have the same float dtype"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, {}, {.padding = Padding(std::string_view("full"))}),
                       doctest::Contains("expected \"valid\", \"same\""), Error);
}

TEST_CASE("conv2d gives the same numbers on one thread and on two") {
  Generator gen(23);
  Tensor x = random({8, 16, 30, 30}, gen), w = random({8, 8, 3, 5}, gen);
  const Conv2dArgs o{.stride = {1, 2}, .padding = {1, 2}, .dilation = {2, 1}, .groups = 2};
  const int before = get_num_threads();
  TensorList results[2];
  Tensor g;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Tensor y = conv2d(x, w, {}, o);
    if (!g.defined()) g = random(y.shape(), gen);
    results[threads - 1] = {y, conv2d_backward_input(g, w, x.shape(), o), conv2d_backward_weight(g, x, w.shape(), o)};
  }
  set_num_threads(before);
  for (std::size_t i = 0; i < 3; ++i)
    CHECK(xt::allclose(results[0][i].array<double>(), results[1][i].array<double>(), 1e-12, 1e-12));
}

// float32 convolutions that are not a first layer run on oneDNN (ops/conv_dnnl.cpp), with the
// batch split into one chunk per thread; float64 always runs tapegrad's own im2col path, which
// the gradient checks above verify. The two must agree on values and on all three gradients,
// for every configuration, with and without the fused relu, on one thread and on two (batches
// of 2 and 5 split evenly and unevenly).
TEST_CASE("float32 conv2d (oneDNN) agrees with the float64 path: values and gradients") {
  Generator gen(29);
  std::vector<Case> all = cases();
  all.push_back({"many channels, batch 5, padding 1", {5, 32, 9, 9}, {16, 32, 3, 3}, {.padding = 1}});
  all.push_back({"many channels, stride 2, groups 4", {3, 16, 11, 10}, {8, 4, 3, 3}, {.stride = 2, .groups = 4}});
  const int before = get_num_threads();
  for (const Case& c : all) {
    for (bool relu : {false, true}) {
      for (int threads : {1, 2}) {
        const std::string label = std::string(c.name) + (relu ? ", relu" : "") + ", threads " + std::to_string(threads);
        INFO(label);
        set_num_threads(threads);
        Tensor x = random(c.x, gen), w = random(c.w, gen), b = random({c.w[0]}, gen);
        TensorList results[2];
        Tensor weights_of_output;
        for (Dtype d : {float64, float32}) {
          Tensor xd = x.to(d).detach().requires_grad_(), wd = w.to(d).detach().requires_grad_();
          Tensor bd = c.bias ? b.to(d).detach().requires_grad_() : Tensor();
          Tensor y = relu ? conv2d_relu(xd, wd, bd, c.options) : conv2d(xd, wd, bd, c.options);
          if (!weights_of_output.defined()) weights_of_output = random(y.shape(), gen);
          sum(mul(y, weights_of_output.to(d))).backward();
          results[d == float32] = {y, xd.grad(), wd.grad(), c.bias ? bd.grad() : zeros({1}, d)};
        }
        for (std::size_t i = 0; i < 4; ++i) {
          INFO("result ", i, " (output, dx, dw, db)");
          CHECK(xt::allclose(results[1][i].to(float64).array<double>(), results[0][i].array<double>(), 1e-4, 1e-3));
        }
      }
    }
  }
  set_num_threads(before);
}

// conv2d_relu_max_pool2d is max_pool2d(conv2d_relu(...)) as one op. The fused kernels apply to
// 2x2 pooling at stride 2 after a direct-path conv; the weight and bias gradients take a pass of
// their own when the input needs no gradient (a first layer). Each case below is compared with
// the two ops (values and every gradient, float64 and float32), with the input needing a
// gradient and not.
TEST_CASE("conv2d_relu_max_pool2d equals max_pool2d(conv2d_relu()): values and gradients") {
  Generator gen(31);
  struct PoolCase {
    const char* name;
    Shape x, w;
    Conv2dArgs conv;
    MaxPool2dOptions pool;
    bool bias = true;
    bool zero_weight = false;  // every conv output is its bias: each window is a four-way tie
  };
  const std::vector<PoolCase> all = {
      {"MNIST's first layer", {3, 1, 28, 28}, {8, 1, 3, 3}, {}, {.kernel = 2}},
      {"20 windows a row (a batch and a part), 5x5 kernel (25 taps)", {2, 1, 44, 45}, {6, 1, 5, 5}, {}, {.kernel = 2}},
      {"2x4 kernel, padding same (1 left, 2 right), dilation 2 down",
       {3, 1, 10, 17},
       {4, 1, 2, 4},
       {.padding = "same", .dilation = {2, 1}},
       {.kernel = 2}},
      {"ties in every window", {2, 1, 12, 12}, {5, 1, 3, 3}, {}, {.kernel = 2}, true, true},
      {"odd conv output (11x10), C_out 5, no bias", {2, 1, 13, 12}, {5, 1, 3, 3}, {}, {.kernel = 2}, false},
      {"3 channels, padding 1, batch 1", {1, 3, 9, 14}, {6, 3, 3, 3}, {.padding = 1}, {.kernel = 2, .stride = 2}},
      {"not fused: 3x3 pooling, stride 2", {2, 1, 12, 12}, {4, 1, 3, 3}, {}, {.kernel = 3, .stride = 2}},
      {"not fused: many input channels", {2, 8, 9, 9}, {4, 8, 3, 3}, {}, {.kernel = 2}},
  };
  for (const PoolCase& c : all) {
    for (Dtype d : {float64, float32}) {
      for (const auto& [input_grad, flat] : {std::pair{false, false}, {true, false}, {false, true}, {true, true}}) {
        const std::string label = std::string(c.name) + (d == float64 ? ", float64" : ", float32") +
                                  (input_grad ? ", input needs a gradient" : ", input needs none") +
                                  (flat ? ", flattened" : "");
        INFO(label);
        Tensor x = randn(c.x, gen, d).requires_grad_(input_grad);
        Tensor w = (c.zero_weight ? zeros(c.w, d) : randn(c.w, gen, d)).requires_grad_();
        Tensor b = c.bias ? randn({c.w[0]}, gen, d).requires_grad_() : Tensor();
        Tensor fused = flat ? conv2d_relu_max_pool2d_flatten(x, w, b, c.conv, c.pool)
                            : conv2d_relu_max_pool2d(x, w, b, c.conv, c.pool);
        Tensor plain = max_pool2d(conv2d_relu(x, w, b, c.conv), c.pool);
        if (flat) plain = flatten(plain, 1, 3);
        REQUIRE(fused.shape() == plain.shape());
        CHECK(xt::allclose(fused.to(float64).array<double>(), plain.to(float64).array<double>(), 1e-6, 1e-6));
        Tensor g = randn(fused.shape(), gen, d);
        TensorList wrt = {w};
        if (c.bias) wrt.push_back(b);
        if (input_grad) wrt.push_back(x);
        const TensorList gf = tg::grad({sum(mul(fused, g))}, wrt);
        const TensorList gp = tg::grad({sum(mul(plain, g))}, wrt);
        for (std::size_t i = 0; i < gf.size(); ++i) {
          INFO("gradient ", i);
          CHECK(xt::allclose(gf[i].to(float64).array<double>(), gp[i].to(float64).array<double>(), 1e-4, 1e-4));
        }
      }
    }
  }
}

namespace {
// Equal values, NaN where the other has NaN, within a float32 tolerance elsewhere.
bool same_with_nan(const Tensor& a, const Tensor& b) {
  const Tensor x = a.detach().to(float64), y = b.detach().to(float64);
  if (x.shape() != y.shape()) return false;
  for (std::size_t i = 0; i < x.numel(); ++i) {
    const double u = x.data<double>()[i], v = y.data<double>()[i];
    if (std::isnan(u) != std::isnan(v) || (!std::isnan(u) && std::abs(u - v) > 1e-4 * (1 + std::abs(v)))) return false;
  }
  return true;
}
}  // namespace

// A NaN input or bias makes its windows' maximum NaN (PyTorch's max_pool2d: the last NaN in scan
// order takes the gradient, and relu lets NaN through): the fused kernels as the two ops.
TEST_CASE("conv2d_relu_max_pool2d propagates NaN as max_pool2d(conv2d_relu()) does") {
  Generator gen(43);
  for (Dtype d : {float64, float32})
    for (bool nan_in_bias : {true, false}) {
      INFO((d == float64 ? "float64" : "float32"), (nan_in_bias ? ", NaN bias of channel 1" : ", NaN input pixel"));
      Tensor x = randn({2, 1, 12, 20}, gen, d), w = randn({3, 1, 3, 3}, gen, d), b = randn({3}, gen, d);
      const double nan = std::numeric_limits<double>::quiet_NaN();
      if (nan_in_bias) {
        b = b.to(float64);
        b.mutable_array<double>()(1) = nan;
        b = b.to(d);
      } else {
        x = x.to(float64);
        x.mutable_array<double>()(1, 0, 5, 7) = nan;
        x = x.to(d);
      }
      x.requires_grad_(), w.requires_grad_(), b.requires_grad_();
      const Tensor fused = conv2d_relu_max_pool2d(x, w, b, {}, {.kernel = 2});
      const Tensor plain = max_pool2d(conv2d_relu(x, w, b, {}), {.kernel = 2});
      CHECK(std::isnan(max(fused).item()));
      CHECK(same_with_nan(fused, plain));
      const Tensor g = randn(fused.shape(), gen, d);
      const TensorList gf = tg::grad({sum(mul(fused, g))}, {x, w, b});
      const TensorList gp = tg::grad({sum(mul(plain, g))}, {x, w, b});
      for (std::size_t i = 0; i < 3; ++i) {
        INFO("gradient ", i);
        CHECK(same_with_nan(gf[i], gp[i]));
      }
    }
}

TEST_CASE("conv2d_relu_max_pool2d gradient checks, first and second order") {
  Generator gen(37);
  const Conv2dArgs conv{.padding = 1};
  const MaxPool2dOptions pool{.kernel = 2};
  Tensor x = random({2, 2, 7, 8}, gen).requires_grad_();
  Tensor w = random({3, 2, 3, 3}, gen).requires_grad_(), b = random({3}, gen).requires_grad_();
  // The first layer's case: the input is a constant, weight and bias take the fused pass.
  const Tensor x_const = x.detach();
  auto r = gradcheck([&](const TensorList& in) { return conv2d_relu_max_pool2d(x_const, in[0], in[1], conv, pool); },
                     {w, b});
  INFO(r.message);
  CHECK(r);
  for (bool flat : {false, true}) {
    const std::string label = flat ? "flattened" : "not flattened";
    INFO(label);
    auto op = [&](const TensorList& in) {
      return flat ? conv2d_relu_max_pool2d_flatten(in[0], in[1], in[2], conv, pool)
                  : conv2d_relu_max_pool2d(in[0], in[1], in[2], conv, pool);
    };
    auto r1 = gradcheck(op, {x, w, b});
    INFO(r1.message);
    CHECK(r1);
    auto r2 = gradgradcheck([&](const TensorList& in) { return pow(op(in), 2.0); }, {x, w, b});
    INFO(r2.message);
    CHECK(r2);
  }
}

TEST_CASE("Sequential runs Conv2d(relu) then MaxPool2d as one op with the layers' results") {
  Generator gen(53);
  nn::Sequential fused{nn::Conv2d(1, 6, 3, {.activation = nn::Activation::relu}), nn::MaxPool2d(2), nn::Flatten(),
                       nn::Linear(6 * 6 * 6, 4)};
  // The same layers with the relu as a module of its own: no pair to fuse.
  nn::Sequential plain{nn::Conv2d(1, 6, 3), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(6 * 6 * 6, 4)};
  {
    NoGradGuard no_grad;
    const auto fp = fused.parameters(), pp = plain.parameters();
    REQUIRE(fp.size() == pp.size());
    for (std::size_t i = 0; i < fp.size(); ++i) Tensor(pp[i]).copy_(fp[i]);  // handles share the parameter
  }
  Tensor x = randn({3, 1, 14, 14}, gen);
  Tensor yf = fused(x), yp = plain(x);
  CHECK(xt::allclose(yf.array<float>(), yp.array<float>(), 1e-5, 1e-5));
  sum(mul(yf, yf)).backward();
  sum(mul(yp, yp)).backward();
  const auto fp = fused.parameters(), pp = plain.parameters();
  for (std::size_t i = 0; i < fp.size(); ++i) {
    INFO("parameter ", i);
    CHECK(xt::allclose(fp[i].grad().array<float>(), pp[i].grad().array<float>(), 1e-4, 1e-4));
  }
  CHECK_THROWS_WITH_AS(fused(randn({3, 2, 14, 14}, gen)), doctest::Contains("Sequential layer 0: Conv2d(1, 6"), Error);
  // A Flatten that keeps the channels apart is a layer of its own, not part of the fused op.
  nn::Sequential partial{nn::Conv2d(1, 6, 3, {.activation = nn::Activation::relu}), nn::MaxPool2d(2), nn::Flatten(2)};
  CHECK(partial(x).shape() == Shape{3, 6, 36});
  nn::Sequential to_the_end{nn::Conv2d(1, 6, 3, {.activation = nn::Activation::relu}), nn::MaxPool2d(2),
                            nn::Flatten(1, 3)};
  CHECK(to_the_end(x).shape() == Shape{3, 216});
}

namespace {
// A Conv2d whose forward a user changed: Sequential must not fuse it with the pooling after it.
struct DoubledConv : nn::Conv2d {
  using nn::Conv2d::Conv2d;
  Tensor forward(const Tensor& x) override { return nn::Conv2d::forward(x) * 2.0; }
};
}  // namespace

// A MaxPool2d whose forward a user changed: a Conv2d before it must not take it into its fused op.
struct ShiftedPool : nn::MaxPool2d {
  using nn::MaxPool2d::MaxPool2d;
  Tensor forward(const Tensor& x) override { return nn::MaxPool2d::forward(x) + 1.0; }
};

TEST_CASE("Sequential keeps a Conv2d subclass's own forward before a MaxPool2d") {
  Generator gen(59);
  nn::Sequential model{DoubledConv(1, 4, 3, {.activation = nn::Activation::relu}), nn::MaxPool2d(2), nn::Flatten()};
  const auto conv = model.at<DoubledConv>(0);
  Tensor x = randn({2, 1, 10, 10}, gen);
  const Tensor expected = flatten(max_pool2d(conv2d_relu(x, conv->weight(), conv->bias()) * 2.0, {.kernel = 2}), 1);
  CHECK(xt::allclose(model(x).array<float>(), expected.array<float>(), 1e-6, 1e-6));
}

TEST_CASE("Sequential keeps a MaxPool2d subclass's own forward after a Conv2d") {
  Generator gen(61);
  nn::Sequential model{nn::Conv2d(1, 4, 3, {.activation = nn::Activation::relu}), ShiftedPool(2)};
  const auto conv = model.at<nn::Conv2d>(0);
  Tensor x = randn({2, 1, 10, 10}, gen);
  const Tensor expected = max_pool2d(conv2d_relu(x, conv->weight(), conv->bias()), {.kernel = 2}) + 1.0;
  CHECK(xt::allclose(model(x).array<float>(), expected.array<float>(), 1e-6, 1e-6));
}
