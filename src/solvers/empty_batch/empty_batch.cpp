// The empty-batch plan kind: a batch of zero samples leaves only a zero weight gradient to write.
#include <cstddef>

#include "kernels/ops.h"
#include "solvers/plan_kind.h"
#include "solvers/registration.h"

namespace gemmconv {
namespace {

class EmptyBatch final : public PlanKind {
 public:
  const char* name() const override { return "empty"; }
  Stage stage() const override { return Stage::main; }
  bool is_applicable(const ConvProblem& p, Direction d) const override {
    return p.batch == 0 && is_regular_pass(d);
  }
  Status run(const ConvProblem& p, Direction d, const ConvBuffers& b,
             const ExecContext& ctx) const override {
    if (d != Direction::backward_weight) return Status::success();
    return ops::fill_zero(ctx, b.grad_weight,
                          static_cast<size_t>(weight_elements(p)) * element_size(p.dtype));
  }
};

}  // namespace

const PlanKind& empty_batch_kind() { return solvers::stateless_instance<EmptyBatch>(); }

}  // namespace gemmconv
