// A gemmconv::GemmProvider over PyTorch's own BLAS (at::baddbmm on strided views of the operands).
#include "torch_gemm.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>

#include <string>

namespace gemmconv_torch {
namespace {

c10::ScalarType scalar_type(gemmconv::DataType t) {
  switch (t) {
    case gemmconv::DataType::f16:
      return c10::ScalarType::Half;
    case gemmconv::DataType::bf16:
      return c10::ScalarType::BFloat16;
    case gemmconv::DataType::f64:
      return c10::ScalarType::Double;
    case gemmconv::DataType::f32:
      break;
  }
  return c10::ScalarType::Float;
}

// op(X) as a [batch, rows', cols'] view of a row-major operand stored `rows` x `cols`.
at::Tensor operand(const void* p, bool trans, int64_t rows, int64_t cols, int64_t ld,
                   int64_t stride, int64_t batch, const at::TensorOptions& o) {
  void* data = const_cast<void*>(p);
  at::Tensor t;
  if (stride == 0 || batch == 1) {
    t = at::from_blob(data, {rows, cols}, {ld, 1}, o).unsqueeze(0).expand({batch, rows, cols});
  } else {
    t = at::from_blob(data, {batch, rows, cols}, {stride, ld, 1}, o);
  }
  return trans ? t.transpose(1, 2) : t;
}

}  // namespace

gemmconv::DeviceKind TorchGemmProvider::device() const {
  return device_.is_cpu() ? gemmconv::DeviceKind::cpu : gemmconv::DeviceKind::gpu;
}

gemmconv::Status TorchGemmProvider::gemm(const gemmconv::GemmDesc& d, void* /*stream*/) {
  gemmconv::Status s = gemmconv::check_gemm_desc(d);
  if (!s.ok()) return s;
  if (d.batch == 0 || d.m == 0 || d.n == 0) return s;
  if (d.stride_c == 0 && d.batch > 1) {
    return gemmconv::Status(gemmconv::StatusCode::invalid_argument,
                            "gemm: stride_c is 0 for a batch of " + std::to_string(d.batch));
  }
  try {
    const at::TensorOptions o = at::TensorOptions().dtype(scalar_type(d.dtype)).device(device_);
    at::Tensor c = d.batch == 1
                       ? at::from_blob(d.c, {1, d.m, d.n}, {d.m * d.ldc, d.ldc, 1}, o)
                       : at::from_blob(d.c, {d.batch, d.m, d.n}, {d.stride_c, d.ldc, 1}, o);
    if (d.k == 0) {
      if (d.beta == 0.0) {
        c.zero_();
      } else {
        c.mul_(d.beta);
      }
      return s;
    }
    const at::Tensor a = operand(d.a, d.trans_a, d.trans_a ? d.k : d.m, d.trans_a ? d.m : d.k,
                                 d.lda, d.stride_a, d.batch, o);
    const at::Tensor b = operand(d.b, d.trans_b, d.trans_b ? d.n : d.k, d.trans_b ? d.k : d.n,
                                 d.ldb, d.stride_b, d.batch, o);
    // On the CPU, ATen either lacks half-precision batched products (1.13) or may accumulate them
    // in half precision; the provider contract asks for fp32 accumulation.
    const bool widen = device_.is_cpu() &&
                       (d.dtype == gemmconv::DataType::f16 || d.dtype == gemmconv::DataType::bf16);
    if (widen) {
      const at::Tensor a32 = a.to(at::kFloat), b32 = b.to(at::kFloat);
      at::Tensor c32;
      if (d.beta == 0.0) {
        c32 = at::bmm(a32, b32);
        if (d.alpha != 1.0) c32.mul_(d.alpha);
      } else {
        c32 = c.to(at::kFloat);
        c32.baddbmm_(a32, b32, d.beta, d.alpha);
      }
      c.copy_(c32);
    } else if (d.beta == 0.0) {
      // baddbmm with beta 0 still reads C for small products on some versions (1.13's CPU
      // kernel computes 0 * C), and C may hold anything; bmm never reads it.
      at::bmm_out(c, a, b);
      if (d.alpha != 1.0) c.mul_(d.alpha);
    } else {
      c.baddbmm_(a, b, d.beta, d.alpha);
    }
  } catch (const c10::OutOfMemoryError& e) {
    // The BLAS library's own workspace or a temporary of ATen's: the caller may plan again with
    // less workspace of its own and retry.
    return gemmconv::Status(gemmconv::StatusCode::out_of_memory, e.what_without_backtrace());
  } catch (const c10::Error& e) {
    return gemmconv::Status(gemmconv::StatusCode::gemm_error, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return gemmconv::Status(gemmconv::StatusCode::gemm_error, e.what());
  }
  return s;
}

}  // namespace gemmconv_torch
