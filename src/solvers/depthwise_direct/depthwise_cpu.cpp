// CPU twins of the depthwise kernels: direct loops, parallel over independent outputs, each
// output summed by one thread in a fixed order (fp32 accumulation, fp64 for f64).
#include <algorithm>
#include <vector>

#include "kernels/conv_geometry.h"
#include "kernels/dispatch.h"
#include "kernels/parallel.h"
#include "solvers/depthwise_direct/depthwise.h"

namespace gemmconv {
namespace depthwise {
namespace cpu {
namespace {

using Geo = ConvGeo<int64_t>;

template <class T>
void forward(const Geo& g, const T* x, const T* w, T* y) {
  using A = typename Elem<T>::acc;
  const int64_t m = g.kg;
  // Items: (sample, output channel) in either layout; a plane of output pixels each.
  parallel_for(g.n * g.k, g.out_pix * g.filt_pix, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t i = item / g.k, kk = item % g.k, ch = kk / m;
      const T* wk = w + kk * g.filt_pix;
      for (int64_t o0 = 0; o0 < g.out[0]; ++o0) {
        for (int64_t o1 = 0; o1 < g.out[1]; ++o1) {
          for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
            A acc = A(0);
            int64_t f = 0;
            for (int64_t t0 = 0; t0 < g.filt[0]; ++t0) {
              const int64_t i0 = tap_input(g, 0, o0, t0);
              const bool ok0 = i0 >= 0 && i0 < g.in[0];
              for (int64_t t1 = 0; t1 < g.filt[1]; ++t1) {
                const int64_t i1 = tap_input(g, 1, o1, t1);
                const bool ok1 = ok0 && i1 >= 0 && i1 < g.in[1];
                for (int64_t t2 = 0; t2 < g.filt[2]; ++t2, ++f) {
                  const int64_t i2 = tap_input(g, 2, o2, t2);
                  if (!ok1 || i2 < 0 || i2 >= g.in[2]) {
                    // A padded tap reads a zero; adding 0 * w keeps a NaN or infinite weight
                    // visible in the output, as PyTorch's zero-padded GEMM does.
                    acc += A(0) * Elem<T>::load(wk[f]);
                    continue;
                  }
                  acc += Elem<T>::load(x[g.x_off(i, ch, i0, i1, i2)]) * Elem<T>::load(wk[f]);
                }
              }
            }
            y[g.y_off(i, kk, o0, o1, o2)] = Elem<T>::store(acc);
          }
        }
      }
    }
  });
}

template <class T>
void backward_data(const Geo& g, const T* y, const T* w, T* x) {
  using A = typename Elem<T>::acc;
  const int64_t m = g.kg;
  parallel_for(g.n * g.c, g.in_pix * g.filt_pix * m, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t i = item / g.c, ch = item % g.c;
      for (int64_t i0 = 0; i0 < g.in[0]; ++i0) {
        for (int64_t i1 = 0; i1 < g.in[1]; ++i1) {
          for (int64_t i2 = 0; i2 < g.in[2]; ++i2) {
            A acc = A(0);
            for (int64_t j = 0; j < m; ++j) {
              const int64_t kk = ch * m + j;
              const T* wk = w + kk * g.filt_pix;
              int64_t f = 0;
              for (int64_t t0 = 0; t0 < g.filt[0]; ++t0) {
                const int64_t o0 = tap_output(g, 0, i0, t0);
                for (int64_t t1 = 0; t1 < g.filt[1]; ++t1) {
                  const int64_t o1 = tap_output(g, 1, i1, t1);
                  for (int64_t t2 = 0; t2 < g.filt[2]; ++t2, ++f) {
                    const int64_t o2 = tap_output(g, 2, i2, t2);
                    if (o0 < 0 || o1 < 0 || o2 < 0) continue;
                    acc += Elem<T>::load(y[g.y_off(i, kk, o0, o1, o2)]) * Elem<T>::load(wk[f]);
                  }
                }
              }
            }
            x[g.x_off(i, ch, i0, i1, i2)] = Elem<T>::store(acc);
          }
        }
      }
    }
  });
}

template <class T>
void backward_weight(const Geo& g, const T* x, const T* y, T* w) {
  using A = typename Elem<T>::acc;
  const int64_t m = g.kg;
  // One item per weight element (kk, tap); w is [k][taps] in both layouts since cg == 1.
  parallel_for(g.k * g.filt_pix, g.n * g.out_pix, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t kk = item / g.filt_pix, f = item % g.filt_pix, ch = kk / m;
      const int64_t t2 = f % g.filt[2], t1 = (f / g.filt[2]) % g.filt[1],
                    t0 = f / (g.filt[2] * g.filt[1]);
      A acc = A(0);
      for (int64_t i = 0; i < g.n; ++i) {
        for (int64_t o0 = 0; o0 < g.out[0]; ++o0) {
          const int64_t i0 = tap_input(g, 0, o0, t0);
          if (i0 < 0 || i0 >= g.in[0]) continue;
          for (int64_t o1 = 0; o1 < g.out[1]; ++o1) {
            const int64_t i1 = tap_input(g, 1, o1, t1);
            if (i1 < 0 || i1 >= g.in[1]) continue;
            for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
              const int64_t i2 = tap_input(g, 2, o2, t2);
              if (i2 < 0 || i2 >= g.in[2]) continue;
              acc += Elem<T>::load(x[g.x_off(i, ch, i0, i1, i2)]) *
                     Elem<T>::load(y[g.y_off(i, kk, o0, o1, o2)]);
            }
          }
        }
      }
      w[item] = Elem<T>::store(acc);
    }
  });
}

}  // namespace

Status run(const ConvShape& s, Direction d, const ConvTensors& t) {
  const Geo g = Geo::make(s);
  return dispatch_dtype(s.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* x = static_cast<T*>(t.x);
    T* w = static_cast<T*>(t.w);
    T* y = static_cast<T*>(t.y);
    if (d == Direction::forward) {
      forward<T>(g, x, w, y);
    } else if (d == Direction::backward_data) {
      backward_data<T>(g, y, w, x);
    } else {
      backward_weight<T>(g, x, y, w);
    }
    return Status();
  });
}

}  // namespace cpu
}  // namespace depthwise
}  // namespace gemmconv
