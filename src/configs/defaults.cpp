// The shipped default table (see defaults.h). Every rule says what it is based on.
#include "configs/defaults.h"

namespace gemmconv {
namespace configs {
namespace {

// Output rows of the implicit GEMM per sample: output pixels (forward) or input pixels
// (backward_data, which gathers the output gradient).
int64_t gemm_rows_per_sample(const ConvShape& s, Direction d) {
  return d == Direction::backward_data ? s.in_pixels() : s.out_pixels();
}

}  // namespace

std::vector<Promotion> solver_promotions(ArchFamily family, const ConvShape& s, Direction d) {
  std::vector<Promotion> rules;
  const bool implicit_pass = d == Direction::forward || d == Direction::backward_data;
  switch (family) {
    case ArchFamily::nvidia:
      // Measured on an H200 (docs/performance.md, "implicit_gemm against im2col_gemm", fp32,
      // contiguous, N=32): implicit_gemm is ahead at 56x56 output pixels and level at 28x28;
      // below that the column-matrix GEMM wins. Other dtypes stay with the vendor BLAS.
      if (implicit_pass && s.dtype == DataType::f32 && s.layout == Layout::contiguous &&
          gemm_rows_per_sample(s, d) >= 56 * 56) {
        rules.push_back({"implicit_gemm", "im2col_gemm"});
      }
      break;
    case ArchFamily::amd_rdna:
      // gfx10 has no matrix units and runs wave32: the SIMT implicit GEMM does the same
      // multiply-adds as the BLAS without writing and re-reading the column matrix, which on
      // this card's bandwidth is the larger cost. Not yet measured on the card: the find step
      // (GEMMCONV_FIND) times both and its result replaces this rule per problem.
      if (implicit_pass) rules.push_back({"implicit_gemm", "im2col_gemm"});
      break;
    case ArchFamily::cpu:
      // The registry order: implicit_gemm is a GPU solver, and the CPU GEMM solvers are ordered
      // by their workspace traffic already.
    case ArchFamily::amd_gcn:
    case ArchFamily::amd_cdna:
    case ArchFamily::unknown:
      break;
  }
  return rules;
}

}  // namespace configs
}  // namespace gemmconv
