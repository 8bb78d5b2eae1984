// conv1d and conv_transpose2d (ops built on conv2d's) and their layers: equal to the conv2d forms,
// the adjoint identity, output sizes, float64 gradient and second-order checks, bad input. PyTorch's
// numbers are in test_conformance_layers.cpp.
#include "op_test_support.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;

TEST_CASE("conv1d is conv2d over a height of 1; gradients, second order, the layer") {
  using tg::testing::input;
  const Tensor x = input({2, 4, 9}, 81), w = input({6, 2, 3}, 82), b = input({6}, 83);
  const Tensor y = conv1d(x, w, b, {.stride = 2, .padding = 1, .dilation = 2, .groups = 2});
  const Tensor y2 = conv2d(unsqueeze(x, 2), unsqueeze(w, 2), b,
                           {.stride = {1, 2}, .padding = {0, 1}, .dilation = {1, 2}, .groups = 2});
  CHECK(y.shape() == Shape{2, 6, 4});
  CHECK(y.array<double>() == xt::squeeze(y2.array<double>(), 2));
  CHECK(conv1d(x, w, b, {.padding = "same", .groups = 2}).shape() == Shape{2, 6, 9});
  auto f = [](const TensorList& t) { return conv1d(t[0], t[1], t[2], {.stride = 2, .padding = 1}); };
  CHECK_GRADCHECK(f, {input({2, 3, 7}, 84), input({4, 3, 3}, 85), input({4}, 86)});
  CHECK_GRADGRADCHECK(f, {input({1, 2, 5}, 87), input({2, 2, 3}, 88), input({2}, 89)});
  CHECK_THROWS_WITH_AS(conv1d(zeros({2, 3}), zeros({4, 3, 3})),
                       doctest::Contains("conv1d: expected x [N, C_in, L], got [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(conv1d(zeros({1, 3, 5}), zeros({4, 3})),
                       doctest::Contains("conv1d: expected weight [C_out, C_in/groups, K], got [4, 3]"), Error);
  CHECK_THROWS_WITH_AS(conv1d(zeros({1, 3, 5}), zeros({4, 3, 3}), {}, {.padding = {1, 2}}),
                       doctest::Contains("conv1d: padding is one size"), Error);

  nn::Conv1d layer(4, 6, 3, {.padding = 1, .groups = 2});
  CHECK(layer.weight().shape() == Shape{6, 2, 3});
  CHECK(layer.repr() == "Conv1d(4, 6, kernel_size=(3,), stride=(1,), padding=(1,), groups=2)");
  CHECK(layer(zeros({2, 4, 10})).shape() == Shape{2, 6, 10});
  CHECK(layer(zeros({4, 10})).shape() == Shape{6, 10});
  CHECK_THROWS_WITH_AS(layer(zeros({2, 3, 10})),
                       doctest::Contains("expected input [N, 4, L] or [4, L], got [2, 3, 10]"), Error);
  CHECK_THROWS_WITH_AS(
      nn::Conv1d(4, 6, 3, {.groups = 4}),
      doctest::Contains("Conv1d: groups (4) must be positive and divide in_channels (4) and out_channels (6)"), Error);
}

TEST_CASE("conv_transpose2d is conv2d's input gradient; output size, gradients, second order, the layer") {
  using tg::testing::input;
  // Its adjoint property: <conv2d(u, w), v> = <u, conv_transpose2d(v, w)>.
  const Conv2dArgs conv{.stride = 2, .padding = 1, .dilation = 1, .groups = 1};
  const Tensor u = input({2, 3, 7, 6}, 91).detach(), w = input({4, 3, 3, 3}, 92).detach();
  const Tensor v = input({2, 4, 4, 3}, 93).detach();
  const Tensor t = conv_transpose2d(v, w, {}, {.stride = 2, .padding = 1});
  REQUIRE(t.shape() == Shape{2, 3, 7, 5});
  // output_padding adds the column the stride dropped, so the shapes of u come back.
  const Tensor t2 = conv_transpose2d(v, w, {}, {.stride = 2, .padding = 1, .output_padding = {0, 1}});
  REQUIRE(t2.shape() == Shape{2, 3, 7, 6});
  CHECK(sum(conv2d(u, w, {}, conv) * v).item<double>() == doctest::Approx(sum(u * t2).item<double>()).epsilon(1e-12));
  auto f = [](const TensorList& in) {
    return conv_transpose2d(in[0], in[1], in[2],
                            {.stride = {2, 1}, .padding = 1, .output_padding = {1, 0}, .groups = 2});
  };
  CHECK_GRADCHECK(f, {input({2, 4, 3, 3}, 94), input({4, 1, 3, 2}, 95), input({2}, 96)});
  CHECK_GRADGRADCHECK(f, {input({1, 4, 2, 3}, 97), input({4, 1, 2, 2}, 98), input({2}, 99)});
  CHECK_THROWS_WITH_AS(
      conv_transpose2d(zeros({1, 3, 4, 4}), zeros({2, 3, 3, 3})),
      doctest::Contains("conv_transpose2d: expected weight [C_in, C_out/groups, kH, kW] with C_in = 3"), Error);
  CHECK_THROWS_WITH_AS(
      conv_transpose2d(zeros({1, 3, 4, 4}), zeros({3, 2, 3, 3}), {}, {.stride = 2, .output_padding = 2}),
      doctest::Contains("output_padding (2, 2) must be below max(stride, dilation)"), Error);
  CHECK_THROWS_WITH_AS(conv_transpose2d(zeros({1, 3, 4, 4}), zeros({3, 2, 3, 3}), zeros({3})),
                       doctest::Contains("conv_transpose2d: expected bias [2], got [3]"), Error);
  CHECK_THROWS_WITH_AS(conv_transpose2d(zeros({1, 3, 1, 1}), zeros({3, 2, 1, 1}), {}, {.padding = 1}),
                       doctest::Contains("would be empty"), Error);

  nn::ConvTranspose2d layer(4, 2, 3, {.stride = 2, .padding = 1, .output_padding = 1});
  CHECK(layer.weight().shape() == Shape{4, 2, 3, 3});
  CHECK(layer.repr() ==
        "ConvTranspose2d(4, 2, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))");
  CHECK(layer(zeros({2, 4, 5, 5})).shape() == Shape{2, 2, 10, 10});
  CHECK(layer(zeros({4, 5, 5})).shape() == Shape{2, 10, 10});
  CHECK_THROWS_WITH_AS(layer(zeros({2, 3, 5, 5})),
                       doctest::Contains("expected input [N, 4, H, W] or [4, H, W], got [2, 3, 5, 5]"), Error);
}
