// The implicit-GEMM solver: applicability, every case against float64, and tile configurations
// that agree bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "catalog.h"
#include "gemmconv/device.h"
#include "gemmconv/engine.h"
#include "solvers/implicit_gemm/implicit_gemm.h"
#include "tester.h"

namespace gemmconv {
namespace testing {
namespace {

struct Case {
  std::string name;
  ConvProblem p;
};

// Odd sizes that are not multiples of the tiles, every kind of geometry, N = 1 and N = 5.
std::vector<Case> cases() {
  std::vector<Case> v;
  v.push_back(
      {"1d_k5_s2",
       ProblemBuilder(1).batch(5).channels(6, 10).input({37}).filter({5}).stride({2}).pad({2})});
  v.push_back({"2d_1x1", ProblemBuilder(2).batch(5).channels(16, 24).input({9, 11}).filter({1})});
  v.push_back({"2d_3x3_n1",
               ProblemBuilder(2).batch(1).channels(13, 70).input({19, 17}).filter({3}).pad({1})});
  v.push_back({"2d_3x3_aligned",
               ProblemBuilder(2).batch(3).channels(8, 32).input({12, 12}).filter({3}).pad({1})});
  v.push_back({"2d_3x3_wide",
               ProblemBuilder(2).batch(5).channels(40, 130).input({10, 9}).filter({3}).pad({1})});
  v.push_back({"2d_5x5_dil2_asym", ProblemBuilder(2)
                                       .batch(2)
                                       .channels(7, 9)
                                       .input({21, 20})
                                       .filter({5})
                                       .dilation({2})
                                       .pad_begin({4, 3})
                                       .pad_end({3, 2})});
  v.push_back(
      {"2d_7x7_s2",
       ProblemBuilder(2).batch(2).channels(3, 64).input({33, 35}).filter({7}).stride({2}).pad(
           {3})});
  v.push_back({"2d_groups_asym", ProblemBuilder(2)
                                     .batch(5)
                                     .channels(16, 12)
                                     .groups(4)
                                     .input({11, 10})
                                     .filter({3})
                                     .pad_begin({0, 1})
                                     .pad_end({2, 1})});
  v.push_back({"2d_depthwise_s2", ProblemBuilder(2)
                                      .batch(5)
                                      .channels(12, 12)
                                      .groups(12)
                                      .input({15, 14})
                                      .filter({3})
                                      .stride({2})
                                      .pad({1})});
  v.push_back(
      {"2d_rect_s21",
       ProblemBuilder(2).batch(1).channels(9, 5).input({12, 13}).filter({2, 3}).stride({2, 1}).pad(
           {1, 0})});
  v.push_back({"3d_3x3x3", ProblemBuilder(3)
                               .batch(2)
                               .channels(5, 7)
                               .input({6, 7, 8})
                               .filter({3})
                               .stride({1, 2, 1})
                               .dilation({2, 1, 1})
                               .pad({1})});
  v.push_back(
      {"3d_groups",
       ProblemBuilder(3).batch(1).channels(8, 6).groups(2).input({4, 5, 6}).filter({1, 3, 3}).pad(
           {0, 1, 1})});
  v.push_back(
      {"2d_transposed_s1",
       ProblemBuilder(2).batch(2).channels(10, 6).input({8, 9}).filter({3}).pad({1}).transposed()});
  return v;
}

// A GPU environment that reports no matrix units, so the solver takes f16 and bf16 as it does
// on RDNA1. Created once and never destroyed, like shared_gpu_env.
DeviceEnv* simt_gpu_env(std::string* why) {
  static std::string reason;
  static DeviceEnv* env = [] {
    std::unique_ptr<DeviceEnv> e = make_gpu_env(&reason);
    if (e) {
      e->caps.arch = "gfx1010";
      e->caps.matrix_units = false;
    }
    return e.release();
  }();
  if (!env) *why = reason;
  return env;
}

Capabilities fake_gpu_caps(const char* arch) {
  Capabilities c;
  c.kind = DeviceKind::gpu;
  c.arch = arch;
  c.matrix_units = arch_has_matrix_units(arch);
  c.warp_size = 32;
  c.multiprocessors = 40;
  c.max_threads_per_block = 1024;
  c.shared_memory_per_block = 65536;
  return c;
}

PlanContext plan_ctx(const Capabilities& caps) {
  PlanContext ctx;
  ctx.caps = &caps;
  ctx.workspace_budget = 0;
  return ctx;
}

TEST(ImplicitGemm, DeclinesTheCpu) {
  const Capabilities cpu = cpu_capabilities();
  const Solver& s = implicit_gemm_solver();
  for (const Case& c : cases()) {
    for (Direction d : {Direction::forward, Direction::backward_data, Direction::backward_weight}) {
      EXPECT_FALSE(s.is_applicable(canonical_shape(c.p), d, plan_ctx(cpu))) << c.name;
    }
  }
}

TEST(ImplicitGemm, Applicability) {
  const Solver& s = implicit_gemm_solver();
  const Capabilities simt = fake_gpu_caps("gfx1010");
  const Capabilities tensor = fake_gpu_caps("sm_90");
  ConvProblem p = ProblemBuilder(2).batch(2).channels(8, 8).input({9, 9}).filter({3}).pad({1});
  ConvShape sh = canonical_shape(p);
  EXPECT_EQ(s.workspace_bytes(sh, Direction::forward, plan_ctx(simt)), 0u);
  if (!gpu_support_compiled()) {
    EXPECT_FALSE(s.is_applicable(sh, Direction::forward, plan_ctx(simt)));
    return;
  }
  EXPECT_TRUE(s.is_applicable(sh, Direction::forward, plan_ctx(simt)));
  EXPECT_TRUE(s.is_applicable(sh, Direction::backward_data, plan_ctx(simt)));
  EXPECT_FALSE(s.is_applicable(sh, Direction::backward_weight, plan_ctx(simt)));
  EXPECT_FALSE(s.is_applicable(sh, Direction::backward_bias, plan_ctx(simt)));
  for (DataType t : {DataType::f16, DataType::bf16}) {
    p.dtype = t;
    sh = canonical_shape(p);
    EXPECT_TRUE(s.is_applicable(sh, Direction::forward, plan_ctx(simt)));
    EXPECT_FALSE(s.is_applicable(sh, Direction::forward, plan_ctx(tensor)));
  }
  p.dtype = DataType::f64;
  EXPECT_FALSE(s.is_applicable(canonical_shape(p), Direction::forward, plan_ctx(simt)));
  p.dtype = DataType::f32;
  p.stride = {2, 2, 1};
  sh = canonical_shape(p);
  EXPECT_TRUE(s.is_applicable(sh, Direction::forward, plan_ctx(tensor)));
  EXPECT_FALSE(s.is_applicable(sh, Direction::backward_data, plan_ctx(tensor)));
  p.batch = 0;
  EXPECT_FALSE(s.is_applicable(canonical_shape(p), Direction::forward, plan_ctx(simt)));
}

class ImplicitGemmGpu : public ::testing::TestWithParam<std::tuple<DataType, Layout>> {};

TEST_P(ImplicitGemmGpu, MatchesFloat64) {
  std::string why;
  DeviceEnv* dev = simt_gpu_env(&why);
  if (!dev) GTEST_SKIP() << why;
  const DataType dtype = std::get<0>(GetParam());
  const Layout layout = std::get<1>(GetParam());
  PlanOptions opts;
  opts.solver = "implicit_gemm";
  for (Case c : cases()) {
    c.p.dtype = dtype;
    c.p.layout = layout;
    for (Pass pass : {Pass::forward, Pass::forward_bias, Pass::backward_data}) {
      const ConvShape sh = canonical_shape(c.p);
      const Direction reg = regular_direction(c.p, direction_of(pass));
      const bool expect = implicit_gemm::supports(sh, reg);
      Tester t(c.name, c.p, pass, test_seed());
      const std::string ctx = c.name + " [" + to_string(c.p) + "] pass=" + to_string(pass) +
                              " seed=" + std::to_string(t.seed());
      const Status prep = t.prepare();
      ASSERT_TRUE(prep.ok()) << ctx << ": " << prep.message();
      const RunResult r = t.run(*dev, opts);
      EXPECT_EQ(r.declined, !expect) << ctx;
      EXPECT_TRUE(r.passed()) << ctx << ": " << r.describe();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, ImplicitGemmGpu,
    ::testing::Combine(::testing::Values(DataType::f32, DataType::f16, DataType::bf16),
                       ::testing::Values(Layout::contiguous, Layout::channels_last)),
    [](const ::testing::TestParamInfo<std::tuple<DataType, Layout>>& param) {
      return std::string(to_string(std::get<0>(param.param))) + "_" +
             to_string(std::get<1>(param.param));
    });

#ifdef GEMMCONV_WITH_GPU

struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) {
    if (!gpu_malloc(&p, bytes).ok()) p = nullptr;
  }
  ~DeviceBuffer() {
    if (p) (void)gpu_free(p);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Each output element is summed by one thread in reduction order whatever the tile, so every
// tile configuration must give the same bits.
TEST(ImplicitGemmGpuTiles, BitwiseEqual) {
  std::string why;
  DeviceEnv* dev = simt_gpu_env(&why);
  if (!dev) GTEST_SKIP() << why;
  const implicit_gemm::Tile tiles[] = {implicit_gemm::Tile::t128x128, implicit_gemm::Tile::t128x64,
                                       implicit_gemm::Tile::t64x64};
  ExecContext ctx;
  ctx.caps = &dev->caps;
  const uint64_t seed = test_seed();
  for (const Case& c : cases()) {
    for (DataType dtype : {DataType::f32, DataType::bf16}) {
      for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
        ConvProblem p = c.p;
        p.dtype = dtype;
        p.layout = layout;
        p.transposed = false;
        const ConvShape s = canonical_shape(p);
        for (Direction d : {Direction::forward, Direction::backward_data}) {
          if (!implicit_gemm::supports(s, d)) continue;
          const std::string what = c.name + " " + to_string(dtype) + " " + to_string(layout) + " " +
                                   to_string(d) + " seed=" + std::to_string(seed);
          const bool fwd = d == Direction::forward;
          HostTensor in(dtype, fwd ? s.x_elements() : s.y_elements());
          HostTensor w(dtype, s.w_elements());
          in.fill_random(seed);
          w.fill_random(seed + 1);
          const int64_t out_count = fwd ? s.y_elements() : s.x_elements();
          DeviceBuffer din(in.bytes()), dw(w.bytes()), dout(out_count * element_size(dtype));
          ASSERT_TRUE(din.p && dw.p && dout.p) << what;
          ASSERT_TRUE(gpu_memcpy_to_device(din.p, in.data(), in.bytes()).ok());
          ASSERT_TRUE(gpu_memcpy_to_device(dw.p, w.data(), w.bytes()).ok());
          ConvTensors t;
          t.w = dw.p;
          (fwd ? t.x : t.y) = din.p;
          (fwd ? t.y : t.x) = dout.p;
          std::vector<HostTensor> got;
          for (implicit_gemm::Tile tile : tiles) {
            HostTensor out(dtype, out_count);
            ASSERT_TRUE(gpu_memset(dout.p, 0xff, out.bytes()).ok());
            const Status st = implicit_gemm::launch(ctx, s, d, t, tile);
            ASSERT_TRUE(st.ok()) << what << ": " << st.message();
            ASSERT_TRUE(gpu_synchronize().ok()) << what;
            ASSERT_TRUE(gpu_memcpy_to_host(out.data(), dout.p, out.bytes()).ok());
            got.push_back(std::move(out));
          }
          for (size_t i = 1; i < got.size(); ++i) {
            EXPECT_EQ(std::memcmp(got[0].data(), got[i].data(), got[0].bytes()), 0)
                << what << ": tile " << i << " differs from tile 0";
          }
        }
      }
    }
  }
}

// Not a check: times every tile on the ResNet-50 layers (N = 32, fp32) to tune pick_tile. Run
// with --gtest_also_run_disabled_tests --gtest_filter='*ImplicitGemmTiming*'.
TEST(ImplicitGemmTiming, DISABLED_Tiles) {
  std::string why;
  DeviceEnv* dev = simt_gpu_env(&why);
  if (!dev) GTEST_SKIP() << why;
  const std::vector<Case> layers = {
      {"3x3_c64_56", ProblemBuilder(2).batch(32).channels(64, 64).input({56}).filter({3}).pad({1})},
      {"3x3_c128_28",
       ProblemBuilder(2).batch(32).channels(128, 128).input({28}).filter({3}).pad({1})},
      {"3x3_c256_14",
       ProblemBuilder(2).batch(32).channels(256, 256).input({14}).filter({3}).pad({1})},
      {"3x3_c512_7",
       ProblemBuilder(2).batch(32).channels(512, 512).input({7}).filter({3}).pad({1})},
      {"1x1_c256_k64_56", ProblemBuilder(2).batch(32).channels(256, 64).input({56}).filter({1})},
      {"7x7s2_c3_224",
       ProblemBuilder(2).batch(32).channels(3, 64).input({224}).filter({7}).stride({2}).pad({3})}};
  const implicit_gemm::Tile tiles[] = {implicit_gemm::Tile::t128x128, implicit_gemm::Tile::t128x64,
                                       implicit_gemm::Tile::t64x64};
  const char* names[] = {"128x128", "128x64", "64x64"};
  ExecContext ctx;
  ctx.caps = &dev->caps;
  GpuTimer timer;
  ASSERT_TRUE(gpu_timer_create(&timer).ok());
  for (const Case& c : layers) {
    for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
      ConvProblem p = c.p;
      p.layout = layout;
      const ConvShape s = canonical_shape(p);
      DeviceBuffer x(s.x_elements() * 4), w(s.w_elements() * 4), y(s.y_elements() * 4);
      ASSERT_TRUE(x.p && w.p && y.p);
      ASSERT_TRUE(gpu_memset(x.p, 0, s.x_elements() * 4).ok());
      ASSERT_TRUE(gpu_memset(w.p, 0, s.w_elements() * 4).ok());
      ConvTensors t;
      t.x = x.p;
      t.w = w.p;
      t.y = y.p;
      const double flops = 2.0 * static_cast<double>(s.y_elements() * s.cg() * s.filt_pixels());
      const implicit_gemm::Tile picked =
          implicit_gemm::pick_tile(s, Direction::forward, dev->caps.multiprocessors);
      for (int i = 0; i < 3; ++i) {
        std::vector<float> ms;
        for (int r = 0; r < 13; ++r) {
          float m = 0.0f;
          ASSERT_TRUE(gpu_timer_start(&timer, nullptr).ok());
          ASSERT_TRUE(implicit_gemm::launch(ctx, s, Direction::forward, t, tiles[i]).ok());
          ASSERT_TRUE(gpu_timer_stop(&timer, nullptr, &m).ok());
          if (r >= 3) ms.push_back(m);
        }
        std::sort(ms.begin(), ms.end());
        const double med = ms[ms.size() / 2];
        std::printf("timing %-16s %-14s %-8s %8.4f ms %6.2f TFLOP/s%s\n", c.name.c_str(),
                    to_string(layout), names[i], med, flops / (med * 1e-3) / 1e12,
                    tiles[i] == picked ? "  (picked)" : "");
      }
    }
  }
  gpu_timer_destroy(&timer);
}

#endif  // GEMMCONV_WITH_GPU

}  // namespace
}  // namespace testing
}  // namespace gemmconv
