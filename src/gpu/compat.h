// The one vendor shim: GPU code is written with CUDA names, which map to HIP under hipcc.
#pragma once

#include <string>

#include "gemmconv/types.h"

// GEMMCONV_HIP is the one name for "built for AMD through HIP": defined here under hipcc/clang HIP,
// and by the build (setup.py) for host files of a ROCm build.
#if defined(GEMMCONV_HIP) || defined(__HIP_PLATFORM_AMD__) || defined(__HIPCC__)

#include <hip/hip_bfloat16.h>
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>

#ifndef GEMMCONV_HIP
#define GEMMCONV_HIP 1
#endif

#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaStream_t hipStream_t
#define cudaEvent_t hipEvent_t
#define cudaDeviceProp hipDeviceProp_t
#define cudaGetErrorString hipGetErrorString
#define cudaGetLastError hipGetLastError
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaGetDevice hipGetDevice
#define cudaSetDevice hipSetDevice
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMemcpy hipMemcpy
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaMemset hipMemset
#define cudaMemsetAsync hipMemsetAsync
#define cudaDeviceSynchronize hipDeviceSynchronize
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaEventCreate hipEventCreate
#define cudaEventDestroy hipEventDestroy
#define cudaEventRecord hipEventRecord
#define cudaEventSynchronize hipEventSynchronize
#define cudaEventElapsedTime hipEventElapsedTime
#define cudaStreamIsCapturing hipStreamIsCapturing
#define cudaStreamCaptureStatus hipStreamCaptureStatus
#define cudaStreamCaptureStatusNone hipStreamCaptureStatusNone

namespace gemmconv {
namespace gpu {
using half_t = __half;
using bfloat16_t = hip_bfloat16;  // HIP 5.2: a struct with float conversions
}  // namespace gpu
}  // namespace gemmconv

#else  // CUDA

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace gemmconv {
namespace gpu {
using half_t = __half;
using bfloat16_t = __nv_bfloat16;
}  // namespace gpu
}  // namespace gemmconv

#endif

static_assert(sizeof(gemmconv::gpu::half_t) == 2, "fp16 storage is two bytes");
static_assert(sizeof(gemmconv::gpu::bfloat16_t) == 2, "bf16 storage is two bytes");

namespace gemmconv {
namespace gpu {

inline Status runtime_error(const char* call, cudaError_t err) {
  return Status(StatusCode::device_error,
                std::string(call) + " failed: " + cudaGetErrorString(err));
}

}  // namespace gpu
}  // namespace gemmconv

// Returns a device_error Status naming the call and the runtime's message when `call` fails.
#define GEMMCONV_CHECK(call)                                                           \
  do {                                                                                 \
    cudaError_t gc_err_ = (call);                                                      \
    if (gc_err_ != cudaSuccess) return ::gemmconv::gpu::runtime_error(#call, gc_err_); \
  } while (0)

// After a kernel launch: returns a device_error Status naming the kernel if the launch failed.
#define GEMMCONV_CHECK_LAUNCH(name)                                                   \
  do {                                                                                \
    cudaError_t gc_err_ = cudaGetLastError();                                         \
    if (gc_err_ != cudaSuccess) return ::gemmconv::gpu::runtime_error(name, gc_err_); \
  } while (0)
