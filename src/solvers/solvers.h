// Accessors of the built-in solvers and the chunk plans they use (exposed for contract tests).
#pragma once

#include <cstddef>
#include <cstdint>

#include "gemmconv/problem.h"
#include "gemmconv/solver.h"
#include "gemmconv/types.h"
#include "solvers/common.h"

namespace gemmconv {

const Solver& depthwise_direct_solver();
const Solver& gemm_1x1_solver();
const Solver& implicit_gemm_solver();
const Solver& im2col_gemm_solver();
const Solver& reference_solver();
const Solver& winograd_gemm_solver();

// The chunking each GEMM solver plans with under a budget; chunk 0: not applicable. The 1x1
// solver counts rows of n*P in its no-gather channels-last path and samples elsewhere.
solvers::ChunkPlan gemm_1x1_chunk_plan(const ConvShape& s, Direction d, size_t budget);
solvers::ChunkPlan im2col_gemm_chunk_plan(const ConvShape& s, Direction d, size_t budget);
solvers::ChunkPlan winograd_gemm_chunk_plan(const ConvShape& s, Direction d, size_t budget);

}  // namespace gemmconv
