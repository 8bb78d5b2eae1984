#include "tapegrad/nn/attention.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/nn/init.hpp"
#include "tapegrad/ops/attention.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/linalg.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg::nn {
namespace {

using I = std::int64_t;
I i64(std::size_t v) { return static_cast<I>(v); }

// [N, L, H*D] → [N, H, L, D]: one head per slice of the features.
Tensor split_heads(const Tensor& x, std::size_t heads) {
  return permute(reshape(x, {i64(x.shape(0)), i64(x.shape(1)), i64(heads), -1}), {0, 2, 1, 3});
}

}  // namespace

MultiheadAttention::MultiheadAttention(std::size_t embed_dim, std::size_t num_heads, MultiheadAttentionOptions options)
    : embed_dim_(embed_dim),
      num_heads_(num_heads),
      kdim_(options.kdim ? options.kdim : embed_dim),
      vdim_(options.vdim ? options.vdim : embed_dim),
      options_(options) {
  TG_CHECK(embed_dim > 0 && num_heads > 0 && embed_dim % num_heads == 0,
           "MultiheadAttention: embed_dim must be a positive multiple of num_heads, got embed_dim {} and {} heads",
           embed_dim, num_heads);
  TG_CHECK(options.dropout >= 0 && options.dropout < 1, "MultiheadAttention: dropout must be in [0, 1), got {}",
           options.dropout);
  Generator& gen = options.generator ? *options.generator : default_generator();
  const std::size_t e = embed_dim;
  if (kdim_ == e && vdim_ == e) {
    in_proj_weight_ = register_parameter("in_proj_weight", zeros({3 * e, e}));
    init::glorot_uniform_(in_proj_weight_, gen);
  } else {
    q_proj_weight_ = register_parameter("q_proj_weight", zeros({e, e}));
    k_proj_weight_ = register_parameter("k_proj_weight", zeros({e, kdim_}));
    v_proj_weight_ = register_parameter("v_proj_weight", zeros({e, vdim_}));
    for (Tensor& w : {std::ref(q_proj_weight_), std::ref(k_proj_weight_), std::ref(v_proj_weight_)})
      init::glorot_uniform_(w, gen);
  }
  if (options.bias) in_proj_bias_ = register_parameter("in_proj_bias", zeros({3 * e}));
  out_proj_ = register_module("out_proj",
                              std::make_shared<Linear>(e, e, LinearOptions{.bias = options.bias, .generator = &gen}));
}

Tensor MultiheadAttention::forward(const Tensor& x) { return forward(x, x, x, {.need_weights = false}).output; }

AttentionOutput MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                            const AttentionCall& call) {
  const bool unbatched = query.ndim() == 2;
  TG_CHECK((query.ndim() == 3 || unbatched) && key.ndim() == query.ndim() && value.ndim() == query.ndim() &&
               query.shape(-1) == embed_dim_ && key.shape(-1) == kdim_ && value.shape(-1) == vdim_,
           "{}: expected query [{}, {}], key [{}, {}] and value [{}, {}] ([L, {}] ... unbatched), got {}, {} and {}",
           repr(), options_.batch_first ? "N, L" : "L, N", embed_dim_, options_.batch_first ? "N, S" : "S, N", kdim_,
           options_.batch_first ? "N, S" : "S, N", vdim_, embed_dim_, shape_str(query.shape()), shape_str(key.shape()),
           shape_str(value.shape()));
  // Work batch first: [N, L, E].
  auto batch_first = [&](const Tensor& t) {
    if (unbatched) return unsqueeze(t, 0);
    return options_.batch_first ? t : transpose(t, 0, 1);
  };
  const Tensor q_in = batch_first(query), k_in = batch_first(key), v_in = batch_first(value);
  const std::size_t n = q_in.shape(0), l = q_in.shape(1), s = k_in.shape(1);
  TG_CHECK(k_in.shape(0) == n && v_in.shape(0) == n && v_in.shape(1) == s,
           "{}: query {}, key {} and value {} disagree on the batch or the key length", repr(),
           shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()));

  // Projections: one product for self-attention with the packed weight, else one per input.
  const I e = i64(embed_dim_);
  auto bias_part = [&](I i) {
    return in_proj_bias_.defined() ? slice(in_proj_bias_, 0, i * e, (i + 1) * e) : Tensor();
  };
  Tensor q, k, v;
  if (in_proj_weight_.defined() && query.is_same(key) && key.is_same(value)) {
    const Tensor qkv =
        permute(reshape(linear(q_in, in_proj_weight_, in_proj_bias_), {i64(n), i64(l), 3, i64(num_heads_), -1}),
                {2, 0, 3, 1, 4});  // [3, N, H, L, D]
    q = squeeze(slice(qkv, 0, 0, 1), 0), k = squeeze(slice(qkv, 0, 1, 2), 0), v = squeeze(slice(qkv, 0, 2, 3), 0);
  } else {
    auto weight_part = [&](I i, const Tensor& separate) {
      return in_proj_weight_.defined() ? slice(in_proj_weight_, 0, i * e, (i + 1) * e) : separate;
    };
    q = split_heads(linear(q_in, weight_part(0, q_proj_weight_), bias_part(0)), num_heads_);
    k = split_heads(linear(k_in, weight_part(1, k_proj_weight_), bias_part(1)), num_heads_);
    v = split_heads(linear(v_in, weight_part(2, v_proj_weight_), bias_part(2)), num_heads_);
  }

  // The masks as one float mask broadcasting to the scores [N, H, L, S].
  Tensor mask;
  auto add_mask = [&](const Tensor& m) { mask = mask.defined() ? add(mask, m) : m; };
  if (call.attn_mask.defined()) {
    const Shape& ms = call.attn_mask.shape();
    const bool per_head = ms == Shape{n * num_heads_, l, s} || (unbatched && ms == Shape{num_heads_, l, s});
    const bool shared = ms == Shape{l, s};
    TG_CHECK(shared || per_head, "{}: attn_mask must be [{}, {}] or [{}, {}, {}], got {}", repr(), l, s, n * num_heads_,
             l, s, shape_str(ms));
    const Tensor m = additive_mask(call.attn_mask, q.dtype(), "MultiheadAttention: attn_mask");
    add_mask(per_head ? reshape(m, {i64(n), i64(num_heads_), i64(l), i64(s)}) : m);
  }
  if (call.key_padding_mask.defined()) {
    const Shape& ms = call.key_padding_mask.shape();
    const bool fits = ms == Shape{n, s} || (unbatched && ms == Shape{s});
    TG_CHECK(fits, "{}: key_padding_mask must be [{}, {}], got {}", repr(), n, s, shape_str(ms));
    add_mask(reshape(additive_mask(call.key_padding_mask, q.dtype(), "MultiheadAttention: key_padding_mask"),
                     {i64(n), 1, 1, i64(s)}));
  }
  const Attention a = scaled_dot_product_attention(q, k, v,
                                                   {.attn_mask = mask,
                                                    .is_causal = call.is_causal,
                                                    .dropout_p = options_.dropout,
                                                    .training = is_training(),
                                                    .generator = options_.generator});
  // [N, H, L, D] → [N, L, E], then the output projection.
  Tensor out = (*out_proj_)(reshape(permute(a.output, {0, 2, 1, 3}), {i64(n), i64(l), e}));
  out = unbatched ? squeeze(out, 0) : options_.batch_first ? out : transpose(out, 0, 1);
  Tensor weights;
  if (call.need_weights) {
    weights = call.average_attn_weights ? mean(a.weights, {1}) : a.weights;
    if (unbatched) weights = squeeze(weights, 0);
  }
  return {out, weights};
}

std::string MultiheadAttention::extra_repr() const {
  std::string r = fmt::format("embed_dim={}, num_heads={}", embed_dim_, num_heads_);
  if (options_.dropout > 0) r += fmt::format(", dropout={}", options_.dropout);
  if (!options_.bias) r += ", bias=false";
  if (kdim_ != embed_dim_) r += fmt::format(", kdim={}", kdim_);
  if (vdim_ != embed_dim_) r += fmt::format(", vdim={}", vdim_);
  return r + fmt::format(", batch_first={}", options_.batch_first);
}

}  // namespace tg::nn
