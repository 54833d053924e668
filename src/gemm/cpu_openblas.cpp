// The host GEMM provider: OpenBLAS cblas for f32/f64; f16/bf16 widened to fp32 and narrowed back.
#include <memory>

#include "gemmconv/gemm.h"

#ifndef GEMMCONV_NO_OPENBLAS

#include <cblas.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "base/half.h"

namespace gemmconv {
namespace {

bool fits_blas_int(int64_t v) {
  return v <= static_cast<int64_t>(std::numeric_limits<blasint>::max());
}

// C <- beta * C for the m x n block; beta == 0 writes zeros without reading C.
template <class T>
void scale_c(T* c, int64_t m, int64_t n, int64_t ldc, double beta) {
  for (int64_t i = 0; i < m; ++i) {
    T* row = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) row[j] = beta == 0.0 ? T(0) : static_cast<T>(beta * row[j]);
  }
}

void blas(const GemmDesc& d, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
          int64_t ldc, double beta) {
  cblas_sgemm(CblasRowMajor, d.trans_a ? CblasTrans : CblasNoTrans,
              d.trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(d.m),
              static_cast<blasint>(d.n), static_cast<blasint>(d.k), static_cast<float>(d.alpha), a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), static_cast<float>(beta), c,
              static_cast<blasint>(ldc));
}

void blas(const GemmDesc& d, const double* a, int64_t lda, const double* b, int64_t ldb, double* c,
          int64_t ldc, double beta) {
  cblas_dgemm(
      CblasRowMajor, d.trans_a ? CblasTrans : CblasNoTrans, d.trans_b ? CblasTrans : CblasNoTrans,
      static_cast<blasint>(d.m), static_cast<blasint>(d.n), static_cast<blasint>(d.k), d.alpha, a,
      static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

// One batch entry in the provider's native types (f32 or f64).
template <class T>
void gemm_native(const GemmDesc& d, const T* a, const T* b, T* c) {
  if (d.m == 0 || d.n == 0) return;
  if (d.k == 0 || d.alpha == 0.0) {
    scale_c(c, d.m, d.n, d.ldc, d.beta);
    return;
  }
  blas(d, a, d.lda, b, d.ldb, c, d.ldc, d.beta);
}

// Copies a rows x cols block with leading dimension ld into packed fp32.
template <class T>
void widen(const T* src, int64_t rows, int64_t cols, int64_t ld, std::vector<float>* dst) {
  dst->resize(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      (*dst)[static_cast<size_t>(i * cols + j)] = Elem<T>::load(src[i * ld + j]);
    }
  }
}

template <class T>
void gemm_narrow_type(const GemmDesc& d) {
  const T* a = static_cast<const T*>(d.a);
  const T* b = static_cast<const T*>(d.b);
  T* c = static_cast<T*>(d.c);
  const int64_t a_rows = d.trans_a ? d.k : d.m, a_cols = d.trans_a ? d.m : d.k;
  const int64_t b_rows = d.trans_b ? d.n : d.k, b_cols = d.trans_b ? d.k : d.n;
  if (d.m == 0 || d.n == 0) return;
  GemmDesc packed = d;
  packed.lda = std::max<int64_t>(1, a_cols);
  packed.ldb = std::max<int64_t>(1, b_cols);
  packed.ldc = d.n;
  std::vector<float> wa, wb, wc;
  for (int64_t bi = 0; bi < d.batch; ++bi) {
    T* cb = c + bi * d.stride_c;
    // A stride of 0 means the same matrix for every entry: widen it once.
    if (d.k > 0 && (bi == 0 || d.stride_a != 0)) {
      widen(a + bi * d.stride_a, a_rows, a_cols, d.lda, &wa);
    }
    if (d.k > 0 && (bi == 0 || d.stride_b != 0)) {
      widen(b + bi * d.stride_b, b_rows, b_cols, d.ldb, &wb);
    }
    if (d.beta != 0.0) {
      widen(cb, d.m, d.n, d.ldc, &wc);
    } else {
      wc.assign(static_cast<size_t>(d.m * d.n), 0.0f);
    }
    gemm_native(packed, wa.data(), wb.data(), wc.data());
    for (int64_t i = 0; i < d.m; ++i) {
      for (int64_t j = 0; j < d.n; ++j) {
        cb[i * d.ldc + j] = Elem<T>::store(wc[static_cast<size_t>(i * d.n + j)]);
      }
    }
  }
}

class OpenBlasProvider final : public GemmProvider {
 public:
  const char* name() const override { return "openblas"; }
  DeviceKind device() const override { return DeviceKind::cpu; }

  Status gemm(const GemmDesc& d, void*) override {
    Status st = check_gemm_desc(d);
    if (!st.ok()) return st;
    const int64_t dims[] = {d.m, d.n, d.k, d.lda, d.ldb, d.ldc};
    const char* names[] = {"m", "n", "k", "lda", "ldb", "ldc"};
    for (int i = 0; i < 6; ++i) {
      if (!fits_blas_int(dims[i])) {
        return Status(StatusCode::invalid_argument, std::string("gemm: ") + names[i] + "=" +
                                                        std::to_string(dims[i]) +
                                                        " exceeds the BLAS integer range");
      }
    }
    switch (d.dtype) {
      case DataType::f32:
        for (int64_t bi = 0; bi < d.batch; ++bi) {
          gemm_native(d, static_cast<const float*>(d.a) + bi * d.stride_a,
                      static_cast<const float*>(d.b) + bi * d.stride_b,
                      static_cast<float*>(d.c) + bi * d.stride_c);
        }
        break;
      case DataType::f64:
        for (int64_t bi = 0; bi < d.batch; ++bi) {
          gemm_native(d, static_cast<const double*>(d.a) + bi * d.stride_a,
                      static_cast<const double*>(d.b) + bi * d.stride_b,
                      static_cast<double*>(d.c) + bi * d.stride_c);
        }
        break;
      case DataType::f16:
        gemm_narrow_type<f16_t>(d);
        break;
      case DataType::bf16:
        gemm_narrow_type<bf16_t>(d);
        break;
    }
    return Status();
  }
};

}  // namespace

std::unique_ptr<GemmProvider> make_cpu_gemm_provider() {
  return std::make_unique<OpenBlasProvider>();
}

}  // namespace gemmconv

#else  // GEMMCONV_NO_OPENBLAS

namespace gemmconv {

// Builds without OpenBLAS (the PyTorch extension runs its host GEMMs through ATen) have none.
std::unique_ptr<GemmProvider> make_cpu_gemm_provider() { return nullptr; }

}  // namespace gemmconv

#endif  // GEMMCONV_NO_OPENBLAS
