// gemmconv-driver: plan, run, verify and time one convolution problem from the command line.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gemmconv/gemmconv.h"
// The software fp16/bf16 conversions of the engine; the driver is built next to it.
#include "../src/base/half.h"

namespace gc = gemmconv;

namespace {

const char* kHelp = R"(gemmconv-driver: run, verify and time one convolution through gemmconv.

Usage: gemmconv-driver [flags]

Problem (spatial lists are written AxB, DxHxW or W; a single number applies to every dimension):
  --dims 1|2|3              spatial dimensions (default: the number of entries of --input, else 2)
  -n, --batch N             batch size (default 1; 0 is a valid empty batch)
  -c, --in-channels C       input channels (default 16)
  -k, --out-channels K      output channels (default 16)
  --input HxW               input size (default 16 in every dimension)
  --filter RxS              filter size (default 3)
  --stride SxS              stride (default 1)
  --pad P                   padding on both sides (default 0)
  --pad-begin P             padding before, per dimension (overrides --pad for that side)
  --pad-end P               padding after, per dimension (overrides --pad for that side)
  --dilation DxD            dilation (default 1)
  -g, --groups G            groups (default 1)
  --transposed              a transposed convolution (ConvTranspose); --in-channels is then the
                            channels of the layer's input and the weight is [C, K/groups, ...]
  --output-padding OxO      extra output size of a transposed convolution (default 0)
  --layout L                contiguous | channels_last (default contiguous)
  --dtype T                 f32 | f16 | bf16 | f64 (default f32)

What to run:
  --direction D             forward | backward_data | backward_weight | backward_bias | all
                            (default forward)
  --bias                    forward adds a bias
  --device cpu|gpu          where to run (default gpu when one is visible, else cpu)
  --solver NAME             use exactly this solver (default: the planner's choice)
  --workspace-mb MB         workspace budget in MiB (default: GEMMCONV_WORKSPACE_MB or 512)
  --allow-tf32              let fp32 GEMMs on the GPU use TF32 tensor cores
  --seed S                  seed of the random inputs (default 1)

Checks and measurements:
  --verify                  compare with the float64 reference solver on the CPU; prints the
                            maximum relative error (|got - want| over the sum of the absolute
                            values of the terms, per element) and the tolerance for the dtype and
                            reduction length; exit status 1 when it fails
  --time                    median time of one pass over --reps runs after --warmup runs (device
                            events on the GPU), and TFLOP/s with 2*N*K*P*Q*(C/groups)*R*S FLOPs
  --reps N                  timed runs (default 20)
  --warmup N                untimed runs first (default 3)
  --list-solvers            list the registered solvers and, for the problem given, where each
                            one applies, then exit
  -h, --help                this text

Exit status: 0 success; 1 a verification failed or a run returned an error; 2 a usage error
(unknown flag, malformed value, impossible problem, unavailable device or solver).

Example (a ResNet-50 3x3 layer):
  gemmconv-driver -n 32 -c 64 -k 64 --input 56x56 --filter 3x3 --pad 1 --direction all --verify --time
)";

struct UsageError {
  std::string message;
};

struct Options {
  int dims = 0;
  int64_t batch = 1, in_channels = 16, out_channels = 16, groups = 1;
  std::vector<int64_t> input, filter, stride, pad, pad_begin, pad_end, dilation, output_padding;
  bool transposed = false;
  gc::Layout layout = gc::Layout::contiguous;
  gc::DataType dtype = gc::DataType::f32;
  std::vector<gc::Direction> directions{gc::Direction::forward};
  bool bias = false;
  std::string device;
  std::string solver;
  bool workspace_set = false;
  size_t workspace_mb = 0;
  bool allow_tf32 = false;
  uint64_t seed = 1;
  bool verify = false;
  bool time = false;
  int64_t reps = 20, warmup = 3;
  bool list_solvers = false;
  bool help = false;
};

int64_t parse_int(const std::string& flag, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE) {
    throw UsageError{"invalid value '" + v + "' for " + flag + ": expected an integer"};
  }
  return static_cast<int64_t>(x);
}

std::vector<int64_t> parse_list(const std::string& flag, const std::string& v) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (true) {
    const size_t x = v.find('x', start);
    out.push_back(parse_int(flag, v.substr(start, x == std::string::npos ? x : x - start)));
    if (x == std::string::npos) break;
    start = x + 1;
  }
  if (out.size() > 3) {
    throw UsageError{"invalid value '" + v + "' for " + flag + ": at most 3 dimensions"};
  }
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  // Flags that take a value, by every spelling.
  const std::map<std::string, std::string> aliases = {{"-n", "--batch"},
                                                      {"-c", "--in-channels"},
                                                      {"-k", "--out-channels"},
                                                      {"-g", "--groups"},
                                                      {"-h", "--help"}};
  const char* valued[] = {
      "--dims",           "--batch",  "--in-channels", "--out-channels", "--input",    "--filter",
      "--stride",         "--pad",    "--pad-begin",   "--pad-end",      "--dilation", "--groups",
      "--output-padding", "--layout", "--dtype",       "--direction",    "--device",   "--solver",
      "--workspace-mb",   "--seed",   "--reps",        "--warmup"};
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    bool has_value = false;
    const size_t eq = flag.find('=');
    if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    auto al = aliases.find(flag);
    if (al != aliases.end()) flag = al->second;
    const bool takes_value = std::find_if(std::begin(valued), std::end(valued), [&](const char* f) {
                               return flag == f;
                             }) != std::end(valued);
    if (takes_value && !has_value) {
      if (i + 1 >= argc) throw UsageError{"missing value for " + flag};
      value = argv[++i];
    } else if (!takes_value && has_value) {
      throw UsageError{"flag " + flag + " takes no value"};
    }

    if (flag == "--help") {
      o.help = true;
    } else if (flag == "--dims") {
      const int64_t d = parse_int(flag, value);
      if (d < 1 || d > 3) throw UsageError{"invalid value '" + value + "' for --dims: 1, 2 or 3"};
      o.dims = static_cast<int>(d);
    } else if (flag == "--batch") {
      o.batch = parse_int(flag, value);
    } else if (flag == "--in-channels") {
      o.in_channels = parse_int(flag, value);
    } else if (flag == "--out-channels") {
      o.out_channels = parse_int(flag, value);
    } else if (flag == "--groups") {
      o.groups = parse_int(flag, value);
    } else if (flag == "--input") {
      o.input = parse_list(flag, value);
    } else if (flag == "--filter") {
      o.filter = parse_list(flag, value);
    } else if (flag == "--stride") {
      o.stride = parse_list(flag, value);
    } else if (flag == "--pad") {
      o.pad = parse_list(flag, value);
    } else if (flag == "--pad-begin") {
      o.pad_begin = parse_list(flag, value);
    } else if (flag == "--pad-end") {
      o.pad_end = parse_list(flag, value);
    } else if (flag == "--dilation") {
      o.dilation = parse_list(flag, value);
    } else if (flag == "--output-padding") {
      o.output_padding = parse_list(flag, value);
    } else if (flag == "--transposed") {
      o.transposed = true;
    } else if (flag == "--layout") {
      if (!gc::parse_layout(value, &o.layout)) {
        throw UsageError{"invalid value '" + value + "' for --layout: contiguous or channels_last"};
      }
    } else if (flag == "--dtype") {
      if (!gc::parse_data_type(value, &o.dtype)) {
        throw UsageError{"invalid value '" + value + "' for --dtype: f32, f16, bf16 or f64"};
      }
    } else if (flag == "--direction") {
      o.directions.clear();
      if (value == "all") {
        o.directions = {gc::Direction::forward, gc::Direction::backward_data,
                        gc::Direction::backward_weight, gc::Direction::backward_bias};
      } else {
        gc::Direction d;
        if (!gc::parse_direction(value, &d)) {
          throw UsageError{"invalid value '" + value +
                           "' for --direction: forward, backward_data, backward_weight, "
                           "backward_bias or all"};
        }
        o.directions.push_back(d);
      }
    } else if (flag == "--bias") {
      o.bias = true;
    } else if (flag == "--device") {
      if (value != "cpu" && value != "gpu") {
        throw UsageError{"invalid value '" + value + "' for --device: cpu or gpu"};
      }
      o.device = value;
    } else if (flag == "--solver") {
      o.solver = value;
    } else if (flag == "--workspace-mb") {
      const int64_t mb = parse_int(flag, value);
      if (mb < 0 || mb > (int64_t(1) << 40)) {
        throw UsageError{"invalid value '" + value + "' for --workspace-mb"};
      }
      o.workspace_set = true;
      o.workspace_mb = static_cast<size_t>(mb);
    } else if (flag == "--allow-tf32") {
      o.allow_tf32 = true;
    } else if (flag == "--seed") {
      o.seed = static_cast<uint64_t>(parse_int(flag, value));
    } else if (flag == "--verify") {
      o.verify = true;
    } else if (flag == "--time") {
      o.time = true;
    } else if (flag == "--reps" || flag == "--warmup") {
      const int64_t n = parse_int(flag, value);
      if (n < (flag == "--reps" ? 1 : 0) || n > 1000000) {
        throw UsageError{"invalid value '" + value + "' for " + flag};
      }
      (flag == "--reps" ? o.reps : o.warmup) = n;
    } else if (flag == "--list-solvers") {
      o.list_solvers = true;
    } else {
      throw UsageError{"unknown flag '" + std::string(argv[i]) + "'"};
    }
  }
  return o;
}

// Fills the first `dims` entries from a list of 1 or `dims` values.
void fill_dims(const char* flag, const std::vector<int64_t>& v, int dims, gc::Dims* out) {
  if (v.empty()) return;
  if (v.size() != 1 && static_cast<int>(v.size()) != dims) {
    throw UsageError{std::string(flag) + " has " + std::to_string(v.size()) +
                     " entries for a problem of " + std::to_string(dims) + " spatial dimensions"};
  }
  for (int j = 0; j < dims; ++j) (*out)[j] = v.size() == 1 ? v[0] : v[j];
}

gc::ConvProblem build_problem(const Options& o) {
  gc::ConvProblem p;
  p.spatial_dims = o.dims ? o.dims : (o.input.empty() ? 2 : static_cast<int>(o.input.size()));
  p.batch = o.batch;
  p.in_channels = o.in_channels;
  p.out_channels = o.out_channels;
  p.groups = o.groups;
  p.input_size = {16, 16, 16};
  p.filter_size = {3, 3, 3};
  fill_dims("--input", o.input, p.spatial_dims, &p.input_size);
  fill_dims("--filter", o.filter, p.spatial_dims, &p.filter_size);
  fill_dims("--stride", o.stride, p.spatial_dims, &p.stride);
  fill_dims("--pad", o.pad, p.spatial_dims, &p.pad_begin);
  fill_dims("--pad", o.pad, p.spatial_dims, &p.pad_end);
  fill_dims("--pad-begin", o.pad_begin, p.spatial_dims, &p.pad_begin);
  fill_dims("--pad-end", o.pad_end, p.spatial_dims, &p.pad_end);
  fill_dims("--dilation", o.dilation, p.spatial_dims, &p.dilation);
  fill_dims("--output-padding", o.output_padding, p.spatial_dims, &p.output_padding);
  for (int j = p.spatial_dims; j < gc::kMaxSpatialDims; ++j) {
    p.input_size[j] = p.filter_size[j] = 1;
  }
  if (!o.output_padding.empty() && !o.transposed) {
    throw UsageError{"--output-padding needs --transposed"};
  }
  p.transposed = o.transposed;
  p.layout = o.layout;
  p.dtype = o.dtype;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Host data.

class Buffer {
 public:
  Buffer(gc::DataType t, int64_t count)
      : t_(t), count_(count), bytes_(std::max<size_t>(size_t(count) * gc::element_size(t), 1)) {}
  size_t bytes() const { return size_t(count_) * gc::element_size(t_); }
  int64_t count() const { return count_; }
  unsigned char* data() { return bytes_.data(); }
  double get(int64_t i) const {
    const unsigned char* p = bytes_.data() + size_t(i) * gc::element_size(t_);
    uint16_t h;
    float f;
    double d;
    switch (t_) {
      case gc::DataType::f64:
        std::memcpy(&d, p, 8);
        return d;
      case gc::DataType::f32:
        std::memcpy(&f, p, 4);
        return f;
      case gc::DataType::f16:
        std::memcpy(&h, p, 2);
        return gc::half_bits_to_float(h);
      case gc::DataType::bf16:
        std::memcpy(&h, p, 2);
        return gc::bf16_bits_to_float(h);
    }
    return NAN;
  }
  void set(int64_t i, double v) {
    unsigned char* p = bytes_.data() + size_t(i) * gc::element_size(t_);
    const float f = static_cast<float>(v);
    uint16_t h;
    switch (t_) {
      case gc::DataType::f64:
        std::memcpy(p, &v, 8);
        return;
      case gc::DataType::f32:
        std::memcpy(p, &f, 4);
        return;
      case gc::DataType::f16:
        h = gc::float_to_half_bits(f);
        std::memcpy(p, &h, 2);
        return;
      case gc::DataType::bf16:
        h = gc::float_to_bf16_bits(f);
        std::memcpy(p, &h, 2);
        return;
    }
  }
  void fill_random(std::mt19937_64& rng) {
    std::uniform_real_distribution<float> mag(0.0625f, 1.0f);
    for (int64_t i = 0; i < count_; ++i) set(i, (rng() & 1) ? -mag(rng) : mag(rng));
  }

 private:
  gc::DataType t_;
  int64_t count_;
  std::vector<unsigned char> bytes_;
};

// The four tensors of a layer (input, output, weight, bias, or their gradients) on one device.
struct Tensors {
  enum { kIn, kOut, kW, kBias };
  void* ptr[4] = {nullptr, nullptr, nullptr, nullptr};
  bool gpu = false;
  std::vector<std::vector<unsigned char>> host;
  ~Tensors() {
    if (gpu) {
      for (void* q : ptr) {
        if (q) (void)gc::gpu_free(q);
      }
    }
  }
};

void check(const gc::Status& s, const std::string& what) {
  if (!s.ok()) {
    throw std::runtime_error(what + ": " + gc::to_string(s.code()) + ": " + s.message());
  }
}

int written_tensor(gc::Direction d) {
  switch (d) {
    case gc::Direction::forward:
      return Tensors::kOut;
    case gc::Direction::backward_data:
      return Tensors::kIn;
    case gc::Direction::backward_weight:
      return Tensors::kW;
    case gc::Direction::backward_bias:
      break;
  }
  return Tensors::kBias;
}

gc::ConvBuffers buffers_for(gc::Direction d, void* const* ptr, bool bias) {
  gc::ConvBuffers b;
  switch (d) {
    case gc::Direction::forward:
      b.input = ptr[Tensors::kIn];
      b.weight = ptr[Tensors::kW];
      b.bias = bias ? ptr[Tensors::kBias] : nullptr;
      b.output = ptr[Tensors::kOut];
      break;
    case gc::Direction::backward_data:
      b.grad_output = ptr[Tensors::kOut];
      b.weight = ptr[Tensors::kW];
      b.grad_input = ptr[Tensors::kIn];
      break;
    case gc::Direction::backward_weight:
      b.input = ptr[Tensors::kIn];
      b.grad_output = ptr[Tensors::kOut];
      b.grad_weight = ptr[Tensors::kW];
      break;
    case gc::Direction::backward_bias:
      b.grad_output = ptr[Tensors::kOut];
      b.grad_bias = ptr[Tensors::kBias];
      break;
  }
  return b;
}

std::string shape_string(int64_t d0, int64_t d1, const gc::Dims& sp, int dims) {
  std::ostringstream os;
  os << "[" << d0 << ", " << d1;
  for (int j = 0; j < dims; ++j) os << ", " << sp[j];
  os << "]";
  return os.str();
}

std::string bytes_string(size_t b) {
  char buf[64];
  if (b >= (size_t(1) << 20)) {
    std::snprintf(buf, sizeof buf, "%zu bytes (%.1f MiB)", b, double(b) / double(1 << 20));
  } else {
    std::snprintf(buf, sizeof buf, "%zu bytes", b);
  }
  return buf;
}

// Reduction length of the written elements, an upper bound used to scale the tolerance.
int64_t reduction_length(const gc::ConvProblem& p, gc::Direction d, bool bias) {
  const gc::ConvShape s = gc::canonical_shape(p);
  switch (gc::regular_direction(p, d)) {
    case gc::Direction::forward:
      return s.cg() * s.filt_pixels() + (bias ? 1 : 0);
    case gc::Direction::backward_data:
      return s.kg() * s.filt_pixels() + (bias ? 1 : 0);
    case gc::Direction::backward_weight:
      return s.n * s.out_pixels();
    case gc::Direction::backward_bias:
      break;
  }
  return s.n * std::max(s.in_pixels(), s.out_pixels());
}

double tolerance(gc::DataType t, int64_t terms) {
  auto u = [](gc::DataType x) {
    switch (x) {
      case gc::DataType::f64:
        return std::ldexp(1.0, -53);
      case gc::DataType::f32:
        return std::ldexp(1.0, -24);
      case gc::DataType::f16:
        return std::ldexp(1.0, -11);
      case gc::DataType::bf16:
        return std::ldexp(1.0, -8);
    }
    return 1.0;
  };
  const double u_acc = u(t == gc::DataType::f64 ? gc::DataType::f64 : gc::DataType::f32);
  return 3.0 * u(t) + 8.0 * u_acc * std::sqrt(double(std::max<int64_t>(terms, 1)));
}

// Runs the float64 reference on the CPU for direction d over the given host inputs; with
// `absolute`, over their absolute values (which gives the per-element sum of |terms|).
std::vector<double> reference_result(const gc::ConvProblem& p, gc::Direction d, bool bias,
                                     const std::vector<Buffer>& inputs, bool absolute) {
  gc::ConvProblem p64 = p;
  p64.dtype = gc::DataType::f64;
  std::vector<Buffer> t64;
  for (const Buffer& b : inputs) {
    t64.emplace_back(gc::DataType::f64, b.count());
    for (int64_t i = 0; i < b.count(); ++i) {
      const double v = b.get(i);
      t64.back().set(i, absolute ? std::fabs(v) : v);
    }
  }
  const int w = written_tensor(d);
  std::memset(t64[size_t(w)].data(), 0xff, t64[size_t(w)].bytes());
  const gc::Capabilities caps = gc::cpu_capabilities();
  auto gemm = gc::make_cpu_gemm_provider();
  gc::PlanOptions opts;
  if (d != gc::Direction::backward_bias) opts.solver = "reference";
  gc::Plan plan;
  check(gc::make_plan(p64, d, caps, opts, &plan), "planning the float64 reference");
  std::vector<unsigned char> ws(std::max<size_t>(plan.workspace_bytes, 1));
  void* ptr[4];
  for (size_t i = 0; i < 4; ++i) ptr[i] = t64[i].data();
  gc::ExecContext ctx;
  ctx.caps = &caps;
  ctx.gemm = gemm.get();
  ctx.workspace = plan.workspace_bytes ? ws.data() : nullptr;
  ctx.workspace_bytes = plan.workspace_bytes;
  check(gc::execute(plan, buffers_for(d, ptr, bias), ctx), "running the float64 reference");
  std::vector<double> out(size_t(t64[size_t(w)].count()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = t64[size_t(w)].get(int64_t(i));
  return out;
}

void list_solvers(const gc::ConvProblem& p, const gc::Capabilities& caps, size_t budget,
                  bool problem_ok) {
  std::printf("solvers, in planning order:\n");
  const gc::Config cfg = gc::config();
  for (const gc::Solver* s : gc::solver_registry()) {
    std::printf("  %-20s", s->name());
    if (cfg.disabled.count(s->name())) std::printf(" (disabled by GEMMCONV_DISABLE)");
    if (problem_ok) {
      gc::PlanContext ctx;
      ctx.caps = &caps;
      ctx.workspace_budget = budget;
      const gc::ConvShape shape = gc::canonical_shape(p);
      for (gc::Direction d :
           {gc::Direction::forward, gc::Direction::backward_data, gc::Direction::backward_weight}) {
        const gc::Direction r = gc::regular_direction(p, d);
        const bool ok = s->is_applicable(shape, r, ctx);
        std::printf(" %s:%s", gc::to_string(d), ok ? "yes" : "no");
        if (ok) std::printf("(%s)", bytes_string(s->workspace_bytes(shape, r, ctx)).c_str());
      }
    }
    std::printf("\n");
  }
}

int run(int argc, char** argv) {
  Options o;
  gc::ConvProblem p;
  try {
    o = parse_args(argc, argv);
    if (o.help) {
      std::fputs(kHelp, stdout);
      return 0;
    }
    p = build_problem(o);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "gemmconv-driver: %s\nTry 'gemmconv-driver --help'.\n", e.message.c_str());
    return 2;
  }
  auto usage = [](const std::string& m) {
    std::fprintf(stderr, "gemmconv-driver: %s\nTry 'gemmconv-driver --help'.\n", m.c_str());
    return 2;
  };

  if (o.workspace_set) {
    gc::Config cfg = gc::config();
    cfg.workspace_budget = o.workspace_mb << 20;
    gc::set_config(cfg);
  }
  const size_t budget = gc::config().workspace_budget;

  const bool have_gpu = gc::gpu_device_count() > 0;
  const bool gpu = o.device.empty() ? have_gpu : o.device == "gpu";
  if (gpu && !have_gpu) {
    return usage(gc::gpu_build() ? "--device gpu: no GPU visible"
                                 : "--device gpu: this build has no GPU support");
  }
  gc::Capabilities caps = gc::cpu_capabilities();
  if (gpu) {
    check(gc::gpu_set_device(0), "selecting GPU 0");
    check(gc::query_gpu_capabilities(0, &caps), "querying GPU 0");
  }

  const gc::Status valid = gc::validate(p);
  if (o.list_solvers) {
    list_solvers(p, caps, budget, valid.ok());
    return 0;
  }
  if (!valid.ok()) return usage("impossible problem: " + valid.message());
  if (!o.solver.empty() && !gc::find_solver(o.solver)) {
    return usage("unknown solver '" + o.solver + "' (see --list-solvers)");
  }
  const int64_t counts[4] = {gc::input_elements(p), gc::output_elements(p), gc::weight_elements(p),
                             p.out_channels};
  for (int64_t c : counts) {
    if (c < 0 || c > (int64_t(1) << 46)) return usage("problem too large for this driver");
  }

  const gc::Dims out = gc::output_size(p);
  const char* cl = p.layout == gc::Layout::channels_last ? " channels_last" : "";
  std::printf("problem: %s\n", gc::to_string(p).c_str());
  std::printf("  input  %s %s%s\n",
              shape_string(p.batch, p.in_channels, p.input_size, p.spatial_dims).c_str(),
              gc::to_string(p.dtype), cl);
  std::printf(
      "  weight %s\n",
      (p.transposed
           ? shape_string(p.in_channels, p.out_channels / p.groups, p.filter_size, p.spatial_dims)
           : shape_string(p.out_channels, p.in_channels / p.groups, p.filter_size, p.spatial_dims))
          .c_str());
  std::printf("  output %s\n", shape_string(p.batch, p.out_channels, out, p.spatial_dims).c_str());
  std::printf("  device %s (%s), workspace budget %s\n", gpu ? "gpu" : "cpu", caps.name.c_str(),
              bytes_string(budget).c_str());

  std::unique_ptr<gc::GemmProvider> gemm =
      gpu ? gc::make_gpu_gemm_provider(o.allow_tf32) : gc::make_cpu_gemm_provider();

  // Random inputs on the host, then on the device.
  std::mt19937_64 rng(o.seed);
  std::vector<Buffer> host;
  for (int64_t c : counts) {
    host.emplace_back(p.dtype, c);
    host.back().fill_random(rng);
  }
  Tensors dev;
  dev.gpu = gpu;
  if (gpu) {
    for (size_t i = 0; i < 4; ++i) {
      check(gc::gpu_malloc(&dev.ptr[i], std::max<size_t>(host[i].bytes(), 1)), "gpu_malloc");
      check(gc::gpu_memcpy_to_device(dev.ptr[i], host[i].data(), host[i].bytes()), "upload");
    }
  } else {
    for (size_t i = 0; i < 4; ++i) dev.ptr[i] = host[i].data();
  }

  const double flops = [&] {
    const gc::ConvShape s = gc::canonical_shape(p);
    return 2.0 * double(s.n) * double(s.k) * double(s.out_pixels()) * double(s.cg()) *
           double(s.filt_pixels());
  }();

  int status = 0;
  for (gc::Direction d : o.directions) {
    const bool with_bias = o.bias && d == gc::Direction::forward;
    gc::PlanOptions opts;
    opts.workspace_budget = budget;
    opts.gemm_available = gemm != nullptr;
    if (d != gc::Direction::backward_bias) opts.solver = o.solver;
    gc::Plan plan;
    const gc::Status ps = gc::make_plan(p, d, caps, opts, &plan);
    if (ps.code() == gc::StatusCode::not_applicable ||
        ps.code() == gc::StatusCode::invalid_problem ||
        ps.code() == gc::StatusCode::invalid_argument) {
      std::fflush(stdout);
      return usage(std::string("cannot plan ") + gc::to_string(d) + ": " + ps.message());
    }
    std::printf("%s%s:", gc::to_string(d), with_bias ? " (with bias)" : "");
    if (!ps.ok()) {
      std::printf(" cannot plan: %s: %s\n", gc::to_string(ps.code()), ps.message().c_str());
      status = 1;
      continue;
    }
    std::printf(" solver=%s workspace=%s\n", plan.solver_name(),
                bytes_string(plan.workspace_bytes).c_str());

    void* ws = nullptr;
    std::vector<unsigned char> host_ws;
    if (plan.workspace_bytes) {
      if (gpu) {
        check(gc::gpu_malloc(&ws, plan.workspace_bytes), "allocating the workspace");
      } else {
        host_ws.resize(plan.workspace_bytes);
        ws = host_ws.data();
      }
    }
    gc::ExecContext ctx;
    ctx.caps = &caps;
    ctx.gemm = gemm.get();
    ctx.workspace = ws;
    ctx.workspace_bytes = plan.workspace_bytes;
    const gc::ConvBuffers bufs = buffers_for(d, dev.ptr, with_bias);
    const int w = written_tensor(d);
    // The written tensor is also an input of other passes: keep a copy to restore afterwards.
    std::vector<unsigned char> saved(host[size_t(w)].data(),
                                     host[size_t(w)].data() + host[size_t(w)].bytes());

    gc::Status es = gc::execute(plan, bufs, ctx);
    if (es.ok() && gpu) es = gc::gpu_synchronize();
    if (!es.ok()) {
      std::printf("  run failed: %s: %s\n", gc::to_string(es.code()), es.message().c_str());
      status = 1;
    } else {
      if (o.verify) {
        Buffer got(p.dtype, host[size_t(w)].count());
        if (gpu) {
          check(gc::gpu_memcpy_to_host(got.data(), dev.ptr[w], got.bytes()), "download");
        } else {
          std::memcpy(got.data(), dev.ptr[w], got.bytes());
        }
        std::vector<Buffer> inputs;
        for (size_t i = 0; i < 4; ++i) {
          inputs.emplace_back(p.dtype, host[i].count());
          std::memcpy(inputs.back().data(), i == size_t(w) ? saved.data() : host[i].data(),
                      host[i].bytes());
        }
        const std::vector<double> want = reference_result(p, d, with_bias, inputs, false);
        const std::vector<double> mag = reference_result(p, d, with_bias, inputs, true);
        double tol = tolerance(p.dtype, reduction_length(p, d, with_bias));
        // TF32 rounds both factors of every product to 10 mantissa bits.
        if (gpu && o.allow_tf32 && p.dtype == gc::DataType::f32) tol += 2.0 * std::ldexp(1.0, -11);
        double max_err = 0.0;
        int64_t worst = -1, bad = 0;
        for (size_t i = 0; i < want.size(); ++i) {
          const double g = got.get(int64_t(i));
          double e;
          if (!std::isfinite(g)) {
            e = INFINITY;
          } else if (mag[i] > 0) {
            e = std::fabs(g - want[i]) / mag[i];
          } else {
            e = g == 0.0 ? 0.0 : INFINITY;
          }
          if (!(e <= tol)) ++bad;
          if (worst < 0 || e > max_err) {
            max_err = e;
            worst = int64_t(i);
          }
        }
        const bool pass = bad == 0;
        std::printf("  verify: max_rel_err=%.3e tol=%.3e elements=%zu %s", max_err, tol,
                    want.size(), pass ? "PASS" : "FAIL");
        if (!pass) {
          std::printf(" (%lld bad; worst element %lld: got %.9g want %.9g)", (long long)bad,
                      (long long)worst, got.get(worst), want[size_t(worst)]);
          status = 1;
        }
        std::printf("\n");
      }
      if (o.time) {
        std::vector<double> ms;
        gc::GpuTimer timer;
        if (gpu) check(gc::gpu_timer_create(&timer), "creating a timer");
        for (int64_t r = 0; r < o.warmup + o.reps && es.ok(); ++r) {
          float t = 0.0f;
          if (gpu) {
            es = gc::gpu_timer_start(&timer, nullptr);
            if (es.ok()) es = gc::execute(plan, bufs, ctx);
            if (es.ok()) es = gc::gpu_timer_stop(&timer, nullptr, &t);
          } else {
            const auto t0 = std::chrono::steady_clock::now();
            es = gc::execute(plan, bufs, ctx);
            t = std::chrono::duration<float, std::milli>(std::chrono::steady_clock::now() - t0)
                    .count();
          }
          if (r >= o.warmup) ms.push_back(t);
        }
        if (gpu) gc::gpu_timer_destroy(&timer);
        if (!es.ok()) {
          std::printf("  time: run failed: %s\n", es.message().c_str());
          status = 1;
        } else {
          std::sort(ms.begin(), ms.end());
          const double med = ms[ms.size() / 2];
          std::printf("  time: median %.4f ms (min %.4f, max %.4f) over %lld reps", med, ms.front(),
                      ms.back(), (long long)o.reps);
          if (d != gc::Direction::backward_bias && med > 0) {
            std::printf(", %.4g TFLOP/s", flops / (med * 1e-3) / 1e12);
          }
          std::printf("\n");
        }
      }
    }
    if (ws && gpu) (void)gc::gpu_free(ws);
    // Put back the tensor this pass overwrote, so that later passes read random inputs.
    std::memcpy(host[size_t(w)].data(), saved.data(), saved.size());
    if (gpu) check(gc::gpu_memcpy_to_device(dev.ptr[w], saved.data(), saved.size()), "upload");
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "gemmconv-driver: out of host memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemmconv-driver: %s\n", e.what());
    return 1;
  }
}
