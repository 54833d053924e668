// The element-wise and data-movement operations the solvers are built from. Each one dispatches
// on ctx.caps->kind to its CPU twin (ops_cpu.cpp) or its single-source GPU kernel (ops_gpu.cu).
// All sizes are in elements; every operation is deterministic (no atomics, fixed summation order).
#pragma once

#include <cstddef>
#include <cstdint>

#include "gemmconv/problem.h"
#include "gemmconv/solver.h"

namespace gemmconv {
namespace ops {

// Column buffer of a contiguous-layout problem: element (local sample i, input channel c,
// filter tap f, output pixel p) lives at i * n + c * this->c + f * this->f + p, p contiguous.
// Filter taps f enumerate (t, r, s) in row-major order, output pixels (o, p, q) likewise.
// Two orders are in use: sample-major {C*F*P, F*P, P} and group-major (samples inside
// rows) {P, F*nb*P, nb*P}.
struct ColStrides {
  int64_t n = 0;
  int64_t c = 0;
  int64_t f = 0;
};

// Channels-last problems use one fixed column order, natural for GEMM: row r = i * P + p,
// column (g, f, cg) at g * F * Cg + f * Cg + cg, row stride C * F. `cs` is ignored for them.

// col <- im2col(x) for samples [n0, n0 + nb) of x (x is the whole tensor). Taps that fall into
// the padding are written as zero.
Status im2col(const ExecContext& ctx, const ConvShape& s, const void* x, void* col, int64_t n0,
              int64_t nb, const ColStrides& cs);

// x <- col2im(col) for samples [n0, n0 + nb): every element of those samples of x is overwritten
// with the sum, over the (tap, output pixel) pairs that im2col would read it into, of the
// matching column entries. A gather: each x element is summed by one thread in a fixed order,
// accumulated in fp32 (fp64 for f64).
Status col2im(const ExecContext& ctx, const ConvShape& s, const void* col, void* x, int64_t n0,
              int64_t nb, const ColStrides& cs);

// dst[j][i][k] = src[i][j][k] for src of shape [a][b][c].
Status permute_021(const ExecContext& ctx, DataType t, const void* src, void* dst, int64_t a,
                   int64_t b, int64_t c);

// y[i][ch][p] += bias[ch] (contiguous) or y[i][p][ch] += bias[ch] (channels_last), for a tensor of
// n samples, `channels` channels and `pixels` spatial positions.
Status bias_add(const ExecContext& ctx, DataType t, Layout layout, void* y, const void* bias,
                int64_t n, int64_t channels, int64_t pixels);

// db[ch] = sum over samples and pixels of dy, accumulated in fp32 (fp64 for f64) in a fixed order.
Status bias_grad(const ExecContext& ctx, DataType t, Layout layout, const void* dy, void* db,
                 int64_t n, int64_t channels, int64_t pixels);

// The direct-loop convolution of the reference solver, one regular pass (forward,
// backward_data or backward_weight), each output element summed by one thread in a fixed order
// in fp32 (fp64 for f64). Needs no workspace.
Status reference_conv(const ExecContext& ctx, const ConvShape& s, Direction regular,
                      const ConvTensors& t);

// acc[i] = (first ? 0 : acc[i]) + src[i]; acc is float, or double when t is f64.
Status accumulate(const ExecContext& ctx, DataType t, const void* src, void* acc, int64_t count,
                  bool first);

// dst[i] = acc[i] rounded to t; acc is float, or double when t is f64.
Status narrow(const ExecContext& ctx, DataType t, const void* acc, void* dst, int64_t count);

// The sum of per-sample partial weight gradients: for i < count,
//   total[i] = (first ? 0 : total[i]) + p[0][i] + p[1][i] + ... + p[batch - 1][i]
// with p = partials [batch][count] in t, added in that order (b ascending) in fp32 (fp64 for
// f64), one thread per element, no atomics. The running total lives in `acc` (float, or double for
// f64) when acc is not null, and w is left alone (ops::narrow writes it at the end); otherwise it
// lives in w, rounded to t after each call, so calls after the first (first == false) need t to
// be f32 or f64. Splitting the samples over several calls in order gives the same bits as one.
Status sum_partials(const ExecContext& ctx, DataType t, const void* partials, int64_t batch,
                    int64_t count, void* w, void* acc, bool first);

Status fill_zero(const ExecContext& ctx, void* dst, size_t bytes);

}  // namespace ops
}  // namespace gemmconv
