// conv2d's kernels: each picks its kernel family (kernels/conv_paths.hpp).
#include "tapegrad/kernels/conv.hpp"

#include <type_traits>

#include "tapegrad/kernels/conv_paths.hpp"

namespace tg::kernels {

bool direct_applies(const ConvGeometry& g) { return g.groups == 1 && g.sh == 1 && g.sw == 1 && g.patch() <= 32; }

bool relu_pool_applies(const ConvGeometry& g) { return direct_applies(g) && g.oh >= 2 && g.ow >= 2; }

template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, const ConvGeometry& g, bool relu, T* y) {
  if (direct_applies(g)) return active_table<DirectConv<T>>().forward(x, w, bias, g, relu, y);
  if constexpr (std::is_same_v<T, float>) {
    if (dnnl_conv::forward(x, w, bias, g, relu, y)) return;
  }
  im2col::forward(x, w, bias, g, relu, y);
}

template <class T>
void conv2d_backward_input(const T* gy, const T* w, const ConvGeometry& g, T* dx) {
  if constexpr (std::is_same_v<T, float>) {
    if (dnnl_conv::backward_data(gy, w, g, dx)) return;
  }
  im2col::backward_input(gy, w, g, dx);
}

template <class T>
void conv2d_backward_weight(const T* gy, const T* x, const ConvGeometry& g, T* dw) {
  if (direct_applies(g)) return active_table<DirectConv<T>>().backward_weight(gy, x, g, dw, nullptr, nullptr);
  if constexpr (std::is_same_v<T, float>) {
    if (dnnl_conv::backward_weights(gy, x, g, dw)) return;
  }
  im2col::backward_weight(gy, x, g, dw);
}

template <class T>
void conv2d_relu_backward_params(const T* gy, const T* relu_out, const T* x, const ConvGeometry& g, T* dw, T* db) {
  active_table<DirectConv<T>>().backward_weight(gy, x, g, dw, relu_out, db);
}

template <class T>
void conv2d_relu_max_pool2d_forward(const T* x, const T* w, const T* bias, const ConvGeometry& g, T* values, T* codes) {
  active_table<ConvReluPool<T>>().forward(x, w, bias, g, values, codes);
}

template <class T>
void conv2d_relu_max_pool2d_backward_params(const T* gp, const T* codes, const T* x, const ConvGeometry& g, T* dw,
                                            T* db) {
  active_table<ConvReluPool<T>>().backward_params(gp, codes, x, g, dw, db);
}

template <class T>
void relu_pool_indices(const T* codes, const ConvGeometry& g, std::int64_t* indices) {
  const std::size_t ph = g.oh / 2, pw = g.ow / 2;
  for (std::size_t p = 0; p < g.n * g.c_out; ++p)
    for (std::size_t pr = 0; pr < ph; ++pr)
      for (std::size_t pc = 0; pc < pw; ++pc, ++indices, ++codes) {
        // A zero window's gradient is 0, wherever it goes: its first position takes it.
        const std::size_t code = *codes == T(relu_pool_zero_window) ? 0 : static_cast<std::size_t>(*codes);
        *indices = static_cast<std::int64_t>((2 * pr + code / 2) * g.ow + 2 * pc + code % 2);
      }
}

#define TG_INSTANTIATE(T)                                                                                             \
  template void conv2d_forward<T>(const T*, const T*, const T*, const ConvGeometry&, bool, T*);                       \
  template void conv2d_backward_input<T>(const T*, const T*, const ConvGeometry&, T*);                                \
  template void conv2d_backward_weight<T>(const T*, const T*, const ConvGeometry&, T*);                               \
  template void conv2d_relu_backward_params<T>(const T*, const T*, const T*, const ConvGeometry&, T*, T*);            \
  template void conv2d_relu_max_pool2d_forward<T>(const T*, const T*, const T*, const ConvGeometry&, T*, T*);         \
  template void conv2d_relu_max_pool2d_backward_params<T>(const T*, const T*, const T*, const ConvGeometry&, T*, T*); \
  template void relu_pool_indices<T>(const T*, const ConvGeometry&, std::int64_t*);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tg::kernels
