// Tensor arguments of aten::convolution -> gemmconv::ConvProblem, with PyTorch's own argument
// checks.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/MemoryFormat.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <vector>

#include "gemmconv/problem.h"

namespace gemmconv_torch {

// The convolution hyper-parameters exactly as aten::convolution receives them.
struct ConvArgs {
  c10::IntArrayRef stride;
  c10::IntArrayRef padding;
  c10::IntArrayRef dilation;
  bool transposed = false;
  c10::IntArrayRef output_padding;
  int64_t groups = 1;
};

// A checked call, ready for the engine.
struct Adapted {
  gemmconv::ConvProblem problem;
  c10::MemoryFormat memory_format = c10::MemoryFormat::Contiguous;  // of every tensor handed in
  std::vector<int64_t> output_shape;  // the user's output (PyTorch's shape, channels included)
};

// True for the element types the engine computes in (f32, f16, bf16, f64).
bool engine_dtype(c10::ScalarType t);

// Checks a forward call the way aten::_convolution does, with PyTorch's wording, and describes it.
// `bias` may be undefined.
Adapted adapt_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                      const ConvArgs& args);

// Checks a convolution_backward call (convolution_backward's checks plus grad_output's shape).
Adapted adapt_backward(const at::Tensor& grad_output, const at::Tensor& input,
                       const at::Tensor& weight, const ConvArgs& args);

}  // namespace gemmconv_torch
