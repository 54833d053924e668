// Plan kinds: the work a plan holds besides a convolution solver (the bias reduction, the bias
// addition after a forward pass, an empty batch), named and dispatched by the planner like
// solvers, so that the planner and the executor call no kernel themselves.
#pragma once

#include <vector>

#include "gemmconv/engine.h"
#include "gemmconv/problem.h"
#include "gemmconv/solver.h"
#include "gemmconv/types.h"

namespace gemmconv {

// A stateless piece of work on the user's problem and buffers (not the regular shape: the bias
// belongs to the user's output, whatever the transposition).
class PlanKind {
 public:
  enum class Stage : uint8_t {
    main,      // computes the pass instead of a solver
    epilogue,  // runs after the solver of the pass
  };
  virtual ~PlanKind() = default;
  // Stable name, used in logs and stats.
  virtual const char* name() const = 0;
  virtual Stage stage() const = 0;
  virtual bool is_applicable(const ConvProblem& p, Direction d) const = 0;
  // Buffers are checked by the executor before it runs a plan.
  virtual Status run(const ConvProblem& p, Direction d, const ConvBuffers& b,
                     const ExecContext& ctx) const = 0;
};

// "bias_add": adds the bias, when one is handed in, to the output of a forward pass.
const PlanKind& bias_add_kind();
// "bias_reduce": the bias gradient, a deterministic reduction of grad_output (zero for an empty
// batch).
const PlanKind& bias_reduce_kind();
// "empty": a pass over an empty batch: nothing to compute but a zero weight gradient.
const PlanKind& empty_batch_kind();

// Every plan kind, in the order the planner tries them (registry.cpp).
const std::vector<const PlanKind*>& plan_kind_registry();

}  // namespace gemmconv
