// The ordered solver registry (specialised first, reference last) and the plan kinds.
#include <vector>

#include "gemmconv/engine.h"
#include "solvers/plan_kind.h"
#include "solvers/solvers.h"

namespace gemmconv {

const std::vector<const Solver*>& solver_registry() {
  static const std::vector<const Solver*> registry = {
      &gemm_1x1_solver(),      &depthwise_direct_solver(), &im2col_gemm_solver(),
      &implicit_gemm_solver(), &reference_solver(),
  };
  return registry;
}

const std::vector<const PlanKind*>& plan_kind_registry() {
  static const std::vector<const PlanKind*> registry = {
      &bias_reduce_kind(),
      &empty_batch_kind(),
      &bias_add_kind(),
  };
  return registry;
}

// find_solver(name) lives in planner.cpp next to the planner that uses it.

}  // namespace gemmconv
