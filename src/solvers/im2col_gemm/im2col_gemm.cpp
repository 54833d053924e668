// The universal solver: im2col per chunk of samples, one GEMM batched over all groups per chunk.
#include <algorithm>

#include "kernels/ops.h"
#include "solvers/common.h"
#include "solvers/gemm_map.h"
#include "solvers/registration.h"
#include "solvers/solvers.h"

namespace gemmconv {
namespace {

using solvers::ChunkPlan;
using solvers::WorkspaceLayout;

using solvers::GemmScheme;

ops::ColStrides col_strides(const ConvShape& s, GemmScheme sc, int64_t nb) {
  const int64_t F = s.filt_pixels(), P = s.out_pixels();
  if (sc == GemmScheme::group_major) return ops::ColStrides{P, F * nb * P, nb * P};
  return ops::ColStrides{s.c * F * P, F * P, P};
}

// The GEMM of one chunk of nb samples.
solvers::GemmMap chunk_map(const ConvShape& s, Direction d, GemmScheme sc, int64_t nb) {
  return solvers::gemm_map(s, d, sc, nb * s.out_pixels());
}

// A sample-major weight gradient writes per-sample partials [nb][k][c*F] and sums them.
bool writes_partials(GemmScheme sc, Direction d) {
  return sc == GemmScheme::sample_major && d == Direction::backward_weight;
}

struct Carve {
  size_t col = 0;
  size_t scratch = 0;   // permuted y chunk (group-major with nb > 1)
  size_t partials = 0;  // per-sample weight gradients (sample-major backward_weight)
  size_t acc = 0;       // fp32 weight-gradient accumulator
  size_t total = 0;
};

Carve carve(const ConvShape& s, Direction d, GemmScheme sc, int64_t nb, bool acc) {
  WorkspaceLayout l;
  Carve out;
  const int64_t P = s.out_pixels(), cF = s.c * s.filt_pixels();
  out.col = l.add(solvers::bytes_of(s.dtype, nb, cF, P));
  if (sc == GemmScheme::group_major && nb > 1)
    out.scratch = l.add(solvers::bytes_of(s.dtype, nb, s.k, P));
  if (writes_partials(sc, d)) out.partials = l.add(solvers::bytes_of(s.dtype, nb, s.k, cF));
  if (acc) {
    out.acc = l.add(solvers::mul_sat(static_cast<size_t>(s.w_elements()),
                                     solvers::accumulator_element_size(s.dtype)));
  }
  out.total = l.total();
  return out;
}

ChunkPlan plan(const ConvShape& s, Direction d, size_t budget) {
  if (!is_regular_pass(d) || !solvers::has_work(s)) return ChunkPlan{};
  const GemmScheme sc = solvers::explicit_scheme(s, d);
  const auto bytes = [&s, d, sc](int64_t nb, bool acc) { return carve(s, d, sc, nb, acc).total; };
  const auto gemm_ok = [&s, d, sc](int64_t nb) {
    const solvers::GemmMap map = chunk_map(s, d, sc, nb);
    return map.valid && solvers::gemm_fits(map.bind(s.dtype, ConvTensors{}));
  };
  const bool wide = d == Direction::backward_weight && solvers::needs_wide_accumulator(s.dtype);
  return solvers::plan_chunks(s.n, budget, wide, bytes, gemm_ok);
}

class Im2colGemmSolver final : public Solver {
 public:
  const char* name() const override { return "im2col_gemm"; }

  bool is_applicable(const ConvShape& s, Direction d, const PlanContext& ctx) const override {
    return plan(s, d, ctx.workspace_budget).chunk > 0;
  }

  size_t workspace_bytes(const ConvShape& s, Direction d, const PlanContext& ctx) const override {
    return plan(s, d, ctx.workspace_budget).bytes;
  }

  Status run(const ConvShape& s, Direction d, const ConvTensors& t,
             const ExecContext& ctx) const override {
    const ChunkPlan p = plan(s, d, ctx.workspace_bytes);
    if (p.chunk == 0) {
      return Status(StatusCode::workspace_too_small,
                    "im2col_gemm: not applicable to this problem within the workspace handed in");
    }
    if (ctx.workspace == nullptr) {
      return Status(StatusCode::invalid_argument, "im2col_gemm: workspace is null");
    }
    const GemmScheme sc = solvers::explicit_scheme(s, d);
    const Carve cv = carve(s, d, sc, p.chunk, p.accumulator);
    void* col = solvers::at_byte(ctx.workspace, cv.col);
    void* scratch = (sc == GemmScheme::group_major && p.chunk > 1)
                        ? solvers::at_byte(ctx.workspace, cv.scratch)
                        : nullptr;
    const bool partials = writes_partials(sc, d);
    void* dw = partials ? solvers::at_byte(ctx.workspace, cv.partials) : t.w;
    void* acc = p.accumulator ? solvers::at_byte(ctx.workspace, cv.acc) : nullptr;
    const DataType dt = s.dtype;
    const int64_t P = s.out_pixels();
    const bool bwd_w = d == Direction::backward_weight;
    solvers::WeightGradAccumulator wsum(ctx, dt, t.w, s.w_elements(), acc);

    int64_t index = 0;
    for (int64_t n0 = 0; n0 < s.n; n0 += p.chunk, ++index) {
      const int64_t nb = std::min(p.chunk, s.n - n0);
      const ops::ColStrides cs = col_strides(s, sc, nb);
      void* y_chunk = solvers::at(t.y, dt, n0 * s.k * P);  // same offset in either layout
      // The group-major scheme works on y permuted to [k][nb][P]; one sample needs no permute.
      const bool permuted = sc == GemmScheme::group_major && nb > 1;
      void* Y = permuted ? scratch : y_chunk;
      Status st;
      if (d != Direction::backward_data) {
        st = ops::im2col(ctx, s, t.x, col, n0, nb, cs);
        if (!st.ok()) return st;
      }
      if (permuted && d != Direction::forward) {
        st = ops::permute_021(ctx, dt, y_chunk, scratch, nb, s.k, P);
        if (!st.ok()) return st;
      }
      const ConvTensors sides{col, dw, Y};
      const double beta = bwd_w && !partials ? wsum.beta(index) : 0.0;
      st = solvers::run_gemm(ctx, chunk_map(s, d, sc, nb).bind(dt, sides, beta));
      if (!st.ok()) return st;
      if (permuted && d == Direction::forward) {
        st = ops::permute_021(ctx, dt, scratch, y_chunk, s.k, nb, P);
        if (!st.ok()) return st;
      }
      if (d == Direction::backward_data) {
        st = ops::col2im(ctx, s, col, t.x, n0, nb, cs);
        if (!st.ok()) return st;
      }
      if (bwd_w) {
        st = partials ? wsum.add_partials(index, dw, nb) : wsum.after_chunk(index);
        if (!st.ok()) return st;
      }
    }
    return bwd_w ? wsum.finish() : Status::success();
  }
};

}  // namespace

solvers::ChunkPlan im2col_gemm_chunk_plan(const ConvShape& s, Direction d, size_t budget) {
  return plan(s, d, budget);
}

const Solver& im2col_gemm_solver() { return solvers::stateless_instance<Im2colGemmSolver>(); }

}  // namespace gemmconv
