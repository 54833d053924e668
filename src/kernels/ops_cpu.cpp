// CPU twins of the ops: plain loops, parallel over independent outputs, deterministic.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/conv_geometry.h"
#include "kernels/dispatch.h"
#include "kernels/ops_gpu.h"
#include "kernels/parallel.h"
#include "kernels/reference_conv.h"

namespace gemmconv {
namespace cpu_ops {
namespace {

template <class T>
T zero_of() {
  return Elem<T>::store(typename Elem<T>::acc(0));
}

template <class T>
void im2col_contiguous(const ConvShape& s, const T* x, T* col, int64_t n0, int64_t nb,
                       const ops::ColStrides& cs) {
  const int64_t C = s.c, P = s.out_pixels(), IP = s.in_pixels();
  const T zero = zero_of<T>();
  parallel_for(nb * C, s.filt_pixels() * P, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t i = row / C, c = row % C;
      const T* xp = x + ((n0 + i) * C + c) * IP;
      T* cp = col + i * cs.n + c * cs.c;
      int64_t f = 0;
      for (int64_t t0 = 0; t0 < s.filt[0]; ++t0) {
        for (int64_t t1 = 0; t1 < s.filt[1]; ++t1) {
          for (int64_t t2 = 0; t2 < s.filt[2]; ++t2, ++f) {
            T* dst = cp + f * cs.f;
            int64_t p = 0;
            for (int64_t o0 = 0; o0 < s.out[0]; ++o0) {
              const int64_t i0 = tap_input(s, 0, o0, t0);
              const bool ok0 = i0 >= 0 && i0 < s.in[0];
              for (int64_t o1 = 0; o1 < s.out[1]; ++o1) {
                const int64_t i1 = tap_input(s, 1, o1, t1);
                const bool ok01 = ok0 && i1 >= 0 && i1 < s.in[1];
                const T* src = xp + (i0 * s.in[1] + i1) * s.in[2];
                for (int64_t o2 = 0; o2 < s.out[2]; ++o2, ++p) {
                  const int64_t i2 = tap_input(s, 2, o2, t2);
                  dst[p] = (ok01 && i2 >= 0 && i2 < s.in[2]) ? src[i2] : zero;
                }
              }
            }
          }
        }
      }
    }
  });
}

template <class T>
void im2col_channels_last(const ConvShape& s, const T* x, T* col, int64_t n0, int64_t nb) {
  const int64_t C = s.c, Cg = s.cg(), F = s.filt_pixels(), P = s.out_pixels();
  const int64_t row_len = C * F;
  const T zero = zero_of<T>();
  parallel_for(nb * P, row_len, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t i = row / P, p = row % P;
      const int64_t o2 = p % s.out[2], o1 = (p / s.out[2]) % s.out[1],
                    o0 = p / (s.out[2] * s.out[1]);
      T* cr = col + row * row_len;
      int64_t f = 0;
      for (int64_t t0 = 0; t0 < s.filt[0]; ++t0) {
        const int64_t i0 = tap_input(s, 0, o0, t0);
        for (int64_t t1 = 0; t1 < s.filt[1]; ++t1) {
          const int64_t i1 = tap_input(s, 1, o1, t1);
          for (int64_t t2 = 0; t2 < s.filt[2]; ++t2, ++f) {
            const int64_t i2 = tap_input(s, 2, o2, t2);
            const bool ok =
                i0 >= 0 && i0 < s.in[0] && i1 >= 0 && i1 < s.in[1] && i2 >= 0 && i2 < s.in[2];
            const T* src =
                ok ? x + (((n0 + i) * s.in[0] + i0) * s.in[1] + i1) * s.in[2] * C + i2 * C
                   : nullptr;
            for (int64_t g = 0; g < s.g; ++g) {
              T* dst = cr + g * F * Cg + f * Cg;
              if (ok) {
                std::copy(src + g * Cg, src + (g + 1) * Cg, dst);
              } else {
                std::fill(dst, dst + Cg, zero);
              }
            }
          }
        }
      }
    }
  });
}

template <class T>
void col2im_contiguous(const ConvShape& s, const T* col, T* x, int64_t n0, int64_t nb,
                       const ops::ColStrides& cs) {
  using A = typename Elem<T>::acc;
  const int64_t C = s.c, IP = s.in_pixels();
  parallel_for(nb * C, s.filt_pixels() * s.out_pixels(), [&](int64_t b, int64_t e) {
    std::vector<A> plane(static_cast<size_t>(IP));
    for (int64_t row = b; row < e; ++row) {
      const int64_t i = row / C, c = row % C;
      std::fill(plane.begin(), plane.end(), A(0));
      const T* cp = col + i * cs.n + c * cs.c;
      int64_t f = 0;
      // Each plane element receives its terms in (tap, output pixel) order: fixed, per row.
      for (int64_t t0 = 0; t0 < s.filt[0]; ++t0) {
        for (int64_t t1 = 0; t1 < s.filt[1]; ++t1) {
          for (int64_t t2 = 0; t2 < s.filt[2]; ++t2, ++f) {
            const T* src = cp + f * cs.f;
            int64_t p = 0;
            for (int64_t o0 = 0; o0 < s.out[0]; ++o0) {
              const int64_t i0 = tap_input(s, 0, o0, t0);
              const bool ok0 = i0 >= 0 && i0 < s.in[0];
              for (int64_t o1 = 0; o1 < s.out[1]; ++o1) {
                const int64_t i1 = tap_input(s, 1, o1, t1);
                if (!ok0 || i1 < 0 || i1 >= s.in[1]) {
                  p += s.out[2];
                  continue;
                }
                A* dst = plane.data() + (i0 * s.in[1] + i1) * s.in[2];
                for (int64_t o2 = 0; o2 < s.out[2]; ++o2, ++p) {
                  const int64_t i2 = tap_input(s, 2, o2, t2);
                  if (i2 >= 0 && i2 < s.in[2]) dst[i2] += Elem<T>::load(src[p]);
                }
              }
            }
          }
        }
      }
      T* xp = x + ((n0 + i) * C + c) * IP;
      for (int64_t j = 0; j < IP; ++j) xp[j] = Elem<T>::store(plane[static_cast<size_t>(j)]);
    }
  });
}

template <class T>
void col2im_channels_last(const ConvShape& s, const T* col, T* x, int64_t n0, int64_t nb) {
  using A = typename Elem<T>::acc;
  const int64_t C = s.c, Cg = s.cg(), F = s.filt_pixels(), P = s.out_pixels(), IP = s.in_pixels();
  const int64_t row_len = C * F;
  parallel_for(nb * IP, F * C, [&](int64_t b, int64_t e) {
    std::vector<A> acc(static_cast<size_t>(C));
    for (int64_t row = b; row < e; ++row) {
      const int64_t i = row / IP, ip = row % IP;
      const int64_t i2 = ip % s.in[2], i1 = (ip / s.in[2]) % s.in[1], i0 = ip / (s.in[2] * s.in[1]);
      std::fill(acc.begin(), acc.end(), A(0));
      int64_t f = 0;
      for (int64_t t0 = 0; t0 < s.filt[0]; ++t0) {
        const int64_t o0 = tap_output(s, 0, i0, t0);
        for (int64_t t1 = 0; t1 < s.filt[1]; ++t1) {
          const int64_t o1 = tap_output(s, 1, i1, t1);
          for (int64_t t2 = 0; t2 < s.filt[2]; ++t2, ++f) {
            const int64_t o2 = tap_output(s, 2, i2, t2);
            if (o0 < 0 || o1 < 0 || o2 < 0) continue;
            const int64_t p = (o0 * s.out[1] + o1) * s.out[2] + o2;
            const T* src = col + (i * P + p) * row_len + f * Cg;
            for (int64_t g = 0; g < s.g; ++g) {
              const T* sg = src + g * F * Cg;
              A* ag = acc.data() + g * Cg;
              for (int64_t cg = 0; cg < Cg; ++cg) ag[cg] += Elem<T>::load(sg[cg]);
            }
          }
        }
      }
      T* xp = x + ((n0 + i) * IP + ip) * C;
      for (int64_t c = 0; c < C; ++c) xp[c] = Elem<T>::store(acc[static_cast<size_t>(c)]);
    }
  });
}

}  // namespace

Status im2col(const ExecContext&, const ConvShape& s, const void* x, void* col, int64_t n0,
              int64_t nb, const ops::ColStrides& cs) {
  return dispatch_dtype(s.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (s.layout == Layout::channels_last) {
      im2col_channels_last(s, static_cast<const T*>(x), static_cast<T*>(col), n0, nb);
    } else {
      im2col_contiguous(s, static_cast<const T*>(x), static_cast<T*>(col), n0, nb, cs);
    }
    return Status();
  });
}

Status col2im(const ExecContext&, const ConvShape& s, const void* col, void* x, int64_t n0,
              int64_t nb, const ops::ColStrides& cs) {
  return dispatch_dtype(s.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (s.layout == Layout::channels_last) {
      col2im_channels_last(s, static_cast<const T*>(col), static_cast<T*>(x), n0, nb);
    } else {
      col2im_contiguous(s, static_cast<const T*>(col), static_cast<T*>(x), n0, nb, cs);
    }
    return Status();
  });
}

Status permute_021(const ExecContext&, DataType t, const void* src, void* dst, int64_t a, int64_t b,
                   int64_t c) {
  return dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* sp = static_cast<const T*>(src);
    T* dp = static_cast<T*>(dst);
    parallel_for(b, a * c, [&](int64_t jb, int64_t je) {
      for (int64_t j = jb; j < je; ++j) {
        for (int64_t i = 0; i < a; ++i) {
          std::copy(sp + (i * b + j) * c, sp + (i * b + j + 1) * c, dp + (j * a + i) * c);
        }
      }
    });
    return Status();
  });
}

Status bias_add(const ExecContext&, DataType t, Layout layout, void* y, const void* bias, int64_t n,
                int64_t channels, int64_t pixels) {
  return dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* yp = static_cast<T*>(y);
    const T* bp = static_cast<const T*>(bias);
    if (layout == Layout::channels_last) {
      parallel_for(n * pixels, channels, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          T* row = yp + r * channels;
          for (int64_t c = 0; c < channels; ++c) {
            row[c] = Elem<T>::store(Elem<T>::load(row[c]) + Elem<T>::load(bp[c]));
          }
        }
      });
    } else {
      parallel_for(n * channels, pixels, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const auto bv = Elem<T>::load(bp[r % channels]);
          T* row = yp + r * pixels;
          for (int64_t p = 0; p < pixels; ++p) row[p] = Elem<T>::store(Elem<T>::load(row[p]) + bv);
        }
      });
    }
    return Status();
  });
}

// The bias gradient sums N*P*Q terms per channel, far more than any GEMM reduction, so it is
// summed in a wider type than the GEMMs accumulate in (double; long double for f64), in a fixed
// order: accurate and bitwise repeatable whatever the thread count.
template <class T>
struct BiasSum {
  using type = double;
};
template <>
struct BiasSum<double> {
  using type = long double;
};

Status bias_grad(const ExecContext&, DataType t, Layout layout, const void* dy, void* db, int64_t n,
                 int64_t channels, int64_t pixels) {
  return dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename BiasSum<T>::type;
    using Narrow = typename Elem<T>::acc;
    const T* g = static_cast<const T*>(dy);
    T* out = static_cast<T*>(db);
    if (layout == Layout::channels_last) {
      parallel_for(channels, n * pixels, [&](int64_t b, int64_t e) {
        std::vector<A> acc(static_cast<size_t>(e - b), A(0));
        for (int64_t r = 0; r < n * pixels; ++r) {
          const T* row = g + r * channels;
          for (int64_t c = b; c < e; ++c) acc[static_cast<size_t>(c - b)] += Elem<T>::load(row[c]);
        }
        for (int64_t c = b; c < e; ++c) {
          out[c] = Elem<T>::store(static_cast<Narrow>(acc[static_cast<size_t>(c - b)]));
        }
      });
    } else {
      parallel_for(channels, n * pixels, [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) {
          A acc = A(0);
          for (int64_t i = 0; i < n; ++i) {
            const T* row = g + (i * channels + c) * pixels;
            for (int64_t p = 0; p < pixels; ++p) acc += Elem<T>::load(row[p]);
          }
          out[c] = Elem<T>::store(static_cast<Narrow>(acc));
        }
      });
    }
    return Status();
  });
}

Status reference_conv(const ExecContext&, const ConvShape& s, Direction regular,
                      const ConvTensors& t) {
  return dispatch_dtype(s.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const ConvGeo<int64_t> geo = ConvGeo<int64_t>::make(s);
    const T* x = static_cast<const T*>(t.x);
    const T* w = static_cast<const T*>(t.w);
    const T* y = static_cast<const T*>(t.y);
    if (regular == Direction::forward) {
      T* out = static_cast<T*>(t.y);
      parallel_for(s.y_elements(), s.cg() * s.filt_pixels(), [&](int64_t b, int64_t e) {
        for (int64_t idx = b; idx < e; ++idx) out[idx] = ref_forward_elem(geo, x, w, idx);
      });
    } else if (regular == Direction::backward_data) {
      T* out = static_cast<T*>(t.x);
      parallel_for(s.x_elements(), s.kg() * s.filt_pixels(), [&](int64_t b, int64_t e) {
        for (int64_t idx = b; idx < e; ++idx) out[idx] = ref_backward_data_elem(geo, y, w, idx);
      });
    } else {
      T* out = static_cast<T*>(t.w);
      parallel_for(s.w_elements(), s.n * s.out_pixels(), [&](int64_t b, int64_t e) {
        for (int64_t idx = b; idx < e; ++idx) out[idx] = ref_backward_weight_elem(geo, x, y, idx);
      });
    }
    return Status();
  });
}

Status accumulate(const ExecContext&, DataType t, const void* src, void* acc, int64_t count,
                  bool first) {
  return dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename Elem<T>::acc;
    const T* sp = static_cast<const T*>(src);
    A* ap = static_cast<A*>(acc);
    for (int64_t i = 0; i < count; ++i) ap[i] = (first ? A(0) : ap[i]) + Elem<T>::load(sp[i]);
    return Status();
  });
}

Status narrow(const ExecContext&, DataType t, const void* acc, void* dst, int64_t count) {
  return dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename Elem<T>::acc;
    const A* ap = static_cast<const A*>(acc);
    T* dp = static_cast<T*>(dst);
    for (int64_t i = 0; i < count; ++i) dp[i] = Elem<T>::store(ap[i]);
    return Status();
  });
}

// Each thread owns a range of elements and adds the partials into a local running total, sample
// by sample: every element still receives its terms in sample order, whatever the split.
Status sum_partials(const ExecContext&, DataType t, const void* partials, int64_t batch,
                    int64_t count, void* w, void* acc, bool first) {
  return dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename Elem<T>::acc;
    const T* pp = static_cast<const T*>(partials);
    T* wp = static_cast<T*>(w);
    A* ap = static_cast<A*>(acc);
    parallel_for(count, batch, [&](int64_t b, int64_t e) {
      std::vector<A> total(static_cast<size_t>(e - b), A(0));
      if (!first) {
        for (int64_t i = b; i < e; ++i) {
          total[static_cast<size_t>(i - b)] = ap != nullptr ? ap[i] : Elem<T>::load(wp[i]);
        }
      }
      for (int64_t s = 0; s < batch; ++s) {
        const T* row = pp + s * count;
        for (int64_t i = b; i < e; ++i) total[static_cast<size_t>(i - b)] += Elem<T>::load(row[i]);
      }
      for (int64_t i = b; i < e; ++i) {
        const A v = total[static_cast<size_t>(i - b)];
        if (ap != nullptr) {
          ap[i] = v;
        } else {
          wp[i] = Elem<T>::store(v);
        }
      }
    });
    return Status();
  });
}

Status fill_zero(const ExecContext&, void* dst, size_t bytes) {
  if (bytes > 0) std::memset(dst, 0, bytes);
  return Status();
}

}  // namespace cpu_ops
}  // namespace gemmconv
