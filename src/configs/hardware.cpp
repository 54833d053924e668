// Hardware facts in one place (see hardware.h): the architecture table and host capabilities.
#include "configs/hardware.h"

#include <cstdlib>
#include <thread>

namespace gemmconv {

namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

bool arch_has_matrix_units(const std::string& a) {
  if (starts_with(a, "sm_")) return std::atoi(a.c_str() + 3) >= 70;
  for (const char* prefix : {"gfx908", "gfx90a", "gfx94", "gfx95", "gfx11", "gfx12"}) {
    if (starts_with(a, prefix)) return true;
  }
  return false;
}

Capabilities cpu_capabilities() {
  Capabilities c;
  c.kind = DeviceKind::cpu;
  c.device_index = 0;
  c.name = "cpu";
#if defined(__x86_64__) || defined(_M_X64)
  c.arch = "x86_64";
#elif defined(__aarch64__) || defined(_M_ARM64)
  c.arch = "aarch64";
#elif defined(__powerpc64__)
  c.arch = "ppc64";
#else
  c.arch = "unknown";
#endif
  c.warp_size = 1;
  const unsigned hw = std::thread::hardware_concurrency();
  c.multiprocessors = hw > 0 ? static_cast<int>(hw) : 1;
  c.max_threads_per_block = 1;
  c.shared_memory_per_block = 0;
  c.global_memory = 0;
  return c;
}

namespace configs {

ArchFamily arch_family(const std::string& a) {
  if (starts_with(a, "sm_")) return ArchFamily::nvidia;
  if (starts_with(a, "gfx10") || starts_with(a, "gfx11") || starts_with(a, "gfx12")) {
    return ArchFamily::amd_rdna;
  }
  if (starts_with(a, "gfx908") || starts_with(a, "gfx90a") || starts_with(a, "gfx94") ||
      starts_with(a, "gfx95")) {
    return ArchFamily::amd_cdna;
  }
  if (starts_with(a, "gfx")) return ArchFamily::amd_gcn;
  if (a == "x86_64" || a == "aarch64" || a == "ppc64") return ArchFamily::cpu;
  return ArchFamily::unknown;
}

bool runs_gpu_kernels(const Capabilities& caps) {
  return caps.kind == DeviceKind::gpu && gpu_support_compiled();
}

ImplicitGemmTileCosts implicit_gemm_tile_costs(ArchFamily) {
  ImplicitGemmTileCosts c;
  c.t128x128 = 0.6;
  c.t128x64 = 1.0;
  c.t64x64 = 0.85;
  return c;
}

double gemm_flops_per_byte(const Capabilities& caps, DataType t) {
  double fp32 = 15.0;
  switch (arch_family(caps.arch)) {
    case ArchFamily::nvidia:
      fp32 = 12.0;
      break;
    case ArchFamily::amd_rdna:
      fp32 = 22.0;
      break;
    case ArchFamily::amd_cdna:
      fp32 = 15.0;
      break;
    case ArchFamily::amd_gcn:
      fp32 = 26.0;
      break;
    case ArchFamily::cpu:
    case ArchFamily::unknown:
      break;
  }
  if (t == DataType::f16 || t == DataType::bf16) return fp32 * (caps.matrix_units ? 10.0 : 2.0);
  return fp32;
}

}  // namespace configs
}  // namespace gemmconv
