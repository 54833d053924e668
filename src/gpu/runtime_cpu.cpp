// The GPU runtime as "unsupported" stubs in builds without GPU support.
#include <memory>
#include <string>

#include "gemmconv/device.h"
#include "gemmconv/gemm.h"

namespace gemmconv {

#ifndef GEMMCONV_WITH_GPU

namespace {
Status no_gpu(const char* what) {
  return Status(StatusCode::unsupported, std::string(what) + ": this build has no GPU support");
}
}  // namespace

bool gpu_support_compiled() { return false; }
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
Status gpu_stream_capturing(void*, bool* capturing) {
  if (capturing != nullptr) *capturing = false;
  return no_gpu("gpu_stream_capturing");
}
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
