// The switches of the aten convolution overrides, shared by the kernels and the Python module.
#pragma once

namespace gemmconv_torch {

enum class Route { cpu, gpu };  // gpu: PyTorch's "cuda" device type, which HIP devices share

// When a route is off its kernels call PyTorch's own implementation.
void set_enabled(Route r, bool on);
bool is_enabled(Route r);

// True when the CUDA/HIP kernels were compiled in and registered.
bool gpu_build();

}  // namespace gemmconv_torch
