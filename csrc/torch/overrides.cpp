// The aten::convolution, aten::_convolution and aten::convolution_backward kernels that run the
// engine, and their registration on the CPU and CUDA dispatch keys.
#include "overrides.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/_convolution_native.h>
#include <ATen/ops/convolution_backward_native.h>
#include <ATen/ops/convolution_native.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>

#if defined(GEMMCONV_WITH_GPU)
#if defined(GEMMCONV_HIP)
#include <ATen/hip/impl/HIPStreamMasqueradingAsCUDA.h>
#else
#include <c10/cuda/CUDAStream.h>
#endif
#endif

#include "adapter.h"
#include "gemmconv/engine.h"
#include "gemmconv/find.h"
#include "torch_gemm.h"

#ifndef GEMMCONV_TORCH_VERSION_MAJOR
#if __has_include(<torch/version.h>)
#include <torch/version.h>
#define GEMMCONV_TORCH_VERSION_MAJOR TORCH_VERSION_MAJOR
#define GEMMCONV_TORCH_VERSION_MINOR TORCH_VERSION_MINOR
#else
#define GEMMCONV_TORCH_VERSION_MAJOR 1
#define GEMMCONV_TORCH_VERSION_MINOR 13
#endif
#endif

namespace gemmconv_torch {
namespace {

// Kernel signatures must match what the dispatcher unboxes: c10::optional until it became an
// alias of std::optional.
#if GEMMCONV_TORCH_VERSION_MAJOR > 2 || \
    (GEMMCONV_TORCH_VERSION_MAJOR == 2 && GEMMCONV_TORCH_VERSION_MINOR >= 4)
using OptionalTensor = std::optional<at::Tensor>;
#else
using OptionalTensor = c10::optional<at::Tensor>;
#endif

std::atomic<bool> g_enabled[2] = {{false}, {false}};

template <bool kGpu>
bool routed(const at::Tensor& input) {
  return g_enabled[kGpu].load(std::memory_order_relaxed) && input.layout() == c10::kStrided &&
         engine_dtype(input.scalar_type());
}

const gemmconv::Capabilities& capabilities(const c10::Device& dev) {
  if (dev.is_cpu()) {
    static const gemmconv::Capabilities cpu = gemmconv::cpu_capabilities();
    return cpu;
  }
  static std::mutex mu;
  static std::map<int, std::unique_ptr<gemmconv::Capabilities>> cache;
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<gemmconv::Capabilities>& slot = cache[dev.index()];
  if (!slot) {
    auto caps = std::make_unique<gemmconv::Capabilities>();
    const gemmconv::Status st = gemmconv::query_gpu_capabilities(dev.index(), caps.get());
    TORCH_CHECK(st.ok(), "gemmconv: cannot query device ", dev, ": ",
                gemmconv::to_string(st.code()), ": ", st.message());
    slot = std::move(caps);
  }
  return *slot;
}

void* current_stream(const c10::Device& dev) {
#if defined(GEMMCONV_WITH_GPU)
  if (dev.is_cuda()) {
#if defined(GEMMCONV_HIP)
    return c10::hip::getCurrentHIPStreamMasqueradingAsCUDA(dev.index()).stream();
#else
    return c10::cuda::getCurrentCUDAStream(dev.index()).stream();
#endif
  }
#endif
  (void)dev;
  return nullptr;
}

// Test hook (docs/configuration.md): GEMMCONV_TEST_WORKSPACE_FAIL_BYTES=N makes every workspace
// allocation of more than N bytes fail as if memory had run out.
size_t simulated_allocation_limit() {
  static const size_t limit = [] {
    const char* v = std::getenv("GEMMCONV_TEST_WORKSPACE_FAIL_BYTES");
    if (!v || !*v) return std::numeric_limits<size_t>::max();
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    return (end && *end == '\0') ? static_cast<size_t>(n) : std::numeric_limits<size_t>::max();
  }();
  return limit;
}

// Allocates `bytes` of workspace through PyTorch's allocator (the caching allocator on a GPU, so
// that the memory is stream-ordered and, under CUDA graph capture, comes from the graph's private
// pool and stays reserved for the graph). False, with the reason, when memory has run out.
bool allocate_workspace(size_t bytes, const c10::Device& dev, at::Tensor* out, std::string* why) {
  if (bytes > simulated_allocation_limit()) {
    *why = "out of memory (simulated by GEMMCONV_TEST_WORKSPACE_FAIL_BYTES)";
    return false;
  }
  if (bytes > static_cast<size_t>(std::numeric_limits<int64_t>::max())) {
    *why = "more bytes than a tensor can hold";
    return false;
  }
  const auto first_line = [](const char* what) {
    const std::string text(what);
    return text.substr(0, text.find('\n'));
  };
  try {
    *out =
        at::empty({static_cast<int64_t>(bytes)}, at::TensorOptions().dtype(at::kByte).device(dev));
    return true;
  } catch (const c10::OutOfMemoryError& e) {
    *why = first_line(e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    *why = "out of host memory (std::bad_alloc)";
  } catch (const c10::Error& e) {
    // PyTorch's CPU allocator reports exhaustion as a plain c10::Error ("not enough memory").
    if (!dev.is_cpu()) throw;
    *why = first_line(e.what_without_backtrace());
  }
  return false;
}

// Runs one pass in the engine. Failures raise: on a card whose vendor library is broken a silent
// fallback would send the call back into it.
void run(const gemmconv::ConvProblem& p, gemmconv::Direction d, const c10::Device& dev,
         const gemmconv::ConvBuffers& buffers) {
  const gemmconv::Capabilities& caps = capabilities(dev);
#if defined(GEMMCONV_WITH_GPU)
  if (dev.is_cuda()) {
    // Autograd runs backward passes on threads of its own, where no runtime call may have made the
    // device's context current yet, and cuBLAS then warns; setting the device once creates it.
    thread_local int ready_device = -1;
    if (ready_device != dev.index()) {
      gemmconv::gpu_set_device(dev.index());
      ready_device = dev.index();
    }
  }
#endif
  TorchGemmProvider gemm(dev);
  void* const stream = current_stream(dev);
  // The first call of a problem finds its solver on these very tensors (the perf database serves
  // later calls and processes); each candidate's workspace comes from the caching allocator.
  at::Tensor trial_workspace;
  gemmconv::FindRequest request;
  request.buffers = buffers;
  request.stream = stream;
  request.gemm = &gemm;
  request.workspace.allocate = [&](size_t bytes) -> void* {
    trial_workspace =
        at::empty({static_cast<int64_t>(bytes)}, at::TensorOptions().dtype(at::kByte).device(dev));
    return trial_workspace.data_ptr();
  };
  request.workspace.release = [&](void*) { trial_workspace = at::Tensor(); };
  gemmconv::Plan plan;
  gemmconv::PlanOptions opts;
  gemmconv::Status st = gemmconv::find_plan(p, d, caps, opts, request, &plan, nullptr);
  const auto fail = [&](const char* stage) {
    const char* solver = plan.solver ? plan.solver_name() : nullptr;
    std::ostringstream ss;
    ss << "gemmconv: " << stage << " the " << gemmconv::to_string(d) << " pass of "
       << gemmconv::to_string(p) << " failed";
    if (solver) ss << " in solver '" << solver << "'";
    ss << ": " << gemmconv::to_string(st.code()) << ": " << st.message()
       << " (gemmconv.disable() hands convolutions back to PyTorch)";
    TORCH_CHECK(false, ss.str());
  };
  if (!st.ok()) fail("planning");
  // Out of memory, for the workspace or inside the GEMM (the BLAS library's own workspace, say):
  // plan again under half the workspace bytes, down to the solvers that need none, rather than
  // failing the convolution. A pass that ran out of memory is run again whole: every pass
  // overwrites what it writes.
  const auto plan_again = [&](const std::string& what) {
    opts.workspace_budget = plan.workspace_bytes / 2;  // >= 1: 0 would mean the configured budget
    gemmconv::log_message(gemmconv::LogLevel::info,
                          what + " for the " + gemmconv::to_string(d) + " pass of " +
                              gemmconv::to_string(p) + " (solver " + plan.solver_name() +
                              ", workspace " + std::to_string(plan.workspace_bytes) +
                              " bytes); planning again with a budget of " +
                              std::to_string(opts.workspace_budget) + " bytes");
    st = gemmconv::make_plan(p, d, caps, opts, &plan);
    if (!st.ok()) fail("planning");
  };
  for (;;) {
    at::Tensor workspace;
    std::string why;
    while (plan.workspace_bytes > 0 &&
           !allocate_workspace(plan.workspace_bytes, dev, &workspace, &why)) {
      if (plan.workspace_bytes <= 1) {
        st = gemmconv::Status(gemmconv::StatusCode::workspace_too_small,
                              "cannot allocate its workspace: " + why);
        fail("allocating");
      }
      plan_again("allocating the workspace failed: " + why);
    }
    gemmconv::ExecContext ctx;
    ctx.caps = &caps;
    ctx.stream = stream;
    ctx.gemm = &gemm;
    ctx.workspace = workspace.defined() ? workspace.data_ptr() : nullptr;
    ctx.workspace_bytes = plan.workspace_bytes;
    st = gemmconv::execute(plan, buffers, ctx);
    if (st.ok()) return;
    if (st.code() != gemmconv::StatusCode::out_of_memory || plan.workspace_bytes <= 1) {
      fail("running");
    }
    workspace = at::Tensor();  // back to the allocator before the smaller plan asks for memory
    const std::string message = st.message();
    plan_again("memory ran out inside the pass: " + message.substr(0, message.find('\n')));
  }
}

// [1, channels, 1, ...] view of a bias, to broadcast over an output of `dim` dimensions.
at::Tensor bias_view(const at::Tensor& bias, int64_t dim) {
  std::vector<int64_t> shape(static_cast<size_t>(dim), 1);
  shape[1] = bias.numel();
  return bias.reshape(shape);
}

at::Tensor forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                   const ConvArgs& args) {
  const Adapted a = adapt_forward(input, weight, bias, args);
  const c10::DeviceGuard guard(input.device());
  at::Tensor out = at::empty(a.output_shape, input.options().memory_format(a.memory_format));
  if (out.numel() == 0) return out;
  if (input.numel() == 0 || weight.numel() == 0) {  // an empty sum: zeros (a zero-size filter)
    out.zero_();
    if (bias.defined()) out.add_(bias_view(bias, out.dim()));
    return out;
  }
  const at::Tensor x = input.contiguous(a.memory_format);
  const at::Tensor w = weight.contiguous(a.memory_format);
  const at::Tensor b = bias.defined() ? bias.contiguous() : at::Tensor();
  gemmconv::ConvBuffers buf;
  buf.input = x.data_ptr();
  buf.weight = w.data_ptr();
  buf.bias = b.defined() ? b.data_ptr() : nullptr;
  buf.output = out.data_ptr();
  run(a.problem, gemmconv::Direction::forward, input.device(), buf);
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::OptionalIntArrayRef bias_sizes, const ConvArgs& args, std::array<bool, 3> mask) {
  const Adapted a = adapt_backward(grad_output, input, weight, args);
  const c10::DeviceGuard guard(input.device());
  const auto mf = a.memory_format;
  const c10::Device dev = input.device();
  at::Tensor gi, gw, gb;
  if (mask[0]) gi = at::empty(input.sizes(), input.options().memory_format(mf));
  if (mask[1]) gw = at::empty(weight.sizes(), weight.options().memory_format(mf));
  // The bias gradient has one element per output channel, whatever bias_sizes says: PyTorch ignores
  // bias_sizes here, and trusting it would let the reduction write past a smaller buffer.
  (void)bias_sizes;
  if (mask[2]) gb = at::empty({grad_output.size(1)}, grad_output.options());
  const bool dy_empty = grad_output.numel() == 0;
  const at::Tensor dy = dy_empty ? grad_output : grad_output.contiguous(mf);
  if (gi.defined() && gi.numel() > 0) {
    if (dy_empty || weight.numel() == 0) {
      gi.zero_();
    } else {
      const at::Tensor w = weight.contiguous(mf);
      gemmconv::ConvBuffers buf;
      buf.grad_output = dy.data_ptr();
      buf.weight = w.data_ptr();
      buf.grad_input = gi.data_ptr();
      run(a.problem, gemmconv::Direction::backward_data, dev, buf);
    }
  }
  if (gw.defined() && gw.numel() > 0) {
    if (dy_empty || input.numel() == 0) {
      gw.zero_();
    } else {
      const at::Tensor x = input.contiguous(mf);
      gemmconv::ConvBuffers buf;
      buf.input = x.data_ptr();
      buf.grad_output = dy.data_ptr();
      buf.grad_weight = gw.data_ptr();
      run(a.problem, gemmconv::Direction::backward_weight, dev, buf);
    }
  }
  if (gb.defined() && gb.numel() > 0) {
    if (dy_empty) {
      gb.zero_();
    } else {
      gemmconv::ConvBuffers buf;
      buf.grad_output = dy.data_ptr();
      buf.grad_bias = gb.data_ptr();
      run(a.problem, gemmconv::Direction::backward_bias, dev, buf);
    }
  }
  return std::make_tuple(gi, gw, gb);
}

// PyTorch's own aten::convolution only forwards to aten::_convolution through the dispatcher;
// doing the same keeps the routing in one place and keeps torch.jit.trace working, since the
// tracer records _convolution and never convolution.
at::Tensor convolution_kernel(const at::Tensor& input, const at::Tensor& weight,
                              const OptionalTensor& bias, at::IntArrayRef stride,
                              at::IntArrayRef padding, at::IntArrayRef dilation, bool transposed,
                              at::IntArrayRef output_padding, int64_t groups) {
  return at::native::convolution(input, weight, bias, stride, padding, dilation, transposed,
                                 output_padding, groups);
}

template <bool kGpu>
at::Tensor underscore_convolution_kernel(const at::Tensor& input, const at::Tensor& weight,
                                         const OptionalTensor& bias, at::IntArrayRef stride,
                                         at::IntArrayRef padding, at::IntArrayRef dilation,
                                         bool transposed, at::IntArrayRef output_padding,
                                         int64_t groups, bool benchmark, bool deterministic,
                                         bool cudnn_enabled, bool allow_tf32) {
  if (!routed<kGpu>(input)) {
    return at::native::_convolution(input, weight, bias, stride, padding, dilation, transposed,
                                    output_padding, groups, benchmark, deterministic, cudnn_enabled,
                                    allow_tf32);
  }
  const at::Tensor b = bias.has_value() ? *bias : at::Tensor();
  return forward(input, weight, b,
                 ConvArgs{stride, padding, dilation, transposed, output_padding, groups});
}

template <bool kGpu>
std::tuple<at::Tensor, at::Tensor, at::Tensor> convolution_backward_kernel(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::OptionalIntArrayRef bias_sizes, at::IntArrayRef stride, at::IntArrayRef padding,
    at::IntArrayRef dilation, bool transposed, at::IntArrayRef output_padding, int64_t groups,
    std::array<bool, 3> output_mask) {
  if (!routed<kGpu>(input)) {
    return at::native::convolution_backward(grad_output, input, weight, bias_sizes, stride, padding,
                                            dilation, transposed, output_padding, groups,
                                            output_mask);
  }
  return backward(grad_output, input, weight, bias_sizes,
                  ConvArgs{stride, padding, dilation, transposed, output_padding, groups},
                  output_mask);
}

// Replacing PyTorch's CUDA kernel of convolution_backward makes the dispatcher warn; the
// replacement is the point, so the warning is swallowed.
class SilentWarnings final : public c10::WarningHandler {
 public:
#if GEMMCONV_TORCH_VERSION_MAJOR >= 2
  void process(const c10::Warning& /*warning*/) override {}
#else
  void process(const c10::SourceLocation& /*location*/, const std::string& /*msg*/,
               const bool /*verbatim*/) override {}
#endif
};

#if GEMMCONV_TORCH_VERSION_MAJOR >= 2
using WarningHandlerGuard = c10::WarningUtils::WarningHandlerGuard;
#else
using WarningHandlerGuard = c10::Warning::WarningHandlerGuard;
#endif

template <bool kGpu>
void register_kernels(torch::Library& m) {
  SilentWarnings silent;
  const WarningHandlerGuard guard(&silent);
  m.impl("convolution", TORCH_FN(convolution_kernel));
  m.impl("_convolution", TORCH_FN(underscore_convolution_kernel<kGpu>));
  m.impl("convolution_backward", TORCH_FN(convolution_backward_kernel<kGpu>));
}

}  // namespace

void set_enabled(Route r, bool on) { g_enabled[r == Route::gpu].store(on); }

bool is_enabled(Route r) { return g_enabled[r == Route::gpu].load(); }

bool gpu_kernels_registered() {
#if defined(GEMMCONV_WITH_GPU)
  return true;
#else
  return false;
#endif
}

}  // namespace gemmconv_torch

TORCH_LIBRARY_IMPL(aten, CPU, m) { gemmconv_torch::register_kernels<false>(m); }

#if defined(GEMMCONV_WITH_GPU)
TORCH_LIBRARY_IMPL(aten, CUDA, m) { gemmconv_torch::register_kernels<true>(m); }
#endif
