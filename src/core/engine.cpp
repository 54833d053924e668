// Configuration, logging, planning, execution and the call counters of the engine.
#include "gemmconv/engine.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include "kernels/ops.h"

namespace gemmconv {
namespace {

constexpr const char* kEmptySolverName = "empty";  // nothing to compute: N == 0
constexpr const char* kBiasSolverName = "bias_reduce";

std::mutex& config_mutex() {
  static std::mutex m;
  return m;
}

Config& config_storage() {
  static Config c = config_from_environment();
  return c;
}

std::mutex& stats_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::pair<Direction, std::string>, uint64_t>& stats_storage() {
  static std::map<std::pair<Direction, std::string>, uint64_t> s;
  return s;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

void count_call(Direction d, const std::string& solver) {
  std::lock_guard<std::mutex> lock(stats_mutex());
  ++stats_storage()[{d, solver}];
}

Status missing(const char* what, Direction d) {
  return Status(StatusCode::invalid_argument,
                std::string(what) + " is null but the " + to_string(d) + " pass needs it");
}

}  // namespace

const Solver* find_solver(const std::string& name) {
  for (const Solver* s : solver_registry()) {
    if (name == s->name()) return s;
  }
  return nullptr;
}

bool parse_log_level(const std::string& s, LogLevel* out) {
  static const std::pair<const char*, LogLevel> kLevels[] = {
      {"debug", LogLevel::debug},  {"info", LogLevel::info},   {"warning", LogLevel::warning},
      {"warn", LogLevel::warning}, {"error", LogLevel::error}, {"off", LogLevel::off}};
  for (const auto& l : kLevels) {
    if (s == l.first) {
      *out = l.second;
      return true;
    }
  }
  return false;
}

Config config_from_environment() {
  Config c;
  if (const char* v = std::getenv("GEMMCONV_DISABLE")) {
    std::stringstream ss(v);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item = trim(item);
      if (!item.empty()) c.disabled.insert(item);
    }
  }
  if (const char* v = std::getenv("GEMMCONV_WORKSPACE_MB")) {
    char* end = nullptr;
    const long long mb = std::strtoll(v, &end, 10);
    if (end != v && *end == '\0' && mb >= 0) {
      c.workspace_budget = static_cast<size_t>(mb) << 20;
    } else {
      std::fprintf(stderr, "gemmconv: ignoring GEMMCONV_WORKSPACE_MB=%s (not a size in MiB)\n", v);
    }
  }
  if (const char* v = std::getenv("GEMMCONV_LOG_LEVEL")) {
    if (!parse_log_level(trim(v), &c.log_level)) {
      std::fprintf(stderr,
                   "gemmconv: ignoring GEMMCONV_LOG_LEVEL=%s (use debug, info, warning, error or "
                   "off)\n",
                   v);
    }
  }
  return c;
}

Config config() {
  std::lock_guard<std::mutex> lock(config_mutex());
  return config_storage();
}

void set_config(const Config& c) {
  std::lock_guard<std::mutex> lock(config_mutex());
  config_storage() = c;
}

void log_message(LogLevel level, const std::string& message) {
  static const char* kNames[] = {"debug", "info", "warning", "error", "off"};
  if (level == LogLevel::off || level < config().log_level) return;
  std::fprintf(stderr, "gemmconv [%s] %s\n", kNames[static_cast<int>(level)], message.c_str());
}

const char* Plan::solver_name() const {
  if (solver) return solver->name();
  return direction == Direction::backward_bias ? kBiasSolverName : kEmptySolverName;
}

Status make_plan(const ConvProblem& p, Direction d, const Capabilities& caps,
                 const PlanOptions& opts, Plan* out) {
  if (!out) return Status(StatusCode::invalid_argument, "make_plan: out is null");
  Status st = validate(p);
  if (!st.ok()) return st;
  const Config cfg = config();

  Plan plan;
  plan.problem = p;
  plan.direction = d;
  plan.shape = canonical_shape(p);
  plan.regular = regular_direction(p, d);
  const size_t budget = opts.workspace_budget ? opts.workspace_budget : cfg.workspace_budget;

  if (d != Direction::backward_bias && plan.shape.n > 0) {
    const PlanContext ctx{&caps, budget};
    if (!opts.solver.empty()) {
      // An explicit request names exactly one solver and ignores GEMMCONV_DISABLE.
      const Solver* s = find_solver(opts.solver);
      if (!s) {
        return Status(StatusCode::invalid_argument, "unknown solver '" + opts.solver + "'");
      }
      if ((s->needs_gemm() && !opts.gemm_available) ||
          !s->is_applicable(plan.shape, plan.regular, ctx)) {
        return Status(StatusCode::not_applicable, "solver '" + opts.solver +
                                                      "' does not apply to " + to_string(p) + " (" +
                                                      to_string(d) + ", workspace budget " +
                                                      std::to_string(budget) + " bytes)");
      }
      plan.solver = s;
    } else {
      for (const Solver* s : solver_registry()) {
        if (cfg.disabled.count(s->name())) continue;
        if (s->needs_gemm() && !opts.gemm_available) continue;
        if (!s->is_applicable(plan.shape, plan.regular, ctx)) continue;
        if (!s->preferred(plan.shape, plan.regular, ctx)) continue;
        if (s->workspace_bytes(plan.shape, plan.regular, ctx) > budget) {
          log_message(LogLevel::warning, std::string("solver ") + s->name() +
                                             " asked for more workspace than its budget; skipped");
          continue;
        }
        plan.solver = s;
        break;
      }
      if (!plan.solver) {
        return Status(StatusCode::not_applicable,
                      "no enabled solver applies to " + to_string(p) + " (" + to_string(d) +
                          "); GEMMCONV_DISABLE may have switched off every candidate");
      }
    }
    plan.workspace_bytes = plan.solver->workspace_bytes(plan.shape, plan.regular, ctx);
  }
  if (cfg.log_level <= LogLevel::debug) {
    log_message(LogLevel::debug, std::string(to_string(d)) + " " + to_string(p) + " on " +
                                     to_string(caps.kind) + " -> " + plan.solver_name() +
                                     " (workspace " + std::to_string(plan.workspace_bytes) +
                                     " bytes)");
  }
  *out = plan;
  return Status::success();
}

Status execute(const Plan& plan, const ConvBuffers& b, const ExecContext& ctx) {
  if (!ctx.caps) return Status(StatusCode::invalid_argument, "execute: ctx.caps is null");
  if (ctx.workspace_bytes < plan.workspace_bytes || (plan.workspace_bytes && !ctx.workspace)) {
    return Status(StatusCode::workspace_too_small,
                  "the plan needs " + std::to_string(plan.workspace_bytes) +
                      " bytes of workspace but " + std::to_string(ctx.workspace_bytes) +
                      " were handed in");
  }
  const ConvProblem& p = plan.problem;
  const Direction d = plan.direction;
  const int64_t out_pixels =
      plan.problem.transposed ? plan.shape.in_pixels() : plan.shape.out_pixels();
  const size_t es = element_size(p.dtype);

  // Check the buffers each pass reads and writes, so a null pointer is a status, not a crash.
  const bool has_data = p.batch > 0;
  switch (d) {
    case Direction::forward:
      if (has_data && !b.input) return missing("input", d);
      if (has_data && !b.output) return missing("output", d);
      if (!b.weight) return missing("weight", d);
      break;
    case Direction::backward_data:
      if (has_data && !b.grad_output) return missing("grad_output", d);
      if (has_data && !b.grad_input) return missing("grad_input", d);
      if (!b.weight) return missing("weight", d);
      break;
    case Direction::backward_weight:
      if (has_data && (!b.input || !b.grad_output)) return missing("input or grad_output", d);
      if (!b.grad_weight) return missing("grad_weight", d);
      break;
    case Direction::backward_bias:
      if (has_data && !b.grad_output) return missing("grad_output", d);
      if (!b.grad_bias) return missing("grad_bias", d);
      break;
  }

  Status st;
  if (d == Direction::backward_bias) {
    st = has_data ? ops::bias_grad(ctx, p.dtype, p.layout, b.grad_output, b.grad_bias, p.batch,
                                   p.out_channels, out_pixels)
                  : ops::fill_zero(ctx, b.grad_bias, static_cast<size_t>(p.out_channels) * es);
  } else if (!has_data) {
    if (d == Direction::backward_weight) {
      st = ops::fill_zero(ctx, b.grad_weight, static_cast<size_t>(weight_elements(p)) * es);
    }
  } else {
    if (!plan.solver)
      return Status(StatusCode::invalid_argument, "execute: the plan has no solver");
    if (!ctx.gemm && plan.solver->needs_gemm()) {
      return Status(StatusCode::invalid_argument,
                    std::string("solver ") + plan.solver->name() + " needs a GEMM provider");
    }
    if (ctx.gemm && ctx.gemm->device() != ctx.caps->kind) {
      return Status(StatusCode::invalid_argument,
                    std::string("GEMM provider ") + ctx.gemm->name() + " runs on the " +
                        to_string(ctx.gemm->device()) + ", the plan on the " +
                        to_string(ctx.caps->kind));
    }
    // Map the user's tensors onto the regular convolution (see ConvShape).
    ConvTensors t;
    void* const in = const_cast<void*>(b.input);
    void* const gout = const_cast<void*>(b.grad_output);
    t.w = d == Direction::backward_weight ? b.grad_weight : const_cast<void*>(b.weight);
    if (!p.transposed) {
      t.x = d == Direction::backward_data ? b.grad_input : in;
      t.y = d == Direction::forward ? b.output : gout;
    } else {
      t.x = d == Direction::forward ? b.output : gout;
      t.y = d == Direction::backward_data ? b.grad_input : in;
    }
    st = plan.solver->run(plan.shape, plan.regular, t, ctx);
    if (st.ok() && d == Direction::forward && b.bias) {
      st = ops::bias_add(ctx, p.dtype, p.layout, b.output, b.bias, p.batch, p.out_channels,
                         out_pixels);
    }
  }
  if (!st.ok()) {
    return Status(st.code(), std::string(plan.solver_name()) + " failed on " + to_string(p) + " (" +
                                 to_string(d) + "): " + st.message());
  }
  count_call(d, plan.solver_name());
  return st;
}

std::vector<StatsEntry> stats_snapshot() {
  std::lock_guard<std::mutex> lock(stats_mutex());
  std::vector<StatsEntry> out;
  for (const auto& kv : stats_storage()) {
    out.push_back(StatsEntry{kv.first.first, kv.first.second, kv.second});
  }
  return out;
}

void reset_stats() {
  std::lock_guard<std::mutex> lock(stats_mutex());
  stats_storage().clear();
}

}  // namespace gemmconv
