// Argument checks of the ops and their dispatch to the CPU twins or the GPU kernels.
#include "kernels/ops.h"

#include <limits>
#include <string>

#include "kernels/ops_gpu.h"

namespace gemmconv {
namespace ops {
namespace {

Status bad(const char* op, const std::string& what) {
  return Status(StatusCode::invalid_argument, std::string("ops::") + op + ": " + what);
}

Status check_ctx(const char* op, const ExecContext& ctx) {
  if (ctx.caps == nullptr) return bad(op, "ctx.caps is null");
  return Status();
}

Status check_ptr(const char* op, const char* name, const void* p, int64_t count) {
  if (p == nullptr && count > 0) {
    return bad(
        op, std::string(name) + " is null but " + std::to_string(count) + " elements are needed");
  }
  return Status();
}

Status check_count(const char* op, const char* name, int64_t v) {
  if (v < 0) return bad(op, std::string(name) + " is negative (" + std::to_string(v) + ")");
  return Status();
}

Status check_shape(const char* op, const ConvShape& s) {
  const int64_t sizes[] = {s.n, s.c, s.k, s.g};
  for (int64_t v : sizes) {
    if (v < 0) return bad(op, "shape has a negative size");
  }
  if (s.g < 1 || s.c % s.g != 0 || s.k % s.g != 0) {
    return bad(op, "shape groups " + std::to_string(s.g) + " do not divide channels");
  }
  for (int d = 0; d < kMaxSpatialDims; ++d) {
    if (s.in[d] < 0 || s.filt[d] < 1 || s.out[d] < 0 || s.stride[d] < 1 || s.dilation[d] < 1 ||
        s.pad[d] < 0) {
      return bad(op, "shape has an invalid spatial value in dimension " + std::to_string(d));
    }
  }
  return Status();
}

// Offset one past the last column element written for samples [0, nb).
int64_t col_extent(const ConvShape& s, int64_t nb, const ColStrides& cs) {
  if (nb == 0 || s.c == 0 || s.out_pixels() == 0) return 0;
  if (s.layout == Layout::channels_last) return nb * s.out_pixels() * s.c * s.filt_pixels();
  return (nb - 1) * cs.n + (s.c - 1) * cs.c + (s.filt_pixels() - 1) * cs.f + s.out_pixels();
}

Status check_cols(const char* op, const ConvShape& s, const void* x, const void* col, int64_t n0,
                  int64_t nb, const ColStrides& cs) {
  Status st = check_shape(op, s);
  if (!st.ok()) return st;
  if (n0 < 0 || nb < 0 || n0 + nb > s.n) {
    return bad(op, "samples [" + std::to_string(n0) + ", " + std::to_string(n0 + nb) +
                       ") are outside the batch of " + std::to_string(s.n));
  }
  if (s.layout == Layout::contiguous && (cs.n < 0 || cs.c < 0 || cs.f < 0)) {
    return bad(op, "column strides must not be negative");
  }
  st = check_ptr(op, "x", x, nb * s.c * s.in_pixels());
  if (!st.ok()) return st;
  return check_ptr(op, "col", col, col_extent(s, nb, cs));
}

#ifndef GEMMCONV_WITH_GPU
Status unsupported_gpu(const char* op) {
  return Status(StatusCode::unsupported,
                std::string("ops::") + op + ": this build has no GPU support");
}
#endif

}  // namespace

#ifdef GEMMCONV_WITH_GPU
#define GEMMCONV_OPS_DISPATCH(op, ...) \
  return ctx.caps->kind == DeviceKind::gpu ? gpu_ops::op(__VA_ARGS__) : cpu_ops::op(__VA_ARGS__)
#else
#define GEMMCONV_OPS_DISPATCH(op, ...) \
  return ctx.caps->kind == DeviceKind::gpu ? unsupported_gpu(#op) : cpu_ops::op(__VA_ARGS__)
#endif

#define GEMMCONV_TRY(expr)           \
  do {                               \
    Status gc_st_ = (expr);          \
    if (!gc_st_.ok()) return gc_st_; \
  } while (0)

Status im2col(const ExecContext& ctx, const ConvShape& s, const void* x, void* col, int64_t n0,
              int64_t nb, const ColStrides& cs) {
  GEMMCONV_TRY(check_ctx("im2col", ctx));
  GEMMCONV_TRY(check_cols("im2col", s, x, col, n0, nb, cs));
  GEMMCONV_OPS_DISPATCH(im2col, ctx, s, x, col, n0, nb, cs);
}

Status col2im(const ExecContext& ctx, const ConvShape& s, const void* col, void* x, int64_t n0,
              int64_t nb, const ColStrides& cs) {
  GEMMCONV_TRY(check_ctx("col2im", ctx));
  GEMMCONV_TRY(check_cols("col2im", s, x, col, n0, nb, cs));
  GEMMCONV_OPS_DISPATCH(col2im, ctx, s, col, x, n0, nb, cs);
}

Status permute_021(const ExecContext& ctx, DataType t, const void* src, void* dst, int64_t a,
                   int64_t b, int64_t c) {
  GEMMCONV_TRY(check_ctx("permute_021", ctx));
  GEMMCONV_TRY(check_count("permute_021", "a", a));
  GEMMCONV_TRY(check_count("permute_021", "b", b));
  GEMMCONV_TRY(check_count("permute_021", "c", c));
  GEMMCONV_TRY(check_ptr("permute_021", "src", src, a * b * c));
  GEMMCONV_TRY(check_ptr("permute_021", "dst", dst, a * b * c));
  GEMMCONV_OPS_DISPATCH(permute_021, ctx, t, src, dst, a, b, c);
}

Status bias_add(const ExecContext& ctx, DataType t, Layout layout, void* y, const void* bias,
                int64_t n, int64_t channels, int64_t pixels) {
  GEMMCONV_TRY(check_ctx("bias_add", ctx));
  GEMMCONV_TRY(check_count("bias_add", "n", n));
  GEMMCONV_TRY(check_count("bias_add", "channels", channels));
  GEMMCONV_TRY(check_count("bias_add", "pixels", pixels));
  GEMMCONV_TRY(check_ptr("bias_add", "y", y, n * channels * pixels));
  GEMMCONV_TRY(check_ptr("bias_add", "bias", bias, n * pixels > 0 ? channels : 0));
  GEMMCONV_OPS_DISPATCH(bias_add, ctx, t, layout, y, bias, n, channels, pixels);
}

Status bias_grad(const ExecContext& ctx, DataType t, Layout layout, const void* dy, void* db,
                 int64_t n, int64_t channels, int64_t pixels) {
  GEMMCONV_TRY(check_ctx("bias_grad", ctx));
  GEMMCONV_TRY(check_count("bias_grad", "n", n));
  GEMMCONV_TRY(check_count("bias_grad", "channels", channels));
  GEMMCONV_TRY(check_count("bias_grad", "pixels", pixels));
  GEMMCONV_TRY(check_ptr("bias_grad", "dy", dy, n * channels * pixels));
  GEMMCONV_TRY(check_ptr("bias_grad", "db", db, channels));
  GEMMCONV_OPS_DISPATCH(bias_grad, ctx, t, layout, dy, db, n, channels, pixels);
}

Status reference_conv(const ExecContext& ctx, const ConvShape& s, Direction regular,
                      const ConvTensors& t) {
  GEMMCONV_TRY(check_ctx("reference_conv", ctx));
  GEMMCONV_TRY(check_shape("reference_conv", s));
  if (regular != Direction::forward && regular != Direction::backward_data &&
      regular != Direction::backward_weight) {
    return bad("reference_conv",
               "direction " + std::to_string(static_cast<int>(regular)) + " is not a regular pass");
  }
  GEMMCONV_TRY(check_ptr("reference_conv", "x", t.x, s.x_elements()));
  GEMMCONV_TRY(check_ptr("reference_conv", "w", t.w, s.w_elements()));
  GEMMCONV_TRY(check_ptr("reference_conv", "y", t.y, s.y_elements()));
  GEMMCONV_OPS_DISPATCH(reference_conv, ctx, s, regular, t);
}

Status accumulate(const ExecContext& ctx, DataType t, const void* src, void* acc, int64_t count,
                  bool first) {
  GEMMCONV_TRY(check_ctx("accumulate", ctx));
  GEMMCONV_TRY(check_count("accumulate", "count", count));
  GEMMCONV_TRY(check_ptr("accumulate", "src", src, count));
  GEMMCONV_TRY(check_ptr("accumulate", "acc", acc, count));
  GEMMCONV_OPS_DISPATCH(accumulate, ctx, t, src, acc, count, first);
}

Status narrow(const ExecContext& ctx, DataType t, const void* acc, void* dst, int64_t count) {
  GEMMCONV_TRY(check_ctx("narrow", ctx));
  GEMMCONV_TRY(check_count("narrow", "count", count));
  GEMMCONV_TRY(check_ptr("narrow", "acc", acc, count));
  GEMMCONV_TRY(check_ptr("narrow", "dst", dst, count));
  GEMMCONV_OPS_DISPATCH(narrow, ctx, t, acc, dst, count);
}

Status sum_partials(const ExecContext& ctx, DataType t, const void* partials, int64_t batch,
                    int64_t count, void* w, void* acc, bool first) {
  GEMMCONV_TRY(check_ctx("sum_partials", ctx));
  GEMMCONV_TRY(check_count("sum_partials", "batch", batch));
  GEMMCONV_TRY(check_count("sum_partials", "count", count));
  if (batch > 0 && count > std::numeric_limits<int64_t>::max() / batch) {
    return bad("sum_partials", "batch " + std::to_string(batch) + " times count " +
                                   std::to_string(count) + " overflows");
  }
  GEMMCONV_TRY(check_ptr("sum_partials", "partials", partials, batch * count));
  if (acc != nullptr) {
    GEMMCONV_TRY(check_ptr("sum_partials", "acc", acc, count));
  } else {
    GEMMCONV_TRY(check_ptr("sum_partials", "w", w, count));
    if (!first && t != DataType::f32 && t != DataType::f64) {
      return bad("sum_partials", std::string("a running total in w of type ") + to_string(t) +
                                     " would be rounded between calls: pass an fp32 acc");
    }
  }
  GEMMCONV_OPS_DISPATCH(sum_partials, ctx, t, partials, batch, count, w, acc, first);
}

Status fill_zero(const ExecContext& ctx, void* dst, size_t bytes) {
  GEMMCONV_TRY(check_ctx("fill_zero", ctx));
  if (dst == nullptr && bytes > 0) return bad("fill_zero", "dst is null");
  GEMMCONV_OPS_DISPATCH(fill_zero, ctx, dst, bytes);
}

}  // namespace ops
}  // namespace gemmconv
