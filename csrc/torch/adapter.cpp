// Tensor arguments of aten::convolution -> gemmconv::ConvProblem, with PyTorch's own argument
// checks.
#include "adapter.h"

#include <c10/util/Exception.h>

#include <sstream>
#include <string>

namespace gemmconv_torch {
namespace {

// The override bypasses aten::_convolution, so its checks are repeated here, in its order and with
// its wording, so that a bad call fails the same way whether gemmconv is enabled or not.

std::vector<int64_t> expand_param(c10::IntArrayRef list, const char* name, int64_t dim) {
  if (list.size() == 1) return std::vector<int64_t>(static_cast<size_t>(dim), list[0]);
  TORCH_CHECK(static_cast<int64_t>(list.size()) == dim, "expected ", name,
              " to be a single integer value or a list of ", dim,
              " values to match the convolution dimensions, but got ", name, "=", list);
  return list.vec();
}

std::string joined(const std::vector<int64_t>& v, const char* separator) {
  std::ostringstream ss;
  for (size_t i = 0; i < v.size(); ++i) ss << (i ? separator : "") << v[i];
  return ss.str();
}

std::string same_device_message(const at::Tensor& a, const at::Tensor& b, const char* name) {
  std::ostringstream ss;
  ss << "Expected all tensors to be on the same device, but found at least two devices, "
     << a.device() << " and " << b.device() << "! (when checking argument for argument " << name
     << " in method gemmconv convolution)";
  return ss.str();
}

struct Params {
  int64_t dim = 0;  // spatial dimensions
  std::vector<int64_t> stride, padding, dilation, output_padding;
  bool transposed = false;
  int64_t groups = 1;
};

Params expand_all(const at::Tensor& weight, const ConvArgs& a) {
  Params p;
  p.dim = weight.dim() - 2;
  TORCH_CHECK(p.dim > 0, "weight should have at least three dimensions");
  TORCH_CHECK(a.groups > 0, "non-positive groups is not supported");
  p.stride = expand_param(a.stride, "stride", p.dim);
  p.padding = expand_param(a.padding, "padding", p.dim);
  p.dilation = expand_param(a.dilation, "dilation", p.dim);
  p.output_padding = expand_param(a.output_padding, "output_padding", p.dim);
  p.transposed = a.transposed;
  p.groups = a.groups;
  return p;
}

// Sizes PyTorch would compute with wrapping int64 arithmetic (huge padding, stride or dilation)
// are refused instead, naming the parameters.
[[noreturn]] void overflow_error(const at::Tensor& input, const at::Tensor& weight,
                                 const Params& p) {
  TORCH_CHECK(false, "gemmconv: the sizes of this convolution overflow 64-bit arithmetic (input ",
              input.sizes(), ", weight ", weight.sizes(), ", stride=", c10::IntArrayRef(p.stride),
              ", padding=", c10::IntArrayRef(p.padding),
              ", dilation=", c10::IntArrayRef(p.dilation),
              ", output_padding=", c10::IntArrayRef(p.output_padding), ")");
}

bool any_of(const std::vector<int64_t>& v, bool (*pred)(int64_t)) {
  for (int64_t x : v)
    if (pred(x)) return true;
  return false;
}

void check_shape_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                         const Params& p) {
  const int64_t k = input.dim();
  const auto ws = weight.sizes();
  const int64_t groups = p.groups;
  TORCH_CHECK(!any_of(p.padding, [](int64_t x) { return x < 0; }),
              "negative padding is not supported");
  TORCH_CHECK(!any_of(p.output_padding, [](int64_t x) { return x < 0; }),
              "negative output_padding is not supported");
  TORCH_CHECK(!any_of(p.stride, [](int64_t x) { return x <= 0; }),
              "non-positive stride is not supported");
  TORCH_CHECK(weight.dim() == k, "Expected ", weight.dim(), "-dimensional input for ", weight.dim(),
              "-dimensional weight ", ws, ", but got ", k, "-dimensional input of size ",
              input.sizes(), " instead");
  TORCH_CHECK(ws[0] >= groups, "Given groups=", groups, ", expected weight to be at least ", groups,
              " at dimension 0, but got weight of size ", ws, " instead");
  TORCH_CHECK(ws[0] % groups == 0, "Given groups=", groups, ", expected weight to be divisible by ",
              groups, " at dimension 0, but got weight of size [", ws, "] instead");

  if (!p.transposed) {
    TORCH_CHECK(input.size(1) == ws[1] * groups, "Given groups=", groups, ", weight of size ", ws,
                ", expected input", input.sizes(), " to have ", ws[1] * groups,
                " channels, but got ", input.size(1), " channels instead");
    TORCH_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == ws[0]),
                "Given weight of size ", ws, ", expected bias to be 1-dimensional with ", ws[0],
                " elements", ", but got bias of size ", bias.sizes(), " instead");
    std::vector<int64_t> padded, kernel;
    bool fits = true;
    for (int64_t i = 2; i < k; ++i) {
      const size_t d = static_cast<size_t>(i - 2);
      int64_t in_padded = 0, span = 0;
      if (__builtin_mul_overflow(p.padding[d], int64_t(2), &in_padded) ||
          __builtin_add_overflow(in_padded, input.size(i), &in_padded) ||
          __builtin_mul_overflow(p.dilation[d], ws[i] - 1, &span) ||
          __builtin_add_overflow(span, int64_t(1), &span)) {
        overflow_error(input, weight, p);
      }
      padded.push_back(in_padded);
      kernel.push_back(span);
      if (padded.back() < kernel.back()) fits = false;
    }
    TORCH_CHECK(fits, "Calculated padded input size per channel: (", joined(padded, " x "),
                "). Kernel size: (", joined(kernel, " x "),
                "). Kernel size can't be greater than actual input size");
  } else {
    TORCH_CHECK(input.size(1) == ws[0], "Given transposed=", p.transposed, ", weight of size ", ws,
                ", expected input", input.sizes(), " to have ", ws[0], " channels, but got ",
                input.size(1), " channels instead");
    TORCH_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == ws[1] * groups),
                "Given transposed=", p.transposed, ", weight of size ", ws,
                ", expected bias to be 1-dimensional with ", ws[1] * groups, " elements",
                ", but got bias of size ", bias.sizes(), " instead");
  }
}

void check_same_device(const at::Tensor& input, const at::Tensor& other, const char* name) {
  if (other.defined() && other.device() != input.device()) {
    TORCH_CHECK(false, same_device_message(input, other, name));
  }
}

// PyTorch's wording differs by device: its CPU kernels read the weight as the input's type
// ("expected scalar type Float but found Double"), cuDNN names both tensor types; a bias of another
// type is refused by conv*d itself, naming the element types ("Input type (float) and bias type
// (double) should be the same").
void check_same_type(const at::Tensor& input, const at::Tensor& other, const char* what,
                     const Params& p) {
  if (!other.defined() || input.scalar_type() == other.scalar_type()) return;
  // conv1d/2d/3d refuse a bias of another type themselves; the transposed functions leave it to
  // the backends: PyTorch's slow kernels read it as the input's type, cuDNN names both tensor
  // types. On a GPU PyTorch takes its slow transposed kernels where cuDNN cannot serve: an output
  // padding not below the stride.
  if (std::string(what) == "bias" && !p.transposed) {
    TORCH_CHECK(false, "Input type (", input.dtype().name(), ") and bias type (",
                other.dtype().name(), ") should be the same");
  }
  bool slow_path = input.device().is_cpu();
  for (size_t i = 0; p.transposed && i < p.output_padding.size(); ++i) {
    slow_path = slow_path || p.output_padding[i] >= p.stride[i];
  }
  TORCH_CHECK(!slow_path, "expected scalar type ", input.scalar_type(), " but found ",
              other.scalar_type());
  TORCH_CHECK(false, "Input type (", input.toString(), ") and ", what, " type (", other.toString(),
              ") should be the same");
}

// Checks PyTorch makes inside its backends, after choosing one.
void check_backend_limits(const at::Tensor& input, const at::Tensor& weight, const Params& p) {
  TORCH_CHECK(
      input.size(0) == 0 || input.size(1) == 0 || input.numel() != 0,
      "Only zero batch or zero channel inputs are supported, but got input shape: ", input.sizes());
  TORCH_CHECK(p.dim <= gemmconv::kMaxSpatialDims, "unsupported ConvNd parameters");
  // PyTorch views 1-D as 2-D (height 1), so its messages name the dimensions that way.
  static const char* const kNames3[] = {"depth", "height", "width"};
  static const char* const kNames2[] = {"height", "width"};
  std::vector<int64_t> op = p.output_padding, st = p.stride, dl = p.dilation;
  if (p.dim == 1) {
    op.insert(op.begin(), 0);
    st.insert(st.begin(), 1);
    dl.insert(dl.begin(), 1);
  }
  const char* const* names = op.size() == 3 ? kNames3 : kNames2;
  // An empty input (no sample or no channel) never reaches a backend in PyTorch, so none of the
  // checks below apply to it.
  if (input.size(0) == 0 || input.size(1) == 0) return;
  std::vector<int64_t> ks(weight.sizes().begin() + 2, weight.sizes().end());
  if (p.dim == 1) ks.insert(ks.begin(), 1);
  if (any_of(ks, [](int64_t x) { return x <= 0; })) {
    std::ostringstream ss;
    ss << "kernel size should be greater than zero, but got";
    for (size_t i = 0; i < ks.size(); ++i) ss << " kernel_" << names[i] << ": " << ks[i];
    TORCH_CHECK(false, ss.str());
  }
  if (any_of(dl, [](int64_t x) { return x <= 0; })) {
    std::ostringstream ss;
    ss << "dilation should be greater than zero, but got ";
    if (p.transposed) {
      for (size_t i = 0; i < dl.size(); ++i)
        ss << (i ? ", " : "") << "dilation_" << names[i] << ": " << dl[i];
    } else {
      ss << c10::IntArrayRef(dl);
    }
    TORCH_CHECK(false, ss.str());
  }
  if (!p.transposed) return;

  bool small = true;
  for (size_t i = 0; i < op.size(); ++i) small = small && (op[i] < st[i] || op[i] < dl[i]);
  if (!small) {
    std::ostringstream ss;
    ss << "output padding must be smaller than either stride or dilation, but got";
    for (size_t i = 0; i < op.size(); ++i) ss << " output_padding_" << names[i] << ": " << op[i];
    for (size_t i = 0; i < op.size(); ++i) ss << " stride_" << names[i] << ": " << st[i];
    for (size_t i = 0; i < op.size(); ++i) ss << " dilation_" << names[i] << ": " << dl[i];
    TORCH_CHECK(false, ss.str());
  }
}

gemmconv::DataType data_type(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Half:
      return gemmconv::DataType::f16;
    case c10::ScalarType::BFloat16:
      return gemmconv::DataType::bf16;
    case c10::ScalarType::Double:
      return gemmconv::DataType::f64;
    default:
      return gemmconv::DataType::f32;
  }
}

Adapted describe(const at::Tensor& input, const at::Tensor& weight, const Params& p) {
  Adapted a;
  gemmconv::ConvProblem& pr = a.problem;
  const size_t dim = static_cast<size_t>(p.dim);
  pr.spatial_dims = static_cast<int>(p.dim);
  pr.batch = input.size(0);
  pr.in_channels = input.size(1);
  pr.out_channels = p.transposed ? weight.size(1) * p.groups : weight.size(0);
  pr.groups = p.groups;
  pr.transposed = p.transposed;
  pr.dtype = data_type(input.scalar_type());

  a.output_shape = {pr.batch, pr.out_channels};
  bool too_small = false;
  std::vector<int64_t> in_sizes, out_sizes;
  for (size_t d = 0; d < dim; ++d) {
    const int64_t in = input.size(static_cast<int64_t>(d) + 2);
    const int64_t filt = weight.size(static_cast<int64_t>(d) + 2);
    pr.input_size[d] = in;
    pr.filter_size[d] = filt;
    pr.stride[d] = p.stride[d];
    pr.dilation[d] = p.dilation[d];
    pr.pad_begin[d] = p.padding[d];
    pr.pad_end[d] = p.padding[d];
    pr.output_padding[d] = p.transposed ? p.output_padding[d] : 0;
    int64_t span = 0, out = 0;
    bool overflow = __builtin_mul_overflow(p.dilation[d], filt - 1, &span);
    if (p.transposed) {
      // (in - 1) * stride - 2 * padding + span + 1 + output_padding
      int64_t twice_pad = 0;
      overflow = overflow || __builtin_mul_overflow(in - 1, p.stride[d], &out) ||
                 __builtin_mul_overflow(p.padding[d], int64_t(2), &twice_pad) ||
                 __builtin_sub_overflow(out, twice_pad, &out) ||
                 __builtin_add_overflow(out, span, &out) ||
                 __builtin_add_overflow(out, p.output_padding[d] + 1, &out);
    } else {
      // Both terms were computed without overflow by check_shape_forward.
      out = (in + 2 * p.padding[d] - span - 1) / p.stride[d] + 1;
    }
    if (overflow) overflow_error(input, weight, p);
    in_sizes.push_back(in);
    out_sizes.push_back(out);
    too_small = too_small || out < 1;
    a.output_shape.push_back(out);
  }
  // An empty input (no sample or no channel) never reaches a PyTorch backend, whose check this is,
  // so an empty output is fine there (a transposed convolution can compute a size of 0).
  const bool empty_input = pr.batch == 0 || pr.in_channels == 0;
  bool negative = false;
  for (int64_t o : out_sizes) negative = negative || o < 0;
  if (p.dim == 1) {  // the check lives in PyTorch's backends, which see 1-D as 2-D (height 1)
    in_sizes.insert(in_sizes.begin(), 1);
    out_sizes.insert(out_sizes.begin(), 1);
  }
  // A transposed convolution whose output size is 0 has an empty result, which PyTorch's GPU
  // backends and its oneDNN CPU path compute (its slow CPU path, the only one PyTorch 1.x had,
  // refuses it); gemmconv computes it on every device. A negative size is refused: on a GPU with a
  // sample PyTorch's vendor backends fail allocating the result, with the shape they see, and that
  // wording is kept; elsewhere the sizes are named as PyTorch's CPU kernels name them.
  if (p.transposed && negative && !input.device().is_cpu() && !empty_input) {
    std::vector<int64_t> shape = {pr.batch, pr.out_channels};
    shape.insert(shape.end(), out_sizes.begin(), out_sizes.end());
    int64_t first = 0;
    for (int64_t o : out_sizes) {
      if (o < 0) {
        first = o;
        break;
      }
    }
    TORCH_CHECK(false, "Trying to create tensor with negative dimension ", first, ": [",
                joined(shape, ", "), "]");
  }
  TORCH_CHECK(!too_small || ((p.transposed || empty_input) && !negative),
              "Given input size per channel: (", joined(in_sizes, " x "),
              "). Calculated output size per channel: (", joined(out_sizes, " x "),
              "). Output size is too small");
  // PyTorch's own path gives a zero-channel input a zero-channel output.
  if (pr.in_channels == 0) a.output_shape[1] = 0;

  // PyTorch computes channels-last when the input is; cuDNN also when the weight is. On the CPU
  // the weight counts for a regular 2-D convolution (PyTorch 1's kernels and 2's slow path), and
  // in PyTorch 2 for every 2-D and 3-D convolution outside float64, which its oneDNN path takes.
  const c10::MemoryFormat want =
      p.dim == 2 ? c10::MemoryFormat::ChannelsLast : c10::MemoryFormat::ChannelsLast3d;
  const bool onednn_path =
      GEMMCONV_TORCH_VERSION_MAJOR >= 2 && input.scalar_type() != c10::ScalarType::Double;
  const bool weight_counts =
      !input.device().is_cpu() || onednn_path || (p.dim == 2 && !p.transposed);
  const bool cl =
      (p.dim == 2 || p.dim == 3) && (input.suggest_memory_format() == want ||
                                     (weight_counts && weight.suggest_memory_format() == want));
  a.memory_format = cl ? want : c10::MemoryFormat::Contiguous;
  pr.layout = cl ? gemmconv::Layout::channels_last : gemmconv::Layout::contiguous;
  return a;
}

}  // namespace

bool engine_dtype(c10::ScalarType t) {
  return t == c10::ScalarType::Float || t == c10::ScalarType::Half ||
         t == c10::ScalarType::BFloat16 || t == c10::ScalarType::Double;
}

Adapted adapt_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                      const ConvArgs& args) {
  const Params p = expand_all(weight, args);
  check_shape_forward(input, weight, bias, p);
  check_same_device(input, weight, "weight");
  check_same_device(input, bias, "bias");
  check_same_type(input, weight, "weight", p);
  check_same_type(input, bias, "bias", p);
  check_backend_limits(input, weight, p);
  return describe(input, weight, p);
}

Adapted adapt_backward(const at::Tensor& grad_output, const at::Tensor& input,
                       const at::Tensor& weight, const ConvArgs& args) {
  const Params p = expand_all(weight, args);
  check_shape_forward(input, weight, at::Tensor(), p);
  TORCH_CHECK(input.dim() == grad_output.dim(),
              "Expected input and grad_output to have the same number of dimensions, but got: ",
              input.dim(), " and ", grad_output.dim());
  if (!p.transposed) {
    TORCH_CHECK(!any_of(p.output_padding, [](int64_t x) { return x != 0; }),
                "output_padding is not supported for non-transposed convolutions; got: ",
                c10::IntArrayRef(p.output_padding));
  }
  check_same_device(input, weight, "weight");
  check_same_device(input, grad_output, "grad_output");
  check_same_type(input, weight, "weight", p);
  check_same_type(input, grad_output, "grad_output", p);
  check_backend_limits(input, weight, p);
  Adapted a = describe(input, weight, p);
  TORCH_CHECK(grad_output.sizes() == c10::IntArrayRef(a.output_shape),
              "Expected grad_output of size ", c10::IntArrayRef(a.output_shape),
              " for this convolution, but got grad_output of size ", grad_output.sizes());
  return a;
}

}  // namespace gemmconv_torch
