// Tests of the conv-to-GEMM map where no solver runs it yet: the transform-domain (Winograd)
// GEMMs against the per-point products the header documents, and the implicit scheme's views
// against the tensors' layouts.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "gemmconv/problem.h"
#include "solvers/common.h"
#include "solvers/gemm_map.h"

namespace gemmconv {
namespace {

using solvers::GemmMap;
using solvers::GemmScheme;

// C_b = op(A_b) op(B_b) + beta C_b over the descriptor, in double, with no BLAS.
void naive_gemm(const GemmDesc& d) {
  const double* a = static_cast<const double*>(d.a);
  const double* b = static_cast<const double*>(d.b);
  double* c = static_cast<double*>(d.c);
  for (int64_t e = 0; e < d.batch; ++e) {
    for (int64_t i = 0; i < d.m; ++i) {
      for (int64_t j = 0; j < d.n; ++j) {
        double acc = 0.0;
        for (int64_t r = 0; r < d.k; ++r) {
          const double av =
              d.trans_a ? a[e * d.stride_a + r * d.lda + i] : a[e * d.stride_a + i * d.lda + r];
          const double bv =
              d.trans_b ? b[e * d.stride_b + j * d.ldb + r] : b[e * d.stride_b + r * d.ldb + j];
          acc += av * bv;
        }
        double& out = c[e * d.stride_c + i * d.ldc + j];
        out = acc + d.beta * out;
      }
    }
  }
}

std::vector<double> ramp(size_t count, double scale) {
  std::vector<double> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = scale * static_cast<double>((i * 7919) % 23) - 5.0;
  return v;
}

ConvShape grouped_shape() {
  ConvShape s;
  s.n = 2;
  s.c = 6;
  s.k = 4;
  s.g = 2;
  s.in = {1, 4, 4};
  s.filt = {1, 3, 3};
  s.out = {1, 2, 2};
  s.dtype = DataType::f64;
  return s;
}

TEST(GemmMap, WinogradBatchesTransformPointsAndGroups) {
  const ConvShape s = grouped_shape();
  const int64_t T = 16, rows = 5, g = s.g, cg = s.cg(), kg = s.kg();
  // V [T][g][rows][cg], U [T][g][cg][kg], M [T][g][rows][kg].
  std::vector<double> V = ramp(size_t(T * g * rows * cg), 0.5);
  std::vector<double> U = ramp(size_t(T * g * cg * kg), 0.25);
  std::vector<double> M = ramp(size_t(T * g * rows * kg), 0.125);
  const auto v_at = [&](int64_t b, int64_t r, int64_t c) {
    return V[size_t((b * rows + r) * cg + c)];
  };
  const auto u_at = [&](int64_t b, int64_t c, int64_t k) {
    return U[size_t((b * cg + c) * kg + k)];
  };
  const auto m_at = [&](int64_t b, int64_t r, int64_t k) {
    return M[size_t((b * rows + r) * kg + k)];
  };

  // forward: M = V . U per (point, group).
  {
    const GemmMap map = solvers::gemm_map(s, Direction::forward, GemmScheme::winograd, rows, T);
    ASSERT_TRUE(map.valid);
    std::vector<double> out(M.size(), 0.0);
    const GemmDesc d = map.bind(s.dtype, ConvTensors{V.data(), U.data(), out.data()});
    EXPECT_TRUE(solvers::gemm_fits(d));
    naive_gemm(d);
    for (int64_t b = 0; b < T * g; ++b)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < kg; ++k) {
          double want = 0.0;
          for (int64_t c = 0; c < cg; ++c) want += v_at(b, r, c) * u_at(b, c, k);
          EXPECT_EQ(out[size_t((b * rows + r) * kg + k)], want) << b << " " << r << " " << k;
        }
  }
  // backward_data: V = M . U^T.
  {
    const GemmMap map =
        solvers::gemm_map(s, Direction::backward_data, GemmScheme::winograd, rows, T);
    ASSERT_TRUE(map.valid);
    std::vector<double> out(V.size(), 0.0);
    naive_gemm(map.bind(s.dtype, ConvTensors{out.data(), U.data(), M.data()}));
    for (int64_t b = 0; b < T * g; ++b)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cg; ++c) {
          double want = 0.0;
          for (int64_t k = 0; k < kg; ++k) want += m_at(b, r, k) * u_at(b, c, k);
          EXPECT_EQ(out[size_t((b * rows + r) * cg + c)], want);
        }
  }
  // backward_weight: U = V^T . M.
  {
    const GemmMap map =
        solvers::gemm_map(s, Direction::backward_weight, GemmScheme::winograd, rows, T);
    ASSERT_TRUE(map.valid);
    std::vector<double> out(U.size(), 0.0);
    naive_gemm(map.bind(s.dtype, ConvTensors{V.data(), out.data(), M.data()}));
    for (int64_t b = 0; b < T * g; ++b)
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t k = 0; k < kg; ++k) {
          double want = 0.0;
          for (int64_t r = 0; r < rows; ++r) want += v_at(b, r, c) * m_at(b, r, k);
          EXPECT_EQ(out[size_t((b * cg + c) * kg + k)], want);
        }
  }
}

// The channel-major form stores the same matrices with rows innermost: V [T][g][cg][rows],
// U [T][g][cg][kg], M [T][g][kg][rows]; each pass is still one GEMM batched over points and
// groups.
TEST(GemmMap, WinogradChannelMajorStoresRowsInnermost) {
  const ConvShape s = grouped_shape();
  const int64_t T = 16, rows = 5, g = s.g, cg = s.cg(), kg = s.kg();
  std::vector<double> V = ramp(size_t(T * g * cg * rows), 0.5);
  std::vector<double> U = ramp(size_t(T * g * cg * kg), 0.25);
  std::vector<double> M = ramp(size_t(T * g * kg * rows), 0.125);
  const auto v_at = [&](int64_t b, int64_t r, int64_t c) {
    return V[size_t((b * cg + c) * rows + r)];
  };
  const auto u_at = [&](int64_t b, int64_t c, int64_t k) {
    return U[size_t((b * cg + c) * kg + k)];
  };
  const auto m_at = [&](int64_t b, int64_t r, int64_t k) {
    return M[size_t((b * kg + k) * rows + r)];
  };
  const GemmScheme sc = GemmScheme::winograd_channel_major;
  // forward: M = U^T . V.
  {
    const GemmMap map = solvers::gemm_map(s, Direction::forward, sc, rows, T);
    ASSERT_TRUE(map.valid);
    EXPECT_EQ(map.batch, T * g);
    std::vector<double> out(M.size(), 0.0);
    const GemmDesc d = map.bind(s.dtype, ConvTensors{V.data(), U.data(), out.data()});
    EXPECT_TRUE(solvers::gemm_fits(d));
    naive_gemm(d);
    for (int64_t b = 0; b < T * g; ++b)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < kg; ++k) {
          double want = 0.0;
          for (int64_t c = 0; c < cg; ++c) want += v_at(b, r, c) * u_at(b, c, k);
          EXPECT_EQ(out[size_t((b * kg + k) * rows + r)], want) << b << " " << r << " " << k;
        }
  }
  // backward_data: V = U . M.
  {
    const GemmMap map = solvers::gemm_map(s, Direction::backward_data, sc, rows, T);
    ASSERT_TRUE(map.valid);
    std::vector<double> out(V.size(), 0.0);
    naive_gemm(map.bind(s.dtype, ConvTensors{out.data(), U.data(), M.data()}));
    for (int64_t b = 0; b < T * g; ++b)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cg; ++c) {
          double want = 0.0;
          for (int64_t k = 0; k < kg; ++k) want += m_at(b, r, k) * u_at(b, c, k);
          EXPECT_EQ(out[size_t((b * cg + c) * rows + r)], want);
        }
  }
  // backward_weight: U = V . M^T.
  {
    const GemmMap map = solvers::gemm_map(s, Direction::backward_weight, sc, rows, T);
    ASSERT_TRUE(map.valid);
    std::vector<double> out(U.size(), 0.0);
    naive_gemm(map.bind(s.dtype, ConvTensors{V.data(), out.data(), M.data()}));
    for (int64_t b = 0; b < T * g; ++b)
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t k = 0; k < kg; ++k) {
          double want = 0.0;
          for (int64_t r = 0; r < rows; ++r) want += v_at(b, r, c) * m_at(b, r, k);
          EXPECT_EQ(out[size_t((b * cg + c) * kg + k)], want);
        }
  }
}

TEST(GemmMap, SchemesThatCannotComputeAPassSaySo) {
  const ConvShape s = grouped_shape();
  EXPECT_FALSE(solvers::gemm_map(s, Direction::backward_weight, GemmScheme::implicit, 0).valid);
  EXPECT_FALSE(solvers::gemm_map(s, Direction::forward, GemmScheme::sample_major, 4).valid);
  EXPECT_FALSE(solvers::gemm_map(s, Direction::backward_weight, GemmScheme::sample_major, 4).valid);
  ConvShape one = s;
  one.g = 1;
  EXPECT_FALSE(solvers::gemm_map(one, Direction::forward, GemmScheme::sample_major, 3).valid);
  EXPECT_FALSE(
      solvers::gemm_map(one, Direction::backward_weight, GemmScheme::sample_major, 3).valid);
  EXPECT_TRUE(solvers::gemm_map(one, Direction::forward, GemmScheme::sample_major, 8).valid);
  EXPECT_TRUE(
      solvers::gemm_map(one, Direction::backward_weight, GemmScheme::sample_major, 8).valid);
  EXPECT_FALSE(solvers::gemm_map(s, Direction::backward_bias, GemmScheme::channels_last, 4).valid);
}

// sample_major backward_weight: one partial per sample, dw_b = y_b . col_b^T, into a buffer
// [samples][k][c*F] bound as the w side.
TEST(GemmMap, SampleMajorWeightGradientWritesPerSamplePartials) {
  ConvShape s = grouped_shape();
  s.g = 1;
  s.n = 3;
  const int64_t n = s.n, k = s.k, P = s.out_pixels(), cF = s.c * s.filt_pixels();
  const std::vector<double> col = ramp(size_t(n * cF * P), 0.5);  // [n][c*F][P]
  const std::vector<double> y = ramp(size_t(n * k * P), 0.25);    // [n][k][P]
  const GemmMap map =
      solvers::gemm_map(s, Direction::backward_weight, GemmScheme::sample_major, n * P);
  ASSERT_TRUE(map.valid);
  EXPECT_EQ(map.batch, n);
  EXPECT_EQ(map.m, k);
  EXPECT_EQ(map.n, cF);
  EXPECT_EQ(map.k, P);
  EXPECT_EQ(map.c.side, solvers::ConvSide::w);
  std::vector<double> partials(size_t(n * k * cF), 0.0);
  const GemmDesc d = map.bind(s.dtype, ConvTensors{const_cast<double*>(col.data()), partials.data(),
                                                   const_cast<double*>(y.data())});
  EXPECT_TRUE(solvers::gemm_fits(d));
  naive_gemm(d);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t kk = 0; kk < k; ++kk)
      for (int64_t j = 0; j < cF; ++j) {
        double want = 0.0;
        for (int64_t p = 0; p < P; ++p) {
          want += y[size_t((b * k + kk) * P + p)] * col[size_t((b * cF + j) * P + p)];
        }
        EXPECT_EQ(partials[size_t((b * k + kk) * cF + j)], want) << b << " " << kk << " " << j;
      }
}

// The weight-gradient scheme rule: sample_major when k*c*F < k*P (+ c*P with x read in place).
TEST(GemmMap, WeightGradientSchemeRule) {
  const Direction bw = Direction::backward_weight;
  ConvShape s;
  s.n = 32;
  s.c = 256;
  s.k = 64;
  s.in = {1, 56, 56};
  s.out = {1, 56, 56};
  s.dtype = DataType::f32;
  // 1x1 256->64 at 56x56: the example of the header.
  EXPECT_EQ(solvers::explicit_scheme(s, bw, true), GemmScheme::sample_major);
  EXPECT_EQ(solvers::explicit_scheme(s, bw, false), GemmScheme::sample_major);
  // 3x3 512->512 at 7x7: c*F = 4608 against P = 49.
  ConvShape b = s;
  b.c = b.k = 512;
  b.in = b.out = {1, 7, 7};
  b.filt = {1, 3, 3};
  b.pad = {0, 1, 1};
  EXPECT_EQ(solvers::explicit_scheme(b, bw), GemmScheme::group_major);
  EXPECT_EQ(solvers::explicit_scheme(b, Direction::forward), GemmScheme::sample_major);
  // At the boundary k*c*F == k*P the partials do not pay; one pixel more and they do. With x in
  // place the gather it saves (c*P) counts too.
  ConvShape e = s;
  e.c = 4;
  e.k = 8;
  e.filt = {1, 1, 3};
  e.pad = {0, 0, 1};
  e.in = e.out = {1, 1, 12};  // P = 12 = c*F
  EXPECT_FALSE(solvers::sample_major_weight_gradient(e, false));
  e.in = e.out = {1, 1, 13};
  EXPECT_TRUE(solvers::sample_major_weight_gradient(e, false));
  ConvShape f = s;  // 1x1: k*c = 64 against k*P + c*P = 12*P
  f.c = 8;
  f.k = 8;
  f.in = f.out = {1, 1, 5};
  EXPECT_FALSE(solvers::sample_major_weight_gradient(f, false));  // 64 against 40
  EXPECT_TRUE(solvers::sample_major_weight_gradient(f, true));    // 64 against 40 + 40
  f.in = f.out = {1, 1, 4};                                       // 64 against 32 + 32
  EXPECT_FALSE(solvers::sample_major_weight_gradient(f, true));
  // Never with one sample, groups or channels-last.
  ConvShape g = s;
  g.n = 1;
  EXPECT_EQ(solvers::explicit_scheme(g, bw, true), GemmScheme::group_major);
  g = s;
  g.g = 2;
  EXPECT_EQ(solvers::explicit_scheme(g, bw, true), GemmScheme::group_major);
  g = s;
  g.layout = Layout::channels_last;
  EXPECT_EQ(solvers::explicit_scheme(g, bw, true), GemmScheme::channels_last);
}

// Offsets of an activation element and a weight element in either layout.
int64_t act_off(bool cl, int64_t ch, int64_t pixels, int64_t i, int64_t c, int64_t px) {
  return cl ? (i * pixels + px) * ch + c : (i * ch + c) * pixels + px;
}
int64_t w_off(const ConvShape& s, bool cl, int64_t k, int64_t c, int64_t f) {
  const int64_t F = s.filt_pixels();
  return cl ? (k * F + f) * s.cg() + c : (k * s.cg() + c) * F + f;
}

TEST(GemmMap, ImplicitViewsFollowTheLayouts) {
  for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
    ConvShape s = grouped_shape();
    s.layout = layout;
    const bool cl = layout == Layout::channels_last;
    const int64_t F = s.filt_pixels(), P = s.out_pixels(), I = s.in_pixels();
    for (Direction d : {Direction::forward, Direction::backward_data}) {
      const bool fwd = d == Direction::forward;
      const GemmMap map = solvers::gemm_map(s, d, GemmScheme::implicit, 0);
      ASSERT_TRUE(map.valid);
      const solvers::ImplicitView& v = map.view;
      EXPECT_EQ(map.m, s.n * (fwd ? P : I));
      EXPECT_EQ(map.n, fwd ? s.kg() : s.cg());
      EXPECT_EQ(map.k, (fwd ? s.cg() : s.kg()) * F);
      EXPECT_EQ(map.batch, s.g);
      EXPECT_EQ(v.pixels, fwd ? P : I);
      EXPECT_EQ(v.tap_major, cl);
      EXPECT_EQ(v.flip, !fwd);
      const int64_t src_ch = fwd ? s.c : s.k, src_pix = fwd ? I : P;
      const int64_t dst_ch = fwd ? s.k : s.c, dst_pix = fwd ? P : I;
      const int64_t red = fwd ? s.cg() : s.kg();
      const int64_t grp = 1, i = 1, c = 1, px = 2, col = 1, f = 3;
      // A: sample i, reduction channel c of group grp, pixel px of the gathered tensor.
      EXPECT_EQ(grp * map.a.batch_stride + i * v.a_sample + c * v.a_channel + px * v.a_pixel,
                act_off(cl, src_ch, src_pix, i, grp * red + c, px));
      // C: sample i, GEMM column col of group grp, pixel px of the written tensor.
      EXPECT_EQ(grp * map.c.batch_stride + i * v.c_sample + col * v.c_column + px * v.c_pixel,
                act_off(cl, dst_ch, dst_pix, i, grp * map.n + col, px));
      // B: column col, reduction channel c, tap f of group grp.
      const int64_t kk = fwd ? grp * s.kg() + col : grp * s.kg() + c;
      const int64_t cc = fwd ? c : col;
      EXPECT_EQ(grp * map.b.batch_stride + col * v.b_column + c * v.b_channel + f * v.b_tap,
                w_off(s, cl, kk, cc, f));
    }
  }
}

}  // namespace
}  // namespace gemmconv
