#pragma once
// Recurrent layers over batch-first sequences: RNN (tanh or relu), LSTM and GRU, stacked in
// num_layers. Parameters, gate order and initialization are PyTorch's, so weights load from and
// results match torch.nn.RNN/LSTM/GRU(batch_first=True):
//   layer k: weight_ih_lk [G*H, in], weight_hh_lk [G*H, H], bias_ih_lk [G*H], bias_hh_lk [G*H]
//   with G = 1 (RNN), 4 (LSTM, gates i, f, g, o), 3 (GRU, gates r, z, n), all U(-1/√H, 1/√H)
//   unless RecurrentInit::keras is chosen.
// bidirectional adds to every layer a second direction, run from the last step to the first, with
// its own weight_ih_lk_reverse, weight_hh_lk_reverse, bias_ih_lk_reverse, bias_hh_lk_reverse
// (registered after layer k's forward ones). Each step's output is then [forward, reverse] (2H
// features, the reverse direction's output at its own time index), layer k > 0 reads 2H
// features, and the states are [num_layers * 2, N, H] ordered layer 0 forward, layer 0 reverse,
// layer 1 forward, ..., as torch.nn.RNN/LSTM/GRU(batch_first=True, bidirectional=True). The last
// output (forward without return_sequences) is Keras's Bidirectional one: [forward output at
// T-1, reverse output at t = 0], the two directions' final states.
// RNN and GRU steps are built from the tape's primitive ops (linear, slice, sigmoid, tanh, mul,
// add); LSTM steps from the fused cell ops of ops/rnn.hpp (lstm_gates, lstm_cell_state,
// lstm_hidden_state). Either way gradients, double backward and float64 gradient checks come
// from ops that are checked on their own.
#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// The elementwise function of a plain RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh).
enum class RNNNonlinearity { tanh, relu };

/// How a recurrent layer's parameters start.
enum class RecurrentInit {
  pytorch,  ///< every weight and bias U(-1/√H, 1/√H), as torch.nn.RNN/LSTM/GRU
  /// Keras's defaults: weight_ih glorot_uniform, weight_hh orthogonal, biases zero except the
  /// LSTM forget gate's b_ih = 1 (unit_forget_bias); trains faster on long sequences.
  keras,
};

/// Options of RNN.
struct RNNOptions {
  std::size_t num_layers = 1;  ///< stacked layers; layer k > 0 reads layer k-1's outputs
  /// tanh (the default) or relu.
  RNNNonlinearity nonlinearity = RNNNonlinearity::tanh;
  bool bias = true;               ///< learn b_ih and b_hh
  bool bidirectional = false;     ///< add a reverse direction to every layer (outputs 2H features)
  bool return_sequences = false;  ///< forward(x) gives [N,T,D*H] (true) or the last output [N,D*H] (Keras's default)
  /// PyTorch's initialization (the default) or Keras's.
  RecurrentInit init = RecurrentInit::pytorch;
  Generator* generator = nullptr;  ///< for the initial weights; default_generator() if null
};

/// Options of LSTM and GRU.
struct LSTMOptions {
  std::size_t num_layers = 1;     ///< stacked layers; layer k > 0 reads layer k-1's outputs
  bool bias = true;               ///< learn b_ih and b_hh
  bool bidirectional = false;     ///< add a reverse direction to every layer (outputs 2H features)
  bool return_sequences = false;  ///< forward(x) gives [N,T,D*H] (true) or the last output [N,D*H] (Keras's default)
  /// PyTorch's initialization (the default) or Keras's.
  RecurrentInit init = RecurrentInit::pytorch;
  Generator* generator = nullptr;  ///< for the initial weights; default_generator() if null
};
/// GRU takes the same options as LSTM.
using GRUOptions = LSTMOptions;

// Below, D is 2 for a bidirectional layer and 1 otherwise.

/// Initial state of a recurrent layer; undefined members mean zeros.
struct RNNState {
  Tensor h = {};  ///< [num_layers * D, N, H], index layer * D + direction (0 forward, 1 reverse)
  Tensor c = {};  ///< [num_layers * D, N, H], LSTM only
};

/// What a recurrent layer computes for a whole sequence.
struct RNNOutput {
  Tensor output;  ///< [N, T, D*H]: the last layer's output at every step ([forward, reverse])
  Tensor h;       ///< [num_layers * D, N, H]: each layer's and direction's output after its last step
  Tensor c;       ///< [num_layers * D, N, H]: each layer's and direction's last cell state (LSTM only)
};

/// The machinery shared by RNN, LSTM and GRU: parameters, checks and the layer/time loops.
class RecurrentBase : public Module {
 public:
  /// x [N, T, input_size] (+ state) → output [N, T, D*H], last states [num_layers * D, N, H].
  RNNOutput forward_with_state(const Tensor& x, const RNNState& state = {});
  /// x [N, T, input_size] → [N, T, D*H] with return_sequences, else the last output [N, D*H]
  /// (bidirectional: [forward output at T-1, reverse output at t = 0], as Keras's Bidirectional).
  Tensor forward(const Tensor& x) override;
  /// "10, 20, batch_first=true", with num_layers, nonlinearity=relu, bias=false, bidirectional=true,
  /// return_sequences=true if set.
  std::string extra_repr() const override;

  /// Features per step of the input.
  std::size_t input_size() const { return input_size_; }
  /// H, the features of each layer's state and output.
  std::size_t hidden_size() const { return hidden_size_; }
  /// Number of stacked layers.
  std::size_t num_layers() const { return num_layers_; }
  /// Whether every layer also runs a reverse direction.
  bool bidirectional() const { return directions_ == 2; }
  /// Whether forward returns every step's output [N, T, H] rather than the last one [N, H].
  bool return_sequences() const { return return_sequences_; }
  /// weight_ih_lk [G*H, in_k] of layer k (G gates); weight_ih_lk_reverse with `reverse`.
  const Tensor& weight_ih(std::size_t layer, bool reverse = false) const { return params(layer, reverse).w_ih; }
  /// weight_hh_lk [G*H, H] (or weight_hh_lk_reverse).
  const Tensor& weight_hh(std::size_t layer, bool reverse = false) const { return params(layer, reverse).w_hh; }
  /// bias_ih_lk [G*H] (or bias_ih_lk_reverse; undefined without bias).
  const Tensor& bias_ih(std::size_t layer, bool reverse = false) const { return params(layer, reverse).b_ih; }
  /// bias_hh_lk [G*H] (or bias_hh_lk_reverse; undefined without bias).
  const Tensor& bias_hh(std::size_t layer, bool reverse = false) const { return params(layer, reverse).b_hh; }

 protected:
  /// The recurrence a layer runs.
  enum class Cell { rnn_tanh, rnn_relu, lstm, gru };
  /// Creates num_layers layers of `cell`, initialized by `init` from `generator` (the default one when null).
  RecurrentBase(Cell cell, std::size_t input_size, std::size_t hidden_size, std::size_t num_layers, bool bias,
                bool bidirectional, bool return_sequences, RecurrentInit init, Generator* generator);

 private:
  struct LayerParams {
    Tensor w_ih, w_hh, b_ih, b_hh;
  };
  /// Per-step outputs of the last layer and each layer's (and direction's) last states.
  struct Run {
    TensorList outputs, last_h, last_c;
  };
  /// The parameters of one layer and direction; throws std::out_of_range for a missing one.
  const LayerParams& params(std::size_t layer, bool reverse) const;
  static std::size_t gate_count(Cell cell);
  std::string_view kind() const;
  Run run(const Tensor& x, const RNNState& state);
  /// One layer over the sequence: inputs x_t [N, in] → outputs h_t [N, H]; h and c are the
  /// initial states on entry and the last ones on return.
  TensorList run_layer(const LayerParams& p, const TensorList& xs, Tensor& h, Tensor& c) const;
  /// Entry `index` (layer * D + direction) of a given state as [N, H], or undefined (zeros) when
  /// none is given.
  Tensor initial_state(const Tensor& given, std::size_t index, std::size_t batch) const;

  Cell cell_;
  std::size_t input_size_;
  std::size_t hidden_size_;
  std::size_t num_layers_;
  std::size_t directions_;  ///< D: 2 when bidirectional, else 1
  bool bias_;
  bool return_sequences_;
  std::vector<LayerParams> layers_;  ///< index layer * D + direction
};

/// Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu.
/// x [N, T, input_size] → [N, T, D*hidden] (return_sequences) or [N, D*hidden].
class RNN : public RecurrentBase {
 public:
  /// input_size features per step, hidden_size per state; throws when one of them or num_layers is 0.
  RNN(std::size_t input_size, std::size_t hidden_size, RNNOptions options = {});
};

/// LSTM (PyTorch's equations, gates i, f, g, o):
///   i, f, o = σ(x W_i·^T + b_i· + h W_h·^T + b_h·), g = tanh(...), c' = f*c + i*g, h' = o*tanh(c').
/// x [N, T, input_size] → [N, T, D*hidden] (return_sequences) or [N, D*hidden].
class LSTM : public RecurrentBase {
 public:
  /// input_size features per step, hidden_size per state; throws when one of them or num_layers is 0.
  LSTM(std::size_t input_size, std::size_t hidden_size, LSTMOptions options = {});
};

/// GRU (PyTorch's equations, gates r, z, n):
///   r, z = σ(x W_i·^T + b_i· + h W_h·^T + b_h·), n = tanh(x W_in^T + b_in + r*(h W_hn^T + b_hn)),
///   h' = (1 - z)*n + z*h.
/// x [N, T, input_size] → [N, T, D*hidden] (return_sequences) or [N, D*hidden].
class GRU : public RecurrentBase {
 public:
  /// input_size features per step, hidden_size per state; throws when one of them or num_layers is 0.
  GRU(std::size_t input_size, std::size_t hidden_size, GRUOptions options = {});
};

}  // namespace tg::nn
