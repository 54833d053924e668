// Hardware facts in one place: the GPU architecture table, the capabilities of the host, what a
// build can run, and the measured costs that tune solvers per architecture family. Solvers read
// these (through Capabilities); they never probe the device or test build macros themselves.
#pragma once

#include <cstdint>
#include <string>

#include "gemmconv/device.h"
#include "gemmconv/types.h"

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

// The machine balance of a GPU for cost estimates that weigh memory traffic against arithmetic:
// the GEMM provider's rate at a dtype divided by the DRAM bandwidth, in flops per byte moved.
// From the data sheets (rates a large GEMM reaches, bandwidth a streaming kernel reaches):
//   nvidia   fp32 12: H200 some 50 TFLOP/s SGEMM over some 4.2 TB/s.
//   amd_rdna fp32 22: RX 5700 XT (gfx1010) 9.75 TFLOP/s over 448 GB/s.
//   amd_cdna fp32 15: MI210/MI250 about 45 TFLOP/s (packed) over some 3 TB/s.
//   amd_gcn  fp32 26: Vega 64 12.6 TFLOP/s over 484 GB/s.
//   unknown  fp32 15.
// f16 and bf16 GEMMs run 10 times faster than fp32 on matrix units (tensor cores, measured on the
// H200: cuBLAS fp16 against fp32 on the ResNet-50 layers) and twice as fast without them (packed
// half arithmetic, RDNA1); f64 is taken at the fp32 rate. Estimates: bench/winograd.sh measures
// the decisions built on them, and the on-device find step times the candidates anyway.
double gemm_flops_per_byte(const Capabilities& caps, DataType t);

}  // namespace configs
}  // namespace gemmconv
