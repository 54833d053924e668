// Internal declarations of the winograd_gemm solver: which problems it takes, the tile it picks,
// its error factor, and the CPU and GPU transform kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gemmconv/device.h"
#include "gemmconv/problem.h"
#include "gemmconv/solver.h"
#include "gemmconv/types.h"
#include "solvers/gemm_map.h"

namespace gemmconv {

const Solver& winograd_gemm_solver();

namespace winograd {

// One pass as transforms around the GEMM. The pass is always a stride-1 correlation of a source
// tensor (forward: x; backward_data: dy through the flipped filter) into a destination tensor
// (y; dx), tiled along H and W with `alpha` transform points and `m` outputs per tile and axis
// (alpha 1, m 1: an axis whose filter has one tap). Depth (a 3-D problem with a depth filter
// of 1) and samples only enumerate planes. A tile (plane p, ty, tx) reads the source from
// (ty * m_h - pad_h, tx * m_w - pad_w) on, zero outside, and writes the destination at
// (ty * m_h, tx * m_w), clipped. backward_weight has the forward pass's geometry (source x,
// destination dy) and runs it the other way: dy's tiles are read (zero past the edge) and
// transformed (grad_output), the GEMM sums V^T M over all tiles into U, and U goes back to the
// filter (grad_filter).
struct Plan {
  bool valid = false;
  bool backward = false;     // backward_data: the filter is flipped, source dy, destination dx
  bool weight_grad = false;  // backward_weight: source x, destination dy, result dw
  int alpha_h = 1, alpha_w = 1, m_h = 1, m_w = 1;
  int64_t transforms = 1;        // alpha_h * alpha_w
  int64_t n = 0, planes = 1;     // samples, and depth planes per sample
  int64_t src_h = 1, src_w = 1;  // source extents
  int64_t dst_h = 1, dst_w = 1;  // destination extents
  int64_t pad_h = 0, pad_w = 0;  // leading padding of the source, as the correlation sees it
  int64_t tiles_h = 1, tiles_w = 1;
  int64_t tiles_per_sample = 1;    // planes * tiles_h * tiles_w
  int64_t src_ch = 0, dst_ch = 0;  // channels of the source and destination tensors
  int64_t g = 1;
  int64_t filt_h = 1, filt_w = 1;  // taps per axis (1 or 3)
  Layout layout = Layout::contiguous;
  DataType dtype = DataType::f32;
  // Storage of the source and destination buffers: [T][g][channels / g][rows] (tiles innermost,
  // the gemm map's winograd_channel_major scheme) or [T][g][rows][channels / g] (winograd).
  // Channel-major for the contiguous layout, so that the transforms read and write along tiles,
  // which neighbour each other in the tensor too; row-major for channels-last.
  bool channel_major = false;
  int64_t tiles() const { return n * tiles_per_sample; }
};

// Stride-1, dilation-1 correlations whose H and W filters have 1 or 3 taps (not both 1), with a
// depth filter of 1 and no depth padding, padding 0..2 on each side of a 3-tap axis and none on
// a 1-tap axis, forward, backward_data or backward_weight, cg >= 2 (depthwise has its own
// solver). The output tiles follow `pick_alpha` for each axis.
Plan make_plan(const ConvShape& s, Direction d);

// Transform points along an axis whose filter has `taps` taps and whose destination is `extent`
// long: F(2,3) (4 points) or F(4,3) (6 points), whichever computes fewer transform-domain values
// (alpha * ceil(extent / m)), F(2,3) on a tie and always for f16/bf16 (F(4,3) amplifies
// rounding 4.3 times more per axis, 19 times in 2-D, see error_factor); 1 for one tap.
int pick_alpha(int64_t taps, int64_t extent, DataType t);

// The factor by which the transforms may amplify rounding errors relative to a direct sum: the
// product of axis_amplification (backward_weight: axis_amplification_wgrad) over the axes of the
// plan (see docs/design.md).
double error_factor(const ConvShape& s, Direction d);
// The worst case of the same: the product of axis_worst_case (axis_worst_case_wgrad). It bounds
// the roundings to the storage type in the transform domain (forward and backward_data: input,
// filter, product; backward_weight: input, dy, sum), which a fuzzer can drive to the bound in
// fp16/bf16 where few terms are summed.
double worst_error_factor(const ConvShape& s, Direction d);

// Estimated GPU cost of a pass by winograd_gemm, im2col_gemm and implicit_gemm (infinity where
// it does not apply: backward_weight, f64, f16/bf16 on matrix units), in bytes of DRAM traffic
// plus flops over the machine balance (see winograd_gemm.cpp); all zero when the plan is not
// valid. backward_weight on the CPU uses it too, with the CPU's balance.
struct GpuCost {
  double winograd = 0.0, im2col = 0.0, implicit = 0.0;
};
GpuCost gpu_cost(const ConvShape& s, Direction d, const Capabilities& caps);

// The gemm map's scheme for the plan's buffer storage.
solvers::GemmScheme scheme(const Plan& p);

// Elements of the three workspace buffers for `rows` tiles: U [T][g][cg][kg] (the transformed
// filter, or backward_weight's transform-domain gradient), the source side
// [T][g][rows][src_ch / g] and the destination side [T][g][rows][dst_ch / g] (or with rows
// innermost: Plan::channel_major).
int64_t filter_elements(const Plan& p);
int64_t source_elements(const Plan& p, int64_t rows);
int64_t dest_elements(const Plan& p, int64_t rows);

// The transforms, on the CPU and the GPU. Each runs over tiles [r0, r0 + rows) of the whole
// problem (tile index = (sample * planes + plane) * tiles_h * tiles_w + ty * tiles_w + tx); the
// buffer holds exactly those rows.
//   filter:  w (the regular weight) -> u [T][g][cg][kg], flipped for backward
//   input:   source tensor -> buf [T][g][rows][src_ch / g] ([T][g][src_ch / g][rows] when
//            channel_major)
//   output:  buf [T][g][rows][dst_ch / g] ([T][g][dst_ch / g][rows]) -> destination tensor
//            (every element of the tiles' clipped extents written)
// and for backward_weight:
//   grad_output: dy (the destination tensor) -> buf [T][g][rows][dst_ch / g] (or channel-major),
//            A dy A^T of each m_h x m_w tile, zero past the tensor's edge
//   grad_filter: u [T][g][cg][kg] -> dw (the regular weight's layout), G^T u G
namespace cpu {
Status filter(const Plan& p, const void* w, void* u);
Status input(const Plan& p, const void* src, void* buf, int64_t r0, int64_t rows);
Status output(const Plan& p, const void* buf, void* dst, int64_t r0, int64_t rows);
Status grad_output(const Plan& p, const void* dy, void* buf, int64_t r0, int64_t rows);
Status grad_filter(const Plan& p, const void* u, void* dw);
}  // namespace cpu

#ifdef GEMMCONV_WITH_GPU
namespace gpu {
Status filter(const ExecContext& ctx, const Plan& p, const void* w, void* u);
Status input(const ExecContext& ctx, const Plan& p, const void* src, void* buf, int64_t r0,
             int64_t rows);
Status output(const ExecContext& ctx, const Plan& p, const void* buf, void* dst, int64_t r0,
              int64_t rows);
Status grad_output(const ExecContext& ctx, const Plan& p, const void* dy, void* buf, int64_t r0,
                   int64_t rows);
Status grad_filter(const ExecContext& ctx, const Plan& p, const void* u, void* dw);
}  // namespace gpu
#endif

}  // namespace winograd
}  // namespace gemmconv
