// The ordered solver registry (specialised first, reference last), looked up by stable name.
#include <vector>

#include "gemmconv/engine.h"
#include "solvers/solvers.h"

namespace gemmconv {

const std::vector<const Solver*>& solver_registry() {
  static const std::vector<const Solver*> registry = {
      &gemm_1x1_solver(),    &depthwise_direct_solver(), &winograd_gemm_solver(),
      &im2col_gemm_solver(), &implicit_gemm_solver(),    &reference_solver(),
  };
  return registry;
}

// find_solver(name) lives in engine.cpp next to the planner that uses it.

}  // namespace gemmconv
