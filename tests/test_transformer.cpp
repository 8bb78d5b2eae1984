// layer_norm, group_norm, embedding and attention ops, and the layers built on them (LayerNorm,
// GroupNorm, Embedding, MultiheadAttention, TransformerEncoderLayer/Encoder): values by hand,
// float64 gradient and second-order checks, the fused backward against the create_graph one, the
// layers' parameter names, shapes, masks and modes, and bad input. PyTorch's numbers are in
// test_conformance_layers.cpp.
#include <cmath>
#include <limits>

#include "op_test_support.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;
using tg::testing::input;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const xt::xarray<double> x = a.detach().to(float64).array<double>(), y = b.detach().to(float64).array<double>();
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x.data()[i] - y.data()[i]));
  return m;
}

std::vector<std::string> parameter_names(const nn::Module& m) {
  std::vector<std::string> names;
  for (const auto& [name, p] : m.named_parameters()) names.push_back(name);
  return names;
}

Tensor int_tensor(xt::xarray<std::int64_t> a) { return Tensor(std::move(a)); }

}  // namespace

TEST_CASE("layer_norm: values by hand, gradients, second order, fused backward") {
  // Row [1, 2, 3, 6]: mean 3, biased variance 3.5.
  const Tensor x = Tensor(xt::xarray<double>{{1, 2, 3, 6}, {0, 0, 0, 0}});
  const Tensor y = layer_norm(x, {4}, {}, {}, 0.0);
  const double s = std::sqrt(3.5);
  CHECK(y.array<double>()(0, 0) == doctest::Approx(-2 / s));
  CHECK(y.array<double>()(0, 3) == doctest::Approx(3 / s));
  // A constant row with eps 0 divides 0 by 0, as PyTorch: NaN.
  CHECK(std::isnan(y.array<double>()(1, 0)));
  // weight and bias apply after the normalization; float32 stays float32.
  const Tensor y2 = layer_norm(x.to(float32), {4}, full({4}, 2.0), full({4}, 1.0), 1e-5);
  CHECK(y2.dtype() == float32);
  CHECK(y2.array<float>()(1, 2) == doctest::Approx(1.0));

  for (const Shape& shape : {Shape{3, 5}, Shape{2, 3, 4}, Shape{4}}) {
    INFO("x ", shape_str(shape));
    const Shape ns = {shape.back()};
    const Tensor in = input(shape, 11), w = input(ns, 12), b = input(ns, 13);
    auto f = [ns](const TensorList& t) { return layer_norm(t[0], ns, t[1], t[2]); };
    CHECK_GRADCHECK(f, {in, w, b});
    CHECK_GRADGRADCHECK(f, {in, w, b});
  }
  // Over two trailing axes, without affine parameters.
  CHECK_GRADCHECK([](const TensorList& t) { return layer_norm(t[0], {3, 4}); }, {input({2, 3, 4}, 14)});
  CHECK_GRADGRADCHECK([](const TensorList& t) { return layer_norm(t[0], {3, 4}); }, {input({2, 3, 4}, 15)});

  // The fused plain backward equals the recorded one.
  const Tensor in = input({6, 8}, 16), w = input({8}, 17), b = input({8}, 18), g = input({6, 8}, 19).detach();
  const Tensor out = layer_norm(in, {8}, w, b);
  const TensorList plain = grad({out}, {in, w, b}, {.grad_outputs = {g}, .retain_graph = true});
  const TensorList composed = grad({out}, {in, w, b}, {.grad_outputs = {g}, .create_graph = true});
  for (std::size_t i = 0; i < 3; ++i) CHECK(max_abs_diff(plain[i], composed[i]) < 1e-12);
}

TEST_CASE("layer_norm and group_norm refuse bad input") {
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(layer_norm(x, {4}),
                       doctest::Contains("layer_norm: normalized_shape [4] must be the last axes of x, got x [2, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(layer_norm(x, {}), doctest::Contains("layer_norm: normalized_shape []"), Error);
  CHECK_THROWS_WITH_AS(layer_norm(x, {3}, zeros({2})),
                       doctest::Contains("layer_norm: weight has shape [2], expected normalized_shape [3]"), Error);
  CHECK_THROWS_WITH_AS(layer_norm(x, {3}, zeros({3}, float64)),
                       doctest::Contains("layer_norm: weight is float64 but x is float32"), Error);
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 3}, int64), {3}),
                       doctest::Contains("layer_norm: expected a float x, got int64 [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(group_norm(zeros({2, 6, 4}), 4),
                       doctest::Contains("group_norm: the 6 channels of x [2, 6, 4] do not split into 4 groups"),
                       Error);
  CHECK_THROWS_WITH_AS(group_norm(zeros({6}), 2), doctest::Contains("group_norm: expected x of rank >= 2"), Error);
  CHECK_THROWS_WITH_AS(group_norm(zeros({2, 6}), 2, zeros({3})),
                       doctest::Contains("group_norm: weight has shape [3], expected [6]"), Error);
}

TEST_CASE("group_norm: the group statistics, gradients and second order") {
  // Two groups of two channels: each group of each sample has mean 0 and variance 1 after.
  const Tensor x = input({3, 4, 5}, 21);
  const Tensor y = group_norm(x, 2, {}, {}, 0.0);
  const Tensor group = reshape(y, {3, 2, 10});
  CHECK(max_abs_diff(mean(group, {2}), zeros({3, 2}, float64)) < 1e-12);
  CHECK(max_abs_diff(mean(mul(group, group), {2}), ones({3, 2}, float64)) < 1e-12);
  auto f = [](const TensorList& t) { return group_norm(t[0], 2, t[1], t[2]); };
  CHECK_GRADCHECK(f, {input({2, 4, 3}, 22), input({4}, 23), input({4}, 24)});
  CHECK_GRADGRADCHECK(f, {input({2, 4, 3}, 25), input({4}, 26), input({4}, 27)});
}

TEST_CASE("embedding: rows by index, repeated indices add up, the padding row gets no gradient") {
  const Tensor w = input({5, 3}, 31);
  const Tensor idx = int_tensor({{1, 3, 1}, {0, 3, 3}});
  const Tensor out = embedding(idx, w);
  CHECK(out.shape() == Shape{2, 3, 3});
  CHECK(max_abs_diff(slice(reshape(out, {6, 3}), 0, 3, 4), slice(w, 0, 0, 1)) == 0);
  sum(out).backward();
  // Row 3 is used three times, row 1 twice, rows 2 and 4 never.
  const auto& g = w.grad().array<double>();
  CHECK(g(3, 0) == 3);
  CHECK(g(1, 2) == 2);
  CHECK(g(2, 1) == 0);
  CHECK(g(4, 0) == 0);

  const Tensor w2 = input({5, 3}, 32);
  sum(embedding(idx, w2, 3)).backward();
  CHECK(w2.grad().array<double>()(3, 0) == 0);
  CHECK(w2.grad().array<double>()(1, 0) == 2);
  // -2 counts from the end: row 3 again.
  const Tensor w3 = input({5, 3}, 33);
  sum(embedding(idx, w3, -2)).backward();
  CHECK(w3.grad().array<double>()(3, 1) == 0);

  // (With a padding_idx the padding row is cut from the graph on purpose, so no gradcheck there.)
  auto f = [idx](const TensorList& t) { return embedding(idx, t[0]); };
  CHECK_GRADCHECK(f, {input({5, 3}, 34)});
  CHECK_GRADGRADCHECK([idx](const TensorList& t) { return mul(embedding(idx, t[0]), embedding(idx, t[0])); },
                      {input({5, 3}, 35)});

  CHECK_THROWS_WITH_AS(embedding(int_tensor({0, 5}), w),
                       doctest::Contains("embedding: index 5 is out of range for weight [5, 3] (0 <= index < 5)"),
                       Error);
  CHECK_THROWS_WITH_AS(embedding(int_tensor({-1}), w), doctest::Contains("embedding: index -1 is out of range"), Error);
  CHECK_THROWS_WITH_AS(embedding(zeros({2}), w),
                       doctest::Contains("embedding: expected int64 indices, got float32 [2]"), Error);
  CHECK_THROWS_WITH_AS(embedding(idx, zeros({5})),
                       doctest::Contains("embedding: expected weight [num_embeddings, embedding_dim], got [5]"), Error);
  CHECK_THROWS_WITH_AS(embedding(idx, w, 5),
                       doctest::Contains("embedding: padding_idx 5 is out of range for 5 embeddings"), Error);
}

TEST_CASE("scaled_dot_product_attention: values, masks, gradients and second order") {
  // One query, two keys with scores 0 and log 3 (scale 1): weights 1/4 and 3/4.
  const Tensor q = Tensor(tg::testing::shaped<double>({1, 1}, {1.0}));
  const Tensor k = Tensor(tg::testing::shaped<double>({2, 1}, {0.0, std::log(3.0)}));
  const Tensor v = Tensor(xt::xarray<double>{{4.0, 0.0}, {0.0, 8.0}});
  const Attention a = scaled_dot_product_attention(q, k, v, {.scale = 1.0});
  CHECK(a.weights.array<double>()(0, 1) == doctest::Approx(0.75));
  CHECK(a.output.array<double>()(0, 0) == doctest::Approx(1.0));
  CHECK(a.output.array<double>()(0, 1) == doctest::Approx(6.0));
  // Forbidding key 1 (int64 mask) leaves key 0 only; a float mask of -inf is the same.
  const Attention m = scaled_dot_product_attention(q, k, v, {.attn_mask = int_tensor({{0, 1}}), .scale = 1.0});
  CHECK(m.output.array<double>()(0, 0) == doctest::Approx(4.0));
  const Attention mf =
      scaled_dot_product_attention(q, k, v, {.attn_mask = Tensor(xt::xarray<double>{{0.0, -kInf}}), .scale = 1.0});
  CHECK(max_abs_diff(m.output, mf.output) == 0);
  // Causal: query 0 sees key 0 only.
  const Tensor q2 = input({2, 3}, 41), k2 = input({2, 3}, 42), v2 = input({2, 2}, 43);
  const Attention c = scaled_dot_product_attention(q2, k2, v2, {.is_causal = true});
  CHECK(c.weights.array<double>()(0, 1) == 0);
  CHECK(max_abs_diff(slice(c.output, 0, 0, 1), slice(v2, 0, 0, 1)) < 1e-15);
  const xt::xarray<double> cm = causal_mask(2, 3, float64).array<double>();
  CHECK((cm(0, 0) == 0 && cm(0, 1) == -kInf && cm(0, 2) == -kInf && cm(1, 1) == 0 && cm(1, 2) == -kInf));

  auto f = [](const TensorList& t) {
    return scaled_dot_product_attention(t[0], t[1], t[2], {.is_causal = true}).output;
  };
  CHECK_GRADCHECK(f, {input({2, 3, 4}, 44), input({2, 5, 4}, 45), input({2, 5, 2}, 46)});
  CHECK_GRADGRADCHECK(f, {input({2, 3, 4}, 47), input({2, 5, 4}, 48), input({2, 5, 2}, 49)});

  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(zeros({2, 3}), zeros({4, 2}), zeros({4, 2})),
                       doctest::Contains("scaled_dot_product_attention: q [2, 3], k [4, 2] and v [4, 2] do not fit"),
                       Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(zeros({3}), zeros({4, 3}), zeros({4, 2})),
                       doctest::Contains("expected q [..., L, E]"), Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(zeros({2, 3}), zeros({4, 3}, float64), zeros({4, 2})),
                       doctest::Contains("one float dtype, got float32, float64 and float32"), Error);
}

TEST_CASE("LayerNorm and GroupNorm layers: parameters, repr, shapes") {
  nn::LayerNorm ln(8);
  CHECK(parameter_names(ln) == std::vector<std::string>{"weight", "bias"});
  CHECK(ln.repr() == "LayerNorm((8,), eps=1e-05, elementwise_affine=true)");
  CHECK(nn::LayerNorm(Shape{4, 5}).repr() == "LayerNorm((4, 5), eps=1e-05, elementwise_affine=true)");
  CHECK(ln(zeros({2, 3, 8})).shape() == Shape{2, 3, 8});
  CHECK(nn::LayerNorm(8, {.elementwise_affine = false}).parameters().empty());
  CHECK(parameter_names(nn::LayerNorm(8, {.bias = false})) == std::vector<std::string>{"weight"});
  CHECK_THROWS_WITH_AS(
      ln(zeros({2, 7})),
      doctest::Contains("LayerNorm((8,), eps=1e-05, elementwise_affine=true): expected input [..., 8], got [2, 7]"),
      Error);
  CHECK_THROWS_WITH_AS(nn::LayerNorm(Shape{}), doctest::Contains("LayerNorm: normalized_shape must be non-empty"),
                       Error);

  nn::GroupNorm gn(2, 6);
  CHECK(parameter_names(gn) == std::vector<std::string>{"weight", "bias"});
  CHECK(gn.repr() == "GroupNorm(2, 6, eps=1e-05, affine=true)");
  CHECK(gn(zeros({2, 6, 3, 3})).shape() == Shape{2, 6, 3, 3});
  CHECK_THROWS_WITH_AS(gn(zeros({2, 4, 3})), doctest::Contains("expected input [N, 6, ...], got [2, 4, 3]"), Error);
  CHECK_THROWS_WITH_AS(
      nn::GroupNorm(4, 6),
      doctest::Contains(
          "GroupNorm: num_channels must be a positive multiple of num_groups, got 6 channels in 4 groups"),
      Error);
}

TEST_CASE("Embedding layer: N(0, 1) table, zero padding row, repr") {
  Generator gen(5);
  nn::Embedding emb(10, 4, {.padding_idx = -1, .generator = &gen});
  CHECK(emb.padding_idx() == 9);
  CHECK(emb.repr() == "Embedding(10, 4, padding_idx=9)");
  CHECK(parameter_names(emb) == std::vector<std::string>{"weight"});
  const auto& w = emb.weight().array<float>();
  for (std::size_t j = 0; j < 4; ++j) CHECK(w(9, j) == 0);
  CHECK(w(0, 0) != 0);
  const Tensor out = emb(int_tensor({{9, 2}, {2, 0}}));
  CHECK(out.shape() == Shape{2, 2, 4});
  sum(out).backward();
  CHECK(emb.weight().grad().array<float>()(9, 0) == 0);
  CHECK(emb.weight().grad().array<float>()(2, 0) == 2);
  CHECK_THROWS_WITH_AS(emb(zeros({2})), doctest::Contains("Embedding(10, 4, padding_idx=9): expected int64 indices"),
                       Error);
  CHECK_THROWS_WITH_AS(nn::Embedding(10, 4, {.padding_idx = 10}),
                       doctest::Contains("Embedding: padding_idx must be within [-10, 10), got 10"), Error);
}

TEST_CASE("MultiheadAttention: PyTorch's names, layouts, the packed and separate projections") {
  Generator gen(3);
  nn::MultiheadAttention mha(8, 2, {.batch_first = true, .generator = &gen});
  CHECK(parameter_names(mha) ==
        std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"});
  CHECK(mha.repr() == "MultiheadAttention(embed_dim=8, num_heads=2, batch_first=true)");
  mha.to(float64);
  const Tensor x = input({2, 5, 8}, 51);
  // Self-attention takes one product with the packed weight; equal but distinct tensors take
  // three: the same numbers.
  const nn::AttentionOutput packed = mha.forward(x, x, x);
  const nn::AttentionOutput separate = mha.forward(x.detach(), x.detach(), x.detach());
  CHECK(max_abs_diff(packed.output, separate.output) < 1e-14);
  CHECK(packed.weights.shape() == Shape{2, 5, 5});
  CHECK(max_abs_diff(sum(packed.weights, {2}), ones({2, 5}, float64)) < 1e-14);
  CHECK(mha.forward(x, x, x, {.average_attn_weights = false}).weights.shape() == Shape{2, 2, 5, 5});
  CHECK_FALSE(mha.forward(x, x, x, {.need_weights = false}).weights.defined());
  CHECK(max_abs_diff(mha(x), packed.output) == 0);

  // Sequence first (PyTorch's default) is the batch-first computation transposed.
  nn::MultiheadAttention seq(8, 2, {.generator = &gen});
  seq.to(float64);
  {
    NoGradGuard g;
    const auto src = mha.named_parameters(), dst = seq.named_parameters();
    for (std::size_t i = 0; i < src.size(); ++i) Tensor(dst[i].second).copy_(src[i].second);
  }
  CHECK(max_abs_diff(transpose(seq(transpose(x, 0, 1)), 0, 1), packed.output) < 1e-14);
  // Unbatched [L, E] is batch 1 without the axis.
  CHECK(max_abs_diff(mha(slice(x, 0, 1, 2)), slice(packed.output, 0, 1, 2)) < 1e-14);
  CHECK(mha(reshape(slice(x, 0, 1, 2), {5, 8})).shape() == Shape{5, 8});

  // kdim and vdim: separate projection weights, PyTorch's names.
  nn::MultiheadAttention cross(4, 2, {.kdim = 3, .vdim = 6, .batch_first = true});
  CHECK(parameter_names(cross) == std::vector<std::string>{"q_proj_weight", "k_proj_weight", "v_proj_weight",
                                                           "in_proj_bias", "out_proj.weight", "out_proj.bias"});
  CHECK(cross.forward(zeros({2, 3, 4}), zeros({2, 7, 3}), zeros({2, 7, 6})).output.shape() == Shape{2, 3, 4});
  CHECK(cross.repr() == "MultiheadAttention(embed_dim=4, num_heads=2, kdim=3, vdim=6, batch_first=true)");
}

TEST_CASE("MultiheadAttention: masks, gradients, dropout only in training, bad input") {
  nn::MultiheadAttention mha(4, 2, {.dropout = 0.5, .batch_first = true});
  mha.to(float64);
  mha.eval();
  const Tensor x = input({2, 3, 4}, 61);
  // A padded key gets no weight from any query.
  const nn::AttentionOutput r = mha.forward(x, x, x, {.key_padding_mask = int_tensor({{0, 0, 1}, {0, 0, 0}})});
  for (std::size_t l = 0; l < 3; ++l) CHECK(r.weights.array<double>()(0, l, 2) == 0);
  CHECK(r.weights.array<double>()(1, 0, 2) > 0);
  // Causal: query 0 attends to key 0 only.
  const nn::AttentionOutput c = mha.forward(x, x, x, {.is_causal = true});
  CHECK(c.weights.array<double>()(1, 0, 0) == doctest::Approx(1.0));
  // Gradient checks through the whole layer, with masks.
  auto f = [&](const TensorList& t) {
    return mha
        .forward(
            t[0], t[1], t[1],
            {.key_padding_mask = int_tensor({{0, 0, 1}, {0, 0, 0}}), .attn_mask = int_tensor({{0, 1, 0}, {0, 0, 0}})})
        .output;
  };
  CHECK_GRADCHECK(f, {input({2, 2, 4}, 62), input({2, 3, 4}, 63)});
  CHECK_GRADGRADCHECK(f, {input({2, 2, 4}, 64), input({2, 3, 4}, 65)});
  // Evaluation is deterministic; training drops attention weights.
  CHECK(max_abs_diff(mha(x), mha(x)) == 0);
  mha.train();
  CHECK(max_abs_diff(mha(x), mha(x)) > 0);
  mha.eval();

  CHECK_THROWS_WITH_AS(
      mha(zeros({2, 3, 5}, float64)),
      doctest::Contains(
          "MultiheadAttention(embed_dim=4, num_heads=2, dropout=0.5, batch_first=true): expected query [N, L, 4]"),
      Error);
  CHECK_THROWS_WITH_AS(mha.forward(x, x, x, {.attn_mask = zeros({3, 4})}),
                       doctest::Contains("attn_mask must be [3, 3] or [4, 3, 3], got [3, 4]"), Error);
  CHECK_THROWS_WITH_AS(mha.forward(x, x, x, {.key_padding_mask = zeros({3, 2})}),
                       doctest::Contains("key_padding_mask must be [2, 3], got [3, 2]"), Error);
  CHECK_THROWS_WITH_AS(mha.forward(x, slice(x, 0, 0, 1), slice(x, 0, 0, 1)), doctest::Contains("disagree on the batch"),
                       Error);
  CHECK_THROWS_WITH_AS(
      nn::MultiheadAttention(6, 4),
      doctest::Contains(
          "MultiheadAttention: embed_dim must be a positive multiple of num_heads, got embed_dim 6 and 4 heads"),
      Error);
}

TEST_CASE("TransformerEncoderLayer and TransformerEncoder: names, norm placement, masks, gradients") {
  Generator gen(9);
  nn::TransformerEncoderLayer layer(8, 2, {.dim_feedforward = 16, .batch_first = true, .generator = &gen});
  CHECK(parameter_names(layer) ==
        std::vector<std::string>{"self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                                 "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                                 "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"});
  layer.to(float64);
  layer.eval();
  const Tensor x = input({2, 3, 8}, 71);
  const Tensor y = layer(x);
  CHECK(y.shape() == Shape{2, 3, 8});
  // Post-norm: each position's output is a LayerNorm output (mean 0 with the initial affine).
  CHECK(max_abs_diff(mean(y, {2}), zeros({2, 3}, float64)) < 1e-12);
  auto f = [&](const TensorList& t) {
    return layer.forward(t[0], {.src_key_padding_mask = int_tensor({{0, 0, 1}, {0, 0, 0}})});
  };
  CHECK_GRADCHECK(f, {input({2, 3, 8}, 72)});

  nn::TransformerEncoderLayer pre(
      8, 2, {.dim_feedforward = 16, .activation = nn::Activation::gelu, .batch_first = true, .norm_first = true});
  pre.to(float64);
  pre.eval();
  CHECK_GRADGRADCHECK([&](const TensorList& t) { return pre.forward(t[0], {.is_causal = true}); },
                      {input({1, 3, 8}, 73)});
  CHECK_THROWS_WITH_AS(nn::TransformerEncoderLayer(8, 2, {.activation = nn::Activation::tanh}),
                       doctest::Contains("TransformerEncoderLayer: activation must be relu or gelu, got tanh"), Error);

  nn::TransformerEncoder enc(8, 2, 3, {.dim_feedforward = 16, .batch_first = true}, {.final_norm = true});
  CHECK(enc.layers().size() == 3);
  const auto names = parameter_names(enc);
  CHECK(names.front() == "layers.0.self_attn.in_proj_weight");
  CHECK(names[names.size() - 3] == "layers.2.norm2.bias");
  CHECK(names.back() == "norm.bias");
  // Each layer starts from its own draw.
  CHECK(max_abs_diff(enc.layers()[0]->self_attn()->out_proj()->weight(),
                     enc.layers()[1]->self_attn()->out_proj()->weight()) > 0);
  CHECK(enc(zeros({2, 5, 8})).shape() == Shape{2, 5, 8});
  CHECK_THROWS_WITH_AS(nn::TransformerEncoder(8, 2, 0),
                       doctest::Contains("TransformerEncoder: num_layers must be positive"), Error);
}

TEST_CASE("Linear with a gelu activation") {
  nn::Linear fc(3, 2, {.activation = nn::Activation::gelu});
  const Tensor x = ones({1, 3});
  CHECK(max_abs_diff(fc(x), gelu(linear(x, fc.weight(), fc.bias()))) == 0);
  CHECK(fc.repr() == "Linear(in_features=3, out_features=2, bias=true, activation=gelu)");
}
