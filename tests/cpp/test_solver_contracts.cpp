// Contract tests of the solvers and registry: applicability, workspace under budget, chunk sizing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "gemmconv/engine.h"
#include "gemmconv/solver.h"
#include "solvers/common.h"
#include "solvers/gemm_map.h"
#include "solvers/solvers.h"

namespace gemmconv {
namespace {

const Direction kPasses[] = {Direction::forward, Direction::backward_data,
                             Direction::backward_weight};

struct ShapeArgs {
  int64_t n = 1, c = 1, k = 1, g = 1;
  Dims in{1, 1, 1};
  Dims filt{1, 1, 1};
  Dims stride{1, 1, 1};
  Dims dilation{1, 1, 1};
  Dims pad{0, 0, 0};
  Layout layout = Layout::contiguous;
  DataType dtype = DataType::f32;
};

// A canonical shape built by hand, with symmetric padding and PyTorch's output-size rule.
ConvShape make_shape(const ShapeArgs& a) {
  ConvShape s;
  s.n = a.n;
  s.c = a.c;
  s.k = a.k;
  s.g = a.g;
  s.in = a.in;
  s.filt = a.filt;
  s.stride = a.stride;
  s.dilation = a.dilation;
  s.pad = a.pad;
  for (int i = 0; i < kMaxSpatialDims; ++i) {
    s.out[i] = (a.in[i] + 2 * a.pad[i] - a.dilation[i] * (a.filt[i] - 1) - 1) / a.stride[i] + 1;
  }
  s.layout = a.layout;
  s.dtype = a.dtype;
  return s;
}

std::string describe(const ConvShape& s, Direction d, size_t budget) {
  std::string r = std::string(to_string(d)) + " " + to_string(s.layout) + " " + to_string(s.dtype) +
                  " n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) +
                  " k=" + std::to_string(s.k) + " g=" + std::to_string(s.g) + " in=";
  for (int i = 0; i < kMaxSpatialDims; ++i) r += std::to_string(s.in[i]) + ",";
  r += " filt=";
  for (int i = 0; i < kMaxSpatialDims; ++i) r += std::to_string(s.filt[i]) + ",";
  r += " stride=";
  for (int i = 0; i < kMaxSpatialDims; ++i) r += std::to_string(s.stride[i]) + ",";
  r += " pad=";
  for (int i = 0; i < kMaxSpatialDims; ++i) r += std::to_string(s.pad[i]) + ",";
  return r + " budget=" + std::to_string(budget);
}

// A grid of small shapes covering 1-D/2-D/3-D, groups, strides, padding, dilation, layouts and
// element types.
std::vector<ConvShape> shape_grid() {
  std::vector<ShapeArgs> base;
  {
    ShapeArgs a;  // 2-D 3x3, padded
    a.n = 3;
    a.c = 4;
    a.k = 6;
    a.in = {1, 7, 6};
    a.filt = {1, 3, 3};
    a.pad = {0, 1, 1};
    base.push_back(a);
    a.g = 2;  // grouped
    base.push_back(a);
    a.g = 4;
    a.c = 4;
    a.k = 8;  // depthwise with multiplier 2
    base.push_back(a);
  }
  {
    ShapeArgs a;  // 1x1, stride 1
    a.n = 4;
    a.c = 6;
    a.k = 4;
    a.in = {1, 5, 5};
    base.push_back(a);
    a.g = 2;
    base.push_back(a);
    a.stride = {1, 2, 2};  // strided 1x1
    base.push_back(a);
    a.g = 1;
    base.push_back(a);
    a.n = 1;
    base.push_back(a);
    a.dilation = {1, 3, 3};  // irrelevant for 1x1
    a.stride = {1, 1, 1};
    base.push_back(a);
  }
  {
    ShapeArgs a;  // 3-D, strided and dilated
    a.n = 2;
    a.c = 3;
    a.k = 4;
    a.in = {5, 6, 7};
    a.filt = {2, 3, 2};
    a.stride = {2, 1, 2};
    a.dilation = {1, 2, 1};
    a.pad = {1, 0, 1};
    base.push_back(a);
  }
  {
    ShapeArgs a;  // 1-D, single sample, grouped
    a.n = 1;
    a.c = 6;
    a.k = 9;
    a.g = 3;
    a.in = {1, 1, 17};
    a.filt = {1, 1, 5};
    a.stride = {1, 1, 3};
    base.push_back(a);
  }
  std::vector<ConvShape> out;
  for (const ShapeArgs& b : base) {
    for (Layout l : {Layout::contiguous, Layout::channels_last}) {
      for (DataType t : {DataType::f32, DataType::f16, DataType::bf16, DataType::f64}) {
        ShapeArgs a = b;
        a.layout = l;
        a.dtype = t;
        out.push_back(make_shape(a));
      }
    }
  }
  return out;
}

std::vector<size_t> budget_grid() {
  std::vector<size_t> b = {0, 1, 100, 255, 256, 257, 1000};
  for (size_t v = 1024; v <= (size_t(1) << 34); v *= 2) {
    b.push_back(v - 1);
    b.push_back(v);
    b.push_back(v + v / 3);
  }
  b.push_back(SIZE_MAX);
  std::sort(b.begin(), b.end());
  return b;
}

PlanContext plan_ctx(const Capabilities& caps, size_t budget) {
  PlanContext p;
  p.caps = &caps;
  p.workspace_budget = budget;
  return p;
}

using ChunkFn = solvers::ChunkPlan (*)(const ConvShape&, Direction, size_t);

struct GemmSolverCase {
  const Solver* solver;
  ChunkFn chunk_plan;
};

std::vector<GemmSolverCase> gemm_solvers() {
  return {{&gemm_1x1_solver(), &gemm_1x1_chunk_plan},
          {&im2col_gemm_solver(), &im2col_gemm_chunk_plan},
          {&winograd_gemm_solver(), &winograd_gemm_chunk_plan}};
}

size_t bytes_per(DataType t) { return element_size(t); }

TEST(Registry, OrderAndNames) {
  const auto& r = solver_registry();
  ASSERT_EQ(r.size(), 6u);
  EXPECT_STREQ(r[0]->name(), "gemm_1x1");
  EXPECT_STREQ(r[1]->name(), "depthwise_direct");
  EXPECT_STREQ(r[2]->name(), "winograd_gemm");
  EXPECT_STREQ(r[3]->name(), "im2col_gemm");
  EXPECT_STREQ(r[4]->name(), "implicit_gemm");
  EXPECT_STREQ(r[5]->name(), "reference");
  for (const Solver* s : r) EXPECT_EQ(find_solver(s->name()), s);
  EXPECT_EQ(find_solver("no_such_solver"), nullptr);
  EXPECT_EQ(find_solver(""), nullptr);
  EXPECT_EQ(find_solver("Reference"), nullptr);
}

TEST(Reference, AlwaysApplicableWithoutWorkspace) {
  const Capabilities caps = cpu_capabilities();
  const Solver& ref = reference_solver();
  for (const ConvShape& s : shape_grid()) {
    for (Direction d : kPasses) {
      for (size_t b : {size_t(0), size_t(1), size_t(1) << 20}) {
        EXPECT_TRUE(ref.is_applicable(s, d, plan_ctx(caps, b))) << describe(s, d, b);
        EXPECT_EQ(ref.workspace_bytes(s, d, plan_ctx(caps, b)), 0u) << describe(s, d, b);
      }
    }
  }
}

TEST(Contracts, WorkspaceWithinBudgetAndMonotone) {
  const Capabilities caps = cpu_capabilities();
  const std::vector<size_t> budgets = budget_grid();
  for (const GemmSolverCase& sc : gemm_solvers()) {
    for (const ConvShape& s : shape_grid()) {
      for (Direction d : kPasses) {
        bool was_applicable = false;
        int64_t last_chunk = 0;
        for (size_t b : budgets) {
          const PlanContext pc = plan_ctx(caps, b);
          const bool app = sc.solver->is_applicable(s, d, pc);
          const solvers::ChunkPlan cp = sc.chunk_plan(s, d, b);
          SCOPED_TRACE(std::string(sc.solver->name()) + " " + describe(s, d, b));
          EXPECT_EQ(app, cp.chunk > 0);
          // More budget never takes applicability away, nor shrinks the chunk.
          if (was_applicable) {
            EXPECT_TRUE(app);
          }
          EXPECT_GE(cp.chunk, last_chunk);
          EXPECT_LE(cp.chunk, s.n * s.out_pixels());
          was_applicable = was_applicable || app;
          last_chunk = cp.chunk;
          if (!app) continue;
          const size_t ws = sc.solver->workspace_bytes(s, d, pc);
          EXPECT_LE(ws, b);
          EXPECT_EQ(ws, cp.bytes);
          // Running with exactly what was asked for reproduces the plan.
          const solvers::ChunkPlan again = sc.chunk_plan(s, d, ws);
          EXPECT_EQ(again.chunk, cp.chunk);
          EXPECT_EQ(again.bytes, cp.bytes);
          EXPECT_EQ(again.accumulator, cp.accumulator);
          EXPECT_TRUE(sc.solver->is_applicable(s, d, plan_ctx(caps, ws)));
          // The fp32 accumulator exists only for a reduced-precision weight gradient in chunks.
          if (cp.accumulator) {
            EXPECT_EQ(d, Direction::backward_weight);
            EXPECT_TRUE(s.dtype == DataType::f16 || s.dtype == DataType::bf16);
          }
        }
        // A large budget always fits the small shapes of the grid, for the universal solver.
        if (sc.solver == &im2col_gemm_solver()) {
          EXPECT_TRUE(was_applicable) << describe(s, d, 0);
        }
      }
    }
  }
}

TEST(Contracts, NoSolverTakesTheBiasPass) {
  const Capabilities caps = cpu_capabilities();
  for (const Solver* solver : solver_registry()) {
    for (const ConvShape& s : shape_grid()) {
      EXPECT_FALSE(solver->is_applicable(s, Direction::backward_bias, plan_ctx(caps, SIZE_MAX)))
          << solver->name();
    }
  }
}

// Bytes of im2col_gemm's column buffer for nb samples, from the ops.h layout.
size_t col_bytes(const ConvShape& s, int64_t nb) {
  return size_t(nb) * size_t(s.c) * size_t(s.filt_pixels()) * size_t(s.out_pixels()) *
         bytes_per(s.dtype);
}

// Bytes of the per-sample weight-gradient partials [nb][k][c*F] when the weight gradient is
// sample-major, else 0.
size_t partial_bytes(const ConvShape& s, Direction d, int64_t nb) {
  if (d != Direction::backward_weight ||
      solvers::explicit_scheme(s, d) != solvers::GemmScheme::sample_major) {
    return 0;
  }
  return size_t(nb) * size_t(s.k) * size_t(s.c) * size_t(s.filt_pixels()) * bytes_per(s.dtype);
}

// The least workspace for one sample at a time: its columns, its weight-gradient partial when
// the scheme writes them, plus the fp32 accumulator when a reduced-precision weight gradient
// spans several chunks.
size_t one_sample_need(const ConvShape& s, Direction d) {
  const bool wide = d == Direction::backward_weight && s.n > 1 &&
                    (s.dtype == DataType::f16 || s.dtype == DataType::bf16);
  size_t need = col_bytes(s, 1);
  if (partial_bytes(s, d, 1) > 0) need = solvers::align_up(need) + partial_bytes(s, d, 1);
  if (!wide) return need;
  return solvers::align_up(need) + size_t(s.w_elements()) * sizeof(float);
}

TEST(Im2colGemm, NeedsOneSampleOfColumns) {
  const Capabilities caps = cpu_capabilities();
  const Solver& solver = im2col_gemm_solver();
  for (const ConvShape& s : shape_grid()) {
    for (Direction d : kPasses) {
      const size_t one = one_sample_need(s, d);
      SCOPED_TRACE(describe(s, d, one));
      EXPECT_FALSE(solver.is_applicable(s, d, plan_ctx(caps, one - 1)));
      EXPECT_TRUE(solver.is_applicable(s, d, plan_ctx(caps, one)));
      EXPECT_LE(solver.workspace_bytes(s, d, plan_ctx(caps, one)), one);
      // With the accumulator, the alignment slack after the columns may fit a second sample.
      const int64_t chunk = im2col_gemm_chunk_plan(s, d, one).chunk;
      EXPECT_GE(chunk, 1);
      if (one == col_bytes(s, 1)) {
        EXPECT_EQ(chunk, 1);
      }
    }
  }
}

TEST(Im2colGemm, LargeBudgetTakesWholeBatch) {
  const Capabilities caps = cpu_capabilities();
  const Solver& solver = im2col_gemm_solver();
  for (const ConvShape& s : shape_grid()) {
    for (Direction d : kPasses) {
      const size_t budget = size_t(1) << 30;
      SCOPED_TRACE(describe(s, d, budget));
      const solvers::ChunkPlan cp = im2col_gemm_chunk_plan(s, d, budget);
      EXPECT_EQ(cp.chunk, s.n);
      EXPECT_FALSE(cp.accumulator);
      const size_t ws = solver.workspace_bytes(s, d, plan_ctx(caps, budget));
      // Only a contiguous multi-sample group-major pass adds the permuted output chunk, and only
      // a sample-major weight gradient its per-sample partials.
      const bool group_major =
          solvers::explicit_scheme(s, d) == solvers::GemmScheme::group_major && s.n > 1;
      const size_t cols = col_bytes(s, s.n);
      if (group_major) {
        EXPECT_EQ(ws, solvers::align_up(cols) +
                          size_t(s.n) * size_t(s.k) * size_t(s.out_pixels()) * bytes_per(s.dtype));
      } else if (partial_bytes(s, d, s.n) > 0) {
        EXPECT_EQ(ws, solvers::align_up(cols) + partial_bytes(s, d, s.n));
      } else {
        EXPECT_EQ(ws, cols);
      }
    }
  }
}

TEST(Im2colGemm, HalfWeightGradientAccumulatesInFloatAcrossChunks) {
  ShapeArgs a;
  a.n = 5;
  a.c = 4;
  a.k = 6;
  a.in = {1, 8, 8};
  a.filt = {1, 3, 3};
  a.pad = {0, 1, 1};
  for (Layout l : {Layout::contiguous, Layout::channels_last}) {
    for (DataType t : {DataType::f16, DataType::bf16, DataType::f32}) {
      a.layout = l;
      a.dtype = t;
      const ConvShape s = make_shape(a);
      // Room for about four samples of columns (and their partials), not for all five.
      const size_t budget = 2 * col_bytes(s, 2) + 4 * 1024;
      const solvers::ChunkPlan cp = im2col_gemm_chunk_plan(s, Direction::backward_weight, budget);
      SCOPED_TRACE(describe(s, Direction::backward_weight, budget));
      ASSERT_GE(cp.chunk, 1);
      EXPECT_LT(cp.chunk, s.n);
      EXPECT_EQ(cp.accumulator, t != DataType::f32);
      if (cp.accumulator) {
        EXPECT_GE(cp.bytes, col_bytes(s, cp.chunk) + size_t(s.w_elements()) * sizeof(float));
      }
    }
  }
}

TEST(Im2colGemm, ChunksKeepGemmsWithinIndexLimit) {
  // One sample's columns hold 576 * 2^20 elements: a chunk of four would pass 2^31 in one matrix
  // when samples share a matrix (channels-last rows, group-major columns), not when samples are
  // the batch (contiguous g == 1, the weight gradient sample-major here: P is large).
  ShapeArgs a;
  a.n = 64;
  a.c = 64;
  a.k = 64;
  a.in = {1, 1024, 1024};
  a.filt = {1, 3, 3};
  a.pad = {0, 1, 1};
  for (Layout l : {Layout::contiguous, Layout::channels_last}) {
    for (Direction d : kPasses) {
      a.layout = l;
      const ConvShape s = make_shape(a);
      const solvers::ChunkPlan cp = im2col_gemm_chunk_plan(s, d, SIZE_MAX);
      SCOPED_TRACE(describe(s, d, SIZE_MAX));
      ASSERT_GE(cp.chunk, 1);
      const int64_t sample_cols = s.c * s.filt_pixels() * s.out_pixels();
      if (l == Layout::contiguous) {
        EXPECT_EQ(solvers::explicit_scheme(s, d), solvers::GemmScheme::sample_major);
        EXPECT_EQ(cp.chunk, s.n);
      } else {
        EXPECT_LT(cp.chunk, s.n);
        EXPECT_LE(cp.chunk * sample_cols, solvers::kGemmIndexLimit);
        EXPECT_GT((cp.chunk + 1) * sample_cols, solvers::kGemmIndexLimit);
      }
    }
  }
}

TEST(Gemm1x1, ApplicabilityRules) {
  const Capabilities caps = cpu_capabilities();
  const Solver& solver = gemm_1x1_solver();
  ShapeArgs a;
  a.n = 4;
  a.c = 8;
  a.k = 6;
  a.in = {1, 6, 5};
  const auto applicable = [&](const ShapeArgs& x, Direction d, size_t budget) {
    return solver.is_applicable(make_shape(x), d, plan_ctx(caps, budget));
  };
  const auto workspace = [&](const ShapeArgs& x, Direction d, size_t budget) {
    return solver.workspace_bytes(make_shape(x), d, plan_ctx(caps, budget));
  };
  for (DataType t : {DataType::f32, DataType::f16}) {
    a.dtype = t;
    for (int64_t g : {1, 2}) {
      for (int64_t n : {1, 4}) {
        a.g = g;
        a.n = n;
        // Channels-last: always one GEMM over groups, no workspace, for every pass.
        a.layout = Layout::channels_last;
        for (Direction d : kPasses) {
          EXPECT_TRUE(applicable(a, d, 0)) << describe(make_shape(a), d, 0);
          EXPECT_EQ(workspace(a, d, 1 << 20), 0u);
        }
        // Contiguous: batched over samples (g == 1) or over the groups of one sample.
        a.layout = Layout::contiguous;
        const bool fwd_ok = g == 1 || n == 1;
        EXPECT_EQ(applicable(a, Direction::forward, 0), fwd_ok) << g << " " << n;
        EXPECT_EQ(applicable(a, Direction::backward_data, 0), fwd_ok) << g << " " << n;
        // The weight gradient of several samples writes per-sample partials [n][k][c] (this
        // shape moves less that way), which need workspace; with groups it is not applicable.
        EXPECT_EQ(applicable(a, Direction::backward_weight, 0), n == 1) << g << " " << n;
        EXPECT_EQ(applicable(a, Direction::backward_weight, 1 << 20), n == 1 || g == 1)
            << g << " " << n;
        for (Direction d : kPasses) {
          if (applicable(a, d, 0)) {
            EXPECT_EQ(workspace(a, d, 1 << 20), 0u);
          }
        }
        if (g == 1 && n > 1) {
          EXPECT_EQ(workspace(a, Direction::backward_weight, 1 << 20),
                    size_t(n * a.k * a.c) * bytes_per(t));
        }
      }
    }
  }
  a.dtype = DataType::f32;
  a.g = 1;
  a.n = 4;
  // Dilation does not matter for a 1x1 filter.
  a.dilation = {1, 2, 3};
  EXPECT_TRUE(applicable(a, Direction::forward, 0));
  a.dilation = {1, 1, 1};
  // Anything but a 1x1 filter without padding is not its business.
  ShapeArgs b = a;
  b.filt = {1, 3, 1};
  for (Direction d : kPasses) EXPECT_FALSE(applicable(b, d, SIZE_MAX));
  b = a;
  b.pad = {0, 1, 0};
  for (Direction d : kPasses) EXPECT_FALSE(applicable(b, d, SIZE_MAX));
  // Strided: the gathered columns need workspace, for one sample at least.
  b = a;
  b.stride = {1, 2, 2};
  const ConvShape sb = make_shape(b);
  const size_t sample = size_t(sb.c) * size_t(sb.out_pixels()) * sizeof(float);
  for (Layout l : {Layout::contiguous, Layout::channels_last}) {
    b.layout = l;
    for (Direction d : {Direction::forward, Direction::backward_data}) {
      EXPECT_FALSE(applicable(b, d, sample - 1));
      EXPECT_TRUE(applicable(b, d, sample));
      EXPECT_EQ(gemm_1x1_chunk_plan(make_shape(b), d, sample).chunk, 1);
      EXPECT_EQ(workspace(b, d, SIZE_MAX), size_t(b.n) * sample);
    }
  }
  b.layout = Layout::channels_last;
  EXPECT_TRUE(applicable(b, Direction::backward_weight, b.n * sample));
  // Contiguous: per-sample partials where k*c < k*P (48 < 54 here), after the gathered columns.
  b.layout = Layout::contiguous;
  const size_t partials = size_t(b.n * b.k * b.c) * sizeof(float);
  EXPECT_TRUE(applicable(b, Direction::backward_weight, SIZE_MAX));
  EXPECT_EQ(workspace(b, Direction::backward_weight, SIZE_MAX),
            solvers::align_up(size_t(b.n) * sample) + partials);
  // Stride 3 leaves P = 4: the partials would outweigh the pixels, left to im2col_gemm.
  b.stride = {1, 3, 3};
  EXPECT_FALSE(applicable(b, Direction::backward_weight, SIZE_MAX));
}

TEST(Gemm1x1, UnreadTrailingPixelsNeedTheGather) {
  // A stride-1 1x1 shape whose input has one more column than the output reads (the regular
  // form of a transposed conv with output padding): x is not the column matrix.
  const Capabilities caps = cpu_capabilities();
  ShapeArgs a;
  a.n = 2;
  a.c = 4;
  a.k = 4;
  a.in = {1, 5, 5};
  ConvShape s = make_shape(a);
  s.in[2] = 6;
  s.layout = Layout::channels_last;
  const Solver& solver = gemm_1x1_solver();
  EXPECT_FALSE(solver.is_applicable(s, Direction::backward_data, plan_ctx(caps, 0)));
  EXPECT_TRUE(solver.is_applicable(s, Direction::backward_data, plan_ctx(caps, SIZE_MAX)));
  EXPECT_EQ(solver.workspace_bytes(s, Direction::backward_data, plan_ctx(caps, SIZE_MAX)),
            size_t(s.n) * size_t(s.c) * size_t(s.out_pixels()) * sizeof(float));
}

TEST(Gemm1x1, HugeRowCountIsChunkedUnderTheIndexLimit) {
  // n * P = 2^32 rows: the channels-last GEMM must be split, and a half-precision weight
  // gradient then needs its fp32 accumulator.
  ShapeArgs a;
  a.n = 4096;
  a.c = 2;
  a.k = 3;
  a.in = {1, 1024, 1024};
  a.layout = Layout::channels_last;
  for (DataType t : {DataType::f32, DataType::f16}) {
    a.dtype = t;
    const ConvShape s = make_shape(a);
    for (Direction d : kPasses) {
      SCOPED_TRACE(describe(s, d, 0));
      const bool needs_acc = d == Direction::backward_weight && t == DataType::f16;
      const solvers::ChunkPlan zero = gemm_1x1_chunk_plan(s, d, 0);
      EXPECT_EQ(zero.chunk > 0, !needs_acc);
      const solvers::ChunkPlan big = gemm_1x1_chunk_plan(s, d, 1 << 20);
      ASSERT_GT(big.chunk, 0);
      EXPECT_LT(big.chunk, s.n * s.out_pixels());
      EXPECT_LE(big.chunk * std::max(s.c, s.k), solvers::kGemmIndexLimit);
      EXPECT_EQ(big.accumulator, needs_acc);
      EXPECT_EQ(big.bytes, needs_acc ? size_t(s.w_elements()) * sizeof(float) : 0u);
    }
  }
}

TEST(Common, LargestFittingFindsTheBoundary) {
  for (int64_t hi :
       {int64_t(0), int64_t(1), int64_t(2), int64_t(7), int64_t(1000), int64_t(1) << 40}) {
    for (int64_t limit : {0, 1, 3, 500, 999, 1000, 5000}) {
      const int64_t got = solvers::largest_fitting(hi, [&](int64_t v) { return v <= limit; });
      EXPECT_EQ(got, std::min(hi, limit) < 1 ? 0 : std::min(hi, limit)) << hi << " " << limit;
    }
  }
}

TEST(Common, WorkspaceLayoutAligns) {
  solvers::WorkspaceLayout l;
  EXPECT_EQ(l.add(10), 0u);
  EXPECT_EQ(l.add(1), 256u);
  EXPECT_EQ(l.add(256), 512u);
  EXPECT_EQ(l.add(0), 768u);
  EXPECT_EQ(l.add(5), 768u);
  EXPECT_EQ(l.total(), 773u);
  EXPECT_EQ(solvers::align_up(0), 0u);
  EXPECT_EQ(solvers::align_up(1), solvers::kWorkspaceAlignment);
  EXPECT_EQ(solvers::align_up(SIZE_MAX), SIZE_MAX);
}

TEST(Common, GemmFitsChecksExtents) {
  const int64_t lim = solvers::kGemmIndexLimit;
  GemmDesc d = solvers::make_gemm(DataType::f32, 4, 5, 6, {nullptr, 6, 0}, false, {nullptr, 5, 0},
                                  false, nullptr, 5, 0, 1, 0.0);
  EXPECT_TRUE(solvers::gemm_fits(d));
  d.lda = 5;  // shorter than A's rows
  EXPECT_FALSE(solvers::gemm_fits(d));
  d.lda = 6;
  d.m = lim / 6 + 2;  // A's span passes the limit although m and lda do not
  EXPECT_FALSE(solvers::gemm_fits(d));
  d.m = 4;
  d.trans_b = true;  // B stored n x k now needs ldb >= k
  EXPECT_FALSE(solvers::gemm_fits(d));
  d.ldb = 6;
  EXPECT_TRUE(solvers::gemm_fits(d));
  d.batch = lim + 1;
  EXPECT_FALSE(solvers::gemm_fits(d));
}

}  // namespace
}  // namespace gemmconv
