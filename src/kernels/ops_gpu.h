// Backend entry points behind ops.h: CPU twins (ops_cpu.cpp) and GPU kernels (ops_gpu.cu).
#pragma once

#include "kernels/ops.h"

namespace gemmconv {

// Both namespaces take arguments that ops.cpp has already validated; the GPU ones enqueue on
// ctx.stream. gpu_ops exists only in builds with GEMMCONV_WITH_GPU.
#define GEMMCONV_OPS_BACKEND_DECLS                                                                 \
  Status im2col(const ExecContext& ctx, const ConvShape& s, const void* x, void* col, int64_t n0,  \
                int64_t nb, const ops::ColStrides& cs);                                            \
  Status col2im(const ExecContext& ctx, const ConvShape& s, const void* col, void* x, int64_t n0,  \
                int64_t nb, const ops::ColStrides& cs);                                            \
  Status permute_021(const ExecContext& ctx, DataType t, const void* src, void* dst, int64_t a,    \
                     int64_t b, int64_t c);                                                        \
  Status bias_add(const ExecContext& ctx, DataType t, Layout layout, void* y, const void* bias,    \
                  int64_t n, int64_t channels, int64_t pixels);                                    \
  Status bias_grad(const ExecContext& ctx, DataType t, Layout layout, const void* dy, void* db,    \
                   int64_t n, int64_t channels, int64_t pixels);                                   \
  Status reference_conv(const ExecContext& ctx, const ConvShape& s, Direction regular,             \
                        const ConvTensors& t);                                                     \
  Status accumulate(const ExecContext& ctx, DataType t, const void* src, void* acc, int64_t count, \
                    bool first);                                                                   \
  Status narrow(const ExecContext& ctx, DataType t, const void* acc, void* dst, int64_t count);    \
  Status sum_partials(const ExecContext& ctx, DataType t, const void* partials, int64_t batch,     \
                      int64_t count, void* w, void* acc, bool first);                              \
  Status fill_zero(const ExecContext& ctx, void* dst, size_t bytes);

namespace cpu_ops {
GEMMCONV_OPS_BACKEND_DECLS
}  // namespace cpu_ops

#ifdef GEMMCONV_WITH_GPU
namespace gpu_ops {
GEMMCONV_OPS_BACKEND_DECLS
}  // namespace gpu_ops
#endif

#undef GEMMCONV_OPS_BACKEND_DECLS

}  // namespace gemmconv
