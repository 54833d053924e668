// Hardware facts in one place: the GPU architecture table, the capabilities of the host, what a
// build can run, and the measured costs that tune solvers per architecture family. Solvers read
// these (through Capabilities); they never probe the device or test build macros themselves.
#pragma once

#include <cstdint>
#include <string>

#include "gemmconv/device.h"

namespace gemmconv {
namespace configs {

// Architecture families that share tuning facts.
enum class ArchFamily : uint8_t {
  cpu,
  nvidia,    // sm_*
  amd_gcn,   // gfx8xx, gfx90x (wave64, no matrix units)
  amd_cdna,  // gfx908, gfx90a, gfx94x, gfx95x (matrix units)
  amd_rdna,  // gfx10xx (wave32, no matrix units), gfx11xx and gfx12xx (WMMA)
  unknown,
};

ArchFamily arch_family(const std::string& arch);

// Whether GPU kernels can run for `caps`: a GPU device and a build that carries the kernels.
bool runs_gpu_kernels(const Capabilities& caps);

// Relative throughputs of the implicit-GEMM block tiles on a full grid (1.0: the best tile).
struct ImplicitGemmTileCosts {
  double t128x128 = 1.0;
  double t128x64 = 1.0;
  double t64x64 = 1.0;
};

// Measured on an H200 (sm_90, ResNet-50 layers, fp32): 128x64 is the best tile there, 64x64 wins
// when 128x64 leaves the SMs short of blocks, and 128x128 never wins. No other family has been
// measured yet; they use the same figures until a measurement says otherwise
// (tests/cpp/test_implicit_gemm.cpp times the tiles).
ImplicitGemmTileCosts implicit_gemm_tile_costs(ArchFamily family);

}  // namespace configs
}  // namespace gemmconv
