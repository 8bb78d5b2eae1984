#include "tapegrad/nn/rnn.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/nn/init.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/linalg.hpp"
#include "tapegrad/ops/rnn.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg::nn {
namespace {

std::int64_t i64(std::size_t v) { return static_cast<std::int64_t>(v); }

// Gate k of width h from pre-activations [N, G*H].
Tensor gate(const Tensor& x, std::size_t k, std::size_t h) { return slice(x, 1, i64(k * h), i64((k + 1) * h)); }

// w [R, C] (R >= C) ← a matrix with orthonormal columns: Gram-Schmidt on a standard normal draw,
// which is Keras's Orthogonal initializer (QR with the signs of R's diagonal made positive).
void orthogonal_(Tensor w, Generator& gen) {
  const std::size_t rows = w.shape(0), cols = w.shape(1);
  xt::xarray<double> a = randn({rows, cols}, gen, float64).array<double>();
  for (std::size_t j = 0; j < cols; ++j) {
    for (std::size_t k = 0; k < j; ++k) {
      double dot = 0.0;
      for (std::size_t i = 0; i < rows; ++i) dot += a(i, j) * a(i, k);
      for (std::size_t i = 0; i < rows; ++i) a(i, j) -= dot * a(i, k);
    }
    double norm = 0.0;
    for (std::size_t i = 0; i < rows; ++i) norm += a(i, j) * a(i, j);
    norm = std::sqrt(norm);
    for (std::size_t i = 0; i < rows; ++i) a(i, j) /= norm;
  }
  NoGradGuard no_grad;
  w.copy_(Tensor(std::move(a)));
}

}  // namespace

std::size_t RecurrentBase::gate_count(Cell cell) { return cell == Cell::lstm ? 4 : cell == Cell::gru ? 3 : 1; }

// The layer's name, also inside the constructor (where name()'s dynamic type is not yet known).
std::string_view RecurrentBase::kind() const {
  return cell_ == Cell::lstm ? "LSTM" : cell_ == Cell::gru ? "GRU" : "RNN";
}

RecurrentBase::RecurrentBase(Cell cell, std::size_t input_size, std::size_t hidden_size, std::size_t num_layers,
                             bool bias, bool bidirectional, bool return_sequences, RecurrentInit init,
                             Generator* generator)
    : cell_(cell),
      input_size_(input_size),
      hidden_size_(hidden_size),
      num_layers_(num_layers),
      directions_(bidirectional ? 2 : 1),
      bias_(bias),
      return_sequences_(return_sequences) {
  TG_CHECK(input_size > 0 && hidden_size > 0 && num_layers > 0,
           "{}: input_size, hidden_size and num_layers must be positive, got {}, {} and {}", kind(), input_size,
           hidden_size, num_layers);
  Generator& gen = generator ? *generator : default_generator();
  const std::size_t rows = gate_count(cell) * hidden_size;
  // PyTorch initializes every recurrent weight and bias U(-1/√H, 1/√H).
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  auto make = [&](const std::string& n, Shape shape, const std::function<void(Tensor&)>& keras_init) {
    Tensor t = register_parameter(n, zeros(shape));
    if (init == RecurrentInit::pytorch)
      init::uniform_(t, -bound, bound, gen);
    else
      keras_init(t);
    return t;
  };
  // PyTorch's order: layer k's forward parameters, then its reverse ones ("_reverse").
  for (std::size_t k = 0; k < num_layers; ++k) {
    for (std::size_t d = 0; d < directions_; ++d) {
      const std::string suffix = fmt::format("_l{}{}", k, d == 1 ? "_reverse" : "");
      LayerParams p;
      p.w_ih = make("weight_ih" + suffix, {rows, k == 0 ? input_size : directions_ * hidden_size},
                    [&](Tensor& t) { init::glorot_uniform_(t, gen); });
      // Keras's recurrent kernel [H, G*H] has orthonormal rows; weight_hh is its transpose.
      p.w_hh = make("weight_hh" + suffix, {rows, hidden_size}, [&](Tensor& t) { orthogonal_(t, gen); });
      if (bias) {
        p.b_ih = make("bias_ih" + suffix, {rows}, [&](Tensor& t) {
          // Zero but for the forget gate (i, f, g, o: the second block).
          if (cell == Cell::lstm) std::fill_n(t.mutable_array<float>().data() + hidden_size, hidden_size, 1.0f);
        });
        p.b_hh = make("bias_hh" + suffix, {rows}, [](Tensor&) {});
      }
      layers_.push_back(std::move(p));
    }
  }
}

const RecurrentBase::LayerParams& RecurrentBase::params(std::size_t layer, bool reverse) const {
  if (layer >= num_layers_ || (reverse && directions_ == 1))
    throw std::out_of_range(fmt::format("{}: no layer {}{} (num_layers {}{})", kind(), layer,
                                        reverse ? " reverse direction" : "", num_layers_,
                                        directions_ == 2 ? ", bidirectional" : ""));
  return layers_[layer * directions_ + (reverse ? 1 : 0)];
}

Tensor RecurrentBase::initial_state(const Tensor& given, std::size_t index, std::size_t batch) const {
  if (!given.defined()) return {};
  return reshape(slice(given, 0, i64(index), i64(index + 1)), {i64(batch), i64(hidden_size_)});
}

// An undefined h or c stands for a zero state: the first step then skips h W_hh^T and f*c.
TensorList RecurrentBase::run_layer(const LayerParams& p, const TensorList& xs, Tensor& h, Tensor& c) const {
  const std::size_t hs = hidden_size_;
  TensorList out;
  out.reserve(xs.size());
  for (const Tensor& x : xs) {
    // Two GEMMs per step, each with its own bias as PyTorch (GRU needs W_hn h + b_hn apart).
    // The input projection is per step, not one [N*T, F] GEMM before the loop: slicing that
    // result per step would make each step's backward zero-fill the whole [N, T, G*H] gradient
    // (quadratic in T), while x_t here needs no gradient in layer 0 and later layers read the
    // previous layer's step outputs without any slicing.
    const Tensor gi = linear(x, p.w_ih, p.b_ih);
    const Tensor gh = h.defined() ? linear(h, p.w_hh, p.b_hh) : p.b_hh;
    switch (cell_) {
      case Cell::rnn_tanh:
        h = tanh(gh.defined() ? gi + gh : gi);
        break;
      case Cell::rnn_relu:
        h = relu(gh.defined() ? gi + gh : gi);
        break;
      case Cell::lstm: {
        const Tensor act = lstm_gates(gh.defined() ? gi + gh : gi, hs);
        c = lstm_cell_state(act, c, hs);
        h = lstm_hidden_state(act, c, hs);
        break;
      }
      case Cell::gru: {
        // With a zero h, W_hh h + b_hh is b_hh (broadcast over the batch) or nothing.
        const auto hh = [&](std::int64_t from, std::int64_t to) {
          return h.defined() ? slice(gh, 1, from, to) : slice(gh, 0, from, to);
        };
        const Tensor rz_in = slice(gi, 1, 0, i64(2 * hs));
        const Tensor rz = sigmoid(gh.defined() ? rz_in + hh(0, i64(2 * hs)) : rz_in);
        const Tensor r = gate(rz, 0, hs), z = gate(rz, 1, hs);
        const Tensor n_in = gate(gi, 2, hs);
        const Tensor n = tanh(gh.defined() ? n_in + r * hh(i64(2 * hs), i64(3 * hs)) : n_in);
        // (1 - z)*n + z*h, with one op fewer.
        h = h.defined() ? n + z * (h - n) : n - z * n;
        break;
      }
    }
    out.push_back(h);
  }
  return out;
}

RecurrentBase::Run RecurrentBase::run(const Tensor& x, const RNNState& state) {
  const Shape s = x.shape();
  TG_CHECK(s.size() == 3, "{}: expected a batch-first sequence [N, T, {}], got shape {}", kind(), input_size_,
           shape_str(s));
  TG_CHECK(s[2] == input_size_, "{}: input has {} features per step but the layer has input_size {} (input {})", kind(),
           s[2], input_size_, shape_str(s));
  TG_CHECK(s[1] > 0, "{}: the sequence is empty (input {})", kind(), shape_str(s));
  const Dtype dtype = layers_[0].w_ih.dtype();
  TG_CHECK(x.dtype() == dtype, "{}: input is {} but the parameters are {}; convert one with to()", kind(), x.dtype(),
           dtype);
  const std::size_t batch = s[0], steps = s[1];
  const Shape state_shape{num_layers_ * directions_, batch, hidden_size_};
  auto check_state = [&](const Tensor& t, const char* what) {
    if (!t.defined()) return;
    TG_CHECK(t.shape() == state_shape, "{}: initial state {} must be [num_layers{}, N, hidden] = {}, got {}", kind(),
             what, directions_ == 2 ? " * 2" : "", shape_str(state_shape), shape_str(t.shape()));
    TG_CHECK(t.dtype() == dtype, "{}: initial state {} is {} but the parameters are {}", kind(), what, t.dtype(),
             dtype);
  };
  check_state(state.h, "h");
  if (cell_ == Cell::lstm)
    check_state(state.c, "c");
  else
    TG_CHECK(!state.c.defined(), "{}: has no cell state; pass only h", kind());

  // Steps as [N, F] tensors; layer k > 0 reads layer k-1's step outputs directly.
  TensorList seq;
  seq.reserve(steps);
  for (std::size_t t = 0; t < steps; ++t)
    seq.push_back(reshape(slice(x, 1, i64(t), i64(t + 1)), {i64(batch), i64(input_size_)}));
  Run r;
  for (std::size_t k = 0; k < num_layers_; ++k) {
    std::vector<TensorList> outs;
    for (std::size_t d = 0; d < directions_; ++d) {
      const std::size_t index = k * directions_ + d;
      Tensor h = initial_state(state.h, index, batch);
      Tensor c = initial_state(state.c, index, batch);
      if (d == 0) {
        outs.push_back(run_layer(layers_[index], seq, h, c));
      } else {
        // The reverse direction reads the steps from T-1 down to 0; its outputs go back to
        // their own time index.
        outs.push_back(run_layer(layers_[index], TensorList(seq.rbegin(), seq.rend()), h, c));
        std::reverse(outs[1].begin(), outs[1].end());
      }
      r.last_h.push_back(h);
      if (cell_ == Cell::lstm) r.last_c.push_back(c);
    }
    if (directions_ == 1) {
      seq = std::move(outs[0]);
      continue;
    }
    for (std::size_t t = 0; t < steps; ++t) seq[t] = concat({outs[0][t], outs[1][t]}, 1);
  }
  r.outputs = std::move(seq);
  return r;
}

RNNOutput RecurrentBase::forward_with_state(const Tensor& x, const RNNState& state) {
  Run r = run(x, state);
  RNNOutput result;
  result.output = stack(r.outputs, 1);
  result.h = stack(r.last_h, 0);
  if (!r.last_c.empty()) result.c = stack(r.last_c, 0);
  return result;
}

Tensor RecurrentBase::forward(const Tensor& x) {
  Run r = run(x, {});
  if (return_sequences_) return stack(r.outputs, 1);
  // Without return_sequences nothing is stacked: the result is the last layer's final state,
  // which for one direction is the last step's output, and for two (Keras's Bidirectional) the
  // forward output at T-1 next to the reverse output at t = 0.
  if (directions_ == 1) return r.last_h.back();
  return concat({r.last_h[r.last_h.size() - 2], r.last_h.back()}, 1);
}

std::string RecurrentBase::extra_repr() const {
  std::string s = fmt::format("{}, {}", input_size_, hidden_size_);
  if (num_layers_ > 1) s += fmt::format(", num_layers={}", num_layers_);
  if (cell_ == Cell::rnn_relu) s += ", nonlinearity=relu";
  if (!bias_) s += ", bias=false";
  s += ", batch_first=true";
  if (directions_ == 2) s += ", bidirectional=true";
  if (return_sequences_) s += ", return_sequences=true";
  return s;
}

RNN::RNN(std::size_t input_size, std::size_t hidden_size, RNNOptions options)
    : RecurrentBase(options.nonlinearity == RNNNonlinearity::relu ? Cell::rnn_relu : Cell::rnn_tanh, input_size,
                    hidden_size, options.num_layers, options.bias, options.bidirectional, options.return_sequences,
                    options.init, options.generator) {}

LSTM::LSTM(std::size_t input_size, std::size_t hidden_size, LSTMOptions options)
    : RecurrentBase(Cell::lstm, input_size, hidden_size, options.num_layers, options.bias, options.bidirectional,
                    options.return_sequences, options.init, options.generator) {}

GRU::GRU(std::size_t input_size, std::size_t hidden_size, GRUOptions options)
    : RecurrentBase(Cell::gru, input_size, hidden_size, options.num_layers, options.bias, options.bidirectional,
                    options.return_sequences, options.init, options.generator) {}

}  // namespace tg::nn
