// Host helpers of the GEMM solvers: size arithmetic, chunking, workspace carving, GEMM descriptors.
#include "solvers/common.h"

#include <limits>

#include "kernels/ops.h"

namespace gemmconv {
namespace solvers {

size_t mul_sat(size_t a, size_t b) {
  if (a == 0 || b == 0) return 0;
  if (a > std::numeric_limits<size_t>::max() / b) return std::numeric_limits<size_t>::max();
  return a * b;
}

size_t mul_sat(int64_t a, int64_t b) {
  if (a <= 0 || b <= 0) return 0;
  return mul_sat(static_cast<size_t>(a), static_cast<size_t>(b));
}

size_t add_sat(size_t a, size_t b) {
  if (a > std::numeric_limits<size_t>::max() - b) return std::numeric_limits<size_t>::max();
  return a + b;
}

size_t align_up(size_t bytes) {
  const size_t r = bytes % kWorkspaceAlignment;
  return r == 0 ? bytes : add_sat(bytes, kWorkspaceAlignment - r);
}

size_t bytes_of(DataType t, int64_t a, int64_t b, int64_t c, int64_t d) {
  return mul_sat(mul_sat(mul_sat(a, b), mul_sat(c, d)), element_size(t));
}

size_t WorkspaceLayout::add(size_t bytes) {
  const size_t offset = align_up(total_);
  total_ = add_sat(offset, bytes);
  return offset;
}

int64_t largest_fitting(int64_t hi, const std::function<bool(int64_t)>& fits) {
  if (hi < 1 || !fits(1)) return 0;
  int64_t lo = 1;  // fits(lo) holds
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

ChunkPlan plan_chunks(int64_t units, size_t budget, bool wide_reduction,
                      const std::function<size_t(int64_t, bool)>& bytes,
                      const std::function<bool(int64_t)>& gemm_ok) {
  ChunkPlan p;
  const auto fits_single = [&](int64_t u) { return gemm_ok(u) && bytes(u, false) <= budget; };
  if (!wide_reduction) {
    p.chunk = largest_fitting(units, fits_single);
    if (p.chunk > 0) p.bytes = bytes(p.chunk, false);
    return p;
  }
  if (units >= 1 && fits_single(units)) {
    p.chunk = units;
    p.bytes = bytes(units, false);
    return p;
  }
  const auto fits_multi = [&](int64_t u) { return gemm_ok(u) && bytes(u, true) <= budget; };
  p.chunk = largest_fitting(units - 1, fits_multi);
  if (p.chunk > 0) {
    p.bytes = bytes(p.chunk, true);
    p.accumulator = true;
  }
  return p;
}

namespace {

bool within(int64_t v) { return v >= 0 && v <= kGemmIndexLimit; }

// A stored rows x cols matrix with leading dimension ld: the row fits and the span is indexable.
bool matrix_fits(int64_t rows, int64_t cols, int64_t ld) {
  if (!within(rows) || !within(cols) || !within(ld)) return false;
  if (rows == 0 || cols == 0) return true;
  if (ld < cols) return false;
  // (rows - 1) * ld + cols <= limit, without overflow: both factors are below 2^31.
  return (rows - 1) * ld + cols <= kGemmIndexLimit;
}

}  // namespace

bool gemm_fits(const GemmDesc& d) {
  if (!within(d.m) || !within(d.n) || !within(d.k) || d.batch < 1 || !within(d.batch)) {
    return false;
  }
  if (d.stride_a < 0 || d.stride_b < 0 || d.stride_c < 0) return false;
  const bool a_ok = d.trans_a ? matrix_fits(d.k, d.m, d.lda) : matrix_fits(d.m, d.k, d.lda);
  const bool b_ok = d.trans_b ? matrix_fits(d.n, d.k, d.ldb) : matrix_fits(d.k, d.n, d.ldb);
  return a_ok && b_ok && matrix_fits(d.m, d.n, d.ldc);
}

GemmDesc make_gemm(DataType t, int64_t m, int64_t n, int64_t k, const Operand& a, bool trans_a,
                   const Operand& b, bool trans_b, void* c, int64_t ldc, int64_t stride_c,
                   int64_t batch, double beta) {
  GemmDesc d;
  d.dtype = t;
  d.trans_a = trans_a;
  d.trans_b = trans_b;
  d.m = m;
  d.n = n;
  d.k = k;
  d.alpha = 1.0;
  d.beta = beta;
  d.a = a.ptr;
  d.lda = a.ld;
  d.stride_a = batch > 1 ? a.stride : 0;
  d.b = b.ptr;
  d.ldb = b.ld;
  d.stride_b = batch > 1 ? b.stride : 0;
  d.c = c;
  d.ldc = ldc;
  d.stride_c = batch > 1 ? stride_c : 0;
  d.batch = batch;
  return d;
}

Status run_gemm(const ExecContext& ctx, const GemmDesc& d) {
  if (ctx.gemm == nullptr) {
    return Status(StatusCode::invalid_argument, "solver run without a GEMM provider");
  }
  if (!gemm_fits(d)) {
    return Status(StatusCode::internal_error, "solver built a GEMM beyond the 32-bit index limit");
  }
  return ctx.gemm->gemm(d, ctx.stream);
}

bool has_work(const ConvShape& s) {
  return s.n >= 1 && s.c >= 1 && s.k >= 1 && s.g >= 1 && s.c % s.g == 0 && s.k % s.g == 0 &&
         s.in_pixels() >= 1 && s.out_pixels() >= 1 && s.filt_pixels() >= 1;
}

bool is_1x1(const ConvShape& s) {
  for (int i = 0; i < kMaxSpatialDims; ++i) {
    if (s.filt[i] != 1 || s.pad[i] != 0) return false;
  }
  return true;
}

double WeightGradAccumulator::beta(int64_t index) const {
  if (acc_ != nullptr) return 0.0;
  return index == 0 ? 0.0 : 1.0;
}

Status WeightGradAccumulator::after_chunk(int64_t index) {
  if (acc_ == nullptr) return Status::success();
  return ops::accumulate(ctx_, t_, w_, acc_, count_, index == 0);
}

Status WeightGradAccumulator::add_partials(int64_t index, const void* partials, int64_t batch) {
  return ops::sum_partials(ctx_, t_, partials, batch, count_, w_, acc_, index == 0);
}

Status WeightGradAccumulator::finish() {
  if (acc_ == nullptr) return Status::success();
  return ops::narrow(ctx_, t_, acc_, w_, count_);
}

}  // namespace solvers
}  // namespace gemmconv
