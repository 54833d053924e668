// The implicit-GEMM solver (GPU): forward, and stride-1 backward_data, with no workspace.
#include "solvers/implicit_gemm/implicit_gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "configs/hardware.h"
#include "solvers/common.h"
#include "solvers/gemm_map.h"
#include "solvers/registration.h"

namespace gemmconv {
namespace implicit_gemm {
namespace {

constexpr int64_t kIntLimit = int64_t(1) << 30;  // headroom for int coordinates and r += step

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

bool supports(const ConvShape& s, Direction d) {
  if (s.dtype == DataType::f64 || !solvers::has_work(s)) return false;
  const bool fwd = d == Direction::forward;
  if (!fwd && d != Direction::backward_data) return false;
  for (int i = 0; i < kMaxSpatialDims; ++i) {
    if (!fwd && s.stride[i] != 1) return false;
    const int64_t reach = s.dilation[i] * s.filt[i] + s.pad[i];
    if (s.in[i] >= kIntLimit || s.out[i] * s.stride[i] >= kIntLimit || reach >= kIntLimit) {
      return false;
    }
  }
  const solvers::GemmMap g = solvers::gemm_map(s, d, solvers::GemmScheme::implicit, 0);
  return g.k < kIntLimit && ceil_div(g.m, 64) < kIntLimit && ceil_div(g.n, 64) <= 65535 &&
         g.batch <= 65535;
}

// Blocks run one after another on each SM; a tile's cost is its waves of blocks over its
// relative throughput on a full grid (configs::implicit_gemm_tile_costs).
Tile pick_tile(const ConvShape& s, Direction d, int multiprocessors, configs::ArchFamily family) {
  const solvers::GemmMap g = solvers::gemm_map(s, d, solvers::GemmScheme::implicit, 0);
  const int64_t sms = std::max(1, multiprocessors);
  const configs::ImplicitGemmTileCosts eff = configs::implicit_gemm_tile_costs(family);
  struct Option {
    Tile tile;
    int64_t bm, bn;
    double eff;
  };
  const Option options[] = {{Tile::t128x128, 128, 128, eff.t128x128},
                            {Tile::t128x64, 128, 64, eff.t128x64},
                            {Tile::t64x64, 64, 64, eff.t64x64}};
  Tile best = Tile::t64x64;
  double best_cost = 0.0;
  bool first = true;
  for (const Option& o : options) {
    const int64_t blocks = ceil_div(g.m, o.bm) * ceil_div(g.n, o.bn) * g.batch;
    const double cost =
        static_cast<double>(ceil_div(blocks, sms)) * static_cast<double>(o.bm * o.bn) / o.eff;
    if (first || cost < best_cost) {
      best = o.tile;
      best_cost = cost;
      first = false;
    }
  }
  return best;
}

}  // namespace implicit_gemm

namespace {

class ImplicitGemmSolver final : public Solver {
 public:
  const char* name() const override { return "implicit_gemm"; }

  bool is_applicable(const ConvShape& s, Direction d, const PlanContext& ctx) const override {
    if (ctx.caps == nullptr || !configs::runs_gpu_kernels(*ctx.caps)) return false;
    if (s.dtype != DataType::f32 && ctx.caps->matrix_units) return false;
    return implicit_gemm::supports(s, d);
  }

  size_t workspace_bytes(const ConvShape&, Direction, const PlanContext&) const override {
    return 0;
  }

  Status run(const ConvShape& s, Direction d, const ConvTensors& t,
             const ExecContext& ctx) const override {
#ifdef GEMMCONV_WITH_GPU
    if (ctx.caps == nullptr || ctx.caps->kind != DeviceKind::gpu) {
      return Status(StatusCode::invalid_argument, "implicit_gemm: runs on a GPU only");
    }
    if (!implicit_gemm::supports(s, d)) {
      return Status(StatusCode::not_applicable, "implicit_gemm: problem not supported");
    }
    return implicit_gemm::launch(ctx, s, d, t,
                                 implicit_gemm::pick_tile(s, d, ctx.caps->multiprocessors,
                                                          configs::arch_family(ctx.caps->arch)));
#else
    (void)s;
    (void)d;
    (void)t;
    (void)ctx;
    return Status(StatusCode::unsupported, "implicit_gemm: this build has no GPU support");
#endif
  }
};

}  // namespace

const Solver& implicit_gemm_solver() { return solvers::stateless_instance<ImplicitGemmSolver>(); }

}  // namespace gemmconv
