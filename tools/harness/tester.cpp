// The harness: a direct float64 loop, the float64 reference solver, and runs checked against
// them or timed.
#include "tester.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <utility>

#include "base/half.h"
#include "solvers/winograd_gemm/winograd.h"

namespace gemmconv {
namespace testing {

const char* to_string(Pass p) {
  switch (p) {
    case Pass::forward:
      return "forward";
    case Pass::forward_bias:
      return "forward+bias";
    case Pass::backward_data:
      return "backward_data";
    case Pass::backward_weight:
      return "backward_weight";
    case Pass::backward_bias:
      return "backward_bias";
  }
  return "?";
}

Direction direction_of(Pass p) {
  switch (p) {
    case Pass::forward:
    case Pass::forward_bias:
      return Direction::forward;
    case Pass::backward_data:
      return Direction::backward_data;
    case Pass::backward_weight:
      return Direction::backward_weight;
    case Pass::backward_bias:
      return Direction::backward_bias;
  }
  return Direction::forward;
}

const std::vector<Pass>& all_passes() {
  static const std::vector<Pass> passes = {Pass::forward, Pass::forward_bias, Pass::backward_data,
                                           Pass::backward_weight, Pass::backward_bias};
  return passes;
}

uint64_t test_seed() {
  if (const char* s = std::getenv("GEMMCONV_TEST_SEED")) {
    return std::strtoull(s, nullptr, 0);
  }
  static std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

double unit_roundoff(DataType t) {
  switch (t) {
    case DataType::f64:
      return std::ldexp(1.0, -53);
    case DataType::f32:
      return std::ldexp(1.0, -24);
    case DataType::f16:
      return std::ldexp(1.0, -11);
    case DataType::bf16:
      return std::ldexp(1.0, -8);
  }
  return 1.0;
}

double tolerance(DataType t, int64_t terms) {
  const double u_acc = unit_roundoff(t == DataType::f64 ? DataType::f64 : DataType::f32);
  const double l = static_cast<double>(std::max<int64_t>(terms, 1));
  return 3.0 * unit_roundoff(t) + 8.0 * u_acc * std::sqrt(l);
}

double transform_tolerance(DataType t, int64_t terms, double factor, double worst) {
  const double u_acc = unit_roundoff(t == DataType::f64 ? DataType::f64 : DataType::f32);
  const double l = static_cast<double>(std::max<int64_t>(terms, 1));
  return (1.0 + 3.0 * worst) * unit_roundoff(t) + 8.0 * factor * u_acc * std::sqrt(l);
}

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Runs fn(begin, end) over [0, n) on several threads when n is large enough to be worth it.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t hw = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t workers =
      std::min<int64_t>(hw, std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
  if (workers <= 1) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> threads;
  const int64_t chunk = (n + workers - 1) / workers;
  for (int64_t t = 0; t < workers; ++t) {
    const int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e) threads.emplace_back(fn, b, e);
  }
  for (std::thread& th : threads) th.join();
}

std::string fmt_double(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3e", v);
  return buf;
}

}  // namespace

ConvBuffers buffers_for(Pass pass, void* const t[4]) {
  ConvBuffers b;
  switch (pass) {
    case Pass::forward:
    case Pass::forward_bias:
      b.input = t[0];
      b.weight = t[2];
      b.bias = pass == Pass::forward_bias ? t[3] : nullptr;
      b.output = t[1];
      break;
    case Pass::backward_data:
      b.grad_output = t[1];
      b.weight = t[2];
      b.grad_input = t[0];
      break;
    case Pass::backward_weight:
      b.input = t[0];
      b.grad_output = t[1];
      b.grad_weight = t[2];
      break;
    case Pass::backward_bias:
      b.grad_output = t[1];
      b.grad_bias = t[3];
      break;
  }
  return b;
}

int written_tensor(Pass pass) {
  switch (pass) {
    case Pass::forward:
    case Pass::forward_bias:
      return 1;
    case Pass::backward_data:
      return 0;
    case Pass::backward_weight:
      return 2;
    case Pass::backward_bias:
      break;
  }
  return 3;
}

double pass_flops(const ConvProblem& p) {
  const ConvShape s = canonical_shape(p);
  return 2.0 * static_cast<double>(s.n) * static_cast<double>(s.k) *
         static_cast<double>(s.out_pixels()) * static_cast<double>(s.cg()) *
         static_cast<double>(s.filt_pixels());
}

// One byte at least, so that an empty tensor still has a non-null address.
HostTensor::HostTensor(DataType t, int64_t count)
    : dtype_(t),
      count_(count),
      size_(static_cast<size_t>(count) * element_size(t)),
      bytes_(std::max<size_t>(size_, 1)) {}

double HostTensor::get(int64_t i) const {
  const unsigned char* p = bytes_.data() + static_cast<size_t>(i) * element_size(dtype_);
  switch (dtype_) {
    case DataType::f64: {
      double v;
      std::memcpy(&v, p, sizeof v);
      return v;
    }
    case DataType::f32: {
      float v;
      std::memcpy(&v, p, sizeof v);
      return v;
    }
    case DataType::f16: {
      uint16_t b;
      std::memcpy(&b, p, sizeof b);
      return half_bits_to_float(b);
    }
    case DataType::bf16: {
      uint16_t b;
      std::memcpy(&b, p, sizeof b);
      return bf16_bits_to_float(b);
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

void HostTensor::set(int64_t i, double v) {
  unsigned char* p = bytes_.data() + static_cast<size_t>(i) * element_size(dtype_);
  switch (dtype_) {
    case DataType::f64:
      std::memcpy(p, &v, sizeof v);
      return;
    case DataType::f32: {
      const float f = static_cast<float>(v);
      std::memcpy(p, &f, sizeof f);
      return;
    }
    case DataType::f16: {
      const uint16_t b = float_to_half_bits(static_cast<float>(v));
      std::memcpy(p, &b, sizeof b);
      return;
    }
    case DataType::bf16: {
      const uint16_t b = float_to_bf16_bits(static_cast<float>(v));
      std::memcpy(p, &b, sizeof b);
      return;
    }
  }
}

void HostTensor::fill_random(uint64_t seed) {
  const uint64_t base = splitmix64(seed);
  parallel_for(count_, int64_t(1) << 22, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const uint64_t r = splitmix64(base ^ (static_cast<uint64_t>(i) * 0xd1342543de82ef95ull));
      const float mag =
          0.0625f + 0.9375f * static_cast<float>(r >> 40) * (1.0f / 16777216.0f);  // [1/16, 1)
      set(i, (r & 1u) ? -mag : mag);
    }
  });
}

void HostTensor::poison() { std::memset(bytes_.data(), 0xff, size_); }

// ---------------------------------------------------------------------------------------------
// Devices.

std::unique_ptr<DeviceEnv> make_cpu_env() {
  auto env = std::make_unique<DeviceEnv>();
  env->caps = cpu_capabilities();
  env->gemm = make_cpu_gemm_provider();
  return env;
}

std::unique_ptr<DeviceEnv> make_gpu_env(std::string* why, bool allow_tf32) {
  if (!gpu_support_compiled() || gpu_device_count() <= 0) {
    *why = gpu_support_compiled() ? "no GPU visible"
                                  : "no GPU visible (this build has no GPU support)";
    return nullptr;
  }
  auto env = std::make_unique<DeviceEnv>();
  Status s = gpu_set_device(0);
  if (s.ok()) s = query_gpu_capabilities(0, &env->caps);
  if (!s.ok()) {
    *why = "GPU 0 unusable: " + s.message();
    return nullptr;
  }
  env->gemm = make_gpu_gemm_provider(allow_tf32);
  if (!env->gemm) {
    *why = "no GPU GEMM provider in this build";
    return nullptr;
  }
  return env;
}

std::unique_ptr<DeviceEnv> make_env(const std::string& device, bool allow_tf32, std::string* why) {
  if (device == "cpu" || (device.empty() && gpu_device_count() <= 0)) return make_cpu_env();
  return make_gpu_env(why, allow_tf32);
}

DeviceEnv* shared_gpu_env(std::string* why) {
  static std::string reason;
  static DeviceEnv* env = make_gpu_env(&reason).release();
  if (!env) *why = reason;
  return env;
}

bool RunResult::passed() const {
  return declined || (status.ok() && non_finite == 0 && max_err <= tol && repeatable &&
                      inputs_intact && guards_intact);
}

std::string RunResult::describe() const {
  std::ostringstream os;
  os << "solver=" << solver;
  if (declined) {
    os << " declined";
    return os.str();
  }
  if (!status.ok()) {
    os << " status=" << to_string(status.code()) << " (" << status.message() << ")";
    return os.str();
  }
  os << " workspace=" << workspace_bytes << " max_err=" << fmt_double(max_err)
     << " tol=" << fmt_double(tol);
  if (worst_index >= 0) {
    os << " worst[" << worst_index << "] got=" << worst_got << " want=" << worst_want;
  }
  if (non_finite) os << " non_finite=" << non_finite;
  if (!repeatable) os << " NOT bitwise repeatable";
  if (!inputs_intact) os << " WROTE INTO AN INPUT";
  if (!guards_intact) os << " WROTE PAST THE END OF THE RESULT OR THE WORKSPACE";
  return os.str();
}

void report_row(const std::string& problem, const ConvProblem& p, Pass pass, const char* device,
                const RunResult& r) {
  const char* path = std::getenv("GEMMCONV_TEST_REPORT");
  if (!path || !*path || r.declined) return;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  FILE* f = std::fopen(path, "a");
  if (!f) return;
  std::fseek(f, 0, SEEK_END);
  if (std::ftell(f) == 0) {
    std::fprintf(f, "%-34s %-5s %-16s %-16s %-6s %12s %11s %11s %s\n", "problem", "dtype", "pass",
                 "solver", "device", "workspace", "max_rel_err", "tolerance", "result");
  }
  std::fprintf(f, "%-34s %-5s %-16s %-16s %-6s %12zu %11.3e %11.3e %s\n", problem.c_str(),
               to_string(p.dtype), to_string(pass), r.solver.c_str(), device, r.workspace_bytes,
               r.max_err, r.tol,
               r.passed() ? "pass" : (r.status.ok() ? "FAIL" : to_string(r.status.code())));
  std::fclose(f);
}

// ---------------------------------------------------------------------------------------------
// Geometry of the direct loop.
//
// Regular and transposed problems share one relation between two activation tensors A and B:
// pixel a of A and pixel b of B meet at filter tap f when b = a * stride - pad_begin + f *
// dilation, and channel ca of A meets channel cb of B of the same group through w[ca][cb % Cbg][f].
// Regular: A is the output, B the input. Transposed: A is the input, B the output.

struct Tester::Geometry {
  int64_t n = 0, ca = 0, cb = 0, g = 1, cag = 0, cbg = 0;
  int64_t a[3] = {1, 1, 1}, b[3] = {1, 1, 1}, f[3] = {1, 1, 1};
  int64_t s[3] = {1, 1, 1}, d[3] = {1, 1, 1}, pad[3] = {0, 0, 0};
  bool channels_last = false;

  static int64_t pixels(const int64_t* x) { return x[0] * x[1] * x[2]; }

  int64_t act_offset(int64_t channels, const int64_t* dims, int64_t in, int64_t c,
                     const int64_t* x) const {
    if (channels_last) {
      return (((in * dims[0] + x[0]) * dims[1] + x[1]) * dims[2] + x[2]) * channels + c;
    }
    return (((in * channels + c) * dims[0] + x[0]) * dims[1] + x[1]) * dims[2] + x[2];
  }
  void act_coords(int64_t off, int64_t channels, const int64_t* dims, int64_t* in, int64_t* c,
                  int64_t* x) const {
    if (channels_last) {
      *c = off % channels;
      off /= channels;
    }
    for (int j = 2; j >= 0; --j) {
      x[j] = off % dims[j];
      off /= dims[j];
    }
    if (!channels_last) {
      *c = off % channels;
      off /= channels;
    }
    *in = off;
  }
  int64_t w_offset(int64_t i0, int64_t i1, const int64_t* t) const {
    if (channels_last) return (((i0 * f[0] + t[0]) * f[1] + t[1]) * f[2] + t[2]) * cbg + i1;
    return (((i0 * cbg + i1) * f[0] + t[0]) * f[1] + t[1]) * f[2] + t[2];
  }
  void w_coords(int64_t off, int64_t* i0, int64_t* i1, int64_t* t) const {
    if (channels_last) {
      *i1 = off % cbg;
      off /= cbg;
    }
    for (int j = 2; j >= 0; --j) {
      t[j] = off % f[j];
      off /= f[j];
    }
    if (!channels_last) {
      *i1 = off % cbg;
      off /= cbg;
    }
    *i0 = off;
  }
};

// Bytes of canary after each GPU buffer.
constexpr size_t kGuard = 4096;
constexpr int kCanary = 0x5a;

struct Tester::DeviceTensors {
  void* ptr[4] = {nullptr, nullptr, nullptr, nullptr};  // in, out, w, bias
  ~DeviceTensors() {
    for (void* p : ptr) {
      if (p) (void)gpu_free(p);
    }
  }
};

Tester::Tester(std::string name, const ConvProblem& p, Pass pass, uint64_t seed, bool sampled)
    : name_(std::move(name)), p_(p), pass_(pass), seed_(seed), sampled_(sampled) {}

Tester::~Tester() = default;

double Tester::tolerance() const { return testing::tolerance(p_.dtype, max_terms_) + extra_tol_; }

HostTensor& Tester::result_tensor() {
  HostTensor* const t[4] = {&in_, &out_, &w_, &bias_};
  return *t[written_tensor(pass_)];
}

std::vector<HostTensor*> Tester::read_tensors() {
  switch (pass_) {
    case Pass::forward:
      return {&in_, &w_};
    case Pass::forward_bias:
      return {&in_, &w_, &bias_};
    case Pass::backward_data:
      return {&out_, &w_};
    case Pass::backward_weight:
      return {&in_, &out_};
    case Pass::backward_bias:
      break;
  }
  return {&out_};
}

void Tester::truth_element(int64_t index, double* sum_out, double* abs_out,
                           int64_t* terms_out) const {
  const Geometry& g = *geo_;
  const HostTensor& ta = p_.transposed ? in_ : out_;  // A
  const HostTensor& tb = p_.transposed ? out_ : in_;  // B
  double sum = 0.0, abs = 0.0;
  int64_t terms = 0;
  auto add = [&](double x, double y) {
    sum += x * y;
    abs += std::fabs(x * y);
    ++terms;
  };
  const Direction dir = direction_of(pass_);
  // Which tensor is written: the A side, the B side, the weight or the bias.
  enum { kA, kB, kW, kBias } side;
  if (dir == Direction::backward_weight) {
    side = kW;
  } else if (dir == Direction::backward_bias) {
    side = kBias;
  } else {
    const bool writes_output = dir == Direction::forward;
    side = (writes_output != p_.transposed) ? kA : kB;
  }
  int64_t n = 0, c = 0, x[3], t[3], o[3];
  if (side == kA) {
    g.act_coords(index, g.ca, g.a, &n, &c, x);
    const int64_t grp = c / g.cag;
    for (int64_t cl = 0; cl < g.cbg; ++cl) {
      for (t[0] = 0; t[0] < g.f[0]; ++t[0]) {
        for (t[1] = 0; t[1] < g.f[1]; ++t[1]) {
          for (t[2] = 0; t[2] < g.f[2]; ++t[2]) {
            bool inside = true;
            for (int j = 0; j < 3; ++j) {
              o[j] = x[j] * g.s[j] - g.pad[j] + t[j] * g.d[j];
              inside = inside && o[j] >= 0 && o[j] < g.b[j];
            }
            if (!inside) continue;
            add(tb.get(g.act_offset(g.cb, g.b, n, grp * g.cbg + cl, o)),
                w_.get(g.w_offset(c, cl, t)));
          }
        }
      }
    }
  } else if (side == kB) {
    g.act_coords(index, g.cb, g.b, &n, &c, x);
    const int64_t grp = c / g.cbg, cl = c % g.cbg;
    for (int64_t al = 0; al < g.cag; ++al) {
      const int64_t ca = grp * g.cag + al;
      for (t[0] = 0; t[0] < g.f[0]; ++t[0]) {
        for (t[1] = 0; t[1] < g.f[1]; ++t[1]) {
          for (t[2] = 0; t[2] < g.f[2]; ++t[2]) {
            bool inside = true;
            for (int j = 0; j < 3; ++j) {
              const int64_t q = x[j] + g.pad[j] - t[j] * g.d[j];
              o[j] = q >= 0 ? q / g.s[j] : -1;
              inside = inside && q >= 0 && q % g.s[j] == 0 && o[j] < g.a[j];
            }
            if (!inside) continue;
            add(ta.get(g.act_offset(g.ca, g.a, n, ca, o)), w_.get(g.w_offset(ca, cl, t)));
          }
        }
      }
    }
  } else if (side == kW) {
    int64_t ca = 0, cl = 0;
    g.w_coords(index, &ca, &cl, t);
    const int64_t cb = (ca / g.cag) * g.cbg + cl;
    int64_t a[3], b[3];
    for (int64_t in = 0; in < g.n; ++in) {
      for (a[0] = 0; a[0] < g.a[0]; ++a[0]) {
        for (a[1] = 0; a[1] < g.a[1]; ++a[1]) {
          for (a[2] = 0; a[2] < g.a[2]; ++a[2]) {
            bool inside = true;
            for (int j = 0; j < 3; ++j) {
              b[j] = a[j] * g.s[j] - g.pad[j] + t[j] * g.d[j];
              inside = inside && b[j] >= 0 && b[j] < g.b[j];
            }
            if (!inside) continue;
            add(ta.get(g.act_offset(g.ca, g.a, in, ca, a)),
                tb.get(g.act_offset(g.cb, g.b, in, cb, b)));
          }
        }
      }
    }
  } else {
    // The bias gradient sums the user's output gradient over samples and pixels.
    const HostTensor& dy = out_;
    const int64_t channels = p_.transposed ? g.cb : g.ca;
    const int64_t* dims = p_.transposed ? g.b : g.a;
    for (int64_t in = 0; in < g.n; ++in) {
      for (x[0] = 0; x[0] < dims[0]; ++x[0]) {
        for (x[1] = 0; x[1] < dims[1]; ++x[1]) {
          for (x[2] = 0; x[2] < dims[2]; ++x[2]) {
            add(dy.get(g.act_offset(channels, dims, in, index, x)), 1.0);
          }
        }
      }
    }
  }
  if (pass_ == Pass::forward_bias) {
    add(bias_.get(c), 1.0);
  }
  *sum_out = sum;
  *abs_out = abs;
  *terms_out = terms;
}

Status Tester::setup() {
  if (set_up_) return Status::success();
  const Status v = validate(p_);
  if (!v.ok()) return v;

  geo_ = std::make_unique<Geometry>();
  Geometry& g = *geo_;
  const int sd = p_.spatial_dims;
  const Dims user_out = output_size(p_);
  for (int j = 0; j < sd; ++j) {
    const int k = 3 - sd + j;
    const int64_t in = p_.input_size[j], f = p_.filter_size[j], s = p_.stride[j];
    const int64_t d = p_.dilation[j], pb = p_.pad_begin[j], pe = p_.pad_end[j];
    int64_t out;
    if (p_.transposed) {
      out = (in - 1) * s - pb - pe + d * (f - 1) + p_.output_padding[j] + 1;
    } else {
      out = (in + pb + pe - d * (f - 1) - 1) / s + 1;
    }
    if (out != user_out[j]) {
      return Status(StatusCode::internal_error,
                    "output_size disagrees with the tester in dimension " + std::to_string(j) +
                        ": " + std::to_string(user_out[j]) + " vs " + std::to_string(out));
    }
    g.a[k] = p_.transposed ? in : out;
    g.b[k] = p_.transposed ? out : in;
    g.f[k] = f;
    g.s[k] = s;
    g.d[k] = d;
    g.pad[k] = pb;
  }
  g.n = p_.batch;
  g.g = p_.groups;
  g.ca = p_.transposed ? p_.in_channels : p_.out_channels;
  g.cb = p_.transposed ? p_.out_channels : p_.in_channels;
  g.cag = g.ca / g.g;
  g.cbg = g.cb / g.g;
  g.channels_last = p_.layout == Layout::channels_last;

  in_ = HostTensor(p_.dtype, input_elements(p_));
  out_ = HostTensor(p_.dtype, output_elements(p_));
  w_ = HostTensor(p_.dtype, weight_elements(p_));
  bias_ = HostTensor(p_.dtype, p_.out_channels);
  const int64_t expect_in =
      g.n * (p_.transposed ? g.ca * Geometry::pixels(g.a) : g.cb * Geometry::pixels(g.b));
  const int64_t expect_w = g.ca * g.cbg * Geometry::pixels(g.f);
  if (expect_in != in_.count() || expect_w != w_.count()) {
    return Status(StatusCode::internal_error, "element counts disagree with the tester: input " +
                                                  std::to_string(in_.count()) + ", weight " +
                                                  std::to_string(w_.count()));
  }
  HostTensor* targets[4] = {&in_, &out_, &w_, &bias_};
  HostTensor* result = &result_tensor();
  for (uint64_t i = 0; i < 4; ++i) {
    if (targets[i] == result) {
      targets[i]->poison();
    } else {
      targets[i]->fill_random(seed_ * 4 + i);
    }
  }
  set_up_ = true;
  return Status::success();
}

Status Tester::prepare() {
  if (prepared_) return Status::success();
  const Status su = setup();
  if (!su.ok()) return su;
  HostTensor* targets[4] = {&in_, &out_, &w_, &bias_};
  HostTensor* result = &result_tensor();

  // The elements compared.
  const int64_t count = result->count();
  if (!sampled_) {
    sample_.resize(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) sample_[static_cast<size_t>(i)] = i;
  } else {
    const int64_t want = pass_ == Pass::backward_weight ? 16 : 4096;
    std::mt19937_64 rng(seed_);
    for (int64_t i = 0; i < want && i < count; ++i) {
      sample_.push_back(static_cast<int64_t>(rng() % static_cast<uint64_t>(count)));
    }
    for (int64_t i = std::max<int64_t>(0, count - 64); i < count; ++i) sample_.push_back(i);
    std::sort(sample_.begin(), sample_.end());
    sample_.erase(std::unique(sample_.begin(), sample_.end()), sample_.end());
  }
  truth_.assign(sample_.size(), 0.0);
  abs_.assign(sample_.size(), 0.0);
  std::vector<int64_t> terms(sample_.size(), 0);
  // The worker that starts at element 0 reports the progress of all of them.
  const int64_t total = static_cast<int64_t>(sample_.size());
  std::atomic<int64_t> done{0};
  parallel_for(total, sampled_ ? 1 : int64_t(1) << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const size_t k = static_cast<size_t>(i);
      truth_element(sample_[k], &truth_[k], &abs_[k], &terms[k]);
      if (progress_ && ((i - b) & 1023) == 1023) {
        const int64_t now = done.fetch_add(1024) + 1024;
        if (b == 0)
          progress_("direct float64 loop", static_cast<double>(now) / static_cast<double>(total));
      }
    }
  });
  if (progress_) progress_("direct float64 loop", 1.0);
  max_terms_ = 1;
  for (int64_t t : terms) max_terms_ = std::max(max_terms_, t);

  if (!sampled_) {
    // The official truth: the reference solver in float64 on the CPU.
    ConvProblem p64 = p_;
    p64.dtype = DataType::f64;
    HostTensor t64[4] = {
        HostTensor(DataType::f64, in_.count()), HostTensor(DataType::f64, out_.count()),
        HostTensor(DataType::f64, w_.count()), HostTensor(DataType::f64, bias_.count())};
    for (int i = 0; i < 4; ++i) {
      for (int64_t j = 0; j < targets[i]->count(); ++j) t64[i].set(j, targets[i]->get(j));
    }
    const int ri = written_tensor(pass_);
    t64[ri].poison();
    if (progress_) progress_("float64 reference solver", 0.0);
    auto env = make_cpu_env();
    PlanOptions opts;
    if (pass_ != Pass::backward_bias) opts.solver = "reference";
    Plan plan;
    Status s = make_plan(p64, direction_of(pass_), env->caps, opts, &plan);
    if (!s.ok()) {
      return Status(s.code(), "planning the float64 reference failed: " + s.message());
    }
    if (plan.workspace_bytes != 0 && pass_ != Pass::backward_bias) {
      return Status(StatusCode::internal_error, "the reference solver asked for workspace");
    }
    std::vector<unsigned char> ws(plan.workspace_bytes);
    void* d[4] = {t64[0].data(), t64[1].data(), t64[2].data(), t64[3].data()};
    const ConvBuffers bufs = buffers_for(pass_, d);
    ExecContext ctx;
    ctx.caps = &env->caps;
    ctx.gemm = env->gemm.get();
    ctx.workspace = ws.empty() ? nullptr : ws.data();
    ctx.workspace_bytes = ws.size();
    s = execute(plan, bufs, ctx);
    if (!s.ok()) {
      return Status(s.code(), "running the float64 reference failed: " + s.message());
    }
    const double tol = testing::tolerance(DataType::f64, max_terms_);
    for (size_t k = 0; k < sample_.size(); ++k) {
      const double ref = t64[ri].get(sample_[k]);
      const double err = std::fabs(ref - truth_[k]);
      if (!(err <= tol * abs_[k])) {
        std::ostringstream os;
        os << "the reference solver (" << plan.solver_name()
           << ", float64) disagrees with the tester's direct loop at element " << sample_[k] << ": "
           << ref << " vs " << truth_[k];
        return Status(StatusCode::internal_error, os.str());
      }
      truth_[k] = ref;
    }
    if (progress_) progress_("float64 reference solver", 1.0);
  }
  prepared_ = true;
  return Status::success();
}

// A plan bound to the tester's tensors on one device, with its workspace.
struct Tester::Bound {
  bool gpu = false;
  void* ptr[4] = {nullptr, nullptr, nullptr, nullptr};  // in, out, w, bias
  std::vector<std::vector<unsigned char>> cpu_bufs;
  void* ws = nullptr;
  std::unique_ptr<unsigned char[]> cpu_ws;
  ConvBuffers bufs;
  ExecContext ctx;
  ~Bound() {
    if (gpu && ws) (void)gpu_free(ws);
  }
};

Status Tester::plan(DeviceEnv& dev, const PlanOptions& opts_in, Plan* plan) const {
  if (found_) {
    *plan = *found_;
    return Status::success();
  }
  PlanOptions opts = opts_in;
  if (pass_ == Pass::backward_bias) opts.solver.clear();
  opts.gemm_available = dev.gemm != nullptr;  // a build without a CPU BLAS plans direct solvers
  return make_plan(p_, direction_of(pass_), dev.caps, opts, plan);
}

Status Tester::find(DeviceEnv& dev, const PlanOptions& opts_in, Plan* out, FindResult* result) {
  found_.reset();
  Status s = setup();
  if (!s.ok()) return s;
  // The buffers first: the find step times the candidates on them.
  Bound b;
  s = bind(dev, 0, &b);
  if (!s.ok()) return s;
  PlanOptions opts = opts_in;
  if (pass_ == Pass::backward_bias) opts.solver.clear();
  opts.gemm_available = dev.gemm != nullptr;
  FindRequest req;
  req.buffers = b.bufs;
  req.gemm = dev.gemm.get();
  Plan plan;
  s = find_plan(p_, direction_of(pass_), dev.caps, opts, req, &plan, result);
  if (b.gpu && s.ok()) s = gpu_synchronize();
  if (!s.ok()) return s;
  found_ = std::make_unique<Plan>(plan);
  *out = plan;
  return Status::success();
}

Status Tester::bind(DeviceEnv& dev, size_t ws_bytes, Bound* b) {
  HostTensor* host[4] = {&in_, &out_, &w_, &bias_};
  const int ri = written_tensor(pass_);
  b->gpu = dev.kind() == DeviceKind::gpu;
  Status s;
  if (b->gpu) {
    if (!gpu_) {
      gpu_ = std::make_unique<DeviceTensors>();
      for (int i = 0; i < 4; ++i) {
        s = gpu_malloc(&gpu_->ptr[i], host[i]->bytes() + kGuard);
        if (s.ok() && i != ri)
          s = gpu_memcpy_to_device(gpu_->ptr[i], host[i]->data(), host[i]->bytes());
        if (!s.ok()) {
          gpu_.reset();
          return s;
        }
      }
    }
    for (int i = 0; i < 4; ++i) b->ptr[i] = gpu_->ptr[i];
  } else {
    // Buffers of exactly the tensors' sizes, so that AddressSanitizer catches an overrun.
    b->cpu_bufs.resize(4);
    for (int i = 0; i < 4; ++i) {
      b->cpu_bufs[i].assign(host[i]->data(), host[i]->data() + host[i]->bytes());
      if (b->cpu_bufs[i].empty()) b->cpu_bufs[i].resize(1);  // a non-null address
      b->ptr[i] = b->cpu_bufs[i].data();
    }
  }
  // The workspace, exactly as large as the plan asked, filled with NaNs.
  if (ws_bytes > 0) {
    if (b->gpu) {
      s = gpu_malloc(&b->ws, ws_bytes + kGuard);
      if (s.ok()) s = gpu_memset(b->ws, 0xff, ws_bytes);
      if (s.ok()) s = gpu_memset(static_cast<unsigned char*>(b->ws) + ws_bytes, kCanary, kGuard);
      if (!s.ok()) return s;
    } else {
      b->cpu_ws.reset(new unsigned char[ws_bytes]);
      std::memset(b->cpu_ws.get(), 0xff, ws_bytes);
      b->ws = b->cpu_ws.get();
    }
  }
  b->bufs = buffers_for(pass_, b->ptr);
  b->ctx.caps = &dev.caps;
  b->ctx.gemm = dev.gemm.get();
  b->ctx.workspace = b->ws;
  b->ctx.workspace_bytes = ws_bytes;
  return Status::success();
}

RunResult Tester::run(DeviceEnv& dev, const PlanOptions& opts) {
  RunResult r;
  r.solver = opts.solver.empty() ? "(planner)" : opts.solver;
  if (!prepared_) {
    r.status = prepare();
    if (!r.status.ok()) return r;
  }
  r.tol = tolerance();
  Plan plan;
  Status s = this->plan(dev, opts, &plan);
  if (s.code() == StatusCode::not_applicable) {
    r.declined = true;
    return r;
  }
  if (!s.ok()) {
    r.status = s;
    report_row(name_, p_, pass_, dev.name(), r);
    return r;
  }
  r.solver = plan.solver_name() ? plan.solver_name() : "(null)";
  r.workspace_bytes = plan.workspace_bytes;
  if (plan.solver == &winograd_gemm_solver()) {
    r.tol =
        transform_tolerance(p_.dtype, max_terms_, winograd::error_factor(plan.shape, plan.regular),
                            winograd::worst_error_factor(plan.shape, plan.regular));
  }

  HostTensor* host[4] = {&in_, &out_, &w_, &bias_};
  HostTensor& result = result_tensor();
  const int ri = written_tensor(pass_);
  auto fail = [&](const Status& st) {
    r.status = st;
    report_row(name_, p_, pass_, dev.name(), r);
    return r;
  };
  Bound b;
  s = bind(dev, plan.workspace_bytes, &b);
  if (!s.ok()) return fail(s);
  const bool gpu = b.gpu;
  void* const* ptr = b.ptr;

  HostTensor got[2] = {HostTensor(p_.dtype, result.count()), HostTensor(p_.dtype, result.count())};
  for (int rep = 0; rep < 2; ++rep) {
    if (gpu) {
      s = gpu_memset(ptr[ri], 0xff, result.bytes());
      if (s.ok()) {
        s = gpu_memset(static_cast<unsigned char*>(ptr[ri]) + result.bytes(), kCanary, kGuard);
      }
    } else {
      std::memset(ptr[ri], 0xff, result.bytes());
    }
    if (s.ok()) s = execute(plan, b.bufs, b.ctx);
    if (s.ok() && gpu) s = gpu_synchronize();
    if (s.ok() && gpu) s = gpu_memcpy_to_host(got[rep].data(), ptr[ri], result.bytes());
    if (!s.ok()) return fail(s);
    if (!gpu) std::memcpy(got[rep].data(), ptr[ri], result.bytes());
  }
  r.repeatable = std::memcmp(got[0].data(), got[1].data(), result.bytes()) == 0;
  if (gpu) {
    // Without a sanitizer on the device, canaries past the end catch overruns.
    std::vector<unsigned char> guard(kGuard);
    const std::pair<void*, size_t> guarded[2] = {{ptr[ri], result.bytes()},
                                                 {b.ws, plan.workspace_bytes}};
    for (const auto& g : guarded) {
      if (!g.first) continue;
      s = gpu_memcpy_to_host(guard.data(), static_cast<unsigned char*>(g.first) + g.second, kGuard);
      if (!s.ok()) return fail(s);
      for (unsigned char c : guard) r.guards_intact = r.guards_intact && c == kCanary;
    }
  }

  if (!sampled_) {
    for (int i = 0; i < 4; ++i) {
      if (i == ri || (pass_ != Pass::forward_bias && i == 3) || host[i]->bytes() == 0) continue;
      std::vector<unsigned char> now(host[i]->bytes());
      if (gpu) {
        s = gpu_memcpy_to_host(now.data(), ptr[i], now.size());
        if (!s.ok()) return fail(s);
      } else {
        std::memcpy(now.data(), ptr[i], now.size());
      }
      if (std::memcmp(now.data(), host[i]->data(), now.size()) != 0) r.inputs_intact = false;
    }
  }

  for (size_t k = 0; k < sample_.size(); ++k) {
    const double v = got[0].get(sample_[k]);
    const double want = truth_[k];
    double err;
    if (!std::isfinite(v)) {
      ++r.non_finite;
      err = std::numeric_limits<double>::infinity();
    } else if (abs_[k] > 0.0) {
      err = std::fabs(v - want) / abs_[k];
    } else {
      err = v == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
    }
    if (err > r.max_err || r.worst_index < 0) {
      r.max_err = err;
      r.worst_index = sample_[k];
      r.worst_got = v;
      r.worst_want = want;
    }
  }
  report_row(name_, p_, pass_, dev.name(), r);
  return r;
}

TimeResult Tester::time(DeviceEnv& dev, const PlanOptions& opts, int64_t warmup, int64_t reps) {
  TimeResult t;
  t.solver = opts.solver.empty() ? "(planner)" : opts.solver;
  t.status = setup();
  if (!t.status.ok()) return t;
  Plan plan;
  Status s = this->plan(dev, opts, &plan);
  if (s.code() == StatusCode::not_applicable) {
    t.declined = true;
    return t;
  }
  if (s.ok()) {
    t.solver = plan.solver_name();
    t.workspace_bytes = plan.workspace_bytes;
  }
  Bound b;
  if (s.ok()) s = bind(dev, plan.workspace_bytes, &b);
  GpuTimer timer;
  bool have_timer = false;
  if (s.ok() && b.gpu) {
    s = gpu_timer_create(&timer);
    have_timer = s.ok();
  }
  for (int64_t rep = 0; rep < warmup + reps && s.ok(); ++rep) {
    float ms = 0.0f;
    if (b.gpu) {
      s = gpu_timer_start(&timer, nullptr);
      if (s.ok()) s = execute(plan, b.bufs, b.ctx);
      if (s.ok()) s = gpu_timer_stop(&timer, nullptr, &ms);
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      s = execute(plan, b.bufs, b.ctx);
      ms = std::chrono::duration<float, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    if (s.ok() && rep >= warmup) t.ms.push_back(ms);
  }
  if (have_timer) gpu_timer_destroy(&timer);
  t.status = s;
  return t;
}

std::vector<RunResult> run_all_solvers(Tester& t, DeviceEnv& dev, size_t workspace_budget) {
  std::vector<RunResult> out;
  PlanOptions opts;
  opts.workspace_budget = workspace_budget;
  if (t.pass() == Pass::backward_bias) {
    out.push_back(t.run(dev, opts));
    return out;
  }
  for (const Solver* s : solver_registry()) {
    opts.solver = s->name();
    out.push_back(t.run(dev, opts));
  }
  return out;
}

}  // namespace testing
}  // namespace gemmconv
