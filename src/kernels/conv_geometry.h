// The regular convolution's geometry in a kernel's index type, shared by CPU and GPU code
// (host+device inline): element offsets of x, w and y in either layout, and which position a
// filter tap connects along one dimension. The one place that says it.
#pragma once

#include <cstdint>

#include "base/half.h"
#include "gemmconv/problem.h"
#include "gemmconv/types.h"

namespace gemmconv {

// The input position that output position `o` reads through tap `t` along one dimension; it may
// fall outside the input (into the padding).
template <class I>
GEMMCONV_HD inline I tap_input(I o, I t, I pad, I dil, I stride) {
  return o * stride - pad + t * dil;
}

// The output position that reads input position `ip` through tap `t` along one dimension, or -1
// when none does. kStride > 0 is the stride known at compile time (the division becomes a shift);
// otherwise the run-time `stride` is used, with the division skipped at stride 1.
template <int kStride = 0, class I>
GEMMCONV_HD inline I tap_output(I ip, I t, I pad, I dil, I stride, I out) {
  const I num = ip + pad - t * dil;
  if (num < 0) return -1;
  const I s = kStride > 0 ? static_cast<I>(kStride) : stride;
  const I o = (kStride == 0 && s == 1) ? num : num / s;
  if (o * s != num || o >= out) return -1;
  return o;
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

  GEMMCONV_HD I x_off(I i, I ch, I d0, I d1, I d2) const {
    const I pix = (d0 * in[1] + d1) * in[2] + d2;
    return cl ? (i * in_pix + pix) * c + ch : (i * c + ch) * in_pix + pix;
  }
  GEMMCONV_HD I y_off(I i, I ch, I o0, I o1, I o2) const {
    const I pix = (o0 * out[1] + o1) * out[2] + o2;
    return cl ? (i * out_pix + pix) * k + ch : (i * k + ch) * out_pix + pix;
  }
  GEMMCONV_HD I w_off(I kk, I ch, I t0, I t1, I t2) const {
    const I tap = (t0 * filt[1] + t1) * filt[2] + t2;
    return cl ? (kk * filt_pix + tap) * cg + ch : (kk * cg + ch) * filt_pix + tap;
  }
};

// The same along dimension d of a kernel geometry.
template <class I>
GEMMCONV_HD inline I tap_input(const ConvGeo<I>& g, int d, I o, I t) {
  return tap_input<I>(o, t, g.pad[d], g.dil[d], g.stride[d]);
}
template <int kStride = 0, class I>
GEMMCONV_HD inline I tap_output(const ConvGeo<I>& g, int d, I ip, I t) {
  return tap_output<kStride, I>(ip, t, g.pad[d], g.dil[d], g.stride[d], g.out[d]);
}

// The same along dimension d of a canonical shape (host code).
inline int64_t tap_input(const ConvShape& s, int d, int64_t o, int64_t t) {
  return tap_input<int64_t>(o, t, s.pad[d], s.dilation[d], s.stride[d]);
}
inline int64_t tap_output(const ConvShape& s, int d, int64_t ip, int64_t t) {
  return tap_output<0, int64_t>(ip, t, s.pad[d], s.dilation[d], s.stride[d], s.out[d]);
}

}  // namespace gemmconv
