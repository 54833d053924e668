// The bias plan kinds: bias_add after a forward pass, and bias_reduce, the bias gradient.
#include <cstddef>

#include "kernels/ops.h"
#include "solvers/plan_kind.h"
#include "solvers/registration.h"

namespace gemmconv {
namespace {

class BiasAdd final : public PlanKind {
 public:
  const char* name() const override { return "bias_add"; }
  Stage stage() const override { return Stage::epilogue; }
  bool is_applicable(const ConvProblem& p, Direction d) const override {
    return d == Direction::forward && p.batch > 0;
  }
  Status run(const ConvProblem& p, Direction, const ConvBuffers& b,
             const ExecContext& ctx) const override {
    if (b.bias == nullptr) return Status::success();  // the layer has no bias
    return ops::bias_add(ctx, p.dtype, p.layout, b.output, b.bias, p.batch, p.out_channels,
                         output_pixels(p));
  }
};

class BiasReduce final : public PlanKind {
 public:
  const char* name() const override { return "bias_reduce"; }
  Stage stage() const override { return Stage::main; }
  bool is_applicable(const ConvProblem&, Direction d) const override {
    return d == Direction::backward_bias;
  }
  Status run(const ConvProblem& p, Direction, const ConvBuffers& b,
             const ExecContext& ctx) const override {
    if (p.batch == 0) {
      return ops::fill_zero(ctx, b.grad_bias,
                            static_cast<size_t>(p.out_channels) * element_size(p.dtype));
    }
    return ops::bias_grad(ctx, p.dtype, p.layout, b.grad_output, b.grad_bias, p.batch,
                          p.out_channels, output_pixels(p));
  }
};

}  // namespace

const PlanKind& bias_add_kind() { return solvers::stateless_instance<BiasAdd>(); }
const PlanKind& bias_reduce_kind() { return solvers::stateless_instance<BiasReduce>(); }

}  // namespace gemmconv
