#pragma once
// The LSTM cell's loops over the gate pre-activations [N, 4H] in PyTorch's order i, f, g, o:
// gate activations, cell state and hidden state, each with its backward. kernels/rnn_cell.cpp
// compiles them once per instruction set; these functions run the active level's.
#include <cstddef>

#include "tapegrad/kernels/cpu.hpp"

namespace tg::kernels {

/// The functions one instruction set's kernels/rnn_cell.cpp provides.
template <class T>
struct LstmCell {
  void (*gates)(const T* pre, std::size_t n, std::size_t hs, T* act);
  void (*gates_backward)(const T* g, const T* act, std::size_t n, std::size_t hs, T* d_pre);
  void (*cell)(const T* act, const T* c_prev, std::size_t n, std::size_t hs, T* c);
  void (*cell_backward)(const T* dc, const T* act, const T* c_prev, std::size_t n, std::size_t hs, T* d_act,
                        T* d_c_prev);
  void (*hidden)(const T* act, const T* tanh_c, std::size_t n, std::size_t hs, T* h);
  void (*hidden_backward)(const T* dh, const T* act, const T* tanh_c, std::size_t n, std::size_t hs, T* d_act, T* dc);
};
TG_DECLARE_KERNEL_TABLE(LstmCell)

/// act [N, 4H] = [σ(i), σ(f), tanh(g), σ(o)] of pre [N, 4H].
template <class T>
void lstm_gates(const T* pre, std::size_t n, std::size_t hs, T* act) {
  active_table<LstmCell<T>>().gates(pre, n, hs, act);
}

/// d_pre [N, 4H] = g·a(1-a) on the sigmoid blocks and g·(1-a²) on the tanh block (a = act).
template <class T>
void lstm_gates_backward(const T* g, const T* act, std::size_t n, std::size_t hs, T* d_pre) {
  active_table<LstmCell<T>>().gates_backward(g, act, n, hs, d_pre);
}

/// c [N, H] = σf·c_prev + σi·tanh g from act; c_prev null is a zero state.
template <class T>
void lstm_cell(const T* act, const T* c_prev, std::size_t n, std::size_t hs, T* c) {
  active_table<LstmCell<T>>().cell(act, c_prev, n, hs, c);
}

/// From dc [N, H]: d_act [N, 4H] = [dc·tanh g, dc·c_prev, dc·σi, 0] and d_c_prev [N, H] = dc·σf;
/// either output may be null (not wanted), c_prev null is a zero state.
template <class T>
void lstm_cell_backward(const T* dc, const T* act, const T* c_prev, std::size_t n, std::size_t hs, T* d_act,
                        T* d_c_prev) {
  active_table<LstmCell<T>>().cell_backward(dc, act, c_prev, n, hs, d_act, d_c_prev);
}

/// h [N, H] = σo·tanh_c, tanh_c [N, H] being tanh of the cell state.
template <class T>
void lstm_hidden(const T* act, const T* tanh_c, std::size_t n, std::size_t hs, T* h) {
  active_table<LstmCell<T>>().hidden(act, tanh_c, n, hs, h);
}

/// From dh [N, H]: d_act [N, 4H] = [0, 0, 0, dh·tanh_c] and dc [N, H] = dh·σo·(1 - tanh_c²);
/// either output may be null (not wanted).
template <class T>
void lstm_hidden_backward(const T* dh, const T* act, const T* tanh_c, std::size_t n, std::size_t hs, T* d_act, T* dc) {
  active_table<LstmCell<T>>().hidden_backward(dh, act, tanh_c, n, hs, d_act, dc);
}

}  // namespace tg::kernels
