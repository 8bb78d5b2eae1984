#pragma once
// A small vision transformer for 28x28 images: 7x7 patches as 16 tokens, a linear patch
// embedding plus learned positions, a pre-norm Transformer encoder, the mean token, and a
// softmax classifier. Its parameter names are those of the PyTorch module written the same way
// (examples/mnist/vision_transformer.py), so weights move both ways.
#include "tapegrad/autograd/check.hpp"
#include "tapegrad/nn/init.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/nn/transformer.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"
#include "tapegrad/ops/softmax.hpp"

namespace mnist_example {

/// The sizes of the model; the defaults are the example's.
struct VisionTransformerOptions {
  std::size_t d_model = 64;           ///< features per token
  std::size_t nhead = 4;              ///< attention heads
  std::size_t num_layers = 2;         ///< encoder layers
  std::size_t dim_feedforward = 128;  ///< hidden features of each feed-forward block
  double dropout = 0.0;               ///< the model underfits MNIST in five epochs: none helps
  std::size_t num_classes = 10;
};

/// x [N, 1, 28, 28] → class probabilities [N, num_classes].
class VisionTransformer : public tg::nn::Module {
 public:
  static constexpr std::int64_t kPatch = 7, kGrid = 28 / kPatch, kTokens = kGrid * kGrid;

  explicit VisionTransformer(VisionTransformerOptions o = {}) {
    using namespace tg::nn;
    patch_embed_ = register_module("patch_embed", std::make_shared<Linear>(kPatch * kPatch, o.d_model));
    pos_embed_ = register_parameter("pos_embed", tg::zeros({1, static_cast<std::size_t>(kTokens), o.d_model}));
    init::normal_(pos_embed_, 0.0, 0.02);
    encoder_ =
        register_module("encoder", std::make_shared<TransformerEncoder>(o.d_model, o.nhead, o.num_layers,
                                                                        TransformerEncoderLayerOptions{
                                                                            .dim_feedforward = o.dim_feedforward,
                                                                            .dropout = o.dropout,
                                                                            .activation = Activation::gelu,
                                                                            .batch_first = true,
                                                                            .norm_first = true,
                                                                        },
                                                                        TransformerEncoderOptions{.final_norm = true}));
    head_ = register_module("head", std::make_shared<Linear>(o.d_model, o.num_classes));
  }

  tg::Tensor forward(const tg::Tensor& x) override { return tg::softmax(forward_logits(x), -1); }
  bool has_logits() const override { return true; }

  /// The scores before the softmax.
  tg::Tensor forward_logits(const tg::Tensor& x) override {
    TG_CHECK(x.ndim() == 4 && x.shape(1) == 1 && x.shape(2) == 28 && x.shape(3) == 28,
             "VisionTransformer: expected images [N, 1, 28, 28], got {}", tg::shape_str(x.shape()));
    const auto n = static_cast<std::int64_t>(x.shape(0));
    // [N, 1, 28, 28] → [N, 4, 7, 4, 7] → [N, 4, 4, 7, 7] → 16 tokens of 49 pixels, row by row.
    const tg::Tensor patches = tg::reshape(
        tg::permute(tg::reshape(x, {n, kGrid, kPatch, kGrid, kPatch}), {0, 1, 3, 2, 4}), {n, kTokens, kPatch * kPatch});
    const tg::Tensor tokens = encoder_->forward(tg::add(patch_embed_->forward(patches), pos_embed_));
    return head_->forward(tg::mean(tokens, {1}));
  }

 private:
  std::shared_ptr<tg::nn::Linear> patch_embed_, head_;
  std::shared_ptr<tg::nn::TransformerEncoder> encoder_;
  tg::Tensor pos_embed_;
};

}  // namespace mnist_example
