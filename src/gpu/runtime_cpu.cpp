// Host capabilities, and the GPU runtime as "unsupported" stubs in builds without GPU support.
#include <cstdlib>
#include <memory>
#include <thread>

#include "gemmconv/device.h"
#include "gemmconv/gemm.h"

namespace gemmconv {

bool arch_has_matrix_units(const std::string& a) {
  if (a.rfind("sm_", 0) == 0) return std::atoi(a.c_str() + 3) >= 70;
  for (const char* prefix : {"gfx908", "gfx90a", "gfx94", "gfx95", "gfx11", "gfx12"}) {
    if (a.rfind(prefix, 0) == 0) return true;
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

#ifndef GEMMCONV_WITH_GPU

namespace {
Status no_gpu(const char* what) {
  return Status(StatusCode::unsupported, std::string(what) + ": this build has no GPU support");
}
}  // namespace

bool gpu_build() { return false; }
int gpu_device_count() { return 0; }
Status query_gpu_capabilities(int, Capabilities*) { return no_gpu("query_gpu_capabilities"); }
Status gpu_set_device(int) { return no_gpu("gpu_set_device"); }
Status gpu_malloc(void** ptr, size_t) {
  if (ptr != nullptr) *ptr = nullptr;
  return no_gpu("gpu_malloc");
}
Status gpu_free(void* ptr) {
  if (ptr == nullptr) return Status();
  return no_gpu("gpu_free");
}
Status gpu_memcpy_to_device(void*, const void*, size_t) { return no_gpu("gpu_memcpy_to_device"); }
Status gpu_memcpy_to_host(void*, const void*, size_t) { return no_gpu("gpu_memcpy_to_host"); }
Status gpu_memset(void*, int, size_t) { return no_gpu("gpu_memset"); }
Status gpu_synchronize() { return no_gpu("gpu_synchronize"); }
Status gpu_timer_create(GpuTimer*) { return no_gpu("gpu_timer_create"); }
Status gpu_timer_start(GpuTimer*, void*) { return no_gpu("gpu_timer_start"); }
Status gpu_timer_stop(GpuTimer*, void*, float* ms) {
  if (ms != nullptr) *ms = 0.0f;
  return no_gpu("gpu_timer_stop");
}
void gpu_timer_destroy(GpuTimer*) {}

std::unique_ptr<GemmProvider> make_gpu_gemm_provider(bool) { return nullptr; }

#endif  // GEMMCONV_WITH_GPU

}  // namespace gemmconv
