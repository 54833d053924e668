// Replay: the engine's gemmconv-driver lines parse back into the same problem, the engine's errors
// and info log carry them, and the driver reads MIOpenDriver's conv syntax.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "catalog.h"
#include "cli.h"
#include "fuzz.h"
#include "gemmconv/gemmconv.h"

namespace gemmconv {
namespace testing {
namespace {

using driver::Options;
using driver::parse_command_line;
using driver::split_words;
using driver::UsageError;

// The driver's reading of a replay line (without its program name).
Options parse_replay(const std::string& line) {
  std::vector<std::string> words = split_words(line);
  EXPECT_FALSE(words.empty());
  EXPECT_EQ(words[0], "gemmconv-driver");
  words.erase(words.begin());
  return parse_command_line(words);
}

void expect_round_trip(const ConvProblem& p, const std::string& what) {
  const Direction dirs[] = {Direction::forward, Direction::backward_data,
                            Direction::backward_weight, Direction::backward_bias};
  for (Direction d : dirs) {
    for (const Solver* s : solver_registry()) {
      for (const char* device : {"cpu", "gpu"}) {
        const bool bias = d == Direction::forward && s == solver_registry().front();
        const std::string line = replay_command(p, d, s->name(), device, bias);
        SCOPED_TRACE(what + ": " + line);
        const Options o = parse_replay(line);
        EXPECT_EQ(o.problem, p) << to_string(o.problem) << " vs " << to_string(p);
        ASSERT_EQ(o.directions.size(), 1u);
        EXPECT_EQ(o.directions[0], d);
        EXPECT_EQ(o.solver, d == Direction::backward_bias ? "" : s->name());
        EXPECT_EQ(o.device, device);
        EXPECT_EQ(o.bias, bias);
      }
    }
  }
}

TEST(Replay, RoundTripsEveryCatalogProblem) {
  for (const CatalogEntry& e : catalog()) expect_round_trip(e.problem, e.name);
}

TEST(Replay, RoundTripsRandomProblems) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) {
    expect_round_trip(driver::random_problem(rng), "random problem " + std::to_string(i));
  }
}

TEST(Replay, LeavesOutWhatIsNoSolver) {
  const ConvProblem p = ProblemBuilder(2).channels(3, 4).input({5}).filter({3});
  const std::string line = replay_command(p, Direction::forward, "empty");
  EXPECT_EQ(line.find("--solver"), std::string::npos) << line;
  EXPECT_EQ(line.find("--device"), std::string::npos) << line;
  EXPECT_EQ(parse_replay(line).problem, p);
}

TEST(Replay, EngineErrorsCarryTheCommand) {
  ConvProblem bad = ProblemBuilder(2).channels(3, 4).input({5}).filter({3});
  bad.stride[0] = 0;
  Plan plan;
  Status s = make_plan(bad, Direction::forward, cpu_capabilities(), PlanOptions(), &plan);
  ASSERT_EQ(s.code(), StatusCode::invalid_problem);
  const std::string want = replay_command(bad, Direction::forward, nullptr, "cpu");
  EXPECT_NE(s.message().find("(replay: " + want + ")"), std::string::npos) << s.message();

  // A run error: a null output.
  const ConvProblem p = ProblemBuilder(2).channels(3, 4).input({5}).filter({3});
  PlanOptions opts;
  opts.solver = "reference";
  ASSERT_TRUE(make_plan(p, Direction::forward, cpu_capabilities(), opts, &plan).ok());
  std::vector<float> x(size_t(input_elements(p)) * 2), w(size_t(weight_elements(p)));
  ConvBuffers b;
  b.input = x.data();
  b.weight = w.data();
  const Capabilities caps = cpu_capabilities();
  ExecContext ctx;
  ctx.caps = &caps;
  s = execute(plan, b, ctx);
  ASSERT_EQ(s.code(), StatusCode::invalid_argument);
  EXPECT_NE(s.message().find(
                "(replay: " + replay_command(p, Direction::forward, "reference", "cpu") + ")"),
            std::string::npos)
      << s.message();
  // The line reproduces the problem.
  const std::string msg = s.message();
  const size_t at = msg.find("(replay: ") + 9;
  EXPECT_EQ(parse_replay(msg.substr(at, msg.size() - at - 1)).problem, p);
}

TEST(Replay, InfoLogShowsEveryPlan) {
  const Config saved = config();
  Config c = saved;
  c.log_level = LogLevel::info;
  set_config(c);
  const ConvProblem p = ProblemBuilder(3).channels(2, 4).groups(2).input({4}).filter({3});
  Plan plan;
  ::testing::internal::CaptureStderr();
  const Status s = make_plan(p, Direction::backward_data, cpu_capabilities(), PlanOptions(), &plan);
  const std::string err = ::testing::internal::GetCapturedStderr();
  set_config(saved);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_NE(err.find("gemmconv [info] replay: " +
                     replay_command(p, Direction::backward_data, plan.solver_name(), "cpu")),
            std::string::npos)
      << err;
  // Quiet at the default level.
  set_config(Config{});
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(make_plan(p, Direction::forward, cpu_capabilities(), PlanOptions(), &plan).ok());
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  set_config(saved);
}

Options parse(const std::string& line) { return parse_command_line(split_words(line)); }

std::string usage_error(const std::string& line) {
  try {
    parse(line);
  } catch (const UsageError& e) {
    return e.message;
  }
  return "";
}

TEST(MiopenSyntax, TwoDimensional) {
  const Options o = parse(
      "conv -n 32 -c 64 -H 56 -W 28 -k 128 -y 3 -x 1 -p 1 -q 0 -u 2 -v 1 -l 1 -j 2 -g 2 -F 1 -t 1 "
      "-i 7 -V 0 -m conv -s 0 -P 1 --device cpu");
  const ConvProblem want = ProblemBuilder(2)
                               .batch(32)
                               .channels(64, 128)
                               .groups(2)
                               .input({56, 28})
                               .filter({3, 1})
                               .pad({1, 0})
                               .stride({2, 1})
                               .dilation({1, 2});
  EXPECT_EQ(o.problem, want) << to_string(o.problem);
  EXPECT_EQ(o.directions, std::vector<Direction>{Direction::forward});
  EXPECT_TRUE(o.time);
  EXPECT_FALSE(o.verify);
  EXPECT_EQ(o.reps, 7);
  EXPECT_EQ(o.device, "cpu");
  EXPECT_TRUE(o.warnings.empty());
}

TEST(MiopenSyntax, ThreeDimensionalTransposedHalfChannelsLast) {
  const Options o = parse(
      "convfp16 --spatial_dim 3 -n 2 -c 8 -! 4 -H 5 -W 6 -k 4 -@ 3 -y 3 -x 3 -$ 1 -p 1 -q 1 -# 2 "
      "-u 2 -v 2 -^ 1 -l 1 -j 1 -% 1 -Y 0 -X 1 -m trans -g 1 -F 6 -b 1 --in_layout NDHWC "
      "--out_layout NDHWC --fil_layout NDHWC");
  const ConvProblem want = ProblemBuilder(3)
                               .batch(2)
                               .channels(8, 4)
                               .input({4, 5, 6})
                               .filter({3})
                               .pad({1})
                               .stride({2})
                               .transposed()
                               .output_padding({1, 0, 1})
                               .layout(Layout::channels_last)
                               .dtype(DataType::f16);
  EXPECT_EQ(o.problem, want) << to_string(o.problem);
  const std::vector<Direction> dirs = {Direction::backward_data, Direction::backward_weight,
                                       Direction::backward_bias};
  EXPECT_EQ(o.directions, dirs);
  EXPECT_TRUE(o.verify);  // MIOpenDriver's default
}

TEST(MiopenSyntax, DefaultsAreMiopenDriversAndFlagsAreNamed) {
  const Options o = parse("convbfp16");
  EXPECT_EQ(o.problem,
            ConvProblem(ProblemBuilder(2).batch(100).channels(3, 32).input({32}).filter({3}).dtype(
                DataType::bf16)));
  EXPECT_EQ(o.directions.size(), 3u);
  EXPECT_NE(usage_error("conv -n 2 --in_data x.bin").find("'--in_data'"), std::string::npos);
  EXPECT_NE(usage_error("conv -Q 1").find("'-Q'"), std::string::npos);
  EXPECT_NE(usage_error("conv -r 1").find("'-r 1'"), std::string::npos);
  EXPECT_NE(usage_error("conv -z same").find("'-z same'"), std::string::npos);
  EXPECT_NE(usage_error("convint8 -n 1").find("convint8"), std::string::npos);
  EXPECT_NE(usage_error("conv --spatial_dim 1").find("--spatial_dim"), std::string::npos);
  EXPECT_NE(usage_error("conv -I NCHW -O NHWC").find("layouts"), std::string::npos);
  EXPECT_NE(usage_error("conv -X 1").find("-m trans"), std::string::npos);
  EXPECT_NE(usage_error("conv -n 2 --input 5").find("--input"), std::string::npos);
  EXPECT_NE(usage_error("conv -n").find("missing value for -n"), std::string::npos);
  EXPECT_EQ(parse("conv -S 3").warnings.size(), 1u);
}

TEST(DriverCommandLine, FuzzFlags) {
  const driver::FuzzOptions f =
      driver::parse_fuzz_command_line({"--seed", "9", "--count", "3", "--device", "cpu"});
  EXPECT_EQ(f.seed, 9u);
  EXPECT_EQ(f.count, 3);
  EXPECT_EQ(f.device, "cpu");
  EXPECT_THROW(driver::parse_fuzz_command_line({"--count", "0"}), UsageError);
  EXPECT_THROW(driver::parse_fuzz_command_line({"--bogus"}), UsageError);
}

TEST(DriverFuzz, ProblemsCoverTheSpace) {
  std::mt19937_64 rng(3);
  bool rank[4] = {}, transposed = false, grouped = false, depthwise = false, strided = false,
       dilated = false, asym = false, cl = false, half = false, empty = false;
  for (int i = 0; i < 2000; ++i) {
    const ConvProblem p = driver::random_problem(rng);
    ASSERT_TRUE(validate(p).ok()) << to_string(p);
    rank[p.spatial_dims] = true;
    transposed |= p.transposed;
    grouped |= p.groups > 1;
    depthwise |= p.groups > 1 && p.groups == p.in_channels;
    strided |= p.stride[0] > 1;
    dilated |= p.dilation[0] > 1;
    asym |= p.pad_begin[0] != p.pad_end[0];
    cl |= p.layout == Layout::channels_last;
    half |= p.dtype == DataType::f16 || p.dtype == DataType::bf16;
    empty |= p.batch == 0;
  }
  EXPECT_TRUE(rank[1] && rank[2] && rank[3]);
  EXPECT_TRUE(transposed && grouped && depthwise && strided && dilated && asym && cl && half &&
              empty);
}

}  // namespace
}  // namespace testing
}  // namespace gemmconv
