// The GPU GEMM provider: cuBLAS (CUDA) or rocBLAS (HIP, where installed), strided-batched.
#include <limits>
#include <memory>
#include <string>

#include "gemmconv/gemm.h"
#include "gpu/compat.h"

#if defined(GEMMCONV_HIP)
#if __has_include(<rocblas/rocblas.h>)
#include <rocblas/rocblas.h>
#define GEMMCONV_HAVE_ROCBLAS 1
#endif
#else
#include <cublas_v2.h>
#endif

#if !defined(GEMMCONV_HIP) || defined(GEMMCONV_HAVE_ROCBLAS)
#define GEMMCONV_HAVE_GPU_BLAS 1
#endif

namespace gemmconv {
namespace {

#ifdef GEMMCONV_HAVE_GPU_BLAS

Status too_big(const char* name, int64_t v) {
  return Status(StatusCode::invalid_argument, std::string("gemm: ") + name + "=" +
                                                  std::to_string(v) +
                                                  " does not fit the GPU BLAS 32-bit integer");
}

// cuBLAS/rocBLAS take int dims and leading dimensions.
Status check_int_range(const GemmDesc& d) {
  const int64_t vals[] = {d.m, d.n, d.k, d.lda, d.ldb, d.ldc, d.batch};
  const char* names[] = {"m", "n", "k", "lda", "ldb", "ldc", "batch"};
  for (int i = 0; i < 7; ++i) {
    if (vals[i] > static_cast<int64_t>(std::numeric_limits<int>::max())) {
      return too_big(names[i], vals[i]);
    }
  }
  return Status();
}

#endif  // GEMMCONV_HAVE_GPU_BLAS

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the same buffers, with A and
// B swapped and m and n swapped.

#if !defined(GEMMCONV_HIP)

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
      return "unknown cuBLAS status";
  }
}

Status blas_error(const char* call, cublasStatus_t s) {
  return Status(StatusCode::gemm_error, std::string(call) + " failed: " + cublas_status_name(s));
}

// One handle per device per thread, created on first use. Handles are deliberately never
// destroyed: destroying them from thread-local or static destructors can run after the CUDA
// runtime has shut down at process exit.
Status handle_for_current_device(cublasHandle_t* out) {
  struct Cache {
    int device = -1;
    cublasHandle_t handle = nullptr;
  };
  thread_local Cache cache[64];
  int dev = 0;
  GEMMCONV_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) {
    return Status(StatusCode::device_error,
                  "gemm: device index " + std::to_string(dev) + " out of range");
  }
  if (cache[dev].handle == nullptr) {
    cublasHandle_t h = nullptr;
    const cublasStatus_t st = cublasCreate(&h);
    if (st != CUBLAS_STATUS_SUCCESS) return blas_error("cublasCreate", st);
    cache[dev].handle = h;
    cache[dev].device = dev;
  }
  *out = cache[dev].handle;
  return Status();
}

class CublasProvider final : public GemmProvider {
 public:
  explicit CublasProvider(bool allow_tf32) : allow_tf32_(allow_tf32) {}
  const char* name() const override { return "cublas"; }
  DeviceKind device() const override { return DeviceKind::gpu; }

  Status gemm(const GemmDesc& d, void* stream) override {
    Status st = check_gemm_desc(d);
    if (!st.ok()) return st;
    st = check_int_range(d);
    if (!st.ok()) return st;
    if (d.m == 0 || d.n == 0) return Status();
    cublasHandle_t h = nullptr;
    st = handle_for_current_device(&h);
    if (!st.ok()) return st;
    cublasStatus_t cs = cublasSetStream(h, static_cast<cudaStream_t>(stream));
    if (cs != CUBLAS_STATUS_SUCCESS) return blas_error("cublasSetStream", cs);

    cudaDataType_t type = CUDA_R_32F;
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
    switch (d.dtype) {
      case DataType::f32:
        type = CUDA_R_32F;
        compute = allow_tf32_ ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
        break;
      case DataType::f16:
        type = CUDA_R_16F;
        break;
      case DataType::bf16:
        type = CUDA_R_16BF;
        break;
      case DataType::f64:
        type = CUDA_R_64F;
        compute = CUBLAS_COMPUTE_64F;
        break;
    }
    const float alpha_f = static_cast<float>(d.alpha), beta_f = static_cast<float>(d.beta);
    const void* alpha = d.dtype == DataType::f64 ? static_cast<const void*>(&d.alpha)
                                                 : static_cast<const void*>(&alpha_f);
    const void* beta = d.dtype == DataType::f64 ? static_cast<const void*>(&d.beta)
                                                : static_cast<const void*>(&beta_f);
    cs = cublasGemmStridedBatchedEx(
        h, d.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, d.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
        static_cast<int>(d.n), static_cast<int>(d.m), static_cast<int>(d.k), alpha, d.b, type,
        static_cast<int>(d.ldb), static_cast<long long>(d.stride_b), d.a, type,
        static_cast<int>(d.lda), static_cast<long long>(d.stride_a), beta, d.c, type,
        static_cast<int>(d.ldc), static_cast<long long>(d.stride_c), static_cast<int>(d.batch),
        compute, CUBLAS_GEMM_DEFAULT);
    if (cs != CUBLAS_STATUS_SUCCESS) return blas_error("cublasGemmStridedBatchedEx", cs);
    return Status();
  }

 private:
  bool allow_tf32_;
};

#elif defined(GEMMCONV_HAVE_ROCBLAS)

Status blas_error(const char* call, rocblas_status s) {
  return Status(StatusCode::gemm_error,
                std::string(call) + " failed: " + rocblas_status_to_string(s));
}

// One handle per device per thread, never destroyed (see the CUDA branch).
Status handle_for_current_device(rocblas_handle* out) {
  thread_local rocblas_handle cache[64] = {};
  int dev = 0;
  GEMMCONV_CHECK(hipGetDevice(&dev));
  if (dev < 0 || dev >= 64) {
    return Status(StatusCode::device_error,
                  "gemm: device index " + std::to_string(dev) + " out of range");
  }
  if (cache[dev] == nullptr) {
    rocblas_handle h = nullptr;
    const rocblas_status st = rocblas_create_handle(&h);
    if (st != rocblas_status_success) return blas_error("rocblas_create_handle", st);
    cache[dev] = h;
  }
  *out = cache[dev];
  return Status();
}

class RocblasProvider final : public GemmProvider {
 public:
  const char* name() const override { return "rocblas"; }
  DeviceKind device() const override { return DeviceKind::gpu; }

  Status gemm(const GemmDesc& d, void* stream) override {
    Status st = check_gemm_desc(d);
    if (!st.ok()) return st;
    st = check_int_range(d);
    if (!st.ok()) return st;
    if (d.m == 0 || d.n == 0) return Status();
    rocblas_handle h = nullptr;
    st = handle_for_current_device(&h);
    if (!st.ok()) return st;
    rocblas_status rs = rocblas_set_stream(h, static_cast<hipStream_t>(stream));
    if (rs != rocblas_status_success) return blas_error("rocblas_set_stream", rs);
    rocblas_datatype type = rocblas_datatype_f32_r;
    rocblas_datatype compute = rocblas_datatype_f32_r;
    switch (d.dtype) {
      case DataType::f32:
        break;
      case DataType::f16:
        type = rocblas_datatype_f16_r;
        break;
      case DataType::bf16:
        type = rocblas_datatype_bf16_r;
        break;
      case DataType::f64:
        type = rocblas_datatype_f64_r;
        compute = rocblas_datatype_f64_r;
        break;
    }
    const float alpha_f = static_cast<float>(d.alpha), beta_f = static_cast<float>(d.beta);
    const void* alpha = d.dtype == DataType::f64 ? static_cast<const void*>(&d.alpha)
                                                 : static_cast<const void*>(&alpha_f);
    const void* beta = d.dtype == DataType::f64 ? static_cast<const void*>(&d.beta)
                                                : static_cast<const void*>(&beta_f);
    // C and D are the same buffer: rocBLAS computes D = alpha op(A) op(B) + beta C.
    rs = rocblas_gemm_strided_batched_ex(
        h, d.trans_b ? rocblas_operation_transpose : rocblas_operation_none,
        d.trans_a ? rocblas_operation_transpose : rocblas_operation_none, static_cast<int>(d.n),
        static_cast<int>(d.m), static_cast<int>(d.k), alpha, d.b, type, static_cast<int>(d.ldb),
        d.stride_b, d.a, type, static_cast<int>(d.lda), d.stride_a, beta, d.c, type,
        static_cast<int>(d.ldc), d.stride_c, d.c, type, static_cast<int>(d.ldc), d.stride_c,
        static_cast<int>(d.batch), compute, rocblas_gemm_algo_standard, 0, 0);
    if (rs != rocblas_status_success) return blas_error("rocblas_gemm_strided_batched_ex", rs);
    return Status();
  }
};

#endif

}  // namespace

#if !defined(GEMMCONV_HIP)

std::unique_ptr<GemmProvider> make_gpu_gemm_provider(bool allow_tf32) {
  return std::make_unique<CublasProvider>(allow_tf32);
}

#elif defined(GEMMCONV_HAVE_ROCBLAS)

// rocBLAS has no TF32 path on the targeted RDNA chips; fp32 stays fp32.
std::unique_ptr<GemmProvider> make_gpu_gemm_provider(bool) {
  return std::make_unique<RocblasProvider>();
}

#else

// A HIP compile without rocBLAS headers (Debian 12 packages none): the kernels still build, but
// there is no GPU GEMM, so callers see nullptr and must fall back (e.g. to the reference solver
// or to the framework's own GEMM).
std::unique_ptr<GemmProvider> make_gpu_gemm_provider(bool) { return nullptr; }

#endif

}  // namespace gemmconv
