// The winograd_gemm solver: its transforms against the matrices and a direct correlation, which
// problems it takes and which tile it picks, its place in the planner, and a tolerance that still
// catches a single lost product; the weight gradient's transforms and kernels against a direct
// computation, its chunking and its repeatability.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "catalog.h"
#include "gemmconv/engine.h"
#include "solvers/solvers.h"
#include "solvers/winograd_gemm/winograd.h"
#include "solvers/winograd_gemm/winograd_math.h"
#include "tester.h"

namespace gemmconv {
namespace testing {
namespace {

class CleanConfig {
 public:
  CleanConfig() : saved_(config()) { set_config(Config{}); }
  ~CleanConfig() { set_config(saved_); }

 private:
  Config saved_;
};

// Applies the written-out 1-D transforms to unit vectors and compares with the matrix tables.
template <int kAlpha>
void check_axis_against_matrices() {
  using Ax = winograd::Axis<kAlpha>;
  const winograd::Matrices mt = winograd::matrices(kAlpha);
  ASSERT_EQ(mt.alpha, kAlpha);
  ASSERT_EQ(mt.m, Ax::kM);
  for (int col = 0; col < kAlpha; ++col) {
    double d[kAlpha] = {}, v[kAlpha] = {};
    d[col] = 1.0;
    Ax::input(d, 1, v, 1);
    for (int row = 0; row < kAlpha; ++row) {
      EXPECT_DOUBLE_EQ(v[row], mt.bt[row * kAlpha + col]) << "B^T alpha " << kAlpha;
    }
    double m[kAlpha] = {}, y[Ax::kM] = {};
    m[col] = 1.0;
    Ax::output(m, 1, y, 1);
    for (int row = 0; row < Ax::kM; ++row) {
      EXPECT_DOUBLE_EQ(y[row], mt.at[row * kAlpha + col]) << "A^T alpha " << kAlpha;
    }
  }
  for (int col = 0; col < 3; ++col) {
    double g[3] = {}, u[kAlpha] = {};
    g[col] = 1.0;
    Ax::filter(g, 1, u, 1);
    for (int row = 0; row < kAlpha; ++row) {
      EXPECT_NEAR(u[row], mt.g[row * 3 + col], 1e-15) << "G alpha " << kAlpha;
    }
  }
  // The weight gradient's transforms are the transposes: grad_output applies A (= (A^T)^T),
  // grad_filter G^T.
  for (int o = 0; o < Ax::kM; ++o) {
    double y[Ax::kM] = {}, v[kAlpha] = {};
    y[o] = 1.0;
    Ax::grad_output(y, 1, v, 1);
    for (int xi = 0; xi < kAlpha; ++xi) {
      EXPECT_DOUBLE_EQ(v[xi], mt.at[o * kAlpha + xi]) << "A alpha " << kAlpha;
    }
  }
  for (int xi = 0; xi < kAlpha; ++xi) {
    double u[kAlpha] = {}, g[3] = {};
    u[xi] = 1.0;
    Ax::grad_filter(u, 1, g, 1);
    for (int j = 0; j < 3; ++j) {
      EXPECT_NEAR(g[j], mt.g[xi * 3 + j], 1e-15) << "G^T alpha " << kAlpha;
    }
  }
}

TEST(WinogradMath, TransformsMatchTheMatrices) {
  check_axis_against_matrices<4>();
  check_axis_against_matrices<6>();
}

// A 2-D tile of random data through the three transforms equals the direct correlation.
template <int kAH, int kAW>
void check_tile_correlation() {
  using Tl = winograd::Tile<kAH, kAW>;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  double d[Tl::kT], g[Tl::kRH * Tl::kRW];
  for (double& v : d) v = dist(rng);
  for (double& v : g) v = dist(rng);
  double v[Tl::kT], u[Tl::kT], m[Tl::kT], y[Tl::kMH * Tl::kMW];
  Tl::input(d, v);
  Tl::filter(g, u);
  for (int t = 0; t < Tl::kT; ++t) m[t] = v[t] * u[t];
  Tl::output(m, y);
  for (int a = 0; a < Tl::kMH; ++a) {
    for (int b = 0; b < Tl::kMW; ++b) {
      double want = 0.0;
      for (int i = 0; i < Tl::kRH; ++i) {
        for (int j = 0; j < Tl::kRW; ++j) want += d[(a + i) * kAW + b + j] * g[i * Tl::kRW + j];
      }
      EXPECT_NEAR(y[a * Tl::kMW + b], want, 1e-12) << kAH << "x" << kAW << " at " << a << "," << b;
    }
  }
}

// The weight gradient of one tile: G^T [(B^T d B) . (A dy A^T)] G equals the direct
// dw[i][j] = sum_{a,b} dy[a][b] d[a + i][b + j].
template <int kAH, int kAW>
void check_tile_weight_gradient() {
  using Tl = winograd::Tile<kAH, kAW>;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  double d[Tl::kT], dy[Tl::kMH * Tl::kMW];
  for (double& v : d) v = dist(rng);
  for (double& v : dy) v = dist(rng);
  double v[Tl::kT], e[Tl::kT], m[Tl::kT], dw[Tl::kRH * Tl::kRW];
  Tl::input(d, v);
  Tl::grad_output(dy, e);
  for (int t = 0; t < Tl::kT; ++t) m[t] = v[t] * e[t];
  Tl::grad_filter(m, dw);
  for (int i = 0; i < Tl::kRH; ++i) {
    for (int j = 0; j < Tl::kRW; ++j) {
      double want = 0.0;
      for (int a = 0; a < Tl::kMH; ++a) {
        for (int b = 0; b < Tl::kMW; ++b) want += dy[a * Tl::kMW + b] * d[(a + i) * kAW + b + j];
      }
      EXPECT_NEAR(dw[i * Tl::kRW + j], want, 1e-12)
          << kAH << "x" << kAW << " tap " << i << "," << j;
    }
  }
}

TEST(WinogradMath, TilesComputeTheWeightGradient) {
  check_tile_weight_gradient<4, 4>();
  check_tile_weight_gradient<6, 6>();
  check_tile_weight_gradient<4, 6>();
  check_tile_weight_gradient<6, 4>();
  check_tile_weight_gradient<1, 4>();
  check_tile_weight_gradient<1, 6>();
  check_tile_weight_gradient<4, 1>();
  check_tile_weight_gradient<6, 1>();
}

TEST(WinogradMath, TilesComputeTheCorrelation) {
  check_tile_correlation<4, 4>();
  check_tile_correlation<6, 6>();
  check_tile_correlation<4, 6>();
  check_tile_correlation<6, 4>();
  check_tile_correlation<1, 4>();
  check_tile_correlation<1, 6>();
  check_tile_correlation<4, 1>();
  check_tile_correlation<6, 1>();
}

TEST(WinogradMath, AmplificationFactors) {
  EXPECT_DOUBLE_EQ(winograd::axis_amplification(1), 1.0);
  EXPECT_NEAR(winograd::axis_amplification(4), std::sqrt(5.0 / 3.0), 1e-12);
  // 2-D F(4x4): 283 / 9.
  EXPECT_NEAR(std::pow(winograd::axis_amplification(6), 2), 283.0 / 9.0, 1e-9);
  EXPECT_DOUBLE_EQ(winograd::axis_worst_case(1), 1.0);
  EXPECT_NEAR(winograd::axis_worst_case(4), 8.0 / 3.0, 1e-12);
  EXPECT_NEAR(winograd::axis_worst_case(6), 16.0, 1e-12);
  // The weight gradient's (G and A^T swap roles; see docs/design.md).
  EXPECT_DOUBLE_EQ(winograd::axis_amplification_wgrad(1), 1.0);
  EXPECT_NEAR(winograd::axis_amplification_wgrad(4), std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(std::pow(winograd::axis_amplification_wgrad(6), 2), 871.0 / 36.0, 1e-9);
  EXPECT_DOUBLE_EQ(winograd::axis_worst_case_wgrad(1), 1.0);
  EXPECT_NEAR(winograd::axis_worst_case_wgrad(4), 3.0, 1e-12);
  EXPECT_NEAR(winograd::axis_worst_case_wgrad(6), 40.0 / 3.0, 1e-12);
  const ConvShape s =
      canonical_shape(ProblemBuilder(2).channels(8, 8).input({12, 12}).filter({3}).pad({1}));
  EXPECT_NEAR(winograd::error_factor(s, Direction::backward_weight), 871.0 / 36.0, 1e-9);
  EXPECT_NEAR(winograd::worst_error_factor(s, Direction::backward_weight), 1600.0 / 9.0, 1e-9);
}

TEST(WinogradPlan, PicksTheTileWithFewerTransformPoints) {
  // alpha * ceil(extent / m): F(4,3) when it computes fewer values, F(2,3) on ties.
  EXPECT_EQ(winograd::pick_alpha(3, 56, DataType::f32), 6);
  EXPECT_EQ(winograd::pick_alpha(3, 7, DataType::f32), 6);
  EXPECT_EQ(winograd::pick_alpha(3, 3, DataType::f32), 6);
  EXPECT_EQ(winograd::pick_alpha(3, 5, DataType::f32), 4);  // 12 vs 12
  EXPECT_EQ(winograd::pick_alpha(3, 6, DataType::f32), 4);  // 12 vs 12
  EXPECT_EQ(winograd::pick_alpha(3, 2, DataType::f32), 4);
  EXPECT_EQ(winograd::pick_alpha(3, 1, DataType::f32), 4);
  EXPECT_EQ(winograd::pick_alpha(3, 56, DataType::f64), 6);
  // fp16 and bf16 stay on F(2,3).
  EXPECT_EQ(winograd::pick_alpha(3, 56, DataType::f16), 4);
  EXPECT_EQ(winograd::pick_alpha(3, 56, DataType::bf16), 4);
  EXPECT_EQ(winograd::pick_alpha(1, 56, DataType::f32), 1);
}

ConvShape shape_of(const ConvProblem& p) { return canonical_shape(p); }

TEST(WinogradPlan, Applicability) {
  using B = ProblemBuilder;
  const auto valid = [](const ConvProblem& p, Direction d) {
    return winograd::make_plan(shape_of(p), d).valid;
  };
  const B base = B(2).channels(8, 8).input({9, 9}).filter({3}).pad({1});
  EXPECT_TRUE(valid(base, Direction::forward));
  EXPECT_TRUE(valid(base, Direction::backward_data));
  EXPECT_TRUE(valid(base, Direction::backward_weight));
  EXPECT_FALSE(valid(base, Direction::backward_bias));
  EXPECT_FALSE(valid(B(base).stride({2}), Direction::backward_weight));
  EXPECT_FALSE(valid(B(base).groups(8), Direction::backward_weight));
  EXPECT_FALSE(valid(B(base).stride({2}), Direction::forward));
  EXPECT_FALSE(valid(B(base).dilation({2}).pad({2}), Direction::forward));
  EXPECT_FALSE(valid(B(base).filter({5}).pad({2}), Direction::forward));
  EXPECT_FALSE(valid(B(base).filter({1}).pad({0}), Direction::forward));
  EXPECT_FALSE(valid(B(base).pad({3}), Direction::forward));
  EXPECT_FALSE(valid(B(base).groups(8), Direction::forward));  // depthwise
  EXPECT_TRUE(valid(B(base).groups(4), Direction::forward));
  EXPECT_TRUE(valid(B(base).filter({3, 1}).pad({1, 0}), Direction::forward));
  EXPECT_FALSE(valid(B(base).filter({3, 1}).pad({1, 1}), Direction::forward));
  EXPECT_TRUE(valid(B(1).channels(4, 4).input({20}).filter({3}).pad({1}), Direction::forward));
  EXPECT_TRUE(valid(B(3).channels(4, 4).input({3, 8, 8}).filter({1, 3, 3}).pad({0, 1, 1}),
                    Direction::forward));
  EXPECT_FALSE(
      valid(B(3).channels(4, 4).input({5, 8, 8}).filter({3}).pad({1}), Direction::forward));
  // A transposed stride-1 problem reaches the solver as a regular pass.
  EXPECT_TRUE(valid(B(base).transposed(), Direction::backward_data));
}

TEST(WinogradPlan, BackwardDataCorrelatesWithTheFlippedPadding) {
  const ConvProblem p =
      ProblemBuilder(2).channels(4, 6).input({9, 10}).filter({3}).pad_begin({0, 2}).pad_end({2, 1});
  const winograd::Plan f = winograd::make_plan(shape_of(p), Direction::forward);
  const winograd::Plan b = winograd::make_plan(shape_of(p), Direction::backward_data);
  ASSERT_TRUE(f.valid && b.valid);
  EXPECT_EQ(f.pad_h, 0);
  EXPECT_EQ(f.pad_w, 2);
  EXPECT_EQ(b.pad_h, 2);
  EXPECT_EQ(b.pad_w, 0);
  EXPECT_EQ(b.src_ch, 6);
  EXPECT_EQ(b.dst_ch, 4);
  EXPECT_EQ(b.dst_h, 9);
  EXPECT_EQ(b.dst_w, 10);
  EXPECT_EQ(f.dst_h, 9);   // 9 + 0 + 2 - 2
  EXPECT_EQ(f.dst_w, 11);  // 10 + 2 + 1 - 2
}

TEST(WinogradPlan, BackwardWeightKeepsTheForwardGeometry) {
  const ConvProblem p =
      ProblemBuilder(2).channels(4, 6).input({9, 10}).filter({3}).pad_begin({0, 2}).pad_end({2, 1});
  const winograd::Plan f = winograd::make_plan(shape_of(p), Direction::forward);
  const winograd::Plan w = winograd::make_plan(shape_of(p), Direction::backward_weight);
  ASSERT_TRUE(f.valid && w.valid);
  EXPECT_TRUE(w.weight_grad);
  EXPECT_FALSE(w.backward);
  EXPECT_FALSE(f.weight_grad);
  EXPECT_EQ(w.src_ch, f.src_ch);
  EXPECT_EQ(w.dst_ch, f.dst_ch);
  EXPECT_EQ(w.pad_h, f.pad_h);
  EXPECT_EQ(w.pad_w, f.pad_w);
  EXPECT_EQ(w.dst_h, f.dst_h);
  EXPECT_EQ(w.dst_w, f.dst_w);
  EXPECT_EQ(w.alpha_h, f.alpha_h);
  EXPECT_EQ(w.alpha_w, f.alpha_w);
}

// The two weight-gradient kernels (CPU) against a direct computation from the matrix tables, in
// float64: grad_output puts sum_{a,b} A^T[a][xh] A^T[b][xw] dy[tile + (a, b)] (zero past the
// edge) at the documented place of the destination-side buffer, for a chunk of tiles that starts
// and ends inside samples; grad_filter writes dw[k][c][i][j] = sum_{xh,xw} G[xh][i] G[xw][j]
// U[xh][xw][grp][c][kk] in the weight's layout. Partial tiles, groups, both storages, mixed
// tiles (7 x 5 outputs: 6 x 4 points) and 1-D.
TEST(WinogradKernels, WeightGradientTransformsMatchADirectComputation) {
  const ConvProblem twod =
      ProblemBuilder(2).batch(3).channels(4, 6).groups(2).input({7, 5}).filter({3}).pad({1});
  const ConvProblem oned = ProblemBuilder(1).batch(2).channels(3, 5).input({11}).filter({3});
  for (const ConvProblem& base : {twod, oned}) {
    for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
      ConvProblem prob = base;
      prob.layout = layout;
      prob.dtype = DataType::f64;
      const ConvShape s = canonical_shape(prob);
      const winograd::Plan p = winograd::make_plan(s, Direction::backward_weight);
      ASSERT_TRUE(p.valid) << to_string(prob);
      const winograd::Matrices mh = winograd::matrices(p.alpha_h);
      const winograd::Matrices mw = winograd::matrices(p.alpha_w);
      const bool cl = layout == Layout::channels_last;
      const int64_t g = p.g, kch = p.dst_ch, kg = kch / g, cg = p.src_ch / g;
      const int64_t H = p.dst_h, W = p.dst_w, planes = p.planes;
      std::mt19937_64 rng(5);
      std::uniform_real_distribution<double> dist(-1.0, 1.0);

      // grad_output over tiles [r0, r0 + rows).
      std::vector<double> dy(static_cast<size_t>(p.n * kch * planes * H * W));
      for (double& v : dy) v = dist(rng);
      const int64_t r0 = 1, rows = p.tiles() - 2;
      std::vector<double> buf(static_cast<size_t>(winograd::dest_elements(p, rows)), -7.0);
      ASSERT_TRUE(winograd::cpu::grad_output(p, dy.data(), buf.data(), r0, rows).ok());
      const auto dy_at = [&](int64_t i, int64_t k, int64_t pl, int64_t h, int64_t w) {
        if (h >= H || w >= W) return 0.0;
        const int64_t off = cl ? (((i * planes + pl) * H + h) * W + w) * kch + k
                               : (((i * kch + k) * planes + pl) * H + h) * W + w;
        return dy[static_cast<size_t>(off)];
      };
      for (int64_t r = 0; r < rows; ++r) {
        int64_t q = r0 + r;
        const int64_t tx = q % p.tiles_w;
        q /= p.tiles_w;
        const int64_t ty = q % p.tiles_h;
        q /= p.tiles_h;
        const int64_t pl = q % planes, i = q / planes;
        for (int64_t k = 0; k < kch; ++k) {
          const int64_t grp = k / kg, kk = k % kg;
          for (int xh = 0; xh < p.alpha_h; ++xh) {
            for (int xw = 0; xw < p.alpha_w; ++xw) {
              double want = 0.0;
              for (int a = 0; a < mh.m; ++a) {
                for (int b = 0; b < mw.m; ++b) {
                  want += mh.at[a * mh.alpha + xh] * mw.at[b * mw.alpha + xw] *
                          dy_at(i, k, pl, ty * p.m_h + a, tx * p.m_w + b);
                }
              }
              const int64_t t = xh * p.alpha_w + xw;
              const int64_t off = p.channel_major ? ((t * g + grp) * kg + kk) * rows + r
                                                  : ((t * g + grp) * rows + r) * kg + kk;
              EXPECT_NEAR(buf[static_cast<size_t>(off)], want, 1e-12)
                  << to_string(prob) << " tile " << r0 + r << " channel " << k << " point " << t;
            }
          }
        }
      }

      // grad_filter.
      std::vector<double> u(static_cast<size_t>(winograd::filter_elements(p)));
      for (double& v : u) v = dist(rng);
      const int64_t rh = p.filt_h, rw = p.filt_w, taps = rh * rw;
      std::vector<double> dw(static_cast<size_t>(kch * cg * taps), -7.0);
      ASSERT_TRUE(winograd::cpu::grad_filter(p, u.data(), dw.data()).ok());
      for (int64_t k = 0; k < kch; ++k) {
        const int64_t grp = k / kg, kk = k % kg;
        for (int64_t c = 0; c < cg; ++c) {
          for (int64_t i = 0; i < rh; ++i) {
            for (int64_t j = 0; j < rw; ++j) {
              double want = 0.0;
              for (int xh = 0; xh < p.alpha_h; ++xh) {
                for (int xw = 0; xw < p.alpha_w; ++xw) {
                  const int64_t t = xh * p.alpha_w + xw;
                  want += mh.g[xh * mh.r + i] * mw.g[xw * mw.r + j] *
                          u[static_cast<size_t>(((t * g + grp) * cg + c) * kg + kk)];
                }
              }
              const int64_t tap = i * rw + j;
              const int64_t off = cl ? (k * taps + tap) * cg + c : (k * cg + c) * taps + tap;
              EXPECT_NEAR(dw[static_cast<size_t>(off)], want, 1e-12)
                  << to_string(prob) << " k " << k << " c " << c << " tap " << tap;
            }
          }
        }
      }
    }
  }
}

Capabilities fake_gpu() {
  Capabilities c;
  c.kind = DeviceKind::gpu;
  c.arch = "sm_90";
  c.matrix_units = true;
  c.warp_size = 32;
  c.multiprocessors = 132;
  c.max_threads_per_block = 1024;
  c.shared_memory_per_block = 49152;
  return c;
}

struct Layer {
  int64_t c;
  int64_t hw;
};
const Layer kResNet50[] = {{64, 56}, {128, 28}, {256, 14}, {512, 7}};

ConvProblem resnet_layer(const Layer& l, Layout layout, DataType t) {
  return ProblemBuilder(2)
      .batch(32)
      .channels(l.c, l.c)
      .input({l.hw, l.hw})
      .filter({3})
      .pad({1})
      .layout(layout)
      .dtype(t);
}

Capabilities fake_rdna1() {
  Capabilities c = fake_gpu();
  c.arch = "gfx1010";
  c.matrix_units = false;
  c.multiprocessors = 40;
  return c;
}

// The ResNet-50 3x3 stride-1 layers (batch 32) go to winograd_gemm in every direction, on the
// CPU in fp32 and (in a GPU build) on the GPU where its cost estimate says so: fp32 always, fp16
// on tensor cores except 512 channels at 7x7 (see gpu_cost), in both layouts, under the default
// workspace budget. backward_weight has only im2col_gemm to beat, whose column matrix the
// estimate weighs the same way.
TEST(WinogradPlan, ChosenForResNet50Layers) {
  CleanConfig clean;
  std::vector<Capabilities> devices = {cpu_capabilities()};
  if (gpu_support_compiled()) devices.push_back(fake_gpu());
  for (const Capabilities& caps : devices) {
    for (const Layer& l : kResNet50) {
      for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
        for (DataType t : {DataType::f32, DataType::f16}) {
          if (caps.kind == DeviceKind::cpu && t == DataType::f16) continue;  // see worthwhile()
          const bool want = t == DataType::f32 || l.c <= 256;
          for (Direction d :
               {Direction::forward, Direction::backward_data, Direction::backward_weight}) {
            const ConvProblem p = resnet_layer(l, layout, t);
            Plan plan;
            ASSERT_TRUE(make_plan(p, d, caps, PlanOptions{}, &plan).ok());
            EXPECT_EQ(std::string(plan.solver_name()) == "winograd_gemm", want)
                << to_string(p) << " " << to_string(d) << " on " << to_string(caps.kind) << ": "
                << plan.solver_name();
            EXPECT_LE(plan.workspace_bytes, size_t(256) << 20) << to_string(p);
          }
        }
      }
    }
  }
}

// The GPU estimate (no GPU needed): on an H200 fp32 pays from some 33 channels on (F(4x4)
// against implicit_gemm), fp16 where im2col_gemm's column matrix outweighs F(2x2)'s buffers; on
// RDNA1 (no matrix units, twice the balance) fp32 is a near tie with implicit_gemm at 64
// channels (5% apart, inside the 10% margin) and pays from 128 on, and fp16, where implicit_gemm
// runs too, only for the small late layers. Both layouts cost the same.
TEST(WinogradCost, FollowsTheMachineBalance) {
  struct Case {
    Capabilities caps;
    int64_t c, hw;
    DataType t;
    bool want;
  };
  const Case cases[] = {
      {fake_gpu(), 64, 56, DataType::f32, true},    {fake_gpu(), 512, 7, DataType::f32, true},
      {fake_gpu(), 16, 56, DataType::f32, false},   {fake_gpu(), 64, 56, DataType::f16, true},
      {fake_gpu(), 256, 14, DataType::f16, true},   {fake_gpu(), 512, 7, DataType::f16, false},
      {fake_rdna1(), 64, 56, DataType::f32, false}, {fake_rdna1(), 128, 28, DataType::f32, true},
      {fake_rdna1(), 64, 56, DataType::f16, false}, {fake_rdna1(), 256, 14, DataType::f16, true},
  };
  for (const Case& k : cases) {
    for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
      const ConvShape s = canonical_shape(resnet_layer(Layer{k.c, k.hw}, layout, k.t));
      for (Direction d : {Direction::forward, Direction::backward_data}) {
        const winograd::GpuCost c = winograd::gpu_cost(s, d, k.caps);
        ASSERT_GT(c.winograd, 0.0);
        ASSERT_GT(c.im2col, 0.0);
        EXPECT_EQ(c.winograd < 0.9 * std::min(c.im2col, c.implicit), k.want)
            << k.caps.arch << " " << k.c << "@" << k.hw << " " << to_string(k.t) << " "
            << to_string(layout) << ": " << c.winograd << " / " << c.im2col << " / " << c.implicit;
        const ConvShape other = canonical_shape(resnet_layer(
            Layer{k.c, k.hw},
            layout == Layout::contiguous ? Layout::channels_last : Layout::contiguous, k.t));
        EXPECT_EQ(winograd::gpu_cost(other, d, k.caps).winograd, c.winograd);
      }
    }
  }
}

// backward_weight moves the same bytes and does the same multiply-adds as forward, on both sides,
// and implicit_gemm computes no weight gradient.
TEST(WinogradCost, WeightGradientAgainstIm2colAlone) {
  for (const Capabilities& caps : {fake_gpu(), fake_rdna1(), cpu_capabilities()}) {
    for (const Layer& l : kResNet50) {
      const ConvShape s = canonical_shape(resnet_layer(l, Layout::contiguous, DataType::f32));
      const winograd::GpuCost f = winograd::gpu_cost(s, Direction::forward, caps);
      const winograd::GpuCost w = winograd::gpu_cost(s, Direction::backward_weight, caps);
      EXPECT_GT(w.winograd, 0.0);
      EXPECT_EQ(w.winograd, f.winograd) << l.c << "@" << l.hw;
      EXPECT_EQ(w.im2col, f.im2col) << l.c << "@" << l.hw;
      EXPECT_TRUE(std::isinf(w.implicit)) << l.c << "@" << l.hw;
    }
  }
}

// The contiguous layout stores the transform domain channel-major (tiles innermost, so that the
// transforms run along the tensor's W), channels-last row-major; the GEMM follows the storage.
TEST(WinogradPlan, StorageFollowsTheLayout) {
  for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
    const ConvShape s = canonical_shape(resnet_layer(kResNet50[1], layout, DataType::f32));
    for (Direction d : {Direction::forward, Direction::backward_data}) {
      const winograd::Plan p = winograd::make_plan(s, d);
      ASSERT_TRUE(p.valid);
      EXPECT_EQ(p.channel_major, layout == Layout::contiguous);
      EXPECT_EQ(winograd::scheme(p), layout == Layout::contiguous
                                         ? solvers::GemmScheme::winograd_channel_major
                                         : solvers::GemmScheme::winograd);
    }
  }
}

// Few channels: correct (it runs when asked for by name) but not the planner's choice.
TEST(WinogradPlan, NotPreferredForFewChannels) {
  CleanConfig clean;
  std::vector<Capabilities> devices = {cpu_capabilities()};
  if (gpu_support_compiled()) devices.push_back(fake_gpu());
  for (const Capabilities& caps : devices) {
    const ConvProblem p =
        ProblemBuilder(2).batch(8).channels(8, 8).input({32}).filter({3}).pad({1});
    Plan plan;
    ASSERT_TRUE(make_plan(p, Direction::forward, caps, PlanOptions{}, &plan).ok());
    EXPECT_STRNE(plan.solver_name(), "winograd_gemm") << to_string(caps.kind);
    PlanOptions named;
    named.solver = "winograd_gemm";
    EXPECT_TRUE(make_plan(p, Direction::forward, caps, named, &plan).ok()) << to_string(caps.kind);
  }
  // fp16 on the CPU: the CPU GEMM provider widens every batch entry.
  const ConvProblem h = resnet_layer(kResNet50[1], Layout::contiguous, DataType::f16);
  Plan plan;
  for (Direction d : {Direction::forward, Direction::backward_weight}) {
    ASSERT_TRUE(make_plan(h, d, cpu_capabilities(), PlanOptions{}, &plan).ok());
    EXPECT_STRNE(plan.solver_name(), "winograd_gemm") << to_string(d);
  }
}

// The weight gradient: not for few channels (below 16 per group on either side), nor where the
// batch is small against the channels (U, T Cg Kg values, costs more than the few tiles save:
// measured on the CPU at N=4, 512 channels, 7x7), on either device; the same layer at batch 16
// pays.
TEST(WinogradPlan, WeightGradientNeedsChannelsAndTiles) {
  CleanConfig clean;
  std::vector<Capabilities> devices = {cpu_capabilities()};
  if (gpu_support_compiled()) devices.push_back(fake_gpu());
  for (const Capabilities& caps : devices) {
    const auto chosen = [&caps](const ConvProblem& p) {
      Plan plan;
      EXPECT_TRUE(make_plan(p, Direction::backward_weight, caps, PlanOptions{}, &plan).ok());
      return std::string(plan.solver_name() ? plan.solver_name() : "");
    };
    const ConvProblem few =
        ProblemBuilder(2).batch(32).channels(8, 8).input({56}).filter({3}).pad({1});
    EXPECT_NE(chosen(few), "winograd_gemm") << to_string(caps.kind);
    const ConvProblem grouped =
        ProblemBuilder(2).batch(32).channels(64, 64).groups(8).input({56}).filter({3}).pad({1});
    EXPECT_NE(chosen(grouped), "winograd_gemm") << to_string(caps.kind);
    ConvProblem small_batch = resnet_layer(kResNet50[3], Layout::contiguous, DataType::f32);
    small_batch.batch = 4;
    EXPECT_NE(chosen(small_batch), "winograd_gemm") << to_string(caps.kind);
    small_batch.batch = 16;
    EXPECT_EQ(chosen(small_batch), "winograd_gemm") << to_string(caps.kind);
    PlanOptions named;
    named.solver = "winograd_gemm";
    Plan plan;
    EXPECT_TRUE(make_plan(few, Direction::backward_weight, caps, named, &plan).ok());
  }
}

TEST(WinogradPlan, DisabledByName) {
  CleanConfig clean;
  Config c;
  c.disabled.insert("winograd_gemm");
  set_config(c);
  Plan plan;
  const ConvProblem p = resnet_layer(kResNet50[2], Layout::contiguous, DataType::f32);
  ASSERT_TRUE(make_plan(p, Direction::forward, cpu_capabilities(), PlanOptions{}, &plan).ok());
  EXPECT_STRNE(plan.solver_name(), "winograd_gemm");
}

// Chunking: a budget that holds a few tiles still computes the whole problem correctly, in both
// storages (contiguous: channel-major, channels-last: row-major), with groups and asymmetric
// padding, in every dtype.
TEST(WinogradSolver, SmallBudgetChunksTiles) {
  CleanConfig clean;
  auto dev = make_cpu_env();
  if (!dev->gemm) GTEST_SKIP() << "this build has no CPU BLAS";
  const ConvProblem plain =
      ProblemBuilder(2).batch(3).channels(6, 5).input({13, 11}).filter({3}).pad({1});
  const ConvProblem grouped = ProblemBuilder(2)
                                  .batch(2)
                                  .channels(8, 6)
                                  .groups(2)
                                  .input({9, 10})
                                  .filter({3})
                                  .pad_begin({0, 2})
                                  .pad_end({2, 1});
  for (const ConvProblem& base : {plain, grouped}) {
    for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
      for (DataType t : {DataType::f32, DataType::f64, DataType::f16, DataType::bf16}) {
        ConvProblem p = base;
        p.layout = layout;
        p.dtype = t;
        for (Pass pass : {Pass::forward, Pass::backward_data, Pass::backward_weight}) {
          Tester tr("wino_chunks", p, pass, test_seed());
          ASSERT_TRUE(tr.prepare().ok());
          PlanOptions opts;
          opts.solver = "winograd_gemm";
          opts.workspace_budget = 16 * 1024;  // a fraction of the tiles' buffers
          const RunResult r = tr.run(*dev, opts);
          EXPECT_FALSE(r.declined) << to_string(p);
          EXPECT_TRUE(r.passed()) << to_string(p) << " " << r.describe();
          EXPECT_LE(r.workspace_bytes, opts.workspace_budget);
        }
      }
    }
  }
}

// The tolerance is loose enough for the transforms' rounding and tight enough that dropping a
// single product of the sum (one weight tap of one channel) fails it. bf16's bound (worst-case
// storage roundings of an 8-bit mantissa) is 8.7%, above the weight of one product in any sum
// of 18 or more: its case loses a filter row (three products) of one of two channels.
void check_detects_lost_term(DataType t, int64_t hw, int64_t channels = 16, int64_t lost_taps = 1) {
  CleanConfig clean;
  auto dev = make_cpu_env();
  if (!dev->gemm) GTEST_SKIP() << "this build has no CPU BLAS";
  const ConvProblem p = ProblemBuilder(2)
                            .batch(1)
                            .channels(channels, 4)
                            .input({hw, hw})
                            .filter({3})
                            .pad({1})
                            .dtype(t);
  const ConvShape s = canonical_shape(p);
  HostTensor x(t, input_elements(p)), w(t, weight_elements(p)), y(t, output_elements(p));
  x.fill_random(11);
  w.fill_random(12);
  Plan plan;
  PlanOptions opts;
  opts.solver = "winograd_gemm";
  ASSERT_TRUE(make_plan(p, Direction::forward, dev->caps, opts, &plan).ok());
  std::vector<unsigned char> ws(plan.workspace_bytes);
  ExecContext ctx;
  ctx.caps = &dev->caps;
  ctx.gemm = dev->gemm.get();
  ctx.workspace = ws.data();
  ctx.workspace_bytes = ws.size();
  const double factor = winograd::error_factor(s, Direction::forward);
  const int64_t L = s.cg() * 9;
  const double tol =
      transform_tolerance(t, L, factor, winograd::worst_error_factor(s, Direction::forward));
  // err = max |got - truth| / sum |terms| over y, with the truth in float64.
  const auto max_err = [&](const HostTensor& weights) {
    ConvBuffers b;
    b.input = x.data();
    b.weight = weights.data();
    b.output = y.data();
    EXPECT_TRUE(execute(plan, b, ctx).ok());
    double worst = 0.0;
    for (int64_t k = 0; k < s.k; ++k) {
      for (int64_t oh = 0; oh < s.out[1]; ++oh) {
        for (int64_t ow = 0; ow < s.out[2]; ++ow) {
          double sum = 0.0, abs = 0.0;
          for (int64_t c = 0; c < s.c; ++c) {
            for (int64_t i = 0; i < 3; ++i) {
              for (int64_t j = 0; j < 3; ++j) {
                const int64_t ih = oh - 1 + i, iw = ow - 1 + j;
                if (ih < 0 || iw < 0 || ih >= hw || iw >= hw) continue;
                const double term =
                    x.get((c * hw + ih) * hw + iw) * w.get(((k * s.c + c) * 3 + i) * 3 + j);
                sum += term;
                abs += std::fabs(term);
              }
            }
          }
          const double got = y.get((k * s.out[1] + oh) * s.out[2] + ow);
          worst = std::max(worst, std::fabs(got - sum) / abs);
        }
      }
    }
    return worst;
  };
  const double clean_err = max_err(w);
  EXPECT_LE(clean_err, tol) << to_string(p);
  HostTensor broken = w;
  const int64_t lost_c = std::min<int64_t>(5, s.c - 1);
  for (int64_t j = 0; j < lost_taps; ++j) {  // k = 2, centre row, from the centre tap on
    broken.set(((2 * s.c + lost_c) * 3 + 1) * 3 + (1 + j) % 3, 0.0);
  }
  const double broken_err = max_err(broken);
  EXPECT_GT(broken_err, tol) << to_string(p) << ": a lost product went unnoticed";
  std::printf("[ winograd ] %s factor %.1f: error %.3e, tolerance %.3e, one lost product %.3e\n",
              to_string(p).c_str(), factor, clean_err, tol, broken_err);
}

TEST(WinogradTolerance, F4x4Fp32DetectsALostProduct) { check_detects_lost_term(DataType::f32, 12); }
TEST(WinogradTolerance, F2x2Fp16DetectsALostProduct) { check_detects_lost_term(DataType::f16, 12); }
TEST(WinogradTolerance, F2x2Bf16DetectsALostFilterRow) {
  check_detects_lost_term(DataType::bf16, 12, 2, 3);
}

// The weight gradient of a 2-D contiguous problem run by winograd_gemm on the CPU under `budget`
// (0: the default), and its float64 truth and sum of absolute terms per element of dw.
struct WeightGradRun {
  ConvProblem p;
  HostTensor x, dy;
  std::vector<double> truth, abs;

  WeightGradRun(const ConvProblem& prob, uint64_t seed)
      : p(prob), x(prob.dtype, input_elements(prob)), dy(prob.dtype, output_elements(prob)) {
    x.fill_random(seed);
    dy.fill_random(seed + 1);
    compute_truth();
  }

  void compute_truth() {
    const ConvShape s = canonical_shape(p);
    const int64_t H = s.in[1], W = s.in[2], P = s.out[1], Q = s.out[2];
    const int64_t cg = s.cg(), kg = s.kg();
    truth.assign(static_cast<size_t>(s.k * cg * 9), 0.0);
    abs.assign(truth.size(), 0.0);
    for (int64_t k = 0; k < s.k; ++k) {
      const int64_t grp = k / kg;
      for (int64_t c = 0; c < cg; ++c) {
        for (int64_t i = 0; i < 3; ++i) {
          for (int64_t j = 0; j < 3; ++j) {
            double sum = 0.0, a = 0.0;
            for (int64_t n = 0; n < s.n; ++n) {
              for (int64_t oh = 0; oh < P; ++oh) {
                for (int64_t ow = 0; ow < Q; ++ow) {
                  const int64_t ih = oh - s.pad[1] + i, iw = ow - s.pad[2] + j;
                  if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
                  const double term = dy.get(((n * s.k + k) * P + oh) * Q + ow) *
                                      x.get(((n * s.c + grp * cg + c) * H + ih) * W + iw);
                  sum += term;
                  a += std::fabs(term);
                }
              }
            }
            const size_t e = static_cast<size_t>(((k * cg + c) * 3 + i) * 3 + j);
            truth[e] = sum;
            abs[e] = a;
          }
        }
      }
    }
  }

  HostTensor run(DeviceEnv& dev, size_t budget, int64_t* chunk = nullptr) const {
    Plan plan;
    PlanOptions opts;
    opts.solver = "winograd_gemm";
    opts.workspace_budget = budget;
    HostTensor dw(p.dtype, weight_elements(p));
    dw.poison();
    EXPECT_TRUE(make_plan(p, Direction::backward_weight, dev.caps, opts, &plan).ok());
    if (chunk != nullptr) {
      *chunk = winograd_gemm_chunk_plan(plan.shape, plan.regular, plan.workspace_bytes).chunk;
    }
    std::vector<unsigned char> ws(plan.workspace_bytes, 0xff);
    ExecContext ctx;
    ctx.caps = &dev.caps;
    ctx.gemm = dev.gemm.get();
    ctx.workspace = ws.data();
    ctx.workspace_bytes = ws.size();
    ConvBuffers b;
    b.input = x.data();
    b.grad_output = dy.data();
    b.grad_weight = dw.data();
    EXPECT_TRUE(execute(plan, b, ctx).ok());
    return dw;
  }

  // max |got - truth| / abs over dw.
  double error(const HostTensor& dw) const {
    double worst = 0.0;
    for (size_t e = 0; e < truth.size(); ++e) {
      const double err = std::fabs(dw.get(static_cast<int64_t>(e)) - truth[e]) / abs[e];
      worst = std::max(worst, std::isfinite(err) ? err : 1e300);
    }
    return worst;
  }

  double tolerance() const {
    const ConvShape s = canonical_shape(p);
    return transform_tolerance(p.dtype, s.n * s.out[1] * s.out[2],
                               winograd::error_factor(s, Direction::backward_weight),
                               winograd::worst_error_factor(s, Direction::backward_weight));
  }
};

// The weight gradient summed over chunks of tiles (beta 1 on later chunks; an fp32 accumulator
// for f16/bf16) against the whole reduction in one GEMM: both within the tolerance of the
// float64 truth and of each other, and each bitwise equal over two runs.
TEST(WinogradSolver, WeightGradientChunkedMatchesWholeAndRepeats) {
  CleanConfig clean;
  auto dev = make_cpu_env();
  if (!dev->gemm) GTEST_SKIP() << "this build has no CPU BLAS";
  const ConvProblem plain =
      ProblemBuilder(2).batch(3).channels(6, 5).input({13, 11}).filter({3}).pad({1});
  const ConvProblem grouped =
      ProblemBuilder(2).batch(2).channels(8, 6).groups(2).input({9, 10}).filter({3}).pad({1});
  for (const ConvProblem& base : {plain, grouped}) {
    for (DataType t : {DataType::f32, DataType::f64, DataType::f16, DataType::bf16}) {
      ConvProblem p = base;
      p.dtype = t;
      const WeightGradRun w(p, 21);
      const double tol = w.tolerance();
      const ConvShape s = canonical_shape(p);
      const int64_t tiles = winograd::make_plan(s, Direction::backward_weight).tiles();
      // The smallest budget (in steps of 1 KiB) that holds U and a few tiles.
      size_t small = 1024;
      while (winograd_gemm_chunk_plan(s, Direction::backward_weight, small).chunk < 2) {
        small += 1024;
      }
      int64_t whole_chunk = 0, small_chunk = 0;
      const HostTensor whole = w.run(*dev, 0, &whole_chunk);
      const HostTensor whole2 = w.run(*dev, 0);
      const HostTensor chunked = w.run(*dev, small, &small_chunk);
      const HostTensor chunked2 = w.run(*dev, small);
      EXPECT_EQ(whole_chunk, tiles) << to_string(p);
      EXPECT_EQ(winograd_gemm_chunk_plan(s, Direction::backward_weight, small).accumulator,
                t == DataType::f16 || t == DataType::bf16)
          << to_string(p);
      EXPECT_GT(small_chunk, 0) << to_string(p);
      EXPECT_LT(small_chunk * 2, tiles) << to_string(p) << ": the small budget must chunk";
      EXPECT_EQ(std::memcmp(whole.data(), whole2.data(), whole.bytes()), 0) << to_string(p);
      EXPECT_EQ(std::memcmp(chunked.data(), chunked2.data(), chunked.bytes()), 0) << to_string(p);
      EXPECT_LE(w.error(whole), tol) << to_string(p);
      EXPECT_LE(w.error(chunked), tol) << to_string(p);
      double apart = 0.0;
      for (int64_t e = 0; e < whole.count(); ++e) {
        apart = std::max(apart, std::fabs(whole.get(e) - chunked.get(e)) / w.abs[size_t(e)]);
      }
      EXPECT_LE(apart, 2 * tol) << to_string(p);
    }
  }
}

// The weight gradient's tolerance still catches one lost product: one element of dy zeroed (the
// largest, so that its products weigh most) drops one of the N P products of the sum behind
// 9 C elements of dw. fp32 F(4x4) over 8x8 outputs, fp16 F(2x2) over 6x6 (the fp16 storage term,
// 28 u, is 1.4%, so the sum must be short).
void check_weight_gradient_detects_lost_term(DataType t, int64_t hw) {
  CleanConfig clean;
  auto dev = make_cpu_env();
  if (!dev->gemm) GTEST_SKIP() << "this build has no CPU BLAS";
  const ConvProblem p =
      ProblemBuilder(2).batch(1).channels(8, 4).input({hw, hw}).filter({3}).pad({1}).dtype(t);
  WeightGradRun w(p, 31);
  const double tol = w.tolerance();
  const double clean_err = w.error(w.run(*dev, 0));
  EXPECT_LE(clean_err, tol) << to_string(p);
  int64_t biggest = 0;
  for (int64_t e = 0; e < w.dy.count(); ++e) {
    if (std::fabs(w.dy.get(e)) > std::fabs(w.dy.get(biggest))) biggest = e;
  }
  const HostTensor intact = w.dy;
  w.dy.set(biggest, 0.0);
  const HostTensor broken = w.run(*dev, 0);
  w.dy = intact;
  const double broken_err = w.error(broken);
  EXPECT_GT(broken_err, tol) << to_string(p) << ": a lost product went unnoticed";
  std::printf(
      "[ winograd ] wgrad %s factor %.1f: error %.3e, tolerance %.3e, one lost product %.3e\n",
      to_string(p).c_str(), winograd::error_factor(canonical_shape(p), Direction::backward_weight),
      clean_err, tol, broken_err);
}

TEST(WinogradTolerance, WeightGradientF4x4Fp32DetectsALostProduct) {
  check_weight_gradient_detects_lost_term(DataType::f32, 8);
}
TEST(WinogradTolerance, WeightGradientF2x2Fp16DetectsALostProduct) {
  check_weight_gradient_detects_lost_term(DataType::f16, 6);
}

}  // namespace
}  // namespace testing
}  // namespace gemmconv
