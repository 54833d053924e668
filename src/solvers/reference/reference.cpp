// The reference solver: ops::reference_conv, always applicable, no workspace; the tests' oracle.
#include "kernels/ops.h"
#include "solvers/registration.h"
#include "solvers/solvers.h"

namespace gemmconv {
namespace {

class ReferenceSolver final : public Solver {
 public:
  const char* name() const override { return "reference"; }
  bool needs_gemm() const override { return false; }

  bool is_applicable(const ConvShape&, Direction d, const PlanContext&) const override {
    return is_regular_pass(d);
  }

  size_t workspace_bytes(const ConvShape&, Direction, const PlanContext&) const override {
    return 0;
  }

  Status run(const ConvShape& s, Direction d, const ConvTensors& t,
             const ExecContext& ctx) const override {
    return ops::reference_conv(ctx, s, d, t);
  }
};

}  // namespace

const Solver& reference_solver() { return solvers::stateless_instance<ReferenceSolver>(); }

}  // namespace gemmconv
