// The device runtime of device.h on CUDA or HIP: capabilities, memory, synchronisation and timing.
#include <string>

#include "gemmconv/device.h"
#include "gpu/compat.h"

namespace gemmconv {

bool gpu_support_compiled() { return true; }

int gpu_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: clear the error, report none
    return 0;
  }
  return n;
}

Status query_gpu_capabilities(int device, Capabilities* out) {
  if (out == nullptr)
    return Status(StatusCode::invalid_argument, "query_gpu_capabilities: out is null");
  const int count = gpu_device_count();
  if (device < 0 || device >= count) {
    return Status(StatusCode::invalid_argument, "query_gpu_capabilities: device " +
                                                    std::to_string(device) + " of " +
                                                    std::to_string(count) + " visible");
  }
  cudaDeviceProp prop;
  GEMMCONV_CHECK(cudaGetDeviceProperties(&prop, device));
  Capabilities c;
  c.kind = DeviceKind::gpu;
  c.device_index = device;
  c.name = prop.name;
#ifdef GEMMCONV_HIP
  // "gfx1010:sramecc-:xnack-" -> "gfx1010"
  const std::string arch = prop.gcnArchName;
  c.arch = arch.substr(0, arch.find(':'));
#else
  c.arch = "sm_" + std::to_string(prop.major) + std::to_string(prop.minor);
#endif
  c.warp_size = prop.warpSize;
  c.multiprocessors = prop.multiProcessorCount;
  c.max_threads_per_block = prop.maxThreadsPerBlock;
  c.shared_memory_per_block = prop.sharedMemPerBlock;
  c.global_memory = prop.totalGlobalMem;
  c.matrix_units = arch_has_matrix_units(c.arch);
  *out = c;
  return Status();
}

Status gpu_set_device(int device) {
  GEMMCONV_CHECK(cudaSetDevice(device));
  return Status();
}

Status gpu_malloc(void** ptr, size_t bytes) {
  if (ptr == nullptr) return Status(StatusCode::invalid_argument, "gpu_malloc: ptr is null");
  *ptr = nullptr;
  if (bytes == 0) return Status();
  GEMMCONV_CHECK(cudaMalloc(ptr, bytes));
  return Status();
}

Status gpu_free(void* ptr) {
  if (ptr == nullptr) return Status();
  GEMMCONV_CHECK(cudaFree(ptr));
  return Status();
}

Status gpu_memcpy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return Status();
  GEMMCONV_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  return Status();
}

Status gpu_memcpy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return Status();
  GEMMCONV_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
  return Status();
}

Status gpu_memset(void* dst, int value, size_t bytes) {
  if (bytes == 0) return Status();
  GEMMCONV_CHECK(cudaMemset(dst, value, bytes));
  return Status();
}

Status gpu_synchronize() {
  GEMMCONV_CHECK(cudaDeviceSynchronize());
  return Status();
}

Status gpu_stream_capturing(void* stream, bool* capturing) {
  if (capturing == nullptr) {
    return Status(StatusCode::invalid_argument, "gpu_stream_capturing: out is null");
  }
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const cudaError_t err = cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &status);
  if (err != cudaSuccess) {
    // Cleared, so that no later launch check reports this query's error as its own.
    (void)cudaGetLastError();
    return gpu::runtime_error("cudaStreamIsCapturing", err);
  }
  *capturing = status != cudaStreamCaptureStatusNone;
  return Status();
}

Status gpu_timer_create(GpuTimer* t) {
  if (t == nullptr) return Status(StatusCode::invalid_argument, "gpu_timer_create: timer is null");
  cudaEvent_t a = nullptr, b = nullptr;
  GEMMCONV_CHECK(cudaEventCreate(&a));
  const cudaError_t err = cudaEventCreate(&b);
  if (err != cudaSuccess) {
    (void)cudaEventDestroy(a);
    return gpu::runtime_error("cudaEventCreate", err);
  }
  t->start = a;
  t->stop = b;
  return Status();
}

Status gpu_timer_start(GpuTimer* t, void* stream) {
  if (t == nullptr || t->start == nullptr) {
    return Status(StatusCode::invalid_argument, "gpu_timer_start: timer not created");
  }
  GEMMCONV_CHECK(
      cudaEventRecord(static_cast<cudaEvent_t>(t->start), static_cast<cudaStream_t>(stream)));
  return Status();
}

Status gpu_timer_stop(GpuTimer* t, void* stream, float* ms) {
  if (t == nullptr || t->stop == nullptr || ms == nullptr) {
    return Status(StatusCode::invalid_argument, "gpu_timer_stop: timer not created or ms null");
  }
  GEMMCONV_CHECK(
      cudaEventRecord(static_cast<cudaEvent_t>(t->stop), static_cast<cudaStream_t>(stream)));
  GEMMCONV_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(t->stop)));
  GEMMCONV_CHECK(cudaEventElapsedTime(ms, static_cast<cudaEvent_t>(t->start),
                                      static_cast<cudaEvent_t>(t->stop)));
  return Status();
}

void gpu_timer_destroy(GpuTimer* t) {
  if (t == nullptr) return;
  if (t->start != nullptr) (void)cudaEventDestroy(static_cast<cudaEvent_t>(t->start));
  if (t->stop != nullptr) (void)cudaEventDestroy(static_cast<cudaEvent_t>(t->stop));
  t->start = nullptr;
  t->stop = nullptr;
}

}  // namespace gemmconv
