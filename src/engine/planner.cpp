// The planner: validates a problem and picks the plan kind or the first enabled applicable solver.
#include <algorithm>
#include <mutex>
#include <set>
#include <string>

#include "configs/defaults.h"
#include "configs/hardware.h"
#include "engine/internal.h"
#include "gemmconv/engine.h"
#include "gemmconv/replay.h"
#include "solvers/plan_kind.h"

namespace gemmconv {

const Solver* find_solver(const std::string& name) {
  for (const Solver* s : solver_registry()) {
    if (name == s->name()) return s;
  }
  return nullptr;
}

const char* Plan::solver_name() const {
  if (solver) return solver->name();
  return kind ? kind->name() : "none";
}

namespace {

// The first plan kind of `stage` that applies, or nullptr.
const PlanKind* find_kind(const ConvProblem& p, Direction d, PlanKind::Stage stage) {
  for (const PlanKind* k : plan_kind_registry()) {
    if (k->stage() == stage && k->is_applicable(p, d)) return k;
  }
  return nullptr;
}

// Warns the first time a budget (per budget value) sends a problem to the reference solver although
// a faster enabled solver would apply with more workspace; later cases are logged at info level.
void note_forced_reference(const ConvProblem& p, Direction d, size_t budget, const Solver& wanted,
                           size_t wanted_bytes) {
  static std::mutex mu;
  static std::set<size_t> warned;
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    first = warned.insert(budget).second;
  }
  const std::string msg =
      "the workspace budget of " + std::to_string(budget) + " bytes (" +
      std::to_string(budget >> 20) + " MiB) is too small for solver " + wanted.name() +
      ", which needs " + std::to_string(wanted_bytes) + " bytes for the " + to_string(d) +
      " pass of " + to_string(p) +
      "; the much slower 'reference' solver runs instead. Raise GEMMCONV_WORKSPACE_MB or "
      "enable(workspace_mb=...)";
  log_message(
      first ? LogLevel::warning : LogLevel::info,
      first ? msg + " (warned once per budget; later cases are logged at info level)" : msg);
}

}  // namespace

namespace engine {

std::vector<const Solver*> preferred_order(const ConvShape& s, Direction d,
                                           const Capabilities& caps) {
  std::vector<const Solver*> order = solver_registry();
  const configs::ArchFamily family =
      caps.kind == DeviceKind::cpu ? configs::ArchFamily::cpu : configs::arch_family(caps.arch);
  for (const configs::Promotion& rule : configs::solver_promotions(family, s, d)) {
    const auto is = [](const char* name) {
      return [name](const Solver* x) { return std::string(x->name()) == name; };
    };
    auto moved = std::find_if(order.begin(), order.end(), is(rule.solver));
    auto target = std::find_if(order.begin(), order.end(), is(rule.before));
    if (moved == order.end() || target == order.end() || moved < target) continue;
    const Solver* m = *moved;
    order.erase(moved);
    order.insert(std::find_if(order.begin(), order.end(), is(rule.before)), m);
  }
  return order;
}

bool solver_usable(const Solver* s, const ConvShape& shape, Direction regular,
                   const PlanContext& ctx, const Config& cfg, bool gemm_available) {
  if (cfg.disabled.count(s->name())) return false;
  if (s->needs_gemm() && !gemm_available) return false;
  if (!s->is_applicable(shape, regular, ctx)) return false;
  if (!s->preferred(shape, regular, ctx)) return false;
  if (s->workspace_bytes(shape, regular, ctx) > ctx.workspace_budget) {
    log_message(LogLevel::warning, std::string("solver ") + s->name() +
                                       " asked for more workspace than its budget; skipped");
    return false;
  }
  return true;
}

}  // namespace engine

namespace {

Status plan_problem(const ConvProblem& p, Direction d, const Capabilities& caps,
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

  plan.kind = find_kind(p, d, PlanKind::Stage::main);
  plan.epilogue = find_kind(p, d, PlanKind::Stage::epilogue);
  if (!plan.kind) {
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
      for (const Solver* s : engine::preferred_order(plan.shape, plan.regular, caps)) {
        if (!engine::solver_usable(s, plan.shape, plan.regular, ctx, cfg, opts.gemm_available)) {
          continue;
        }
        plan.solver = s;
        break;
      }
      if (plan.solver && std::string(plan.solver->name()) == "reference") {
        // Did the budget force it? Ask the solvers before it under a 256 TiB budget: one that
        // would run there but does not apply under this budget was turned away by the budget
        // (not one that declines the problem whatever the budget, as not worth running).
        PlanContext unlimited = ctx;
        unlimited.workspace_budget = size_t(1) << 48;
        for (const Solver* s : solver_registry()) {
          if (s == plan.solver) break;
          if (cfg.disabled.count(s->name()) || (s->needs_gemm() && !opts.gemm_available)) continue;
          if (s->is_applicable(plan.shape, plan.regular, unlimited) &&
              s->preferred(plan.shape, plan.regular, unlimited) &&
              !s->is_applicable(plan.shape, plan.regular, ctx)) {
            note_forced_reference(p, d, budget, *s,
                                  s->workspace_bytes(plan.shape, plan.regular, unlimited));
            break;
          }
        }
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

}  // namespace

// The entry point: info level logs the replay command of each plan (include/gemmconv/replay.h),
// and every error returned ends with it.
Status make_plan(const ConvProblem& p, Direction d, const Capabilities& caps,
                 const PlanOptions& opts, Plan* out) {
  const Status st = plan_problem(p, d, caps, opts, out);
  if (st.ok() && config().log_level <= LogLevel::info) {
    log_message(LogLevel::info,
                "replay: " + replay_command(p, d, out->solver_name(), to_string(caps.kind)));
  }
  if (st.ok()) return st;
  return Status(st.code(), st.message() + " (replay: " +
                               replay_command(p, d, opts.solver.c_str(), to_string(caps.kind)) +
                               ")");
}

}  // namespace gemmconv
