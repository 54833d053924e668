// The engine's front door: the solver registry, configuration, planning, execution and counters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "gemmconv/device.h"
#include "gemmconv/problem.h"
#include "gemmconv/solver.h"

namespace gemmconv {

// The ordered registry: fastest specialised solvers first, `reference` last (always applicable).
const std::vector<const Solver*>& solver_registry();
const Solver* find_solver(const std::string& name);

enum class LogLevel : uint8_t { debug, info, warning, error, off };

// Read from the environment at first use:
//   GEMMCONV_DISABLE       comma-separated solver names to switch off (e.g. "im2col_gemm,gemm_1x1")
//   GEMMCONV_WORKSPACE_MB  default workspace budget in MiB (default 256)
//   GEMMCONV_LOG_LEVEL     debug | info | warning | error | off (default warning)
//   GEMMCONV_FIND          off | fast | exhaustive (default fast on GPUs; CPUs use the table
//                          unless the variable is set): see gemmconv/find.h
//   GEMMCONV_PERFDB        the perf database file (default $XDG_CACHE_HOME/gemmconv/perfdb.txt,
//                          else ~/.cache/gemmconv/perfdb.txt)
enum class FindMode : uint8_t { off, fast, exhaustive };

// The largest budget in MiB that fits a size_t in bytes; larger values are refused, never wrapped.
constexpr unsigned long long kMaxWorkspaceMb = static_cast<unsigned long long>(SIZE_MAX) >> 20;
struct Config {
  std::set<std::string> disabled;
  size_t workspace_budget = size_t(256) << 20;
  LogLevel log_level = LogLevel::warning;
  FindMode find_mode = FindMode::fast;
  bool find_on_cpu = false;  // true when GEMMCONV_FIND was set: CPU problems are found too
  std::string perfdb_path;   // empty: finds are kept in this process only
};
Config config();
void set_config(const Config& c);  // replaces the process-wide configuration
Config config_from_environment();  // what the environment says, without installing it
bool parse_log_level(const std::string& s, LogLevel* out);
bool parse_find_mode(const std::string& s, FindMode* out);
const char* to_string(FindMode m);
// The perf database's default location: $XDG_CACHE_HOME/gemmconv/perfdb.txt, else
// $HOME/.cache/gemmconv/perfdb.txt, else "" (no database).
std::string default_perfdb_path();
void log_message(LogLevel level, const std::string& message);

struct PlanOptions {
  size_t workspace_budget = 0;  // 0: the configured budget
  std::string solver;           // non-empty: use exactly this solver or fail (tests, driver)
  bool gemm_available = true;   // false: the caller has no GEMM provider, so plan direct solvers
};

class PlanKind;  // bias_add, bias_reduce, empty: see src/solvers/plan_kind.h

struct Plan {
  ConvProblem problem;
  Direction direction = Direction::forward;  // the user's pass
  ConvShape shape;
  Direction regular = Direction::forward;  // the regular pass that computes it
  const Solver* solver = nullptr;          // nullptr when a plan kind computes the pass
  int variant = -1;                    // the solver's tuning choice (Solver::variants); -1: its own
  const PlanKind* kind = nullptr;      // bias_reduce (backward_bias), empty (no samples)
  const PlanKind* epilogue = nullptr;  // bias_add after a forward solver
  size_t workspace_bytes = 0;
  const char* solver_name() const;
};

// Validates the problem, picks the first enabled applicable solver in the order of the shipped
// default table for the device's architecture family (src/configs/defaults.h), and says how much
// workspace to hand in. Logs the choice at debug level. Never times anything: the find step
// (gemmconv/find.h) builds on it.
Status make_plan(const ConvProblem& p, Direction d, const Capabilities& caps,
                 const PlanOptions& opts, Plan* out);

// The user's tensors. Per pass:
//   forward          input, weight, optional bias -> output
//   backward_data    grad_output, weight          -> grad_input
//   backward_weight  input, grad_output           -> grad_weight
//   backward_bias    grad_output                  -> grad_bias
struct ConvBuffers {
  const void* input = nullptr;
  const void* weight = nullptr;
  const void* bias = nullptr;
  const void* grad_output = nullptr;
  void* output = nullptr;
  void* grad_input = nullptr;
  void* grad_weight = nullptr;
  void* grad_bias = nullptr;
};

// Runs a plan. ctx.workspace must hold plan.workspace_bytes; ctx.gemm must live on the plan's
// device. Counts the call in the statistics.
Status execute(const Plan& plan, const ConvBuffers& b, const ExecContext& ctx);

struct StatsEntry {
  Direction direction;
  std::string solver;
  uint64_t calls;
};
std::vector<StatsEntry> stats_snapshot();
void reset_stats();

}  // namespace gemmconv
