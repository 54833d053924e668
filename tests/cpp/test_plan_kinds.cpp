// The plan kinds: the bias reduction, the bias addition and the empty batch are chosen by the
// planner under stable names and run by the executor like solvers.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "catalog.h"
#include "gemmconv/engine.h"
#include "solvers/plan_kind.h"

namespace gemmconv {
namespace {

ConvProblem small() { return testing::ProblemBuilder(2).channels(3, 4).input({5, 5}).filter({3}); }

TEST(PlanKinds, NamesAreStableAndUnique) {
  std::vector<std::string> names;
  for (const PlanKind* k : plan_kind_registry()) names.push_back(k->name());
  EXPECT_EQ(names, (std::vector<std::string>{"bias_reduce", "empty", "bias_add"}));
  for (const Solver* s : solver_registry()) {
    for (const std::string& n : names) EXPECT_NE(n, s->name());
  }
}

TEST(PlanKinds, PlannerPicksThem) {
  const Capabilities caps = cpu_capabilities();
  Plan plan;
  ASSERT_TRUE(make_plan(small(), Direction::backward_bias, caps, PlanOptions{}, &plan).ok());
  ASSERT_NE(plan.kind, nullptr);
  EXPECT_STREQ(plan.solver_name(), "bias_reduce");
  EXPECT_EQ(plan.epilogue, nullptr);

  ASSERT_TRUE(make_plan(small(), Direction::forward, caps, PlanOptions{}, &plan).ok());
  EXPECT_EQ(plan.kind, nullptr);
  ASSERT_NE(plan.solver, nullptr);
  ASSERT_NE(plan.epilogue, nullptr);
  EXPECT_STREQ(plan.epilogue->name(), "bias_add");

  ConvProblem empty = small();
  empty.batch = 0;
  for (Direction d : {Direction::forward, Direction::backward_data, Direction::backward_weight}) {
    ASSERT_TRUE(make_plan(empty, d, caps, PlanOptions{}, &plan).ok());
    EXPECT_EQ(plan.solver, nullptr);
    EXPECT_EQ(plan.epilogue, nullptr);
    EXPECT_STREQ(plan.solver_name(), "empty") << to_string(d);
  }
}

TEST(PlanKinds, EmptyBatchZeroesTheWeightGradient) {
  const Capabilities caps = cpu_capabilities();
  ConvProblem p = small();
  p.batch = 0;
  Plan plan;
  ASSERT_TRUE(make_plan(p, Direction::backward_weight, caps, PlanOptions{}, &plan).ok());
  std::vector<float> dw(static_cast<size_t>(weight_elements(p)), 7.0f);
  ConvBuffers b;
  b.grad_weight = dw.data();
  ExecContext ctx;
  ctx.caps = &caps;
  ASSERT_TRUE(execute(plan, b, ctx).ok());
  for (float v : dw) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace gemmconv
