// The convolution problem as the user states it, its validation and output-shape algebra, and the
// canonical 3-D regular-convolution shape that every solver works on.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "gemmconv/types.h"

namespace gemmconv {

constexpr int kMaxSpatialDims = 3;
using Dims = std::array<int64_t, kMaxSpatialDims>;

// One convolution layer in PyTorch's terms. Only the first `spatial_dims` entries of each Dims
// are meaningful; the rest are ignored (and normalised to 1/0 by `canonical_shape`).
//
// Tensor shapes (contiguous layout; channels-last moves C last):
//   input  [batch, in_channels, input_size...]
//   weight regular:    [out_channels, in_channels / groups, filter_size...]
//          transposed: [in_channels, out_channels / groups, filter_size...]
//   output [batch, out_channels, output_size(problem)...]
//   bias   [out_channels]
struct ConvProblem {
  int spatial_dims = 2;
  int64_t batch = 1;
  int64_t in_channels = 1;
  int64_t out_channels = 1;
  int64_t groups = 1;
  Dims input_size{1, 1, 1};
  Dims filter_size{1, 1, 1};
  Dims stride{1, 1, 1};
  Dims dilation{1, 1, 1};
  Dims pad_begin{0, 0, 0};
  Dims pad_end{0, 0, 0};
  Dims output_padding{0, 0, 0};  // transposed only
  bool transposed = false;
  Layout layout = Layout::contiguous;
  DataType dtype = DataType::f32;

  bool operator==(const ConvProblem& o) const;
  bool operator!=(const ConvProblem& o) const { return !(*this == o); }
};

struct ConvProblemHash {
  size_t operator()(const ConvProblem& p) const;
};

// Returns ok, or invalid_problem with a message naming the offending value (PyTorch's wording
// where PyTorch has one). An empty batch is valid.
Status validate(const ConvProblem& p);

// Spatial size of the output tensor. Only meaningful for a problem that validates.
Dims output_size(const ConvProblem& p);

// Spatial positions per channel of the output tensor (the product of output_size).
int64_t output_pixels(const ConvProblem& p);

// Element counts of the user's tensors.
int64_t input_elements(const ConvProblem& p);
int64_t weight_elements(const ConvProblem& p);
int64_t output_elements(const ConvProblem& p);

// Human-readable one-line description, e.g.
// "conv2d n=32 c=64 k=64 in=56x56 filter=3x3 stride=1x1 pad=1x1/1x1 dilation=1x1 groups=1
// contiguous f32".
std::string to_string(const ConvProblem& p);

// The regular convolution every solver computes:
//   x [n, c, in...] (*) w [k, c/g, filt...] -> y [n, k, out...]
// always 3-D (D,H,W): lower ranks are padded with leading size-1 dimensions. A transposed user
// problem maps onto it by duality: the user's output is x, the user's input is y, and the
// user's forward pass is the regular backward-data pass (see `regular_direction`).
struct ConvShape {
  int64_t n = 0, c = 0, k = 0, g = 1;
  Dims in{1, 1, 1};
  Dims filt{1, 1, 1};
  Dims out{1, 1, 1};
  Dims stride{1, 1, 1};
  Dims dilation{1, 1, 1};
  Dims pad{0, 0, 0};  // leading padding; trailing padding is implied by `out`
  Layout layout = Layout::contiguous;
  DataType dtype = DataType::f32;
  // True when some element offset of x, w, y or a solver's column buffer may exceed 2^31 - 1, so
  // kernels must index with 64-bit integers.
  bool index64 = false;

  int64_t cg() const { return c / g; }
  int64_t kg() const { return k / g; }
  int64_t in_pixels() const { return in[0] * in[1] * in[2]; }
  int64_t out_pixels() const { return out[0] * out[1] * out[2]; }
  int64_t filt_pixels() const { return filt[0] * filt[1] * filt[2]; }
  int64_t x_elements() const { return n * c * in_pixels(); }
  int64_t w_elements() const { return k * cg() * filt_pixels(); }
  int64_t y_elements() const { return n * k * out_pixels(); }
  bool is_1x1_unit() const;  // 1x1x1 filter, stride 1, no padding: x is already the column matrix
};

ConvShape canonical_shape(const ConvProblem& p);

// The regular-convolution pass that computes the user's pass `d` (backward_bias maps to itself).
Direction regular_direction(const ConvProblem& p, Direction d);

}  // namespace gemmconv
