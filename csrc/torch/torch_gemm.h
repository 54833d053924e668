// A gemmconv::GemmProvider over PyTorch's own BLAS (at::baddbmm on strided views of the operands).
#pragma once

#include <c10/core/Device.h>

#include "gemmconv/gemm.h"

namespace gemmconv_torch {

// Runs every product through ATen on `device`, so it uses whatever BLAS this PyTorch build uses
// (MKL/OpenBLAS on the CPU, cuBLAS or rocBLAS/hipBLASLt on the GPU) on the current stream, under
// the user's torch.backends.cuda.matmul settings. Element types ATen lacks on a device are
// computed in fp32 and narrowed back.
class TorchGemmProvider final : public gemmconv::GemmProvider {
 public:
  explicit TorchGemmProvider(c10::Device device) : device_(device) {}
  const char* name() const override { return "torch"; }
  gemmconv::DeviceKind device() const override;
  gemmconv::Status gemm(const gemmconv::GemmDesc& d, void* stream) override;

 private:
  c10::Device device_;
};

}  // namespace gemmconv_torch
