// The depthwise_direct solver against the float64 reference: a grid of depthwise problems
// (1-D/2-D/3-D, multipliers, strides, dilations, asymmetric padding), every layout, dtype and
// pass, regular and transposed, on the CPU and the GPU, with NaN-poisoned outputs and
// bitwise-repeatability checks.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "catalog.h"
#include "solvers/depthwise_direct/depthwise.h"
#include "tester.h"

namespace gemmconv {
namespace testing {
namespace {

constexpr const char* kSolver = "depthwise_direct";

class CleanConfig {
 public:
  CleanConfig() : saved_(config()) { set_config(Config{}); }
  ~CleanConfig() { set_config(saved_); }

 private:
  Config saved_;
};

// The engine refuses to run a non-reference solver without a GEMM provider; depthwise_direct
// never calls one, so a CPU build without BLAS gets this stand-in.
class NoGemm final : public GemmProvider {
 public:
  const char* name() const override { return "none"; }
  DeviceKind device() const override { return DeviceKind::cpu; }
  Status gemm(const GemmDesc&, void*) override {
    return Status(StatusCode::unsupported, "depthwise test: no GEMM expected");
  }
};

std::unique_ptr<DeviceEnv> cpu_env() {
  auto dev = make_cpu_env();
  if (!dev->gemm) dev->gemm = std::make_unique<NoGemm>();
  return dev;
}

struct Case {
  std::string name;
  ConvProblem problem;
};

ProblemBuilder dw(int dims, int64_t n, int64_t c, int64_t multiplier) {
  ProblemBuilder b(dims);
  b.batch(n).channels(c, c * multiplier).groups(c);
  return b;
}

std::vector<Case> regular_cases() {
  return {
      {"d1_m1_s2_asym",
       dw(1, 3, 4, 1).input({17}).filter({3}).stride({2}).pad_begin({1}).pad_end({2})},
      {"d1_m2_dil2", dw(1, 1, 3, 2).input({20}).filter({5}).dilation({2}).pad({3})},
      {"d2_m1_3x3", dw(2, 3, 5, 1).input({9, 11}).filter({3, 3}).pad({1})},
      {"d2_m2_s2_asym",
       dw(2, 1, 3, 2).input({10, 9}).filter({3, 3}).stride({2}).pad_begin({1, 0}).pad_end({0, 2})},
      {"d2_m1_dil2_s2",
       dw(2, 3, 2, 1).input({13, 12}).filter({3, 3}).dilation({2}).stride({2, 1}).pad({2})},
      {"d2_m2_5x5", dw(2, 2, 3, 2).input({12, 12}).filter({5, 5}).pad({2})},
      {"d2_m1_7x7_s2", dw(2, 1, 4, 1).input({15, 14}).filter({7, 7}).stride({2}).pad({3})},
      {"d2_m4", dw(2, 3, 2, 4).input({7, 7}).filter({3, 3}).pad({1})},
      {"d2_m1_split", dw(2, 3, 8, 1).input({40, 40}).filter({3, 3}).pad({1})},
      {"d2_m1_wide", dw(2, 1, 2, 1).input({3, 300}).filter({3, 3}).pad({1})},
      {"d3_m2_mixed", dw(3, 2, 2, 2)
                          .input({5, 6, 7})
                          .filter({3, 2, 3})
                          .stride({1, 2, 1})
                          .dilation({2, 1, 1})
                          .pad_begin({1, 0, 2})
                          .pad_end({0, 1, 1})},
      {"d3_m1_s2", dw(3, 3, 3, 1).input({6, 7, 8}).filter({3, 3, 3}).stride({2}).pad({1})},
      // A window far beyond shared memory: the one-thread-per-element path.
      {"d1_huge_dilation", dw(1, 1, 2, 1).input({12100}).filter({3}).dilation({6000})},
  };
}

// ConvTranspose with groups == out_channels: depthwise in the regular (canonical) view.
std::vector<Case> transposed_cases() {
  return {
      {"t1_m1_s2",
       dw(1, 2, 3, 1).input({9}).filter({3}).stride({2}).pad({1}).output_padding({1}).transposed()},
      {"t2_m2_s2", ProblemBuilder(2)
                       .batch(3)
                       .channels(6, 3)
                       .groups(3)
                       .input({5, 6})
                       .filter({3, 3})
                       .stride({2})
                       .pad_begin({1, 0})
                       .pad_end({1, 0})
                       .output_padding({1, 0})
                       .transposed()},
      {"t2_m1_dil2",
       dw(2, 1, 4, 1).input({6, 7}).filter({3, 3}).dilation({2}).pad({1}).transposed()},
      {"t3_m2", ProblemBuilder(3)
                    .batch(2)
                    .channels(4, 2)
                    .groups(2)
                    .input({3, 4, 5})
                    .filter({2, 3, 3})
                    .stride({2, 1, 2})
                    .pad({0, 1, 1})
                    .transposed()},
  };
}

const DataType kTypes[] = {DataType::f32, DataType::f16, DataType::bf16, DataType::f64};
const Layout kLayouts[] = {Layout::contiguous, Layout::channels_last};
const Pass kPasses[] = {Pass::forward, Pass::forward_bias, Pass::backward_data,
                        Pass::backward_weight};

std::string context(const Tester& t, const char* device) {
  return t.name() + " [" + to_string(t.problem()) + "] pass=" + to_string(t.pass()) +
         " device=" + device + " seed=" + std::to_string(t.seed()) +
         " (rerun with GEMMCONV_TEST_SEED=" + std::to_string(t.seed()) + ")";
}

// Every case in every dtype, layout and pass, forced onto depthwise_direct.
void check_cases(const std::vector<Case>& cases, DeviceEnv& dev) {
  CleanConfig clean;
  PlanOptions opts;
  opts.solver = kSolver;
  for (const Case& c : cases) {
    for (DataType dt : kTypes) {
      for (Layout l : kLayouts) {
        ConvProblem p = c.problem;
        p.dtype = dt;
        p.layout = l;
        ASSERT_TRUE(validate(p).ok()) << c.name << ": " << validate(p).message();
        for (Pass pass : kPasses) {
          Tester t(c.name, p, pass, test_seed());
          const Status prep = t.prepare();
          ASSERT_TRUE(prep.ok()) << context(t, dev.name()) << ": " << prep.message();
          const RunResult r = t.run(dev, opts);
          EXPECT_FALSE(r.declined) << context(t, dev.name()) << ": depthwise_direct declined";
          EXPECT_EQ(r.solver, kSolver) << context(t, dev.name());
          EXPECT_TRUE(r.passed()) << context(t, dev.name()) << ": " << r.describe();
          EXPECT_TRUE(r.repeatable) << context(t, dev.name()) << ": not bitwise repeatable";
        }
      }
    }
  }
}

DeviceEnv* gpu_or_null(std::string* why) {
  if (gpu_device_count() == 0) {
    *why = "no GPU visible";
    return nullptr;
  }
  return shared_gpu_env(why);
}

TEST(Depthwise, CpuMatchesReference) {
  auto dev = cpu_env();
  check_cases(regular_cases(), *dev);
}

TEST(Depthwise, GpuMatchesReference) {
  std::string why;
  DeviceEnv* dev = gpu_or_null(&why);
  if (!dev) GTEST_SKIP() << why;
  check_cases(regular_cases(), *dev);
}

TEST(Depthwise, CpuTransposed) {
  auto dev = cpu_env();
  check_cases(transposed_cases(), *dev);
}

TEST(Depthwise, GpuTransposed) {
  std::string why;
  DeviceEnv* dev = gpu_or_null(&why);
  if (!dev) GTEST_SKIP() << why;
  check_cases(transposed_cases(), *dev);
}

// A MobileNet-sized slice: many weight-gradient splits, several tiles per plane; each pass is
// run twice by the tester and must give identical bytes.
TEST(Depthwise, GpuRepeatableAtSize) {
  std::string why;
  DeviceEnv* dev = gpu_or_null(&why);
  if (!dev) GTEST_SKIP() << why;
  const std::vector<Case> cases = {
      {"d2_m1_mobilenet_s1", dw(2, 8, 16, 1).input({56, 56}).filter({3, 3}).pad({1})},
      {"d2_m1_mobilenet_s2", dw(2, 8, 16, 1).input({56, 56}).filter({3, 3}).stride({2}).pad({1})},
  };
  check_cases(cases, *dev);
}

TEST(Depthwise, Applicability) {
  const Solver* s = find_solver(kSolver);
  ASSERT_NE(s, nullptr) << "depthwise_direct is not registered";
  const Capabilities cpu = cpu_capabilities();
  Capabilities gpu = cpu;
  gpu.kind = DeviceKind::gpu;
  gpu.multiprocessors = 100;
  gpu.shared_memory_per_block = 48 << 10;
  const PlanContext cpu_ctx{&cpu, size_t(512) << 20};
  const PlanContext gpu_ctx{&gpu, size_t(512) << 20};
  const PlanContext gpu_tight{&gpu, 0};

  const ConvShape depthwise = canonical_shape(dw(2, 4, 32, 2).input({56, 56}).filter({3, 3}));
  const ConvShape dense = canonical_shape(ProblemBuilder(2).channels(8, 8).input({9, 9}));
  const ConvShape grouped =
      canonical_shape(ProblemBuilder(2).channels(8, 8).groups(4).input({9, 9}));
  for (Direction d : {Direction::forward, Direction::backward_data, Direction::backward_weight}) {
    EXPECT_TRUE(s->is_applicable(depthwise, d, cpu_ctx)) << to_string(d);
    EXPECT_FALSE(s->is_applicable(dense, d, cpu_ctx)) << to_string(d);
    EXPECT_FALSE(s->is_applicable(grouped, d, cpu_ctx)) << to_string(d);
    EXPECT_EQ(s->workspace_bytes(depthwise, d, cpu_ctx), 0u) << to_string(d);
    EXPECT_EQ(s->is_applicable(depthwise, d, gpu_ctx), gpu_support_compiled()) << to_string(d);
    EXPECT_EQ(s->is_applicable(depthwise, d, gpu_tight), gpu_support_compiled()) << to_string(d);
  }
  EXPECT_FALSE(s->is_applicable(depthwise, Direction::backward_bias, cpu_ctx));
  EXPECT_EQ(s->workspace_bytes(depthwise, Direction::forward, gpu_ctx), 0u);
  // The weight gradient splits its reduction in a small workspace, and needs none when the
  // budget is zero (one split writes w directly).
  const size_t ws = s->workspace_bytes(depthwise, Direction::backward_weight, gpu_ctx);
  EXPECT_GT(ws, 0u);
  EXPECT_LE(ws, size_t(1) << 20);
  EXPECT_EQ(s->workspace_bytes(depthwise, Direction::backward_weight, gpu_tight), 0u);
  const depthwise::WeightSplit split = depthwise::weight_split(depthwise, size_t(512) << 20);
  EXPECT_GT(split.splits, 1);
  EXPECT_EQ(split.bytes, ws);
  // Planning and running agree: a budget of exactly the planned bytes gives the same split.
  EXPECT_EQ(depthwise::weight_split(depthwise, ws).splits, split.splits);
}

}  // namespace
}  // namespace testing
}  // namespace gemmconv
