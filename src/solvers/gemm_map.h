// The conv-to-GEMM map: for a (shape, pass, scheme) which operand is which, and every extent,
// leading dimension and batch stride of the GEMM that computes the pass. Written once, here.
//
// Every convolution GEMM pairs three matrices, one standing for each tensor of the regular
// convolution (ConvShape): the x side, the w side and the y side. The pass says which one the
// GEMM writes (forward: y, backward_data: x, backward_weight: w) and the scheme says in what form
// each side is stored:
//
// | scheme        | x side                       | w side            | y side                 |
// batch  |
// |---------------|------------------------------|-------------------|------------------------|--------|
// | channels_last | columns [rows][c*F]          | w [k][c/g*F]      | y [rows][k]            | g |
// | sample_major  | columns [n][c*F][P]          | w [k][c*F]        | y [n][k][P]            | n |
// |  (dw)         | columns [n][c*F][P]          | dw_b [n][k][c*F]  | y [n][k][P]            | n |
// | group_major   | columns [c*F][rows]          | w [k][c/g*F]      | y, permuted [k][rows]  | g |
// | implicit      | x (or y) gathered on the fly | w viewed in place | y (or x) in place      | g |
// | winograd      | V [T][g][rows][c/g]          | U [T][g][c/g][k/g]| M [T][g][rows][k/g]    | T *
// g  |
// | winograd_channel_major | V [T][g][c/g][rows] | U [T][g][c/g][k/g]| M [T][g][k/g][rows]    | T *
// g  |
//
// rows = (sample, output pixel) pairs of one chunk, F = filter taps, P = output pixels per
// sample, T = transforms (alpha^2 for Winograd F(m, r): alpha = m + r - 1). "columns" is the
// im2col matrix of x; where x already is one (gemm_1x1 at stride 1) x itself takes its place
// (F = 1, so c*F = c). Per group the GEMMs are (Cg = c/g, Kg = k/g):
//
// | scheme        | pass            | C =                        | M      | N      | K      |
// |---------------|-----------------|----------------------------|--------|--------|--------|
// | channels_last | forward         | y   = col . w^T            | rows   | Kg     | Cg*F   |
// |               | backward_data   | col = y . w                | rows   | Cg*F   | Kg     |
// |               | backward_weight | w   = y^T . col            | Kg     | Cg*F   | rows   |
// | sample_major  | forward         | y   = w . col              | k      | P      | c*F    |
// |               | backward_data   | col = w^T . y              | c*F    | P      | k      |
// |               | backward_weight | dw_b = y . col^T           | k      | c*F    | P      |
// | group_major   | forward         | y   = w . col              | Kg     | rows   | Cg*F   |
// |               | backward_data   | col = w^T . y              | Cg*F   | rows   | Kg     |
// |               | backward_weight | w   = y . col^T            | Kg     | Cg*F   | rows   |
// | implicit      | forward         | y   = gather(x) . w^T      | n*P    | Kg     | Cg*F   |
// |               | backward_data   | x   = gather(y) . flip(w)  | n*in   | Cg     | Kg*F   |
// | winograd      | forward         | M   = V . U                | rows   | Kg     | Cg     |
// |               | backward_data   | V   = M . U^T              | rows   | Cg     | Kg     |
// |               | backward_weight | U   = V^T . M              | Cg     | Kg     | rows   |
// | winograd_     | forward         | M   = U^T . V              | Kg     | rows   | Cg     |
// | channel_major | backward_data   | V   = U . M                | Cg     | rows   | Kg     |
// |               | backward_weight | U   = V . M^T              | Cg     | Kg     | rows   |
//
// Adding a transform-domain solver (Winograd): transform the input tiles into V and the filter
// into U (the layouts in the first table, T = alpha^2), call
// `gemm_map(s, d, GemmScheme::winograd, tiles, alpha * alpha)` and `bind` it to the three
// buffers, run the one strided-batched GEMM, and transform M back. The map's rows are the tiles
// of the chunk (n * tiles per sample); it checks nothing about the tile size itself.
// `winograd_channel_major` stores the same matrices transposed (tiles innermost), for the
// contiguous layout: its transforms then read and write along tiles, which neighbour each other
// in x and y [n][c][h][w], instead of along channels.
//
// sample_major backward_weight (the "(dw)" row) writes one partial gradient dw_b per sample b of
// the chunk: its w side is a partials buffer [samples][k][c*F] (batch stride k*c*F), not w. The
// caller binds that buffer as the w side and sums the partials in sample order (ops::sum_partials,
// through WeightGradAccumulator::add_partials). Whether that beats group_major is
// sample_major_weight_gradient's rule.
#pragma once

#include <cstdint>

#include "gemmconv/gemm.h"
#include "gemmconv/problem.h"
#include "gemmconv/solver.h"
#include "gemmconv/types.h"

namespace gemmconv {
namespace solvers {

// How the x, w and y sides of a convolution GEMM are stored (see the tables above).
enum class GemmScheme : uint8_t {
  channels_last,
  sample_major,
  group_major,
  implicit,
  winograd,
  winograd_channel_major,
};

// Which tensor of the regular convolution a GEMM operand stands for.
enum class ConvSide : uint8_t { x, w, y };

// One operand of the GEMM: the side it stands for, whether the stored matrix is transposed
// (op(X) = X^T), its leading dimension and its batch stride, in elements.
struct GemmOperand {
  ConvSide side = ConvSide::x;
  bool trans = false;
  int64_t ld = 0;
  int64_t batch_stride = 0;
};

// The implicit scheme reads its operands in place, as views of the tensors (strides in
// elements). GEMM rows are (sample, pixel) pairs; the reduction index is (channel, tap), ordered
// channel-major in the contiguous layout and tap-major in channels-last, so that weight loads run
// along it. Backward data is the forward pass of y with the weight flipped (tap f reads F-1-f).
struct ImplicitView {
  // A: the gathered tensor (x forward, y backward_data).
  int64_t a_sample = 0, a_channel = 0, a_pixel = 0;
  // B: the weight; GEMM column, reduction channel, tap.
  int64_t b_column = 0, b_channel = 0, b_tap = 0;
  bool flip = false;
  bool tap_major = false;
  // C: the written tensor (y forward, x backward_data); sample, GEMM column, pixel.
  int64_t c_sample = 0, c_column = 0, c_pixel = 0;
  int64_t pixels = 0;  // rows per sample: pixels of the written tensor
};

// C_b[m x n] = op(A_b) op(B_b) for b < batch (see GemmDesc); `valid` is false when the scheme
// cannot compute the pass (implicit backward_weight, sample_major with groups).
struct GemmMap {
  bool valid = false;
  GemmScheme scheme = GemmScheme::channels_last;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  GemmOperand a, b, c;
  ImplicitView view;  // implicit scheme only

  // The descriptor for the three sides' buffers (in the scheme's forms): each operand takes the
  // pointer of its side. Batch strides are dropped when batch == 1.
  GemmDesc bind(DataType t, const ConvTensors& sides, double beta = 0.0) const;
};

// The scheme the explicit GEMM solvers use: channels_last for that layout; contiguous with one
// group batches over samples (the weight gradient only where sample_major_weight_gradient says
// so); otherwise over groups. `x_in_place`: the solver reads x itself as the column matrix (a
// 1x1 filter at stride 1), which the group_major weight gradient would have to gather.
GemmScheme explicit_scheme(const ConvShape& s, Direction d, bool x_in_place = false);

// Whether the weight gradient of a contiguous one-group shape is cheaper as per-sample partials
// (sample_major) than as one GEMM over a chunk gathered into [c*F][rows] (group_major). The rule
// and its derivation are in gemm_map.cpp.
bool sample_major_weight_gradient(const ConvShape& s, bool x_in_place);

// The map of pass d of s under a scheme. `rows` counts the (sample, pixel) rows of one chunk
// (for sample_major a multiple of the output pixels; ignored by implicit, which covers the
// whole problem), `transforms` the transform-domain points (winograd only).
GemmMap gemm_map(const ConvShape& s, Direction d, GemmScheme scheme, int64_t rows,
                 int64_t transforms = 1);

}  // namespace solvers
}  // namespace gemmconv
