// The engine's front door: configuration, solver choice, statistics, execute's argument checks.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "catalog.h"
#include "gemmconv/engine.h"
#include "tester.h"

namespace gemmconv {
namespace testing {
namespace {

class ConfigRestore {
 public:
  ConfigRestore() : saved_(config()) {}
  ~ConfigRestore() { set_config(saved_); }

 private:
  Config saved_;
};

// Sets environment variables for the scope of a test and restores them.
class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      had_ = true;
      old_ = old;
    }
    setenv(name, value, 1);
  }
  ~EnvVar() {
    if (had_) {
      setenv(name_.c_str(), old_.c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

ConvProblem conv3x3() {
  return ProblemBuilder(2).channels(4, 6).input({7, 8}).filter({3}).pad({1});
}
ConvProblem conv1x1() { return ProblemBuilder(2).channels(4, 6).input({7, 8}); }

TEST(EngineRegistry, OrderedUniqueReferenceLast) {
  const auto& reg = solver_registry();
  ASSERT_FALSE(reg.empty());
  EXPECT_STREQ(reg.back()->name(), "reference");
  std::set<std::string> names;
  for (const Solver* s : reg) {
    ASSERT_NE(s, nullptr);
    EXPECT_TRUE(names.insert(s->name()).second) << "duplicate solver name " << s->name();
    EXPECT_EQ(find_solver(s->name()), s);
  }
  EXPECT_TRUE(names.count("im2col_gemm"));
  EXPECT_TRUE(names.count("gemm_1x1"));
  EXPECT_EQ(find_solver("no_such_solver"), nullptr);
  EXPECT_EQ(find_solver(""), nullptr);
}

TEST(EngineConfig, FromEnvironment) {
  EnvVar disable("GEMMCONV_DISABLE", "im2col_gemm, gemm_1x1");
  EnvVar mb("GEMMCONV_WORKSPACE_MB", "3");
  EnvVar level("GEMMCONV_LOG_LEVEL", "debug");
  const Config c = config_from_environment();
  EXPECT_EQ(c.disabled, (std::set<std::string>{"im2col_gemm", "gemm_1x1"}));
  EXPECT_EQ(c.workspace_budget, size_t(3) << 20);
  EXPECT_EQ(c.log_level, LogLevel::debug);
}

TEST(EngineConfig, DefaultsWithoutEnvironment) {
  EnvVar disable("GEMMCONV_DISABLE", "");
  unsetenv("GEMMCONV_DISABLE");
  EnvVar mb("GEMMCONV_WORKSPACE_MB", "");
  unsetenv("GEMMCONV_WORKSPACE_MB");
  EnvVar level("GEMMCONV_LOG_LEVEL", "");
  unsetenv("GEMMCONV_LOG_LEVEL");
  const Config c = config_from_environment();
  EXPECT_TRUE(c.disabled.empty());
  EXPECT_EQ(c.workspace_budget, size_t(256) << 20);
  EXPECT_EQ(c.log_level, LogLevel::warning);
}

TEST(EngineConfig, LogLevels) {
  LogLevel l = LogLevel::off;
  EXPECT_TRUE(parse_log_level("debug", &l));
  EXPECT_EQ(l, LogLevel::debug);
  EXPECT_TRUE(parse_log_level("error", &l));
  EXPECT_EQ(l, LogLevel::error);
  EXPECT_TRUE(parse_log_level("off", &l));
  EXPECT_EQ(l, LogLevel::off);
  EXPECT_FALSE(parse_log_level("loud", &l));
  EXPECT_EQ(l, LogLevel::off);
}

TEST(EngineConfig, DisablingGemmSolversLeavesReference) {
  ConfigRestore restore;
  const Capabilities caps = cpu_capabilities();
  Config c;
  c.disabled = {"im2col_gemm", "gemm_1x1"};
  set_config(c);
  EXPECT_EQ(config().disabled, c.disabled);
  for (const ConvProblem& p : {conv3x3(), conv1x1()}) {
    for (Direction d : {Direction::forward, Direction::backward_data, Direction::backward_weight}) {
      Plan plan;
      const Status s = make_plan(p, d, caps, PlanOptions{}, &plan);
      ASSERT_TRUE(s.ok()) << s.message();
      EXPECT_STREQ(plan.solver_name(), "reference") << to_string(p) << " " << to_string(d);
      EXPECT_EQ(plan.workspace_bytes, 0u);
    }
  }
  // Switching everything off leaves nothing to plan with, and says so.
  c.disabled.insert("reference");
  set_config(c);
  Plan plan;
  const Status s = make_plan(conv3x3(), Direction::forward, caps, PlanOptions{}, &plan);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::not_applicable) << s.message();
  EXPECT_NE(s.message().find("GEMMCONV_DISABLE"), std::string::npos) << s.message();
}

TEST(EngineConfig, PlannerPrefersGemmSolvers) {
  ConfigRestore restore;
  set_config(Config{});
  auto cpu = make_cpu_env();
  if (!cpu->gemm) GTEST_SKIP() << "this build has no CPU GEMM provider";
  Plan plan;
  ASSERT_TRUE(make_plan(conv3x3(), Direction::forward, cpu->caps, PlanOptions{}, &plan).ok());
  EXPECT_STRNE(plan.solver_name(), "reference");
  ASSERT_TRUE(make_plan(conv1x1(), Direction::forward, cpu->caps, PlanOptions{}, &plan).ok());
  EXPECT_STREQ(plan.solver_name(), "gemm_1x1");
}

TEST(EnginePlan, WithoutGemmProviderOnlyDirectSolvers) {
  ConfigRestore restore;
  set_config(Config{});
  const Capabilities caps = cpu_capabilities();
  PlanOptions opts;
  opts.gemm_available = false;
  Plan plan;
  for (const ConvProblem& p : {conv3x3(), conv1x1()}) {
    ASSERT_TRUE(make_plan(p, Direction::forward, caps, opts, &plan).ok());
    EXPECT_FALSE(plan.solver->needs_gemm()) << plan.solver_name();
  }
  opts.solver = "im2col_gemm";
  const Status s = make_plan(conv3x3(), Direction::forward, caps, opts, &plan);
  EXPECT_EQ(s.code(), StatusCode::not_applicable) << s.message();
}

TEST(EnginePlan, ForcedSolvers) {
  ConfigRestore restore;
  set_config(Config{});
  const Capabilities caps = cpu_capabilities();
  PlanOptions opts;
  Plan plan;

  opts.solver = "no_such_solver";
  Status s = make_plan(conv3x3(), Direction::forward, caps, opts, &plan);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.code(), StatusCode::not_applicable) << "an unknown name is a caller error";
  EXPECT_NE(s.message().find("no_such_solver"), std::string::npos) << s.message();

  opts.solver = "gemm_1x1";  // a 3x3 filter
  s = make_plan(conv3x3(), Direction::forward, caps, opts, &plan);
  EXPECT_EQ(s.code(), StatusCode::not_applicable) << s.message();
  EXPECT_NE(s.message().find("gemm_1x1"), std::string::npos) << s.message();

  opts.solver = "reference";
  s = make_plan(conv3x3(), Direction::backward_weight, caps, opts, &plan);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_STREQ(plan.solver_name(), "reference");
  EXPECT_EQ(plan.problem, conv3x3());
  EXPECT_EQ(plan.direction, Direction::backward_weight);
  EXPECT_EQ(plan.regular, Direction::backward_weight);

  // A forced solver is used even when GEMMCONV_DISABLE lists it (tests and the driver need it).
  Config c;
  c.disabled = {"reference"};
  set_config(c);
  s = make_plan(conv3x3(), Direction::forward, caps, opts, &plan);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(EnginePlan, InvalidProblemAndBias) {
  const Capabilities caps = cpu_capabilities();
  Plan plan;
  ConvProblem bad = conv3x3();
  bad.stride[0] = 0;
  const Status s = make_plan(bad, Direction::forward, caps, PlanOptions{}, &plan);
  EXPECT_EQ(s.code(), StatusCode::invalid_problem);
  EXPECT_NE(s.message().find("non-positive stride is not supported"), std::string::npos);

  ASSERT_TRUE(make_plan(conv3x3(), Direction::backward_bias, caps, PlanOptions{}, &plan).ok());
  EXPECT_EQ(plan.solver, nullptr);
  ASSERT_NE(plan.solver_name(), nullptr);
  EXPECT_GT(std::string(plan.solver_name()).size(), 0u);

  const ConvProblem t =
      ProblemBuilder(2).transposed().channels(4, 6).input({5}).filter({3}).stride({2});
  ASSERT_TRUE(make_plan(t, Direction::forward, caps, PlanOptions{}, &plan).ok());
  EXPECT_EQ(plan.regular, Direction::backward_data);
  EXPECT_EQ(plan.shape.c, 6);
  EXPECT_EQ(plan.shape.k, 4);
}

// One reference forward run of conv3x3 on the CPU, returning execute's status.
struct SmallRun {
  ConvProblem p = conv3x3();
  std::vector<float> x, w, y, b;
  Capabilities caps = cpu_capabilities();
  std::unique_ptr<GemmProvider> gemm = make_cpu_gemm_provider();
  SmallRun()
      : x(static_cast<size_t>(input_elements(p)), 0.5f),
        w(static_cast<size_t>(weight_elements(p)), 0.25f),
        y(static_cast<size_t>(output_elements(p)), 0.0f),
        b(static_cast<size_t>(p.out_channels), 1.0f) {}
  ConvBuffers buffers() {
    ConvBuffers bufs;
    bufs.input = x.data();
    bufs.weight = w.data();
    bufs.output = y.data();
    return bufs;
  }
  ExecContext context() {
    ExecContext ctx;
    ctx.caps = &caps;
    ctx.gemm = gemm.get();
    return ctx;
  }
};

TEST(EngineStats, CountsPerDirectionAndSolver) {
  ConfigRestore restore;
  set_config(Config{});
  reset_stats();
  SmallRun run;
  Plan ref;
  PlanOptions opts;
  opts.solver = "reference";
  ASSERT_TRUE(make_plan(run.p, Direction::forward, run.caps, opts, &ref).ok());
  ASSERT_TRUE(execute(ref, run.buffers(), run.context()).ok());
  ASSERT_TRUE(execute(ref, run.buffers(), run.context()).ok());

  Plan bias;
  ASSERT_TRUE(make_plan(run.p, Direction::backward_bias, run.caps, PlanOptions{}, &bias).ok());
  ConvBuffers bb;
  bb.grad_output = run.y.data();
  bb.grad_bias = run.b.data();
  ASSERT_TRUE(execute(bias, bb, run.context()).ok());
  // A failed call is not counted.
  ConvBuffers none;
  EXPECT_FALSE(execute(ref, none, run.context()).ok());

  const std::vector<StatsEntry> snap = stats_snapshot();
  uint64_t fwd_ref = 0, bias_calls = 0, total = 0;
  for (const StatsEntry& e : snap) {
    total += e.calls;
    if (e.direction == Direction::forward && e.solver == "reference") fwd_ref += e.calls;
    if (e.direction == Direction::backward_bias && e.solver == bias.solver_name()) {
      bias_calls += e.calls;
    }
  }
  EXPECT_EQ(fwd_ref, 2u);
  EXPECT_EQ(bias_calls, 1u);
  EXPECT_EQ(total, 3u);

  reset_stats();
  uint64_t after = 0;
  for (const StatsEntry& e : stats_snapshot()) after += e.calls;
  EXPECT_EQ(after, 0u);
}

TEST(EngineExecute, RejectsBadArgumentsWithoutCrashing) {
  ConfigRestore restore;
  set_config(Config{});
  SmallRun run;
  if (!run.gemm) GTEST_SKIP() << "this build has no CPU GEMM provider";
  Plan plan;
  PlanOptions opts;
  opts.solver = "im2col_gemm";
  ASSERT_TRUE(make_plan(run.p, Direction::forward, run.caps, opts, &plan).ok());
  ASSERT_GT(plan.workspace_bytes, 0u) << "im2col_gemm of a 3x3 filter needs a column buffer";
  std::vector<unsigned char> ws(plan.workspace_bytes);

  ExecContext ctx = run.context();
  ctx.workspace = ws.data();
  ctx.workspace_bytes = plan.workspace_bytes - 1;
  Status s = execute(plan, run.buffers(), ctx);
  EXPECT_EQ(s.code(), StatusCode::workspace_too_small) << s.message();

  ctx.workspace = nullptr;
  ctx.workspace_bytes = plan.workspace_bytes;
  s = execute(plan, run.buffers(), ctx);
  EXPECT_FALSE(s.ok());

  ctx.workspace = ws.data();
  ConvBuffers bufs = run.buffers();
  bufs.output = nullptr;
  s = execute(plan, bufs, ctx);
  EXPECT_EQ(s.code(), StatusCode::invalid_argument) << s.message();
  bufs = run.buffers();
  bufs.weight = nullptr;
  EXPECT_EQ(execute(plan, bufs, ctx).code(), StatusCode::invalid_argument);
  bufs = run.buffers();
  bufs.input = nullptr;
  EXPECT_EQ(execute(plan, bufs, ctx).code(), StatusCode::invalid_argument);

  ExecContext no_caps = ctx;
  no_caps.caps = nullptr;
  EXPECT_FALSE(execute(plan, run.buffers(), no_caps).ok());
  ExecContext no_gemm = ctx;
  no_gemm.gemm = nullptr;
  EXPECT_FALSE(execute(plan, run.buffers(), no_gemm).ok());

  Plan bias;
  ASSERT_TRUE(make_plan(run.p, Direction::backward_bias, run.caps, PlanOptions{}, &bias).ok());
  ConvBuffers bb;
  bb.grad_output = run.y.data();
  EXPECT_EQ(execute(bias, bb, ctx).code(), StatusCode::invalid_argument);  // no grad_bias

  // And a proper call still works after all that.
  EXPECT_TRUE(execute(plan, run.buffers(), ctx).ok());
}

TEST(EngineExecute, ForwardWithBiasAddsIt) {
  ConfigRestore restore;
  set_config(Config{});
  SmallRun run;
  Plan plan;
  PlanOptions opts;
  opts.solver = "reference";
  ASSERT_TRUE(make_plan(run.p, Direction::forward, run.caps, opts, &plan).ok());
  ASSERT_TRUE(execute(plan, run.buffers(), run.context()).ok());
  const std::vector<float> plain = run.y;
  ConvBuffers bufs = run.buffers();
  for (size_t k = 0; k < run.b.size(); ++k) run.b[k] = static_cast<float>(k) + 0.5f;
  bufs.bias = run.b.data();
  ASSERT_TRUE(execute(plan, bufs, run.context()).ok());
  const int64_t pixels = output_elements(run.p) / (run.p.batch * run.p.out_channels);
  for (size_t i = 0; i < plain.size(); ++i) {
    const size_t k = (i / static_cast<size_t>(pixels)) % run.b.size();
    EXPECT_FLOAT_EQ(run.y[i], plain[i] + run.b[k]) << "element " << i;
  }
}

}  // namespace
}  // namespace testing
}  // namespace gemmconv
