// The implicit-GEMM solver: its accessor, its tile configurations and its GPU launcher.
#pragma once

#include "configs/hardware.h"
#include "gemmconv/problem.h"
#include "gemmconv/solver.h"
#include "gemmconv/types.h"

namespace gemmconv {

const Solver& implicit_gemm_solver();

namespace implicit_gemm {

// Block tiles (rows of output pixels x columns of output channels). Every configuration sums
// each output element in the same order, so all of them give bitwise identical results.
enum class Tile { t128x128, t128x64, t64x64 };

// Forward (any stride) or backward_data (stride 1, through the flipped weight).
bool supports(const ConvShape& s, Direction d);

// The tile the launcher uses for `s` on a device with `multiprocessors` SMs / CUs, by the tile
// costs of its architecture family (src/configs/hardware.h).
Tile pick_tile(const ConvShape& s, Direction d, int multiprocessors,
               configs::ArchFamily family = configs::ArchFamily::nvidia);

// Enqueues the pass on ctx.stream with the given tile. Requires supports(s, d).
Status launch(const ExecContext& ctx, const ConvShape& s, Direction d, const ConvTensors& t,
              Tile tile);

}  // namespace implicit_gemm
}  // namespace gemmconv
