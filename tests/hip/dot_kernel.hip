// A kernel that uses a dot instruction (v_dot4*_i32_i8), which gfx1030 has and gfx1010 lacks. It is
// compiled for plain gfx1030 only, as a fixture that the ISA audit must reject
// (python/gemmconv/diagnosis/isa_audit.py); it is never linked into anything.
#include <hip/hip_runtime.h>

__global__ void gemmconv_audit_dot4(const int* a, const int* b, int* c, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) c[i] = __builtin_amdgcn_sdot4(a[i], b[i], c[i], false);
}
