// Planning under tiny and chunk-forcing workspace budgets: the plan fits, and the result is right.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "catalog.h"
#include "tester.h"

namespace gemmconv {
namespace testing {
namespace {

// Installs a configuration with the given default budget (budget 0 can only be stated this
// way: PlanOptions::workspace_budget == 0 means "the configured budget") and restores the old one.
class BudgetConfig {
 public:
  explicit BudgetConfig(size_t budget) : saved_(config()) {
    Config c;
    c.workspace_budget = budget;
    set_config(c);
  }
  ~BudgetConfig() { set_config(saved_); }

 private:
  Config saved_;
};

// The smallest budget under which `solver` applies (binary search; applicability grows with
// the budget), or 0 when it does not apply even with a huge budget.
size_t min_budget(const Solver& solver, const ConvShape& s, Direction d, const Capabilities& caps) {
  PlanContext ctx;
  ctx.caps = &caps;
  size_t hi = size_t(1) << 40;
  ctx.workspace_budget = hi;
  if (!solver.is_applicable(s, d, ctx)) return 0;
  size_t lo = 0;  // not applicable at lo (or lo == 0 untested), applicable at hi
  ctx.workspace_budget = 0;
  if (solver.is_applicable(s, d, ctx)) return 0;
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    ctx.workspace_budget = mid;
    (solver.is_applicable(s, d, ctx) ? hi : lo) = mid;
  }
  return hi;
}

void check_budgets(const CatalogEntry& e, DeviceEnv& dev) {
  if (!dev.gemm) GTEST_SKIP() << "no GEMM provider on the " << dev.name() << " in this build";
  const Solver* im2col = find_solver("im2col_gemm");
  ASSERT_NE(im2col, nullptr) << "im2col_gemm is not registered";
  const ConvShape shape = canonical_shape(e.problem);
  for (Pass pass : all_passes()) {
    Tester t(e.name, e.problem, pass, test_seed());
    const Status prep = t.prepare();
    const std::string ctx_msg = e.name + " [" + to_string(e.problem) + "] pass=" + to_string(pass) +
                                " device=" + dev.name() + " seed=" + std::to_string(t.seed());
    ASSERT_TRUE(prep.ok()) << ctx_msg << ": " << prep.message();

    // Budgets: none, 4 KiB, just enough for one sample of im2col_gemm, and one that makes it
    // take several chunks (between one sample and the whole batch).
    std::vector<size_t> budgets = {0, 4096};
    size_t one = 0, full = 0;
    if (pass != Pass::backward_bias && dev.gemm) {
      const Direction reg = regular_direction(e.problem, direction_of(pass));
      one = min_budget(*im2col, shape, reg, dev.caps);
      PlanContext pc;
      pc.caps = &dev.caps;
      pc.workspace_budget = size_t(1) << 40;
      if (one > 0) {
        full = im2col->workspace_bytes(shape, reg, pc);
        budgets.push_back(one);
        if (full > 2 * one) budgets.push_back(one + (full - one) / 3);
      }
    }
    for (size_t budget : budgets) {
      BudgetConfig cfg(budget);
      PlanOptions opts;
      opts.workspace_budget = budget;
      const RunResult planned = t.run(dev, opts);
      const std::string where = ctx_msg + " budget=" + std::to_string(budget);
      EXPECT_FALSE(planned.declined) << where << ": no solver fits (reference needs none)";
      EXPECT_TRUE(planned.passed()) << where << ": " << planned.describe();
      EXPECT_LE(planned.workspace_bytes, budget) << where << ": " << planned.describe();
      if (budget >= one && one > 0) {
        // Force the chunked path even where the planner prefers another solver.
        opts.solver = "im2col_gemm";
        const RunResult forced = t.run(dev, opts);
        EXPECT_FALSE(forced.declined) << where << ": im2col_gemm declined a budget it fits in";
        EXPECT_TRUE(forced.passed()) << where << ": " << forced.describe();
        EXPECT_LE(forced.workspace_bytes, budget) << where << ": " << forced.describe();
      }
    }
  }
}

class WorkspaceBudget : public ::testing::TestWithParam<CatalogEntry> {};

TEST_P(WorkspaceBudget, Cpu) {
  auto dev = make_cpu_env();
  check_budgets(GetParam(), *dev);
}

TEST_P(WorkspaceBudget, Gpu) {
  std::string why;
  DeviceEnv* dev = shared_gpu_env(&why);
  if (!dev) GTEST_SKIP() << why;
  check_budgets(GetParam(), *dev);
}

INSTANTIATE_TEST_SUITE_P(All, WorkspaceBudget, ::testing::ValuesIn(small_catalog()),
                         [](const ::testing::TestParamInfo<CatalogEntry>& param) {
                           return param.param.name;
                         });

}  // namespace
}  // namespace testing
}  // namespace gemmconv
