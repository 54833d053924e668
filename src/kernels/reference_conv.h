// The reference convolution: one element of each regular pass by direct loops, summed in a fixed
// order (fp32 accumulation, fp64 for f64). Host+device, so the CPU reference and the GPU
// reference kernel compute the same sums; the oracle of every test.
#pragma once

#include "base/half.h"
#include "kernels/conv_geometry.h"

namespace gemmconv {

// One element of each reference pass, summed in a fixed order. `idx` is the element's offset in
// the written tensor (y, x or w), in that tensor's layout.
template <class T, class I>
GEMMCONV_HD inline T ref_forward_elem(const ConvGeo<I>& g, const T* x, const T* w, I idx) {
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
      const I i0 = tap_input(g, 0, o0, t0);
      const bool ok0 = i0 >= 0 && i0 < g.in[0];
      for (I t1 = 0; t1 < g.filt[1]; ++t1) {
        const I i1 = tap_input(g, 1, o1, t1);
        const bool ok1 = ok0 && i1 >= 0 && i1 < g.in[1];
        for (I t2 = 0; t2 < g.filt[2]; ++t2) {
          const I i2 = tap_input(g, 2, o2, t2);
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

template <class T, class I>
GEMMCONV_HD inline T ref_backward_data_elem(const ConvGeo<I>& g, const T* y, const T* w, I idx) {
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
      const I o0 = tap_output(g, 0, i0, t0);
      if (o0 < 0) continue;
      for (I t1 = 0; t1 < g.filt[1]; ++t1) {
        const I o1 = tap_output(g, 1, i1, t1);
        if (o1 < 0) continue;
        for (I t2 = 0; t2 < g.filt[2]; ++t2) {
          const I o2 = tap_output(g, 2, i2, t2);
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
GEMMCONV_HD inline T ref_backward_weight_elem(const ConvGeo<I>& g, const T* x, const T* y, I idx) {
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
      const I i0 = tap_input(g, 0, o0, t0);
      if (i0 < 0 || i0 >= g.in[0]) continue;
      for (I o1 = 0; o1 < g.out[1]; ++o1) {
        const I i1 = tap_input(g, 1, o1, t1);
        if (i1 < 0 || i1 >= g.in[1]) continue;
        for (I o2 = 0; o2 < g.out[2]; ++o2) {
          const I i2 = tap_input(g, 2, o2, t2);
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
