// The GEMM provider interface: strided-batched, row-major, with transposes, alpha and beta.
#pragma once

#include <cstdint>
#include <memory>

#include "gemmconv/types.h"

namespace gemmconv {

// For b in [0, batch):
//   C_b[m x n] = alpha * op(A_b)[m x k] * op(B_b)[k x n] + beta * C_b
// Row-major: element (i, j) of a stored matrix X is X[i * ldx + j]. op(A) = A when !trans_a
// (A stored m x k) and A^T when trans_a (A stored k x m); likewise for B. X_b = X + b * stride_x
// (in elements; a stride of 0 reuses one matrix for every batch entry). A, B and C share one
// element type; products are accumulated in fp32 (fp64 for f64). When beta == 0, C is not read.
struct GemmDesc {
  DataType dtype = DataType::f32;
  bool trans_a = false;
  bool trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  double alpha = 1.0;
  double beta = 0.0;
  const void* a = nullptr;
  int64_t lda = 0, stride_a = 0;
  const void* b = nullptr;
  int64_t ldb = 0, stride_b = 0;
  void* c = nullptr;
  int64_t ldc = 0, stride_c = 0;
  int64_t batch = 1;
};

class GemmProvider {
 public:
  virtual ~GemmProvider() = default;
  virtual const char* name() const = 0;
  virtual DeviceKind device() const = 0;
  // Enqueues the product on `stream` (ignored on the CPU). Checks its arguments and returns
  // invalid_argument naming the bad one rather than crashing.
  virtual Status gemm(const GemmDesc& d, void* stream) = 0;
};

// Checks a descriptor's shapes, leading dimensions and pointers; providers call it first.
Status check_gemm_desc(const GemmDesc& d);

// OpenBLAS on the host (fp16/bf16 are widened to fp32 and narrowed back).
std::unique_ptr<GemmProvider> make_cpu_gemm_provider();

// cuBLAS or rocBLAS, whichever this build targets; nullptr when the build has no GPU support.
// `allow_tf32` lets fp32 products use TF32 tensor cores where the hardware has them.
std::unique_ptr<GemmProvider> make_gpu_gemm_provider(bool allow_tf32 = false);

}  // namespace gemmconv
