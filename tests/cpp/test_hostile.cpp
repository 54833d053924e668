// Regressions for hostile inputs: overflowing sizes in validation, a workspace budget that would
// wrap, NaN weights through padded taps, the accuracy of the bias gradient, and the warning when
// the workspace budget forces the reference solver.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "catalog.h"
#include "gemmconv/engine.h"
#include "kernels/ops.h"

namespace gemmconv {
namespace testing {
namespace {

class SavedConfig {
 public:
  SavedConfig() : saved_(config()) {}
  ~SavedConfig() { set_config(saved_); }

 private:
  Config saved_;
};

ConvProblem small2d() {
  ProblemBuilder b(2);
  b.batch(1).channels(3, 4).input({8, 8}).filter({3, 3});
  return b;
}

void expect_overflow_refused(const ConvProblem& p, const std::string& what) {
  const Status st = validate(p);
  EXPECT_EQ(st.code(), StatusCode::invalid_problem) << what << ": " << to_string(p);
  EXPECT_NE(st.message().find("overflow"), std::string::npos) << what << ": " << st.message();
}

TEST(HostileProblem, HugePaddingStrideDilationAreRefusedNotWrapped) {
  constexpr int64_t kHuge = std::numeric_limits<int64_t>::max() / 2 + 7;
  ConvProblem p = small2d();
  p.pad_begin[0] = p.pad_end[0] = kHuge;
  expect_overflow_refused(p, "padding");

  p = small2d();
  p.dilation[1] = kHuge;
  expect_overflow_refused(p, "dilation");

  // Transposed: (in - 1) * stride overflows.
  p = small2d();
  p.transposed = true;
  p.in_channels = 4;
  p.out_channels = 3;
  p.stride[0] = kHuge;
  expect_overflow_refused(p, "stride (transposed)");

  p.stride[0] = 1;
  p.dilation[0] = kHuge;
  p.output_padding[0] = 0;
  expect_overflow_refused(p, "dilation (transposed)");
}

TEST(HostileConfig, WorkspaceMbThatWouldWrapIsIgnoredAndNamed) {
  const char* saved = std::getenv("GEMMCONV_WORKSPACE_MB");
  const std::string keep = saved ? saved : "";
  for (const char* v : {"17592186044416", "9223372036854775808", "99999999999999999999999"}) {
    ASSERT_EQ(setenv("GEMMCONV_WORKSPACE_MB", v, 1), 0);
    ::testing::internal::CaptureStderr();
    const Config c = config_from_environment();
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(c.workspace_budget, Config().workspace_budget) << v;
    EXPECT_NE(err.find(v), std::string::npos) << "the message should name the value: " << err;
  }
  ASSERT_EQ(setenv("GEMMCONV_WORKSPACE_MB", "3", 1), 0);
  EXPECT_EQ(config_from_environment().workspace_budget, size_t(3) << 20);
  if (saved) {
    setenv("GEMMCONV_WORKSPACE_MB", keep.c_str(), 1);
  } else {
    unsetenv("GEMMCONV_WORKSPACE_MB");
  }
}

// Forward of one problem on the CPU through one named solver (or the planner's choice).
std::vector<float> forward_cpu(const ConvProblem& p, const std::vector<float>& x,
                               const std::vector<float>& w, const std::string& solver) {
  const Capabilities caps = cpu_capabilities();
  PlanOptions opts;
  opts.solver = solver;
  auto gemm = make_cpu_gemm_provider();
  opts.gemm_available = gemm != nullptr;
  Plan plan;
  Status st = make_plan(p, Direction::forward, caps, opts, &plan);
  EXPECT_TRUE(st.ok()) << st.message();
  std::vector<float> y(static_cast<size_t>(output_elements(p)), 0.f);
  std::vector<unsigned char> ws(plan.workspace_bytes + 1);
  ExecContext ctx;
  ctx.caps = &caps;
  ctx.gemm = gemm.get();
  ctx.workspace = ws.data();
  ctx.workspace_bytes = plan.workspace_bytes;
  ConvBuffers b;
  b.input = x.data();
  b.weight = w.data();
  b.output = y.data();
  st = execute(plan, b, ctx);
  EXPECT_TRUE(st.ok()) << st.message();
  return y;
}

TEST(HostileValues, NanWeightPropagatesThroughPaddedTaps) {
  // Depthwise 3x3, padding 1: every output reads at least one tap; the NaN sits in tap (0, 0),
  // which only padding reaches for the first output row and column.
  ProblemBuilder b(2);
  b.batch(1).channels(2, 2).groups(2).input({4, 4}).filter({3, 3}).pad({1, 1});
  const ConvProblem p = b;
  std::vector<float> x(static_cast<size_t>(input_elements(p)), 1.f);
  std::vector<float> w(static_cast<size_t>(weight_elements(p)), 0.5f);
  w[0] = std::numeric_limits<float>::quiet_NaN();  // channel 0, tap (0, 0)
  for (const char* solver : {"depthwise_direct", "reference"}) {
    const std::vector<float> y = forward_cpu(p, x, w, solver);
    // PyTorch's zero-padded product gives 0 * NaN = NaN in every output of channel 0.
    for (size_t i = 0; i < 16; ++i) EXPECT_TRUE(std::isnan(y[i])) << solver << " output " << i;
    for (size_t i = 16; i < 32; ++i) EXPECT_FALSE(std::isnan(y[i])) << solver << " output " << i;
  }
}

TEST(HostileValues, BiasGradientIsSummedInWiderPrecision) {
  // One large term then many ones: a float running sum stays at 1e8 (its spacing there is 8).
  const int64_t pixels = 4097;
  std::vector<float> dy(static_cast<size_t>(pixels), 1.f);
  dy[0] = 1e8f;
  const Capabilities caps = cpu_capabilities();
  ExecContext ctx;
  ctx.caps = &caps;
  for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
    float db = 0.f;
    const Status st = ops::bias_grad(ctx, DataType::f32, layout, dy.data(), &db, 1, 1, pixels);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(db, 1e8f + 4096.f) << to_string(layout);
  }
}

TEST(HostileConfig, BudgetForcingTheReferenceSolverWarnsOnce) {
  const auto gemm = make_cpu_gemm_provider();
  if (!gemm) GTEST_SKIP() << "no CPU GEMM provider in this build: only reference would apply";
  SavedConfig saved;
  Config c;
  c.workspace_budget = 24;  // bytes: no GEMM solver fits; unique to this test
  set_config(c);
  ProblemBuilder b(2);
  b.batch(2).channels(8, 16).input({9, 9}).filter({3, 3});
  const Capabilities caps = cpu_capabilities();
  Plan plan;
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(make_plan(b, Direction::forward, caps, PlanOptions(), &plan).ok());
  ASSERT_TRUE(make_plan(b, Direction::forward, caps, PlanOptions(), &plan).ok());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_STREQ(plan.solver_name(), "reference");
  const size_t first = err.find("budget of 24 bytes");
  ASSERT_NE(first, std::string::npos) << "no warning naming the budget: " << err;
  EXPECT_NE(err.find(to_string(ConvProblem(b))), std::string::npos) << err;
  EXPECT_EQ(err.find("budget of 24 bytes", first + 1), std::string::npos)
      << "warned more than once: " << err;
}

}  // namespace
}  // namespace testing
}  // namespace gemmconv
