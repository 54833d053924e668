// Host helpers of the GEMM solvers: size arithmetic, chunking, workspace carving, GEMM descriptors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "gemmconv/gemm.h"
#include "gemmconv/problem.h"
#include "gemmconv/solver.h"
#include "gemmconv/types.h"

namespace gemmconv {
namespace solvers {

// Every GEMM dimension, leading dimension, batch count and per-matrix extent stays at or below
// this, so that 32-bit BLAS interfaces and kernels index it safely. The margin below 2^31 is
// needed: cuBLAS 13 fails (CUBLAS_STATUS_INTERNAL_ERROR) for m or n within 4096 of 2^31,
// presumably rounding sizes up to whole tiles.
constexpr int64_t kGemmIndexLimit = (int64_t(1) << 31) - (int64_t(1) << 20);
// Sub-buffers of a workspace start at multiples of this many bytes from its base.
constexpr size_t kWorkspaceAlignment = 256;

// a * b, or SIZE_MAX when the product does not fit; negative inputs count as zero.
size_t mul_sat(int64_t a, int64_t b);
size_t mul_sat(size_t a, size_t b);
size_t add_sat(size_t a, size_t b);
size_t align_up(size_t bytes);

// Bytes of a * b * c * d values of type t (saturating).
size_t bytes_of(DataType t, int64_t a, int64_t b = 1, int64_t c = 1, int64_t d = 1);

// Offsets of consecutive sub-buffers, each starting on a kWorkspaceAlignment boundary. The same
// sequence of `add` calls gives the same offsets at planning time and at run time.
class WorkspaceLayout {
 public:
  // Reserves `bytes` and returns the offset of the new sub-buffer.
  size_t add(size_t bytes);
  // Bytes from the base to the end of the last sub-buffer (0 when nothing was added).
  size_t total() const { return total_; }

 private:
  size_t total_ = 0;
};

// The largest value v in [1, hi] with fits(v), assuming fits is monotone (true up to some v,
// false above); 0 when fits(1) is false or hi < 1.
int64_t largest_fitting(int64_t hi, const std::function<bool(int64_t)>& fits);

// How a GEMM solver splits a problem under a workspace budget: `chunk` units (samples, or rows
// for a path that chunks rows) per step, 0 when nothing fits; `bytes` of workspace for that
// chunking, never more than the budget; `accumulator` when an f16/bf16 weight gradient spans
// several chunks and is summed in an fp32 buffer.
struct ChunkPlan {
  int64_t chunk = 0;
  size_t bytes = 0;
  bool accumulator = false;
};

// The largest chunk of at most `units` units under `budget`. bytes(u, acc) is the workspace
// for chunks of u units with or without the accumulator and gemm_ok(u) says the chunk's GEMMs
// fit the index limit; both must be monotone in u. With `wide_reduction` (an f16/bf16 weight
// gradient) one chunk covering all units needs no accumulator and several chunks need one.
ChunkPlan plan_chunks(int64_t units, size_t budget, bool wide_reduction,
                      const std::function<size_t(int64_t, bool)>& bytes,
                      const std::function<bool(int64_t)>& gemm_ok);

// Checks m, n, k, leading dimensions, batch and each operand's per-batch extent against
// kGemmIndexLimit, and that every leading dimension covers its matrix's row.
bool gemm_fits(const GemmDesc& d);

// One operand of a GEMM: base pointer, leading dimension and batch stride, in elements.
struct Operand {
  const void* ptr = nullptr;
  int64_t ld = 0;
  int64_t stride = 0;
};

// C_b[m x n] = op(A_b) op(B_b) + beta C_b, b < batch (see GemmDesc).
GemmDesc make_gemm(DataType t, int64_t m, int64_t n, int64_t k, const Operand& a, bool trans_a,
                   const Operand& b, bool trans_b, void* c, int64_t ldc, int64_t stride_c,
                   int64_t batch, double beta);

// Runs one descriptor after re-checking its limits.
Status run_gemm(const ExecContext& ctx, const GemmDesc& d);

// p advanced by `elements` values of type t.
inline const void* at(const void* p, DataType t, int64_t elements) {
  return static_cast<const char*>(p) + elements * static_cast<int64_t>(element_size(t));
}
inline void* at(void* p, DataType t, int64_t elements) {
  return static_cast<char*>(p) + elements * static_cast<int64_t>(element_size(t));
}
inline void* at_byte(void* base, size_t offset) { return static_cast<char*>(base) + offset; }

// f16 and bf16 partial weight gradients are summed in an fp32 buffer across sample chunks.
inline bool needs_wide_accumulator(DataType t) { return t == DataType::f16 || t == DataType::bf16; }

// Element size of the fp32/fp64 accumulator that ops::accumulate and ops::narrow use for t.
inline size_t accumulator_element_size(DataType t) { return t == DataType::f64 ? 8 : 4; }

// Input and output spatial sizes are non-empty and every size is positive.
bool has_work(const ConvShape& s);

bool is_1x1(const ConvShape& s);  // 1x1x1 filter with no leading padding

// Sums chunked weight gradients: chunk i's GEMM writes into `w` (beta 0 for f16/bf16, the
// accumulator keeping the total; beta 1 after the first chunk otherwise), or into per-sample
// partials that add_partials sums. `acc` is the fp32 accumulator (nullptr when the whole
// reduction is one chunk or t is f32/f64).
class WeightGradAccumulator {
 public:
  WeightGradAccumulator(const ExecContext& ctx, DataType t, void* w, int64_t count, void* acc)
      : ctx_(ctx), t_(t), w_(w), count_(count), acc_(acc) {}
  // Beta for chunk `index`'s GEMM into w.
  double beta(int64_t index) const;
  // Called after chunk `index`'s GEMM.
  Status after_chunk(int64_t index);
  // For a chunk whose GEMM wrote one partial gradient per sample ([batch][count] in t) instead of
  // writing into w (called in place of beta / after_chunk): adds them to the total in sample
  // order, in fp32 (fp64 for f64), so that any chunking sums every element in the same order.
  Status add_partials(int64_t index, const void* partials, int64_t batch);
  // Called once after the last chunk.
  Status finish();

 private:
  const ExecContext& ctx_;
  DataType t_;
  void* w_;
  int64_t count_;
  void* acc_;
};

}  // namespace solvers
}  // namespace gemmconv
