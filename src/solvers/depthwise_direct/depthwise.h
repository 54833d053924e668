// Internal declarations of the depthwise_direct solver: its accessor, the weight-gradient split
// and the CPU and GPU back ends.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gemmconv/problem.h"
#include "gemmconv/solver.h"
#include "gemmconv/types.h"

namespace gemmconv {

const Solver& depthwise_direct_solver();

namespace depthwise {

// Depthwise: one input channel per group (cg == 1), any channel multiplier k / g.
bool is_depthwise(const ConvShape& s);

// How the GPU weight gradient is reduced: `splits` fixed, contiguous parts of the reduction
// (over samples and output pixels), each summed into its own slice of `partials` in the
// accumulator type, then summed over the parts in order. One part writes w directly.
struct WeightSplit {
  int64_t splits = 1;
  size_t bytes = 0;  // workspace for the partial sums (0 when splits == 1)
};

// A function of the shape and the budget alone, so that planning and running agree.
WeightSplit weight_split(const ConvShape& s, size_t budget);

// Channels of a channels-last tile: a divisor-friendly width so that few threads idle.
int channel_tile(int64_t channels);

namespace cpu {
Status run(const ConvShape& s, Direction d, const ConvTensors& t);
}  // namespace cpu

#ifdef GEMMCONV_WITH_GPU
namespace gpu {
Status run(const ConvShape& s, Direction d, const ConvTensors& t, const ExecContext& ctx,
           const WeightSplit& split);
}  // namespace gpu
#endif

}  // namespace depthwise
}  // namespace gemmconv
