// The executor: checks a plan's buffers, maps them onto the regular convolution, runs the plan's
// kind or solver and its epilogue, and counts the call.
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "gemmconv/engine.h"
#include "solvers/plan_kind.h"

namespace gemmconv {
namespace {

std::mutex& stats_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::pair<Direction, std::string>, uint64_t>& stats_storage() {
  static std::map<std::pair<Direction, std::string>, uint64_t> s;
  return s;
}

void count_call(Direction d, const std::string& solver) {
  std::lock_guard<std::mutex> lock(stats_mutex());
  ++stats_storage()[{d, solver}];
}

// The user's tensors as the regular convolution's x, w and y (see ConvShape).
ConvTensors regular_tensors(const ConvProblem& p, Direction d, const ConvBuffers& b) {
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
  return t;
}

Status missing(const char* what, Direction d) {
  return Status(StatusCode::invalid_argument,
                std::string(what) + " is null but the " + to_string(d) + " pass needs it");
}

}  // namespace

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
  if (plan.kind) {
    st = plan.kind->run(p, d, b, ctx);
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
    st = plan.solver->run(plan.shape, plan.regular, regular_tensors(p, d, b), ctx);
  }
  if (st.ok() && plan.epilogue) st = plan.epilogue->run(p, d, b, ctx);
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
