// The solver contract: stateless algorithms that say whether they apply, how much workspace they
// want, and run. Solvers see only the canonical regular-convolution shape and regular passes.
#pragma once

#include <cstddef>

#include "gemmconv/device.h"
#include "gemmconv/gemm.h"
#include "gemmconv/problem.h"
#include "gemmconv/types.h"

namespace gemmconv {

// Everything a solver needs to decide, without touching memory.
struct PlanContext {
  const Capabilities* caps = nullptr;  // kind says cpu or gpu
  size_t workspace_budget = 0;
};

// Everything a solver needs to run. The caller owns the workspace; a solver that asked for W
// bytes under a budget is handed at least W bytes and derives its chunking from
// `workspace_bytes` alone, so planning and running agree.
struct ExecContext {
  const Capabilities* caps = nullptr;
  void* stream = nullptr;  // cudaStream_t / hipStream_t; ignored on the CPU
  GemmProvider* gemm = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  int variant = -1;  // the tuning choice to run (Solver::variants); -1: the solver's own choice
};

// The regular convolution's three tensors (see ConvShape). Which one is written depends on the
// pass: forward writes y from x and w; backward_data writes x from y and w; backward_weight writes
// w from x and y. The written tensor is overwritten, never accumulated into.
struct ConvTensors {
  void* x = nullptr;
  void* w = nullptr;
  void* y = nullptr;
};

class Solver {
 public:
  virtual ~Solver() = default;
  // Stable name, used in logs, stats and GEMMCONV_DISABLE.
  virtual const char* name() const = 0;
  // Whether run() calls ctx.gemm; direct solvers need no GEMM provider.
  virtual bool needs_gemm() const { return true; }
  // "Applicable" means "will compute it correctly within ctx.workspace_budget". `d` is one of
  // forward, backward_data, backward_weight.
  virtual bool is_applicable(const ConvShape& s, Direction d, const PlanContext& ctx) const = 0;
  // Whether the planner should take it when applicable, or leave the problem to the solvers after
  // it (an algorithm that is correct everywhere but only faster somewhere). A solver requested by
  // name runs whenever it is applicable.
  virtual bool preferred(const ConvShape&, Direction, const PlanContext&) const { return true; }
  // Bytes wanted under ctx.workspace_budget; only called when applicable.
  virtual size_t workspace_bytes(const ConvShape& s, Direction d, const PlanContext& ctx) const = 0;
  virtual Status run(const ConvShape& s, Direction d, const ConvTensors& t,
                     const ExecContext& ctx) const = 0;
  // Tuning choices (tiles, say) that compute the same result, for the find step to time: run()
  // honours ctx.variant in [0, variants()); -1 lets the solver choose. Names are stable (they are
  // stored in the perf database).
  virtual int variants() const { return 0; }
  virtual const char* variant_name(int /*v*/) const { return ""; }
};

}  // namespace gemmconv
