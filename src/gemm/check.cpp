// Argument checks shared by every GEMM provider.
#include <algorithm>
#include <string>

#include "gemmconv/gemm.h"

namespace gemmconv {
namespace {

Status bad(const std::string& what) {
  return Status(StatusCode::invalid_argument, "gemm: " + what);
}

std::string v(const char* name, int64_t value) {
  return std::string(name) + "=" + std::to_string(value);
}

}  // namespace

Status check_gemm_desc(const GemmDesc& d) {
  if (d.m < 0) return bad("negative " + v("m", d.m));
  if (d.n < 0) return bad("negative " + v("n", d.n));
  if (d.k < 0) return bad("negative " + v("k", d.k));
  if (d.batch < 1) return bad(v("batch", d.batch) + " must be at least 1");
  if (d.stride_a < 0) return bad("negative " + v("stride_a", d.stride_a));
  if (d.stride_b < 0) return bad("negative " + v("stride_b", d.stride_b));
  if (d.stride_c < 0) return bad("negative " + v("stride_c", d.stride_c));
  if (d.stride_c == 0 && d.batch > 1 && d.m > 0 && d.n > 0) {
    return bad("stride_c=0 with " + v("batch", d.batch) + " would write every entry to one C");
  }
  // Row-major: the stored row length is the number of columns of the matrix as stored.
  const int64_t a_cols = d.trans_a ? d.m : d.k;
  const int64_t b_cols = d.trans_b ? d.k : d.n;
  if (d.lda < std::max<int64_t>(1, a_cols)) {
    return bad(v("lda", d.lda) + " is smaller than the " + std::to_string(a_cols) +
               " columns of A as stored" + (d.trans_a ? " (trans_a)" : ""));
  }
  if (d.ldb < std::max<int64_t>(1, b_cols)) {
    return bad(v("ldb", d.ldb) + " is smaller than the " + std::to_string(b_cols) +
               " columns of B as stored" + (d.trans_b ? " (trans_b)" : ""));
  }
  if (d.ldc < std::max<int64_t>(1, d.n)) {
    return bad(v("ldc", d.ldc) + " is smaller than n=" + std::to_string(d.n));
  }
  if (d.a == nullptr && d.m > 0 && d.k > 0) return bad("A is null with m*k > 0");
  if (d.b == nullptr && d.k > 0 && d.n > 0) return bad("B is null with k*n > 0");
  if (d.c == nullptr && d.m > 0 && d.n > 0) return bad("C is null with m*n > 0");
  return Status();
}

}  // namespace gemmconv
