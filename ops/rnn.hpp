#pragma once
// The LSTM cell as three fused ops over the gate pre-activations [N, 4H] in PyTorch's order
// i, f, g, o (nn::LSTM runs them each step): per step they replace four slices and nine
// elementwise ops, each of which allocated and, in backward, zero-filled a [N, 4H] gradient.
// Each is twice differentiable.
#include <cstddef>

#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// pre [N, 4H] → [σ(i), σ(f), tanh(g), σ(o)] [N, 4H].
Tensor lstm_gates(const Tensor& pre, std::size_t hidden_size);

/// The cell state σf·c_prev + σi·tanh g [N, H] from act = lstm_gates(…) [N, 4H]; an undefined
/// c_prev is a zero state.
Tensor lstm_cell_state(const Tensor& act, const Tensor& c_prev, std::size_t hidden_size);

/// The hidden state σo·tanh c [N, H] from act [N, 4H] and the cell state c [N, H].
Tensor lstm_hidden_state(const Tensor& act, const Tensor& c, std::size_t hidden_size);

}  // namespace tg
