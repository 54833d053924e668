// Dtype and index-type dispatch, and the host+device tensor geometry shared by CPU and GPU code.
#pragma once

#include <cstdint>
#include <limits>

#include "gemmconv/problem.h"
#include "gemmconv/types.h"
#include "kernels/half.h"

namespace gemmconv {

template <class T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<T>{}) with T the storage type of `t` and returns what f returns.
template <class F>
auto dispatch_dtype(DataType t, F&& f) -> decltype(f(TypeTag<float>{})) {
  switch (t) {
    case DataType::f32:
      return f(TypeTag<float>{});
    case DataType::f16:
      return f(TypeTag<f16_t>{});
    case DataType::bf16:
      return f(TypeTag<bf16_t>{});
    case DataType::f64:
      return f(TypeTag<double>{});
  }
  return f(TypeTag<float>{});
}

// Calls f(TypeTag<I>{}) with I = int64_t when `wide`, else int32_t.
template <class F>
auto dispatch_index(bool wide, F&& f) -> decltype(f(TypeTag<int64_t>{})) {
  if (wide) return f(TypeTag<int64_t>{});
  return f(TypeTag<int32_t>{});
}

inline bool needs_index64(int64_t max_extent) {
  return max_extent > static_cast<int64_t>(std::numeric_limits<int32_t>::max());
}

// The regular convolution's sizes in the kernels' index type, with the offset of every element
// of x, w and y in either layout.
template <class I>
struct ConvGeo {
  I n, c, k, g, cg, kg;
  I in[3], filt[3], out[3], stride[3], dil[3], pad[3];
  I in_pix, out_pix, filt_pix;
  bool cl;

  static ConvGeo make(const ConvShape& s) {
    ConvGeo r{};
    r.n = static_cast<I>(s.n);
    r.c = static_cast<I>(s.c);
    r.k = static_cast<I>(s.k);
    r.g = static_cast<I>(s.g);
    r.cg = static_cast<I>(s.cg());
    r.kg = static_cast<I>(s.kg());
    for (int d = 0; d < 3; ++d) {
      r.in[d] = static_cast<I>(s.in[d]);
      r.filt[d] = static_cast<I>(s.filt[d]);
      r.out[d] = static_cast<I>(s.out[d]);
      r.stride[d] = static_cast<I>(s.stride[d]);
      r.dil[d] = static_cast<I>(s.dilation[d]);
      r.pad[d] = static_cast<I>(s.pad[d]);
    }
    r.in_pix = static_cast<I>(s.in_pixels());
    r.out_pix = static_cast<I>(s.out_pixels());
    r.filt_pix = static_cast<I>(s.filt_pixels());
    r.cl = s.layout == Layout::channels_last;
    return r;
  }

  GC_HD I x_off(I i, I ch, I d0, I d1, I d2) const {
    const I pix = (d0 * in[1] + d1) * in[2] + d2;
    return cl ? (i * in_pix + pix) * c + ch : (i * c + ch) * in_pix + pix;
  }
  GC_HD I y_off(I i, I ch, I o0, I o1, I o2) const {
    const I pix = (o0 * out[1] + o1) * out[2] + o2;
    return cl ? (i * out_pix + pix) * k + ch : (i * k + ch) * out_pix + pix;
  }
  GC_HD I w_off(I kk, I ch, I t0, I t1, I t2) const {
    const I tap = (t0 * filt[1] + t1) * filt[2] + t2;
    return cl ? (kk * filt_pix + tap) * cg + ch : (kk * cg + ch) * filt_pix + tap;
  }
};

// One element of each reference pass, summed in a fixed order. `idx` is the element's offset in
// the written tensor (y, x or w), in that tensor's layout.
template <class T, class I>
GC_HD inline T ref_forward_elem(const ConvGeo<I>& g, const T* x, const T* w, I idx) {
  using A = typename Elem<T>::acc;
  I i, kk, o0, o1, o2, pix;
  if (g.cl) {
    kk = idx % g.k;
    pix = idx / g.k;
    i = pix / g.out_pix;
    pix -= i * g.out_pix;
  } else {
    pix = idx % g.out_pix;
    const I q = idx / g.out_pix;
    kk = q % g.k;
    i = q / g.k;
  }
  o2 = pix % g.out[2];
  o1 = (pix / g.out[2]) % g.out[1];
  o0 = pix / (g.out[2] * g.out[1]);
  const I grp = kk / g.kg;
  A acc = A(0);
  for (I cgi = 0; cgi < g.cg; ++cgi) {
    const I ch = grp * g.cg + cgi;
    for (I t0 = 0; t0 < g.filt[0]; ++t0) {
      const I i0 = o0 * g.stride[0] - g.pad[0] + t0 * g.dil[0];
      const bool ok0 = i0 >= 0 && i0 < g.in[0];
      for (I t1 = 0; t1 < g.filt[1]; ++t1) {
        const I i1 = o1 * g.stride[1] - g.pad[1] + t1 * g.dil[1];
        const bool ok1 = ok0 && i1 >= 0 && i1 < g.in[1];
        for (I t2 = 0; t2 < g.filt[2]; ++t2) {
          const I i2 = o2 * g.stride[2] - g.pad[2] + t2 * g.dil[2];
          const A wv = Elem<T>::load(w[g.w_off(kk, cgi, t0, t1, t2)]);
          // A padded tap reads a zero: 0 * w keeps a NaN or infinite weight visible, as in
          // PyTorch's zero-padded GEMM.
          if (!ok1 || i2 < 0 || i2 >= g.in[2]) {
            acc += A(0) * wv;
            continue;
          }
          acc += Elem<T>::load(x[g.x_off(i, ch, i0, i1, i2)]) * wv;
        }
      }
    }
  }
  return Elem<T>::store(acc);
}

// The output position a tap reads input position `ip` from along one dimension, or -1.
template <class I>
GC_HD inline I source_out(I ip, I tap, I pad, I dil, I stride, I out) {
  const I num = ip + pad - tap * dil;
  if (num < 0) return -1;
  const I o = stride == 1 ? num : num / stride;  // skip the division in the common case
  if (o * stride != num || o >= out) return -1;
  return o;
}

template <class T, class I>
GC_HD inline T ref_backward_data_elem(const ConvGeo<I>& g, const T* y, const T* w, I idx) {
  using A = typename Elem<T>::acc;
  I i, ch, pix;
  if (g.cl) {
    ch = idx % g.c;
    pix = idx / g.c;
    i = pix / g.in_pix;
    pix -= i * g.in_pix;
  } else {
    pix = idx % g.in_pix;
    const I q = idx / g.in_pix;
    ch = q % g.c;
    i = q / g.c;
  }
  const I i2 = pix % g.in[2];
  const I i1 = (pix / g.in[2]) % g.in[1];
  const I i0 = pix / (g.in[2] * g.in[1]);
  const I grp = ch / g.cg;
  const I cgi = ch - grp * g.cg;
  A acc = A(0);
  for (I kgi = 0; kgi < g.kg; ++kgi) {
    const I kk = grp * g.kg + kgi;
    for (I t0 = 0; t0 < g.filt[0]; ++t0) {
      const I o0 = source_out(i0, t0, g.pad[0], g.dil[0], g.stride[0], g.out[0]);
      if (o0 < 0) continue;
      for (I t1 = 0; t1 < g.filt[1]; ++t1) {
        const I o1 = source_out(i1, t1, g.pad[1], g.dil[1], g.stride[1], g.out[1]);
        if (o1 < 0) continue;
        for (I t2 = 0; t2 < g.filt[2]; ++t2) {
          const I o2 = source_out(i2, t2, g.pad[2], g.dil[2], g.stride[2], g.out[2]);
          if (o2 < 0) continue;
          acc += Elem<T>::load(y[g.y_off(i, kk, o0, o1, o2)]) *
                 Elem<T>::load(w[g.w_off(kk, cgi, t0, t1, t2)]);
        }
      }
    }
  }
  return Elem<T>::store(acc);
}

template <class T, class I>
GC_HD inline T ref_backward_weight_elem(const ConvGeo<I>& g, const T* x, const T* y, I idx) {
  using A = typename Elem<T>::acc;
  I kk, cgi, tap;
  if (g.cl) {
    cgi = idx % g.cg;
    tap = idx / g.cg;
    kk = tap / g.filt_pix;
    tap -= kk * g.filt_pix;
  } else {
    tap = idx % g.filt_pix;
    const I q = idx / g.filt_pix;
    cgi = q % g.cg;
    kk = q / g.cg;
  }
  const I t2 = tap % g.filt[2];
  const I t1 = (tap / g.filt[2]) % g.filt[1];
  const I t0 = tap / (g.filt[2] * g.filt[1]);
  const I ch = (kk / g.kg) * g.cg + cgi;
  A acc = A(0);
  for (I i = 0; i < g.n; ++i) {
    for (I o0 = 0; o0 < g.out[0]; ++o0) {
      const I i0 = o0 * g.stride[0] - g.pad[0] + t0 * g.dil[0];
      if (i0 < 0 || i0 >= g.in[0]) continue;
      for (I o1 = 0; o1 < g.out[1]; ++o1) {
        const I i1 = o1 * g.stride[1] - g.pad[1] + t1 * g.dil[1];
        if (i1 < 0 || i1 >= g.in[1]) continue;
        for (I o2 = 0; o2 < g.out[2]; ++o2) {
          const I i2 = o2 * g.stride[2] - g.pad[2] + t2 * g.dil[2];
          if (i2 < 0 || i2 >= g.in[2]) continue;
          acc += Elem<T>::load(x[g.x_off(i, ch, i0, i1, i2)]) *
                 Elem<T>::load(y[g.y_off(i, kk, o0, o1, o2)]);
        }
      }
    }
  }
  return Elem<T>::store(acc);
}

}  // namespace gemmconv
