// Conformance of the ops and layers of today's models with PyTorch, against
// tests/conformance/layers.json (scripts/make_conformance_layers.py): layer_norm, group_norm,
// embedding, scaled_dot_product_attention, conv1d, conv_transpose2d and einsum as op cases (values, gradients and
// second order, float64 and float32); MultiheadAttention, TransformerEncoderLayer and TransformerEncoder with PyTorch's
// weights loaded by name (outputs, attention weights and every gradient, float64); and the mnist example's vision
// transformer, whose PyTorch twin's weights load by name.
#include <memory>

#include "../examples/mnist/vision_transformer.hpp"
#include "conformance_support.hpp"

using namespace tg;
using namespace tg::conformance;

namespace {

using In = const TensorList&;
using P = const Json&;

Tensor optional_input(In x, std::size_t i) { return i < x.size() ? x[i] : Tensor(); }

const OpTable& transformer_ops() {
  static const OpTable ops = {
      {"layer_norm",
       [](In x, P p) {
         return layer_norm(x[0], p.at("normalized_shape").get<Shape>(), optional_input(x, 1), optional_input(x, 2),
                           p.at("eps").get<double>());
       }},
      {"group_norm",
       [](In x, P p) {
         return group_norm(x[0], p.at("num_groups").get<std::size_t>(), optional_input(x, 1), optional_input(x, 2),
                           p.at("eps").get<double>());
       }},
      {"embedding",
       [](In x, P p) {
         std::optional<std::int64_t> padding;
         if (p.contains("padding_idx")) padding = p.at("padding_idx").get<std::int64_t>();
         return embedding(x[0], x[1], padding);
       }},
      {"conv1d",
       [](In x, P p) {
         const Json& pad = p.at("padding");
         return conv1d(x[0], x[1], optional_input(x, 2),
                       {.stride = p.at("stride").get<std::int64_t>(),
                        .padding = pad.is_string() ? Padding(pad.get<std::string>()) : Padding(pad.get<std::int64_t>()),
                        .dilation = p.at("dilation").get<std::int64_t>(),
                        .groups = p.at("groups").get<std::int64_t>()});
       }},
      {"conv_transpose2d",
       [](In x, P p) {
         auto size2 = [&](const char* key) {
           return Size2(p.at(key)[0].get<std::int64_t>(), p.at(key)[1].get<std::int64_t>());
         };
         return conv_transpose2d(x[0], x[1], optional_input(x, 2),
                                 {.stride = size2("stride"),
                                  .padding = size2("padding"),
                                  .output_padding = size2("output_padding"),
                                  .dilation = size2("dilation"),
                                  .groups = p.at("groups").get<std::int64_t>()});
       }},
      {"einsum", [](In x, P p) { return einsum(p.at("equation").get<std::string>(), x); }},
      {"attention",
       [](In x, P p) {
         AttentionArgs args{.attn_mask = optional_input(x, 3), .is_causal = p.value("is_causal", false)};
         if (p.contains("scale")) args.scale = p.at("scale").get<double>();
         return scaled_dot_product_attention(x[0], x[1], x[2], args).output;
       }},
  };
  return ops;
}

nn::Activation activation_from(const Json& name) {
  REQUIRE((name == "relu" || name == "gelu"));
  return name == "gelu" ? nn::Activation::gelu : nn::Activation::relu;
}

nn::TransformerEncoderLayerOptions encoder_options(const Json& cfg) {
  return {.dim_feedforward = cfg.at("dim_feedforward").get<std::size_t>(),
          .activation = activation_from(cfg.at("activation")),
          .batch_first = true,
          .norm_first = cfg.at("norm_first").get<bool>()};
}

std::shared_ptr<nn::Module> make_module(const std::string& kind, const Json& cfg) {
  if (kind == "MultiheadAttention")
    return std::make_shared<nn::MultiheadAttention>(cfg.at("embed_dim").get<std::size_t>(),
                                                    cfg.at("num_heads").get<std::size_t>(),
                                                    nn::MultiheadAttentionOptions{
                                                        .bias = cfg.at("bias").get<bool>(),
                                                        .kdim = cfg.at("kdim").get<std::size_t>(),
                                                        .vdim = cfg.at("vdim").get<std::size_t>(),
                                                        .batch_first = cfg.at("batch_first").get<bool>(),
                                                    });
  const auto d = cfg.at("d_model").get<std::size_t>(), h = cfg.at("nhead").get<std::size_t>();
  if (kind == "VisionTransformer")
    return std::make_shared<mnist_example::VisionTransformer>(mnist_example::VisionTransformerOptions{
        .d_model = d,
        .nhead = h,
        .num_layers = cfg.at("num_layers").get<std::size_t>(),
        .dim_feedforward = cfg.at("dim_feedforward").get<std::size_t>(),
    });
  if (kind == "TransformerEncoderLayer")
    return std::make_shared<nn::TransformerEncoderLayer>(d, h, encoder_options(cfg));
  REQUIRE(kind == "TransformerEncoder");
  return std::make_shared<nn::TransformerEncoder>(d, h, cfg.at("num_layers").get<std::size_t>(), encoder_options(cfg),
                                                  nn::TransformerEncoderOptions{.final_norm = cfg.at("final_norm")});
}

void run_module_case(const Json& c) {
  const std::string name = c.at("name"), kind = c.at("module");
  INFO("case ", name);
  const Json& cfg = c.at("config");
  auto m = make_module(kind, cfg);
  m->to(float64);
  m->eval();
  // PyTorch's weights by name: the same names, and no parameter left out.
  std::map<std::string, Tensor> params;
  for (const auto& [pname, p] : m->named_parameters()) params.emplace(pname, p);
  REQUIRE(params.size() == c.at("parameters").size());
  {
    NoGradGuard no_grad;
    for (const Json& stored : c.at("parameters")) {
      const std::string pname = stored.at("name");
      REQUIRE_MESSAGE(params.count(pname) == 1, "no parameter ", pname);
      params.at(pname).copy_(tensor_from(stored, float64));
    }
  }
  std::map<std::string, Tensor> in;
  for (const auto& [key, value] : c.at("inputs").items()) {
    Tensor t = tensor_from(value, dtype_from(value.at("dtype")));
    if (t.dtype() == float64 && c.at("grads").at("inputs").contains(key)) t.requires_grad_();
    in.emplace(key, t);
  }
  auto input = [&](const char* key) { return in.count(key) ? in.at(key) : Tensor(); };
  Tensor out, weights;
  if (kind == "MultiheadAttention") {
    const Tensor q = in.at("query");
    const bool self = cfg.value("self", false);
    const nn::AttentionOutput r = std::static_pointer_cast<nn::MultiheadAttention>(m)->forward(
        q, self ? q : in.at("key"), self ? q : in.at("value"),
        {.key_padding_mask = input("key_padding_mask"),
         .attn_mask = input("attn_mask"),
         .average_attn_weights = cfg.value("average_attn_weights", true)});
    out = r.output, weights = r.weights;
  } else if (kind == "VisionTransformer") {
    out = m->forward_logits(in.at("x"));
  } else {
    const nn::EncoderCall call{.mask = input("mask"), .src_key_padding_mask = input("src_key_padding_mask")};
    out = kind == "TransformerEncoder"
              ? std::static_pointer_cast<nn::TransformerEncoder>(m)->forward(in.at("src"), call)
              : std::static_pointer_cast<nn::TransformerEncoderLayer>(m)->forward(in.at("src"), call);
  }
  check_close(out, c.at("output"), float64, name + " output");
  if (!c.at("weights").is_null()) check_close(weights, c.at("weights"), float64, name + " attention weights");
  sum(out * tensor_from(c.at("w"), float64)).backward();
  for (const auto& [key, g] : c.at("grads").at("inputs").items())
    check_close(in.at(key).grad(), g, float64, name + " d/d " + key);
  for (const auto& [pname, g] : c.at("grads").at("parameters").items())
    check_close(params.at(pname).grad(), g, float64, name + " d/d " + pname);
}

}  // namespace

TEST_CASE("conformance with PyTorch: normalization, embedding, attention, conv1d, conv_transpose2d, einsum") {
  run_op_cases("layers.json", transformer_ops());
}

TEST_CASE("conformance with PyTorch: every op in layers.json is tested") {
  check_coverage("layers.json", transformer_ops());
}

TEST_CASE("MultiheadAttention, the Transformer encoder and the example's vision transformer match PyTorch") {
  const Json& data = load("layers.json");
  std::set<std::string> kinds;
  for (const Json& c : data.at("modules")) {
    run_module_case(c);
    kinds.insert(c.at("module").get<std::string>());
  }
  CHECK(kinds == std::set<std::string>{"MultiheadAttention", "TransformerEncoder", "TransformerEncoderLayer",
                                       "VisionTransformer"});
  MESSAGE("layers.json (PyTorch ", data.at("torch").get<std::string>(), "): ", data.at("modules").size(),
          " module cases");
}
