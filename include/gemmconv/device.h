// Hardware facts, filled once per device, and the few runtime calls the driver and tests need.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "gemmconv/types.h"

namespace gemmconv {

// Solvers read these; they never probe the device themselves.
struct Capabilities {
  DeviceKind kind = DeviceKind::cpu;
  int device_index = 0;
  std::string name = "cpu";
  std::string arch;         // "sm_90", "gfx1010", "x86_64"
  int warp_size = 1;        // 32 or 64 on GPUs; never assume either in shared code
  int multiprocessors = 1;  // SMs / CUs; CPU: hardware threads
  int max_threads_per_block = 1;
  size_t shared_memory_per_block = 0;
  size_t global_memory = 0;
  // Tensor cores / MFMA / WMMA: where present the vendor BLAS beats SIMT kernels in f16/bf16.
  bool matrix_units = false;
};

// Whether a GPU architecture name ("sm_90", "gfx1010") has matrix units; the one table of it
// (src/configs/hardware.cpp, with the other hardware facts).
bool arch_has_matrix_units(const std::string& arch);

Capabilities cpu_capabilities();

// True when GPU support (kernels and runtime) was compiled into this build; gpu_device_count says
// whether a GPU is visible.
bool gpu_support_compiled();
int gpu_device_count();
Status query_gpu_capabilities(int device, Capabilities* out);

// Thin wrappers over the vendor runtime (cuda*/hip*), all returning device_error with the
// runtime's message on failure and unsupported in a CPU-only build.
Status gpu_set_device(int device);
Status gpu_malloc(void** ptr, size_t bytes);
Status gpu_free(void* ptr);
Status gpu_memcpy_to_device(void* dst, const void* src, size_t bytes);
Status gpu_memcpy_to_host(void* dst, const void* src, size_t bytes);
Status gpu_memset(void* dst, int value, size_t bytes);
Status gpu_synchronize();
// Whether `stream` is being captured into a CUDA/HIP graph (nothing may synchronise or time it).
Status gpu_stream_capturing(void* stream, bool* capturing);
// Device-event timing of `reps` calls of `fn` on the default stream, in milliseconds each.
// Used by the driver's --time.
struct GpuTimer {
  void* start = nullptr;
  void* stop = nullptr;
};
Status gpu_timer_create(GpuTimer* t);
Status gpu_timer_start(GpuTimer* t, void* stream);
Status gpu_timer_stop(GpuTimer* t, void* stream, float* ms);
void gpu_timer_destroy(GpuTimer* t);

}  // namespace gemmconv
