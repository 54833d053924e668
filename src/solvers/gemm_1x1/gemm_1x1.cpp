// The 1x1 solver: pointwise conv as one strided-batched GEMM per pass, strided inputs gathered.
#include <algorithm>

#include "kernels/ops.h"
#include "solvers/common.h"
#include "solvers/gemm_map.h"
#include "solvers/registration.h"
#include "solvers/solvers.h"

namespace gemmconv {
namespace {

using solvers::ChunkPlan;
using solvers::GemmScheme;
using solvers::WorkspaceLayout;

// Output pixel o reads input pixel o: x itself is the column matrix.
bool reads_x_directly(const ConvShape& s) {
  for (int i = 0; i < kMaxSpatialDims; ++i) {
    if (s.stride[i] != 1 || s.in[i] != s.out[i]) return false;
  }
  return true;
}

// The contiguous-layout scheme (see solvers::explicit_scheme); x is the column matrix unless
// gathered.
GemmScheme contiguous_scheme(const ConvShape& s, Direction d) {
  return solvers::explicit_scheme(s, d, reads_x_directly(s));
}

// Contiguous activations keep each sample's channels apart, so one strided batch covers either
// the samples (one weight for all) or the groups of a single sample, never both. The weight
// gradient of several samples batches over them into per-sample partials where that moves less
// than gathering the batch (solvers::sample_major_weight_gradient), and is left to im2col_gemm
// otherwise.
bool contiguous_supported(const ConvShape& s, Direction d) {
  if (d == Direction::backward_weight) {
    return s.n == 1 || contiguous_scheme(s, d) == GemmScheme::sample_major;
  }
  return s.g == 1 || s.n == 1;
}

bool writes_partials(const ConvShape& s, Direction d) {
  return s.layout == Layout::contiguous && d == Direction::backward_weight &&
         contiguous_scheme(s, d) == GemmScheme::sample_major;
}

// The GEMM over `units` units (pixel rows in channels-last without gathering, samples
// otherwise): channels-last batches over groups; contiguous batches over the samples when g == 1
// and otherwise over the groups of one sample (the group-major map of one sample's pixels).
solvers::GemmMap unit_map(const ConvShape& s, Direction d, bool gather, int64_t units) {
  const int64_t P = s.out_pixels();
  if (s.layout == Layout::channels_last) {
    return solvers::gemm_map(s, d, GemmScheme::channels_last, gather ? units * P : units);
  }
  return solvers::gemm_map(s, d, contiguous_scheme(s, d), units * P);
}

struct Carve {
  size_t col = 0;       // gathered columns, when gathering
  size_t partials = 0;  // per-sample weight gradients [units][k][c], when written
  size_t acc = 0;       // fp32 weight-gradient accumulator, when used
  size_t total = 0;
};

// Units are rows of n*P for the channels-last path without gathering, samples otherwise.
Carve carve(const ConvShape& s, bool gather, bool partials, int64_t units, bool acc) {
  WorkspaceLayout l;
  Carve out;
  if (gather) out.col = l.add(solvers::bytes_of(s.dtype, units, s.c, s.out_pixels()));
  if (partials) out.partials = l.add(solvers::bytes_of(s.dtype, units, s.k, s.c));
  if (acc) {
    out.acc = l.add(solvers::mul_sat(static_cast<size_t>(s.w_elements()),
                                     solvers::accumulator_element_size(s.dtype)));
  }
  out.total = l.total();
  return out;
}

struct Plan1x1 {
  ChunkPlan chunks;
  bool gather = false;
  bool partials = false;
  int64_t units = 0;
};

Plan1x1 plan(const ConvShape& s, Direction d, size_t budget) {
  Plan1x1 p;
  if (!is_regular_pass(d) || !solvers::has_work(s) || !solvers::is_1x1(s)) return p;
  const bool cl = s.layout == Layout::channels_last;
  if (!cl && !contiguous_supported(s, d)) return p;
  p.gather = !reads_x_directly(s);
  p.partials = writes_partials(s, d);
  p.units = (cl && !p.gather) ? s.n * s.out_pixels() : s.n;
  const bool gather = p.gather, partials = p.partials;
  const auto bytes = [&s, gather, partials](int64_t u, bool acc) {
    return carve(s, gather, partials, u, acc).total;
  };
  const auto gemm_ok = [&s, d, gather](int64_t u) {
    const solvers::GemmMap map = unit_map(s, d, gather, u);
    return map.valid && solvers::gemm_fits(map.bind(s.dtype, ConvTensors{}));
  };
  const bool wide = d == Direction::backward_weight && solvers::needs_wide_accumulator(s.dtype);
  p.chunks = solvers::plan_chunks(p.units, budget, wide, bytes, gemm_ok);
  return p;
}

class Gemm1x1Solver final : public Solver {
 public:
  const char* name() const override { return "gemm_1x1"; }

  bool is_applicable(const ConvShape& s, Direction d, const PlanContext& ctx) const override {
    return plan(s, d, ctx.workspace_budget).chunks.chunk > 0;
  }

  size_t workspace_bytes(const ConvShape& s, Direction d, const PlanContext& ctx) const override {
    return plan(s, d, ctx.workspace_budget).chunks.bytes;
  }

  Status run(const ConvShape& s, Direction d, const ConvTensors& t,
             const ExecContext& ctx) const override {
    const Plan1x1 p = plan(s, d, ctx.workspace_bytes);
    if (p.chunks.chunk == 0) {
      return Status(StatusCode::workspace_too_small,
                    "gemm_1x1: not applicable to this problem "
                    "within the workspace handed in");
    }
    if (p.chunks.bytes > 0 && ctx.workspace == nullptr) {
      return Status(StatusCode::invalid_argument, "gemm_1x1: workspace is null");
    }
    const Carve cv = carve(s, p.gather, p.partials, p.chunks.chunk, p.chunks.accumulator);
    void* col = p.gather ? solvers::at_byte(ctx.workspace, cv.col) : nullptr;
    void* dw = p.partials ? solvers::at_byte(ctx.workspace, cv.partials) : t.w;
    void* acc = p.chunks.accumulator ? solvers::at_byte(ctx.workspace, cv.acc) : nullptr;
    const DataType dt = s.dtype;
    const int64_t P = s.out_pixels();
    const bool cl = s.layout == Layout::channels_last;
    const bool bwd_w = d == Direction::backward_weight;
    solvers::WeightGradAccumulator wsum(ctx, dt, t.w, s.w_elements(), acc);
    // Sample-major columns of this F = 1 shape; the tap stride is never used.
    const ops::ColStrides cs{s.c * P, P, P};

    int64_t index = 0;
    for (int64_t u0 = 0; u0 < p.units; u0 += p.chunks.chunk, ++index) {
      const int64_t nu = std::min(p.chunks.chunk, p.units - u0);
      // Channels-last rows and contiguous samples start at the same element offsets in y.
      const int64_t y_off = cl ? (p.gather ? u0 * P : u0) * s.k : u0 * s.k * P;
      const void* Y = solvers::at(t.y, dt, y_off);
      const void* X = col;
      if (!p.gather) X = solvers::at(t.x, dt, cl ? u0 * s.c : u0 * s.c * P);
      if (p.gather && d != Direction::backward_data) {
        Status st = ops::im2col(ctx, s, t.x, col, u0, nu, cs);
        if (!st.ok()) return st;
      }
      const ConvTensors sides{const_cast<void*>(X), dw, const_cast<void*>(Y)};
      const double beta = bwd_w && !p.partials ? wsum.beta(index) : 0.0;
      Status st = solvers::run_gemm(ctx, unit_map(s, d, p.gather, nu).bind(dt, sides, beta));
      if (!st.ok()) return st;
      if (bwd_w) {
        st = p.partials ? wsum.add_partials(index, dw, nu) : wsum.after_chunk(index);
        if (!st.ok()) return st;
      }
      if (p.gather && d == Direction::backward_data) {
        st = ops::col2im(ctx, s, col, t.x, u0, nu, cs);
        if (!st.ok()) return st;
      }
    }
    return bwd_w ? wsum.finish() : Status::success();
  }
};

}  // namespace

solvers::ChunkPlan gemm_1x1_chunk_plan(const ConvShape& s, Direction d, size_t budget) {
  return plan(s, d, budget).chunks;
}

const Solver& gemm_1x1_solver() { return solvers::stateless_instance<Gemm1x1Solver>(); }

}  // namespace gemmconv
