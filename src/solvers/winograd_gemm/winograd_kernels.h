// The per-element bodies of the Winograd transforms (one tile and one channel each), shared by
// the CPU loops and the GPU kernels so that both index and round identically.
#pragma once

#include <cstdint>

#include "base/half.h"
#include "solvers/winograd_gemm/winograd.h"
#include "solvers/winograd_gemm/winograd_math.h"

namespace gemmconv {
namespace winograd {

// A plan's sizes in the kernels' index type, for one chunk of tiles [r0, r0 + rows).
template <class I>
struct Geo {
  I planes, src_h, src_w, dst_h, dst_w, pad_h, pad_w, tiles_h, tiles_w;
  I src_ch, dst_ch, src_chg, dst_chg, g;
  I cg, kg;  // filter: w [k][cg][taps] (contiguous) or [k][taps][cg] (channels-last)
  I r0, rows;
  bool cl, flip;
  bool cm;  // buffers [T][g][chg][rows] (Plan::channel_major) instead of [T][g][rows][chg]

  static Geo make(const Plan& p, int64_t r0, int64_t rows) {
    Geo q{};
    q.planes = static_cast<I>(p.planes);
    q.src_h = static_cast<I>(p.src_h);
    q.src_w = static_cast<I>(p.src_w);
    q.dst_h = static_cast<I>(p.dst_h);
    q.dst_w = static_cast<I>(p.dst_w);
    q.pad_h = static_cast<I>(p.pad_h);
    q.pad_w = static_cast<I>(p.pad_w);
    q.tiles_h = static_cast<I>(p.tiles_h);
    q.tiles_w = static_cast<I>(p.tiles_w);
    q.src_ch = static_cast<I>(p.src_ch);
    q.dst_ch = static_cast<I>(p.dst_ch);
    q.g = static_cast<I>(p.g);
    q.src_chg = static_cast<I>(p.src_ch / p.g);
    q.dst_chg = static_cast<I>(p.dst_ch / p.g);
    // The regular weight is [k][cg][taps]; k is the destination side forward, the source side
    // backward.
    q.kg = p.backward ? q.src_chg : q.dst_chg;
    q.cg = p.backward ? q.dst_chg : q.src_chg;
    q.r0 = static_cast<I>(r0);
    q.rows = static_cast<I>(rows);
    q.cl = p.layout == Layout::channels_last;
    q.flip = p.backward;
    q.cm = p.channel_major;
    return q;
  }

  // Element offset of (sample i, channel c, plane pl, row h, column w) in a tensor of `ch`
  // channels and extents eh x ew.
  GEMMCONV_HD I offset(I i, I c, I pl, I h, I w, I ch, I eh, I ew) const {
    return cl ? (((i * planes + pl) * eh + h) * ew + w) * ch + c
              : (((i * ch + c) * planes + pl) * eh + h) * ew + w;
  }

  // The sample, plane and tile coordinates of chunk row r.
  GEMMCONV_HD void tile_of(I r, I* i, I* pl, I* ty, I* tx) const {
    I q = r0 + r;
    *tx = q % tiles_w;
    q /= tiles_w;
    *ty = q % tiles_h;
    q /= tiles_h;
    *pl = q % planes;
    *i = q / planes;
  }
};

// Transform-domain element (point xi, group grp, row r, channel cl) of a [T][g][rows][chg]
// buffer is at ((xi * g + grp) * rows + r) * chg + cl, of a channel-major [T][g][chg][rows]
// buffer at ((xi * g + grp) * chg + cl) * rows + r; consecutive points are `point_stride` apart.
template <class I>
GEMMCONV_HD inline I buf_offset(const Geo<I>& q, I grp, I r, I cl, I chg) {
  return q.cm ? (grp * chg + cl) * q.rows + r : (grp * q.rows + r) * chg + cl;
}

// Source tile (chunk row r, source channel c) -> its kAH * kAW transform-domain values v.
template <int kAH, int kAW, class T, class I>
GEMMCONV_HD inline void input_tile(const Geo<I>& q, const T* __restrict__ src, I r, I c,
                                   typename Elem<T>::acc* v) {
  using A = typename Elem<T>::acc;
  using Tl = Tile<kAH, kAW>;
  I i, pl, ty, tx;
  q.tile_of(r, &i, &pl, &ty, &tx);
  const I h0 = ty * static_cast<I>(Tl::kMH) - q.pad_h;
  const I w0 = tx * static_cast<I>(Tl::kMW) - q.pad_w;
  A d[Tl::kT];
  for (int a = 0; a < kAH; ++a) {
    const I h = h0 + a;
    const bool row_ok = h >= 0 && h < q.src_h;
    for (int b = 0; b < kAW; ++b) {
      const I w = w0 + b;
      d[a * kAW + b] =
          row_ok && w >= 0 && w < q.src_w
              ? Elem<T>::load(src[q.offset(i, c, pl, h, w, q.src_ch, q.src_h, q.src_w)])
              : A(0);
    }
  }
  Tl::input(d, v);
}

// Where (chunk row r, channel c of a tensor with chg channels per group) lives in a
// [T][g][rows][chg] buffer, for point 0; point t is t * point_stride further.
template <class I>
GEMMCONV_HD inline I row_offset(const Geo<I>& q, I r, I c, I chg) {
  const I grp = c / chg;
  return buf_offset(q, grp, r, c - grp * chg, chg);
}
template <class I>
GEMMCONV_HD inline I point_stride(const Geo<I>& q, I chg) {
  return q.g * q.rows * chg;
}

// Source tile (chunk row r, source channel c) -> transform domain.
template <int kAH, int kAW, class T, class I>
GEMMCONV_HD inline void input_one(const Geo<I>& q, const T* __restrict__ src, T* __restrict__ buf,
                                  I r, I c) {
  using A = typename Elem<T>::acc;
  constexpr int kT = kAH * kAW;
  A v[kT];
  input_tile<kAH, kAW>(q, src, r, c, v);
  const I point = point_stride(q, q.src_chg);
  T* out = buf + row_offset(q, r, c, q.src_chg);
  for (int t = 0; t < kT; ++t) out[t * point] = Elem<T>::store(v[t]);
}

// Transform-domain values m (chunk row r, destination channel c) -> destination tile, clipped.
template <int kAH, int kAW, class T, class I>
GEMMCONV_HD inline void output_tile(const Geo<I>& q, const typename Elem<T>::acc* m,
                                    T* __restrict__ dst, I r, I c) {
  using A = typename Elem<T>::acc;
  using Tl = Tile<kAH, kAW>;
  A y[Tl::kMH * Tl::kMW];
  Tl::output(m, y);
  I i, pl, ty, tx;
  q.tile_of(r, &i, &pl, &ty, &tx);
  const I h0 = ty * static_cast<I>(Tl::kMH), w0 = tx * static_cast<I>(Tl::kMW);
  for (int a = 0; a < Tl::kMH; ++a) {
    const I h = h0 + a;
    if (h >= q.dst_h) break;
    for (int b = 0; b < Tl::kMW; ++b) {
      const I w = w0 + b;
      if (w >= q.dst_w) break;
      dst[q.offset(i, c, pl, h, w, q.dst_ch, q.dst_h, q.dst_w)] =
          Elem<T>::store(y[a * Tl::kMW + b]);
    }
  }
}

// Transform domain (chunk row r, destination channel c) -> destination tile, clipped.
template <int kAH, int kAW, class T, class I>
GEMMCONV_HD inline void output_one(const Geo<I>& q, const T* __restrict__ buf, T* __restrict__ dst,
                                   I r, I c) {
  using A = typename Elem<T>::acc;
  constexpr int kT = kAH * kAW;
  const I point = point_stride(q, q.dst_chg);
  const T* in = buf + row_offset(q, r, c, q.dst_chg);
  A m[kT];
  for (int t = 0; t < kT; ++t) m[t] = Elem<T>::load(in[t * point]);
  output_tile<kAH, kAW>(q, m, dst, r, c);
}

// Filter (group grp, reduction channel c of the GEMM's U [cg][kg], column kk) -> its values.
// Forward: U[xi][grp][c][kk] from w[grp * kg + kk][c]; backward: from the flipped
// w[grp * kg + kk][c] (the GEMM reads U transposed).
template <int kAH, int kAW, class T, class I>
GEMMCONV_HD inline void filter_tile(const Geo<I>& q, const T* __restrict__ w, I grp, I c, I kk,
                                    typename Elem<T>::acc* uv) {
  using A = typename Elem<T>::acc;
  using Tl = Tile<kAH, kAW>;
  constexpr int kTaps = Tl::kRH * Tl::kRW;
  const I k = grp * q.kg + kk;
  A gv[kTaps];
  for (int t = 0; t < kTaps; ++t) {
    const int src_tap = q.flip ? kTaps - 1 - t : t;  // flipping both axes reverses the taps
    const I off = q.cl ? (k * kTaps + src_tap) * q.cg + c : (k * q.cg + c) * kTaps + src_tap;
    gv[t] = Elem<T>::load(w[off]);
  }
  Tl::filter(gv, uv);
}

template <class I>
GEMMCONV_HD inline I filter_offset(const Geo<I>& q, I grp, I c, I kk) {
  return (grp * q.cg + c) * q.kg + kk;
}
template <class I>
GEMMCONV_HD inline I filter_point_stride(const Geo<I>& q) {
  return q.g * q.cg * q.kg;
}

template <int kAH, int kAW, class T, class I>
GEMMCONV_HD inline void filter_one(const Geo<I>& q, const T* __restrict__ w, T* __restrict__ u,
                                   I grp, I c, I kk) {
  using A = typename Elem<T>::acc;
  constexpr int kT = kAH * kAW;
  A uv[kT];
  filter_tile<kAH, kAW>(q, w, grp, c, kk, uv);
  const I point = filter_point_stride(q);
  T* out = u + filter_offset(q, grp, c, kk);
  for (int t = 0; t < kT; ++t) out[t * point] = Elem<T>::store(uv[t]);
}

// backward_weight. Destination tile (chunk row r, destination channel c) of dy, zero past the
// tensor's edge -> its kAH * kAW transform-domain values (A dy A^T).
template <int kAH, int kAW, class T, class I>
GEMMCONV_HD inline void grad_output_tile(const Geo<I>& q, const T* __restrict__ dy, I r, I c,
                                         typename Elem<T>::acc* v) {
  using A = typename Elem<T>::acc;
  using Tl = Tile<kAH, kAW>;
  I i, pl, ty, tx;
  q.tile_of(r, &i, &pl, &ty, &tx);
  const I h0 = ty * static_cast<I>(Tl::kMH), w0 = tx * static_cast<I>(Tl::kMW);
  A y[Tl::kMH * Tl::kMW];
  for (int a = 0; a < Tl::kMH; ++a) {
    const I h = h0 + a;
    for (int b = 0; b < Tl::kMW; ++b) {
      const I w = w0 + b;
      y[a * Tl::kMW + b] =
          h < q.dst_h && w < q.dst_w
              ? Elem<T>::load(dy[q.offset(i, c, pl, h, w, q.dst_ch, q.dst_h, q.dst_w)])
              : A(0);
    }
  }
  Tl::grad_output(y, v);
}

// dy tile (chunk row r, destination channel c) -> the destination-side buffer, where the forward
// pass's GEMM would have left M.
template <int kAH, int kAW, class T, class I>
GEMMCONV_HD inline void grad_output_one(const Geo<I>& q, const T* __restrict__ dy,
                                        T* __restrict__ buf, I r, I c) {
  using A = typename Elem<T>::acc;
  constexpr int kT = kAH * kAW;
  A v[kT];
  grad_output_tile<kAH, kAW>(q, dy, r, c, v);
  const I point = point_stride(q, q.dst_chg);
  T* out = buf + row_offset(q, r, c, q.dst_chg);
  for (int t = 0; t < kT; ++t) out[t * point] = Elem<T>::store(v[t]);
}

// Transform-domain gradient uv (group grp, channel c of the group's cg, column kk of its kg) ->
// the taps of dw[grp * kg + kk][c] (G^T u G), in the weight's layout.
template <int kAH, int kAW, class T, class I>
GEMMCONV_HD inline void grad_filter_tile(const Geo<I>& q, const typename Elem<T>::acc* uv,
                                         T* __restrict__ dw, I grp, I c, I kk) {
  using A = typename Elem<T>::acc;
  using Tl = Tile<kAH, kAW>;
  constexpr int kTaps = Tl::kRH * Tl::kRW;
  A gv[kTaps];
  Tl::grad_filter(uv, gv);
  const I k = grp * q.kg + kk;
  for (int t = 0; t < kTaps; ++t) {
    const I off = q.cl ? (k * kTaps + t) * q.cg + c : (k * q.cg + c) * kTaps + t;
    dw[off] = Elem<T>::store(gv[t]);
  }
}

template <int kAH, int kAW, class T, class I>
GEMMCONV_HD inline void grad_filter_one(const Geo<I>& q, const T* __restrict__ u,
                                        T* __restrict__ dw, I grp, I c, I kk) {
  using A = typename Elem<T>::acc;
  constexpr int kT = kAH * kAW;
  const I point = filter_point_stride(q);
  const T* in = u + filter_offset(q, grp, c, kk);
  A uv[kT];
  for (int t = 0; t < kT; ++t) uv[t] = Elem<T>::load(in[t * point]);
  grad_filter_tile<kAH, kAW, T>(q, uv, dw, grp, c, kk);
}

// Calls f(Tile<alpha_h, alpha_w>{}) for the plan's tile and returns what f returns.
template <class F>
Status dispatch_tile(const Plan& p, F&& f) {
  switch (p.alpha_h * 10 + p.alpha_w) {
    case 14:
      return f(Tile<1, 4>{});
    case 16:
      return f(Tile<1, 6>{});
    case 41:
      return f(Tile<4, 1>{});
    case 61:
      return f(Tile<6, 1>{});
    case 44:
      return f(Tile<4, 4>{});
    case 46:
      return f(Tile<4, 6>{});
    case 64:
      return f(Tile<6, 4>{});
    case 66:
      return f(Tile<6, 6>{});
    default:
      break;
  }
  return Status(StatusCode::internal_error, "winograd_gemm: no kernel for this tile");
}

}  // namespace winograd
}  // namespace gemmconv
