// The conv-to-GEMM map (see gemm_map.h for the tables it implements).
#include "solvers/gemm_map.h"

#include "solvers/common.h"

namespace gemmconv {
namespace solvers {
namespace {

GemmOperand side(ConvSide s, bool trans, int64_t ld, int64_t batch_stride) {
  return GemmOperand{s, trans, ld, batch_stride};
}

GemmMap make(GemmScheme sc, int64_t m, int64_t n, int64_t k, int64_t batch, const GemmOperand& a,
             const GemmOperand& b, const GemmOperand& c) {
  return GemmMap{true, sc, m, n, k, batch, a, b, c, ImplicitView{}};
}

// Pixel rows [rows][c*F] (x side) and [rows][k] (y side); groups are column blocks.
GemmMap channels_last(const ConvShape& s, Direction d, int64_t rows) {
  const int64_t k = s.k, kg = s.kg(), F = s.filt_pixels();
  const int64_t cF = s.c * F, cgF = s.cg() * F;
  const GemmOperand x = side(ConvSide::x, false, cF, cgF);
  const GemmOperand y = side(ConvSide::y, false, k, kg);
  const GemmOperand w = side(ConvSide::w, false, cgF, kg * cgF);
  const GemmScheme sc = GemmScheme::channels_last;
  switch (d) {
    case Direction::forward:
      return make(sc, rows, kg, cgF, s.g, x, side(ConvSide::w, true, w.ld, w.batch_stride), y);
    case Direction::backward_data:
      return make(sc, rows, cgF, kg, s.g, y, w, x);
    case Direction::backward_weight:
      return make(sc, kg, cgF, rows, s.g, side(ConvSide::y, true, y.ld, y.batch_stride), x, w);
    case Direction::backward_bias:
      break;
  }
  return GemmMap{};
}

// One group, batched over samples: the weight is shared (batch stride 0); the weight gradient
// writes one partial per sample (batch stride k*c*F) for the caller to sum.
GemmMap sample_major(const ConvShape& s, Direction d, int64_t rows) {
  const int64_t k = s.k, P = s.out_pixels(), cF = s.c * s.filt_pixels();
  if (s.g != 1 || P < 1 || rows % P != 0) return GemmMap{};
  const int64_t samples = rows / P;
  const GemmOperand x = side(ConvSide::x, false, P, cF * P);
  const GemmOperand y = side(ConvSide::y, false, P, k * P);
  const GemmScheme sc = GemmScheme::sample_major;
  switch (d) {
    case Direction::forward:
      return make(sc, k, P, cF, samples, side(ConvSide::w, false, cF, 0), x, y);
    case Direction::backward_data:
      return make(sc, cF, P, k, samples, side(ConvSide::w, true, cF, 0), y, x);
    case Direction::backward_weight:
      return make(sc, k, cF, P, samples, y, side(ConvSide::x, true, P, cF * P),
                  side(ConvSide::w, false, cF, k * cF));
    case Direction::backward_bias:
      break;
  }
  return GemmMap{};
}

// Channel-major columns [c*F][rows] and output [k][rows]; groups are row blocks.
GemmMap group_major(const ConvShape& s, Direction d, int64_t rows) {
  const int64_t kg = s.kg(), cgF = s.cg() * s.filt_pixels();
  const GemmOperand x = side(ConvSide::x, false, rows, cgF * rows);
  const GemmOperand y = side(ConvSide::y, false, rows, kg * rows);
  const GemmOperand w = side(ConvSide::w, false, cgF, kg * cgF);
  const GemmScheme sc = GemmScheme::group_major;
  switch (d) {
    case Direction::forward:
      return make(sc, kg, rows, cgF, s.g, w, x, y);
    case Direction::backward_data:
      return make(sc, cgF, rows, kg, s.g, side(ConvSide::w, true, w.ld, w.batch_stride), y, x);
    case Direction::backward_weight:
      return make(sc, kg, cgF, rows, s.g, y, side(ConvSide::x, true, x.ld, x.batch_stride), w);
    case Direction::backward_bias:
      break;
  }
  return GemmMap{};
}

// The gathered tensor, the weight and the written tensor in place (forward, or backward_data as
// the forward pass of y through the flipped weight).
GemmMap implicit(const ConvShape& s, Direction d) {
  const bool fwd = d == Direction::forward;
  if (!fwd && d != Direction::backward_data) return GemmMap{};
  const bool cl = s.layout == Layout::channels_last;
  const int64_t F = s.filt_pixels(), cg = s.cg(), kg = s.kg();
  const int64_t src_ch = fwd ? s.c : s.k, dst_ch = fwd ? s.k : s.c;
  const int64_t src_pix = fwd ? s.in_pixels() : s.out_pixels();
  const int64_t dst_pix = fwd ? s.out_pixels() : s.in_pixels();
  const int64_t cols = fwd ? kg : cg;  // GEMM columns: output channels of a group
  const int64_t red = fwd ? cg : kg;   // reduction channels of a group
  ImplicitView v;
  v.a_sample = src_ch * src_pix;
  v.a_channel = cl ? 1 : src_pix;
  v.a_pixel = cl ? src_ch : 1;
  // w is [k][cg][F] (contiguous) or [k][F][cg] (channels_last); forward reads it along cg and
  // taps for each output channel k, backward_data along k and taps for each cg.
  const int64_t w_k = cl ? F * cg : cg * F;
  const int64_t w_c = cl ? 1 : F;
  v.b_column = fwd ? w_k : w_c;
  v.b_channel = fwd ? w_c : w_k;
  v.b_tap = cl ? cg : 1;
  v.flip = !fwd;
  v.tap_major = cl;
  v.c_sample = dst_ch * dst_pix;
  v.c_column = cl ? 1 : dst_pix;
  v.c_pixel = cl ? dst_ch : 1;
  v.pixels = dst_pix;
  const ConvSide src = fwd ? ConvSide::x : ConvSide::y;
  const ConvSide dst = fwd ? ConvSide::y : ConvSide::x;
  GemmMap g = make(GemmScheme::implicit, s.n * dst_pix, cols, red * F, s.g,
                   side(src, false, 0, red * v.a_channel), side(ConvSide::w, fwd, 0, kg * cg * F),
                   side(dst, false, 0, cols * v.c_column));
  g.view = v;
  return g;
}

// Transform-domain tiles: V [T][g][rows][cg], U [T][g][cg][kg], M [T][g][rows][kg].
GemmMap winograd(const ConvShape& s, Direction d, int64_t rows, int64_t transforms) {
  const int64_t cg = s.cg(), kg = s.kg(), batch = transforms * s.g;
  const GemmOperand v = side(ConvSide::x, false, cg, rows * cg);
  const GemmOperand u = side(ConvSide::w, false, kg, cg * kg);
  const GemmOperand m = side(ConvSide::y, false, kg, rows * kg);
  const GemmScheme sc = GemmScheme::winograd;
  switch (d) {
    case Direction::forward:
      return make(sc, rows, kg, cg, batch, v, u, m);
    case Direction::backward_data:
      return make(sc, rows, cg, kg, batch, m, side(ConvSide::w, true, u.ld, u.batch_stride), v);
    case Direction::backward_weight:
      return make(sc, cg, kg, rows, batch, side(ConvSide::x, true, v.ld, v.batch_stride), m, u);
    case Direction::backward_bias:
      break;
  }
  return GemmMap{};
}

// Channel-major transform-domain tiles (for the contiguous layout, whose transforms then run
// along tiles): V [T][g][cg][rows], U [T][g][cg][kg], M [T][g][kg][rows].
GemmMap winograd_channel_major(const ConvShape& s, Direction d, int64_t rows, int64_t transforms) {
  const int64_t cg = s.cg(), kg = s.kg(), batch = transforms * s.g;
  const GemmOperand v = side(ConvSide::x, false, rows, cg * rows);
  const GemmOperand u = side(ConvSide::w, false, kg, cg * kg);
  const GemmOperand m = side(ConvSide::y, false, rows, kg * rows);
  const GemmScheme sc = GemmScheme::winograd_channel_major;
  switch (d) {
    case Direction::forward:
      return make(sc, kg, rows, cg, batch, side(ConvSide::w, true, u.ld, u.batch_stride), v, m);
    case Direction::backward_data:
      return make(sc, cg, rows, kg, batch, u, m, v);
    case Direction::backward_weight:
      return make(sc, cg, kg, rows, batch, v, side(ConvSide::y, true, m.ld, m.batch_stride), u);
    case Direction::backward_bias:
      break;
  }
  return GemmMap{};
}

const void* pointer_of(const ConvTensors& t, ConvSide s) {
  switch (s) {
    case ConvSide::x:
      return t.x;
    case ConvSide::w:
      return t.w;
    case ConvSide::y:
      return t.y;
  }
  return nullptr;
}

}  // namespace

// Data moved per sample of a chunk, in elements, counting each intermediate once written and
// once read (the GEMMs read x's columns and y either way, and write w once per problem):
//   group_major:  y permuted to [k][rows]: 2*k*P; x gathered into [c*F][rows]: 2*c*F*P.
//   sample_major: the partial [k][c*F] written by the GEMM and read by the sum: 2*k*c*F; x
//                 gathered into [n][c*F][P] (the same 2*c*F*P), or nothing when x itself is the
//                 column matrix (x_in_place: a 1x1 filter at stride 1, where c*F = c).
// So sample_major moves less when
//   k*c*F < k*P + (x_in_place ? c*P : 0),
// independent of the chunk size. Examples (batch 32): 1x1 256->64 at 56x56 (P = 3136, x in
// place): 16384 < 1003520, sample_major; 3x3 64->64 at 56x56 (c*F = 576): 36864 < 200704,
// sample_major; 3x3 512->512 at 7x7 (P = 49, c*F = 4608): group_major. With one sample the
// group_major path permutes nothing, so partials could only add work.
bool sample_major_weight_gradient(const ConvShape& s, bool x_in_place) {
  if (s.layout != Layout::contiguous || s.g != 1 || s.n < 2) return false;
  const int64_t P = s.out_pixels(), cF = s.c * s.filt_pixels();
  const double partials = static_cast<double>(s.k) * static_cast<double>(cF);
  const double replaced = static_cast<double>(s.k) * static_cast<double>(P) +
                          (x_in_place ? static_cast<double>(s.c) * static_cast<double>(P) : 0.0);
  return partials < replaced;
}

GemmScheme explicit_scheme(const ConvShape& s, Direction d, bool x_in_place) {
  if (s.layout == Layout::channels_last) return GemmScheme::channels_last;
  if (d == Direction::backward_weight) {
    return sample_major_weight_gradient(s, x_in_place) ? GemmScheme::sample_major
                                                       : GemmScheme::group_major;
  }
  if (s.g == 1) return GemmScheme::sample_major;
  return GemmScheme::group_major;
}

GemmMap gemm_map(const ConvShape& s, Direction d, GemmScheme scheme, int64_t rows,
                 int64_t transforms) {
  switch (scheme) {
    case GemmScheme::channels_last:
      return channels_last(s, d, rows);
    case GemmScheme::sample_major:
      return sample_major(s, d, rows);
    case GemmScheme::group_major:
      return group_major(s, d, rows);
    case GemmScheme::implicit:
      return implicit(s, d);
    case GemmScheme::winograd:
      return winograd(s, d, rows, transforms);
    case GemmScheme::winograd_channel_major:
      return winograd_channel_major(s, d, rows, transforms);
  }
  return GemmMap{};
}

GemmDesc GemmMap::bind(DataType t, const ConvTensors& sides, double beta) const {
  const Operand oa{pointer_of(sides, a.side), a.ld, a.batch_stride};
  const Operand ob{pointer_of(sides, b.side), b.ld, b.batch_stride};
  void* pc = const_cast<void*>(pointer_of(sides, c.side));
  return make_gemm(t, m, n, k, oa, a.trans, ob, b.trans, pc, c.ld, c.batch_stride, batch, beta);
}

}  // namespace solvers
}  // namespace gemmconv
