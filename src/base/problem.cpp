// Validation, output-shape algebra and the canonical regular-convolution shape of a ConvProblem.
#include "gemmconv/problem.h"

#include <functional>
#include <limits>
#include <sstream>

namespace gemmconv {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
// Element counts beyond this would overflow 64-bit byte offsets in some product; no real
// problem comes near it, so it is rejected rather than handled.
constexpr int64_t kMaxElements = int64_t(1) << 56;

Status invalid(const std::string& message) { return Status(StatusCode::invalid_problem, message); }

std::string join(const Dims& d, int n, const char* sep) {
  std::ostringstream s;
  for (int i = 0; i < n; ++i) s << (i ? sep : "") << d[i];
  return s.str();
}

// "(2 x 2)" in PyTorch's style.
std::string paren(const Dims& d, int n) { return "(" + join(d, n, " x ") + ")"; }

int64_t dilated_filter(const ConvProblem& p, int i) {
  return p.dilation[i] * (p.filter_size[i] - 1) + 1;
}

// Multiplies with a saturating check so that absurd sizes are reported, not wrapped.
bool mul_ok(int64_t a, int64_t b, int64_t* out) {
  if (a != 0 && b > kMaxElements / a) return false;
  *out = a * b;
  return true;
}

// The extents of dimension i computed without signed overflow: false when any of them leaves
// int64 (absurd padding, stride or dilation), so that validate() reports it instead of wrapping.
struct Extent {
  int64_t padded = 0;  // input + both paddings (regular problems)
  int64_t kernel = 0;  // dilated filter
  int64_t out = 0;     // output size
};

bool extent_ok(const ConvProblem& p, int i, Extent* e) {
  int64_t t = 0;
  if (__builtin_mul_overflow(p.dilation[i], p.filter_size[i] - 1, &t) ||
      __builtin_add_overflow(t, int64_t(1), &e->kernel)) {
    return false;
  }
  if (p.transposed) {
    // (in - 1) * stride - pad_begin - pad_end + kernel + output_padding
    return !__builtin_mul_overflow(p.input_size[i] - 1, p.stride[i], &t) &&
           !__builtin_sub_overflow(t, p.pad_begin[i], &t) &&
           !__builtin_sub_overflow(t, p.pad_end[i], &t) &&
           !__builtin_add_overflow(t, e->kernel, &t) &&
           !__builtin_add_overflow(t, p.output_padding[i], &e->out);
  }
  if (__builtin_add_overflow(p.input_size[i], p.pad_begin[i], &t) ||
      __builtin_add_overflow(t, p.pad_end[i], &e->padded)) {
    return false;
  }
  const int64_t span = e->padded - e->kernel;  // both non-negative here: cannot overflow
  e->out = (span >= 0 ? span / p.stride[i] : -((-span + p.stride[i] - 1) / p.stride[i])) + 1;
  return true;
}

}  // namespace

bool ConvProblem::operator==(const ConvProblem& o) const {
  return spatial_dims == o.spatial_dims && batch == o.batch && in_channels == o.in_channels &&
         out_channels == o.out_channels && groups == o.groups && input_size == o.input_size &&
         filter_size == o.filter_size && stride == o.stride && dilation == o.dilation &&
         pad_begin == o.pad_begin && pad_end == o.pad_end && output_padding == o.output_padding &&
         transposed == o.transposed && layout == o.layout && dtype == o.dtype;
}

size_t ConvProblemHash::operator()(const ConvProblem& p) const {
  size_t h = 0;
  auto mix = [&h](int64_t v) {
    h ^= std::hash<int64_t>()(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  };
  mix(p.spatial_dims);
  mix(p.batch);
  mix(p.in_channels);
  mix(p.out_channels);
  mix(p.groups);
  for (const Dims* d : {&p.input_size, &p.filter_size, &p.stride, &p.dilation, &p.pad_begin,
                        &p.pad_end, &p.output_padding}) {
    for (int64_t v : *d) mix(v);
  }
  mix(p.transposed);
  mix(static_cast<int64_t>(p.layout));
  mix(static_cast<int64_t>(p.dtype));
  return h;
}

Dims output_size(const ConvProblem& p) {
  Dims out{1, 1, 1};
  for (int i = 0; i < p.spatial_dims && i < kMaxSpatialDims; ++i) {
    if (p.transposed) {
      out[i] = (p.input_size[i] - 1) * p.stride[i] - p.pad_begin[i] - p.pad_end[i] +
               dilated_filter(p, i) + p.output_padding[i];
    } else {
      const int64_t padded = p.input_size[i] + p.pad_begin[i] + p.pad_end[i];
      const int64_t span = padded - dilated_filter(p, i);
      // Floor division that stays right for a negative span (an invalid problem).
      out[i] = (span >= 0 ? span / p.stride[i] : -((-span + p.stride[i] - 1) / p.stride[i])) + 1;
    }
  }
  return out;
}

Status validate(const ConvProblem& p) {
  const int nd = p.spatial_dims;
  if (nd < 1 || nd > kMaxSpatialDims) {
    return invalid("spatial_dims must be 1, 2 or 3, got " + std::to_string(nd));
  }
  if (p.batch < 0) return invalid("batch must be non-negative, got " + std::to_string(p.batch));
  if (p.in_channels <= 0) {
    return invalid("in_channels must be positive, got " + std::to_string(p.in_channels));
  }
  if (p.out_channels <= 0) {
    return invalid("out_channels must be positive, got " + std::to_string(p.out_channels));
  }
  if (p.groups <= 0) {
    return invalid("non-positive groups is not supported (groups = " + std::to_string(p.groups) +
                   ")");
  }
  if (p.in_channels % p.groups != 0) {
    return invalid("in_channels (" + std::to_string(p.in_channels) +
                   ") must be divisible by groups (" + std::to_string(p.groups) + ")");
  }
  if (p.out_channels % p.groups != 0) {
    return invalid("out_channels (" + std::to_string(p.out_channels) +
                   ") must be divisible by groups (" + std::to_string(p.groups) + ")");
  }
  for (int i = 0; i < nd; ++i) {
    const std::string at = "[" + std::to_string(i) + "]";
    if (p.stride[i] <= 0) {
      return invalid("non-positive stride is not supported (stride" + at + " = " +
                     std::to_string(p.stride[i]) + ")");
    }
    if (p.dilation[i] <= 0) {
      return invalid("dilation should be greater than zero (dilation" + at + " = " +
                     std::to_string(p.dilation[i]) + ")");
    }
    if (p.pad_begin[i] < 0 || p.pad_end[i] < 0) {
      return invalid("negative padding is not supported (padding" + at + " = " +
                     std::to_string(p.pad_begin[i] < 0 ? p.pad_begin[i] : p.pad_end[i]) + ")");
    }
    if (p.filter_size[i] <= 0) {
      return invalid("filter size must be positive (filter_size" + at + " = " +
                     std::to_string(p.filter_size[i]) + ")");
    }
    if (p.input_size[i] <= 0) {
      return invalid("input size must be positive (input_size" + at + " = " +
                     std::to_string(p.input_size[i]) + ")");
    }
    if (p.transposed) {
      if (p.output_padding[i] < 0) {
        return invalid("negative output_padding is not supported (output_padding" + at + " = " +
                       std::to_string(p.output_padding[i]) + ")");
      }
      if (p.output_padding[i] >= p.stride[i] && p.output_padding[i] >= p.dilation[i]) {
        return invalid(
            "output padding must be smaller than either stride or dilation, but got "
            "output_padding" +
            at + " = " + std::to_string(p.output_padding[i]) + " with stride " +
            std::to_string(p.stride[i]) + " and dilation " + std::to_string(p.dilation[i]));
      }
    }
  }
  Dims padded{1, 1, 1}, kernel{1, 1, 1}, out{1, 1, 1};
  for (int i = 0; i < nd; ++i) {
    Extent e;
    if (!extent_ok(p, i, &e)) {
      return invalid("problem too large: the sizes of spatial dimension " + std::to_string(i) +
                     " overflow 64-bit arithmetic (input_size " + std::to_string(p.input_size[i]) +
                     ", filter_size " + std::to_string(p.filter_size[i]) + ", stride " +
                     std::to_string(p.stride[i]) + ", padding " + std::to_string(p.pad_begin[i]) +
                     "/" + std::to_string(p.pad_end[i]) + ", dilation " +
                     std::to_string(p.dilation[i]) + ")");
    }
    padded[i] = e.padded;
    kernel[i] = e.kernel;
    out[i] = e.out;
  }
  if (!p.transposed) {
    bool too_big = false;
    for (int i = 0; i < nd; ++i) too_big = too_big || kernel[i] > padded[i];
    if (too_big) {
      return invalid("Calculated padded input size per channel: " + paren(padded, nd) +
                     ". Kernel size: " + paren(kernel, nd) +
                     ". Kernel size can't be greater than actual input size");
    }
  }
  for (int i = 0; i < nd; ++i) {
    if (out[i] <= 0) {
      return invalid("Given input size per channel: " + paren(p.input_size, nd) +
                     ". Calculated output size per channel: " + paren(out, nd) +
                     ". Output size is too small");
    }
  }
  // Every tensor's element count must fit comfortably in 64 bits.
  int64_t in_pix = 1, out_pix = 1, filt = 1;
  for (int i = 0; i < nd; ++i) {
    if (!mul_ok(in_pix, p.input_size[i], &in_pix) || !mul_ok(out_pix, out[i], &out_pix) ||
        !mul_ok(filt, p.filter_size[i], &filt)) {
      return invalid("problem too large: spatial sizes overflow 64-bit indexing");
    }
  }
  int64_t t = 0;
  if (!mul_ok(p.batch, p.in_channels, &t) || !mul_ok(t, in_pix, &t) ||
      !mul_ok(p.batch, p.out_channels, &t) || !mul_ok(t, out_pix, &t) ||
      !mul_ok(p.in_channels, p.out_channels, &t) || !mul_ok(t, filt, &t) ||
      !mul_ok(p.in_channels, filt, &t) || !mul_ok(t, std::max(in_pix, out_pix), &t)) {
    return invalid("problem too large: tensor sizes overflow 64-bit indexing");
  }
  return Status::success();
}

int64_t input_elements(const ConvProblem& p) {
  int64_t e = p.batch * p.in_channels;
  for (int i = 0; i < p.spatial_dims; ++i) e *= p.input_size[i];
  return e;
}

int64_t weight_elements(const ConvProblem& p) {
  int64_t e = p.in_channels * (p.out_channels / p.groups);
  for (int i = 0; i < p.spatial_dims; ++i) e *= p.filter_size[i];
  return e;
}

int64_t output_pixels(const ConvProblem& p) {
  const Dims out = output_size(p);
  int64_t e = 1;
  for (int i = 0; i < p.spatial_dims; ++i) e *= out[i];
  return e;
}

int64_t output_elements(const ConvProblem& p) {
  return p.batch * p.out_channels * output_pixels(p);
}

std::string to_string(const ConvProblem& p) {
  const int nd = p.spatial_dims >= 1 && p.spatial_dims <= kMaxSpatialDims ? p.spatial_dims : 3;
  std::ostringstream s;
  s << (p.transposed ? "conv_transpose" : "conv") << nd << "d n=" << p.batch
    << " c=" << p.in_channels << " k=" << p.out_channels << " in=" << join(p.input_size, nd, "x")
    << " filter=" << join(p.filter_size, nd, "x") << " stride=" << join(p.stride, nd, "x")
    << " pad=" << join(p.pad_begin, nd, "x") << "/" << join(p.pad_end, nd, "x")
    << " dilation=" << join(p.dilation, nd, "x") << " groups=" << p.groups;
  if (p.transposed) s << " output_padding=" << join(p.output_padding, nd, "x");
  s << " " << to_string(p.layout) << " " << to_string(p.dtype);
  return s.str();
}

bool ConvShape::is_1x1_unit() const {
  for (int i = 0; i < kMaxSpatialDims; ++i) {
    if (filt[i] != 1 || stride[i] != 1 || pad[i] != 0) return false;
  }
  return true;
}

ConvShape canonical_shape(const ConvProblem& p) {
  ConvShape s;
  const int nd = p.spatial_dims;
  const Dims out = output_size(p);
  s.n = p.batch;
  s.g = p.groups;
  // Regular x is the user's input, or the user's output for a transposed problem.
  s.c = p.transposed ? p.out_channels : p.in_channels;
  s.k = p.transposed ? p.in_channels : p.out_channels;
  for (int i = 0; i < nd; ++i) {
    const int j = kMaxSpatialDims - nd + i;
    s.in[j] = p.transposed ? out[i] : p.input_size[i];
    s.out[j] = p.transposed ? p.input_size[i] : out[i];
    s.filt[j] = p.filter_size[i];
    s.stride[j] = p.stride[i];
    s.dilation[j] = p.dilation[i];
    s.pad[j] = p.pad_begin[i];
  }
  s.layout = p.layout;
  s.dtype = p.dtype;
  // The largest buffer a solver indexes: x, w, y, or one sample's column matrix.
  const int64_t one_sample_col = s.c * s.filt_pixels() * s.out_pixels();
  const int64_t biggest =
      std::max(std::max(s.x_elements(), s.y_elements()), std::max(s.w_elements(), one_sample_col));
  s.index64 = biggest > kInt32Max;
  return s;
}

Direction regular_direction(const ConvProblem& p, Direction d) {
  if (!p.transposed) return d;
  switch (d) {
    case Direction::forward:
      return Direction::backward_data;
    case Direction::backward_data:
      return Direction::forward;
    default:
      return d;
  }
}

}  // namespace gemmconv
