// The depthwise_direct solver: direct kernels for depthwise convolution (one input channel per
// group, any channel multiplier), where GEMM degenerates into many tiny products.
#include <algorithm>

#include "configs/hardware.h"
#include "solvers/common.h"
#include "solvers/depthwise_direct/depthwise.h"
#include "solvers/registration.h"

namespace gemmconv {
namespace depthwise {

bool is_depthwise(const ConvShape& s) { return s.g == s.c && s.cg() == 1 && s.k % s.g == 0; }

int channel_tile(int64_t channels) {
  if (channels % 32 == 0 || channels > 256) return 32;
  if (channels % 16 == 0 || channels > 64) return 16;
  return 8;
}

WeightSplit weight_split(const ConvShape& s, size_t budget) {
  WeightSplit out;
  const int64_t F = s.filt_pixels();
  // Aim for a couple of thousand blocks in all, each summing at least ~1K products per tap.
  constexpr int64_t kTargetBlocks = 2048;
  int64_t want;
  if (s.layout == Layout::channels_last) {
    const int64_t tiles = (s.k + channel_tile(s.k) - 1) / channel_tile(s.k);
    const int64_t pixels = s.n * s.out_pixels();
    want = std::min((kTargetBlocks + tiles - 1) / tiles, (pixels + 63) / 64);
  } else {
    const int64_t rows = s.n * s.out[0] * s.out[1];
    want = std::min({(kTargetBlocks + s.k - 1) / s.k, rows, (rows * s.out[2] + 1023) / 1024});
  }
  want = std::max<int64_t>(1, want);
  const size_t per_split =
      solvers::bytes_of(s.dtype == DataType::f64 ? DataType::f64 : DataType::f32, s.k, F);
  if (want > 1 && per_split > 0) {
    want = static_cast<int64_t>(std::min<size_t>(budget / per_split, static_cast<size_t>(want)));
    while (want > 1 &&
           solvers::align_up(solvers::mul_sat(per_split, static_cast<size_t>(want))) > budget) {
      --want;
    }
  }
  if (want > 1) {
    out.splits = want;
    out.bytes = solvers::align_up(solvers::mul_sat(per_split, static_cast<size_t>(want)));
  }
  return out;
}

}  // namespace depthwise

namespace {

class DepthwiseDirectSolver final : public Solver {
 public:
  const char* name() const override { return "depthwise_direct"; }
  bool needs_gemm() const override { return false; }

  bool is_applicable(const ConvShape& s, Direction d, const PlanContext& ctx) const override {
    if (!is_regular_pass(d) || ctx.caps == nullptr) return false;
    if (!solvers::has_work(s) || !depthwise::is_depthwise(s)) return false;
    return ctx.caps->kind == DeviceKind::cpu || configs::runs_gpu_kernels(*ctx.caps);
  }

  size_t workspace_bytes(const ConvShape& s, Direction d, const PlanContext& ctx) const override {
    if (d != Direction::backward_weight || ctx.caps == nullptr ||
        ctx.caps->kind != DeviceKind::gpu) {
      return 0;
    }
    return depthwise::weight_split(s, ctx.workspace_budget).bytes;
  }

  Status run(const ConvShape& s, Direction d, const ConvTensors& t,
             const ExecContext& ctx) const override {
    if (ctx.caps == nullptr) {
      return Status(StatusCode::invalid_argument, "depthwise_direct: ctx.caps is null");
    }
    if (!is_regular_pass(d) || !solvers::has_work(s) || !depthwise::is_depthwise(s)) {
      return Status(StatusCode::not_applicable, "depthwise_direct: not a depthwise problem");
    }
    if (ctx.caps->kind == DeviceKind::cpu) return depthwise::cpu::run(s, d, t);
#ifdef GEMMCONV_WITH_GPU
    const depthwise::WeightSplit split = d == Direction::backward_weight
                                             ? depthwise::weight_split(s, ctx.workspace_bytes)
                                             : depthwise::WeightSplit{};
    if (split.bytes > 0 && ctx.workspace == nullptr) {
      return Status(StatusCode::invalid_argument, "depthwise_direct: workspace is null");
    }
    return depthwise::gpu::run(s, d, t, ctx, split);
#else
    return Status(StatusCode::unsupported, "depthwise_direct: this build has no GPU support");
#endif
  }
};

}  // namespace

const Solver& depthwise_direct_solver() {
  return solvers::stateless_instance<DepthwiseDirectSolver>();
}

}  // namespace gemmconv
