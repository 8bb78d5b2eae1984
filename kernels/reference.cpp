#include "tapegrad/kernels/reference.hpp"

#include <cmath>
#include <limits>

namespace tg::kernels::reference {
namespace {

// Calls f(x_index, w_index, y_index) for every (output, tap) pair of the convolution whose tap
// reads inside the input (padding reads zero and contributes nothing).
template <class F>
void for_each_tap(const ConvGeometry& g, F f) {
  const std::size_t cgi = g.cg_in(), cgo = g.cg_out();
  for (std::size_t n = 0; n < g.n; ++n)
    for (std::size_t co = 0; co < g.c_out; ++co) {
      const std::size_t group = co / cgo;
      for (std::size_t r = 0; r < g.oh; ++r)
        for (std::size_t q = 0; q < g.ow; ++q)
          for (std::size_t ci = 0; ci < cgi; ++ci)
            for (std::size_t i = 0; i < g.kh; ++i)
              for (std::size_t j = 0; j < g.kw; ++j) {
                const auto row = static_cast<std::int64_t>(r * g.sh + i * g.dh) - static_cast<std::int64_t>(g.pad_top);
                const auto col = static_cast<std::int64_t>(q * g.sw + j * g.dw) - static_cast<std::int64_t>(g.pad_left);
                if (row < 0 || col < 0 || row >= static_cast<std::int64_t>(g.h) ||
                    col >= static_cast<std::int64_t>(g.w))
                  continue;
                const std::size_t channel = group * cgi + ci;
                f(((n * g.c_in + channel) * g.h + static_cast<std::size_t>(row)) * g.w + static_cast<std::size_t>(col),
                  ((co * cgi + ci) * g.kh + i) * g.kw + j, ((n * g.c_out + co) * g.oh + r) * g.ow + q);
              }
    }
}

}  // namespace

std::vector<double> conv2d(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& bias,
                           const ConvGeometry& g, bool relu) {
  std::vector<double> y(g.n * g.c_out * g.out_plane(), 0.0);
  for_each_tap(g, [&](std::size_t xi, std::size_t wi, std::size_t yi) { y[yi] += x[xi] * w[wi]; });
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (!bias.empty()) y[i] += bias[i / g.out_plane() % g.c_out];
    if (relu) y[i] = y[i] <= 0 ? 0.0 : y[i];  // NaN stays
  }
  return y;
}

std::vector<double> conv2d_backward_input(const std::vector<double>& gy, const std::vector<double>& w,
                                          const ConvGeometry& g) {
  std::vector<double> dx(g.n * g.c_in * g.h * g.w, 0.0);
  for_each_tap(g, [&](std::size_t xi, std::size_t wi, std::size_t yi) { dx[xi] += gy[yi] * w[wi]; });
  return dx;
}

std::vector<double> conv2d_backward_weight(const std::vector<double>& gy, const std::vector<double>& x,
                                           const ConvGeometry& g) {
  std::vector<double> dw(g.c_out * g.patch(), 0.0);
  for_each_tap(g, [&](std::size_t xi, std::size_t wi, std::size_t yi) { dw[wi] += gy[yi] * x[xi]; });
  return dw;
}

void max_pool2d(const std::vector<double>& x, const PoolGeometry& g, std::vector<double>& values,
                std::vector<std::int64_t>& indices) {
  values.assign(g.planes() * g.out_plane(), 0.0);
  indices.assign(values.size(), 0);
  for (std::size_t p = 0; p < g.planes(); ++p)
    for (std::size_t r = 0; r < g.oh; ++r)
      for (std::size_t q = 0; q < g.ow; ++q) {
        const auto [r0, r1] = g.rows(r);
        const auto [c0, c1] = g.cols(q);
        double best = -std::numeric_limits<double>::infinity();
        std::size_t at = r0 * g.w + c0;
        for (std::size_t i = r0; i < r1; ++i)
          for (std::size_t j = c0; j < c1; ++j) {
            const double v = x[p * g.in_plane() + i * g.w + j];
            if (v > best || std::isnan(v)) best = v, at = i * g.w + j;  // the first maximum, or the last NaN
          }
        values[p * g.out_plane() + r * g.ow + q] = best;
        indices[p * g.out_plane() + r * g.ow + q] = static_cast<std::int64_t>(at);
      }
}

std::vector<double> avg_pool2d(const std::vector<double>& x, const PoolGeometry& g, bool count_include_pad) {
  std::vector<double> y(g.planes() * g.out_plane(), 0.0);
  for (std::size_t p = 0; p < g.planes(); ++p)
    for (std::size_t r = 0; r < g.oh; ++r)
      for (std::size_t q = 0; q < g.ow; ++q) {
        const auto [r0, r1] = g.rows(r);
        const auto [c0, c1] = g.cols(q);
        double sum = 0;
        for (std::size_t i = r0; i < r1; ++i)
          for (std::size_t j = c0; j < c1; ++j) sum += x[p * g.in_plane() + i * g.w + j];
        const double divisor = count_include_pad ? double(g.kh * g.kw) : double((r1 - r0) * (c1 - c0));
        y[p * g.out_plane() + r * g.ow + q] = sum / divisor;
      }
  return y;
}

}  // namespace tg::kernels::reference
