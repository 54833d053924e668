// The switches of the aten convolution overrides, shared by the kernels and the Python module.
#pragma once

namespace gemmconv_torch {

enum class Route { cpu, gpu };  // gpu: PyTorch's "cuda" device type, which HIP devices share

// When a route is off its kernels call PyTorch's own implementation.
void set_enabled(Route r, bool on);
bool is_enabled(Route r);

// True when this extension was built with its CUDA/HIP kernels, which it registers with PyTorch for
// "cuda" tensors (whether a GPU is visible is not asked).
bool gpu_kernels_registered();

}  // namespace gemmconv_torch
