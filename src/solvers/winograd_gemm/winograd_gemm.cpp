// The winograd_gemm solver: stride-1 3x3 (and 3-tap 1-D) correlations as input, filter and
// output transforms around one strided-batched GEMM over transform points and groups; the weight
// gradient as input and dy transforms around the GEMM that sums over tiles, then the filter
// gradient's transform.
#include <algorithm>
#include <cmath>
#include <limits>

#include "configs/hardware.h"
#include "solvers/common.h"
#include "solvers/gemm_map.h"
#include "solvers/solvers.h"
#include "solvers/winograd_gemm/winograd.h"
#include "solvers/winograd_gemm/winograd_math.h"

namespace gemmconv {
namespace winograd {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr double kF2Bt[] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
constexpr double kF2G[] = {1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1};
constexpr double kF2At[] = {1, 1, 1, 0, 0, 1, -1, -1};
constexpr double kF4Bt[] = {4, 0,  -5, 0, 1, 0, 0, -4, -4, 1,  1, 0, 0, 4, -4, -1, 1, 0,
                            0, -2, -1, 2, 1, 0, 0, 2,  -1, -2, 1, 0, 0, 4, 0,  -5, 0, 1};
constexpr double kF4G[] = {1.0 / 4,  0,         0,        -1.0 / 6, -1.0 / 6, -1.0 / 6,
                           -1.0 / 6, 1.0 / 6,   -1.0 / 6, 1.0 / 24, 1.0 / 12, 1.0 / 6,
                           1.0 / 24, -1.0 / 12, 1.0 / 6,  0,        0,        1};
constexpr double kF4At[] = {1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0,
                            0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1};
constexpr double kOne[] = {1};

// Leading padding of one axis as the correlation sees it, and whether the axis is supported:
// stride 1, dilation 1 on a 3-tap axis, 1 or 3 taps, padding within [0, taps - 1] each side.
bool axis_ok(const ConvShape& s, int a) {
  const int64_t taps = s.filt[a];
  if (taps != 1 && taps != 3) return false;
  if (s.stride[a] != 1 || (taps == 3 && s.dilation[a] != 1)) return false;
  const int64_t pad_end = s.out[a] + taps - 1 - s.in[a] - s.pad[a];
  return s.pad[a] >= 0 && s.pad[a] <= taps - 1 && pad_end >= 0 && pad_end <= taps - 1;
}

}  // namespace

Matrices matrices(int alpha) {
  if (alpha == 4) return Matrices{4, 2, 3, kF2Bt, kF2G, kF2At};
  if (alpha == 6) return Matrices{6, 4, 3, kF4Bt, kF4G, kF4At};
  return Matrices{1, 1, 1, kOne, kOne, kOne};
}

double axis_worst_case(int alpha) {
  const Matrices mt = matrices(alpha);
  double worst = 0.0;
  for (int o = 0; o < mt.m; ++o) {
    double sum = 0.0;
    for (int xi = 0; xi < mt.alpha; ++xi) {
      double gs = 0.0, bs = 0.0;
      for (int j = 0; j < mt.r; ++j) gs += std::fabs(mt.g[xi * mt.r + j]);
      for (int i = 0; i < mt.alpha; ++i) bs += std::fabs(mt.bt[xi * mt.alpha + i]);
      sum += std::fabs(mt.at[o * mt.alpha + xi]) * gs * bs;
    }
    worst = std::max(worst, sum / mt.r);
  }
  return worst;
}

namespace {

// |B^T[xi][:]| and |A^T[:][xi]| under a norm (p = 1 or 2, returned as the sum of |x|^p).
double bt_row(const Matrices& mt, int xi, int pw) {
  double s = 0.0;
  for (int i = 0; i < mt.alpha; ++i) s += std::pow(std::fabs(mt.bt[xi * mt.alpha + i]), pw);
  return s;
}
double at_col(const Matrices& mt, int xi, int pw) {
  double s = 0.0;
  for (int o = 0; o < mt.m; ++o) s += std::pow(std::fabs(mt.at[o * mt.alpha + xi]), pw);
  return s;
}

}  // namespace

double axis_amplification_wgrad(int alpha) {
  const Matrices mt = matrices(alpha);
  double worst = 0.0;
  for (int j = 0; j < mt.r; ++j) {
    double sq = 0.0;
    for (int xi = 0; xi < mt.alpha; ++xi) {
      const double e = mt.g[xi * mt.r + j];
      sq += e * e * bt_row(mt, xi, 2) * at_col(mt, xi, 2);
    }
    worst = std::max(worst, std::sqrt(sq / mt.m));
  }
  return worst;
}

double axis_worst_case_wgrad(int alpha) {
  const Matrices mt = matrices(alpha);
  double worst = 0.0;
  for (int j = 0; j < mt.r; ++j) {
    double sum = 0.0;
    for (int xi = 0; xi < mt.alpha; ++xi) {
      sum += std::fabs(mt.g[xi * mt.r + j]) * bt_row(mt, xi, 1) * at_col(mt, xi, 1);
    }
    worst = std::max(worst, sum / mt.m);
  }
  return worst;
}

double axis_amplification(int alpha) {
  const Matrices mt = matrices(alpha);
  double worst = 0.0;
  for (int o = 0; o < mt.m; ++o) {
    double sq = 0.0;
    for (int xi = 0; xi < mt.alpha; ++xi) {
      double gs = 0.0, bs = 0.0;
      for (int j = 0; j < mt.r; ++j) gs += mt.g[xi * mt.r + j] * mt.g[xi * mt.r + j];
      for (int i = 0; i < mt.alpha; ++i) bs += mt.bt[xi * mt.alpha + i] * mt.bt[xi * mt.alpha + i];
      const double e = mt.at[o * mt.alpha + xi];
      sq += e * e * gs * bs;
    }
    worst = std::max(worst, std::sqrt(sq / mt.r));
  }
  return worst;
}

int pick_alpha(int64_t taps, int64_t extent, DataType t) {
  if (taps == 1) return 1;
  if (t == DataType::f16 || t == DataType::bf16) return 4;
  return 6 * ceil_div(extent, 4) < 4 * ceil_div(extent, 2) ? 6 : 4;
}

Plan make_plan(const ConvShape& s, Direction d) {
  Plan p;
  if (d == Direction::backward_bias) return p;
  if (!solvers::has_work(s) || s.cg() < 2) return p;
  if (s.filt[0] != 1 || s.pad[0] != 0 || s.stride[0] != 1 || s.out[0] != s.in[0]) return p;
  if (!axis_ok(s, 1) || !axis_ok(s, 2) || (s.filt[1] == 1 && s.filt[2] == 1)) return p;
  // backward_weight keeps the forward geometry: source x, destination dy.
  const bool bwd = d == Direction::backward_data;
  p.backward = bwd;
  p.weight_grad = d == Direction::backward_weight;
  p.n = s.n;
  p.planes = s.in[0];
  p.g = s.g;
  p.filt_h = s.filt[1];
  p.filt_w = s.filt[2];
  p.layout = s.layout;
  p.dtype = s.dtype;
  p.src_ch = bwd ? s.k : s.c;
  p.dst_ch = bwd ? s.c : s.k;
  p.src_h = bwd ? s.out[1] : s.in[1];
  p.src_w = bwd ? s.out[2] : s.in[2];
  p.dst_h = bwd ? s.in[1] : s.out[1];
  p.dst_w = bwd ? s.in[2] : s.out[2];
  // Backward data correlates dy with the flipped filter; its leading padding is taps - 1 - pad.
  p.pad_h = bwd ? s.filt[1] - 1 - s.pad[1] : s.pad[1];
  p.pad_w = bwd ? s.filt[2] - 1 - s.pad[2] : s.pad[2];
  p.alpha_h = pick_alpha(s.filt[1], p.dst_h, s.dtype);
  p.alpha_w = pick_alpha(s.filt[2], p.dst_w, s.dtype);
  p.m_h = p.alpha_h == 1 ? 1 : p.alpha_h - 2;
  p.m_w = p.alpha_w == 1 ? 1 : p.alpha_w - 2;
  p.transforms = int64_t(p.alpha_h) * p.alpha_w;
  p.tiles_h = ceil_div(p.dst_h, p.m_h);
  p.tiles_w = ceil_div(p.dst_w, p.m_w);
  p.tiles_per_sample = p.planes * p.tiles_h * p.tiles_w;
  p.channel_major = s.layout == Layout::contiguous;
  p.valid = true;
  return p;
}

double error_factor(const ConvShape& s, Direction d) {
  const Plan p = make_plan(s, d);
  if (!p.valid) return 1.0;
  if (p.weight_grad)
    return axis_amplification_wgrad(p.alpha_h) * axis_amplification_wgrad(p.alpha_w);
  return axis_amplification(p.alpha_h) * axis_amplification(p.alpha_w);
}

double worst_error_factor(const ConvShape& s, Direction d) {
  const Plan p = make_plan(s, d);
  if (!p.valid) return 1.0;
  if (p.weight_grad) return axis_worst_case_wgrad(p.alpha_h) * axis_worst_case_wgrad(p.alpha_w);
  return axis_worst_case(p.alpha_h) * axis_worst_case(p.alpha_w);
}

solvers::GemmScheme scheme(const Plan& p) {
  return p.channel_major ? solvers::GemmScheme::winograd_channel_major
                         : solvers::GemmScheme::winograd;
}

int64_t filter_elements(const Plan& p) {
  return p.transforms * (p.src_ch / p.g) * (p.dst_ch / p.g) * p.g;
}
int64_t source_elements(const Plan& p, int64_t rows) { return p.transforms * rows * p.src_ch; }
int64_t dest_elements(const Plan& p, int64_t rows) { return p.transforms * rows * p.dst_ch; }

}  // namespace winograd

namespace {

using solvers::ChunkPlan;
using solvers::WorkspaceLayout;

struct Carve {
  size_t u = 0, src = 0, dst = 0, acc = 0, total = 0;
};

// `acc`: the fp32 accumulator of an f16/bf16 weight gradient summed over several chunks, one value
// per element of U.
Carve carve(const winograd::Plan& p, int64_t rows, bool acc) {
  WorkspaceLayout l;
  Carve c;
  c.u = l.add(solvers::bytes_of(p.dtype, winograd::filter_elements(p)));
  c.src = l.add(solvers::bytes_of(p.dtype, winograd::source_elements(p, rows)));
  c.dst = l.add(solvers::bytes_of(p.dtype, winograd::dest_elements(p, rows)));
  if (acc) {
    c.acc = l.add(solvers::mul_sat(static_cast<size_t>(winograd::filter_elements(p)),
                                   solvers::accumulator_element_size(p.dtype)));
  }
  c.total = l.total();
  return c;
}

// The GEMM of `rows` tiles, bound to the buffers: the source buffer stands for the x side
// forward and backward_weight (V) and the y side backward_data (the transformed dy), the
// destination buffer for the other (backward_weight: the transformed dy); U is the w side.
GemmDesc chunk_gemm(const ConvShape& s, Direction d, const winograd::Plan& p, int64_t rows, void* u,
                    void* src, void* dst, double beta = 0.0) {
  const solvers::GemmMap map = solvers::gemm_map(s, d, winograd::scheme(p), rows, p.transforms);
  const ConvTensors sides = p.backward ? ConvTensors{dst, u, src} : ConvTensors{src, u, dst};
  return map.bind(s.dtype, sides, beta);
}

// Chunks of tiles; an f16/bf16 weight gradient over several chunks sums U in fp32.
ChunkPlan chunk_plan(const ConvShape& s, Direction d, const winograd::Plan& p, size_t budget) {
  if (!p.valid) return ChunkPlan{};
  const auto bytes = [&p](int64_t rows, bool acc) { return carve(p, rows, acc).total; };
  const auto gemm_ok = [&](int64_t rows) {
    const solvers::GemmMap map = solvers::gemm_map(s, d, winograd::scheme(p), rows, p.transforms);
    return map.valid && solvers::gemm_fits(chunk_gemm(s, d, p, rows, nullptr, nullptr, nullptr));
  };
  const bool wide = p.weight_grad && solvers::needs_wide_accumulator(p.dtype);
  return solvers::plan_chunks(p.tiles(), budget, wide, bytes, gemm_ok);
}

}  // namespace

namespace winograd {

// The estimate behind preferred() on a GPU: each candidate's DRAM traffic in bytes plus its
// multiply-adds converted to bytes at the machine balance (configs::gemm_flops_per_byte), i.e.
// its time in units of the time to move one byte. Over the whole pass, with b bytes per value,
// source/destination channels cs/cd, P_s/P_d source/destination pixels, T points per tile and
// `tiles` tiles (so the transform domain holds tiles*T >= P_d*T/(m_h m_w) rows, clipping
// included), F filter taps:
//   winograd   b (P_s cs + 2 tiles T cs + 2 tiles T cd + P_d cd + F cs cd/g + 2 T cs cd/g)
//              + 2 tiles T (cs/g) cd / balance      (input and output transforms, GEMM, filter)
//   im2col     b (P_s cs + 2 F P_d cs + P_d cd + F cs cd/g) + 2 P_d F (cs/g) cd / balance
//   implicit   b (P_s cs + P_d cd + F cs cd/g) + 2 P_d F (cs/g) cd / balance
// (implicit_gemm counts where it applies: not f64, and only fp32 on matrix units; its GEMM is
// taken at the provider's rate, which flatters it.) With channel-major buffers in the contiguous
// layout both layouts move the same bytes. For c = k = C and F(4x4) (T/(m m) = 2.25) against
// implicit this gives a gain once C > 4 * 2.25 * b * balance / (18 - 4.5): C > 33 in fp32 on an
// H200 (balance 12), C > 58 on an RX 5700 XT (22). In fp16 on tensor cores (balance 120) the
// GEMM is cheap and the comparison is with im2col_gemm's 9-fold column matrix: F(2x2)'s buffers
// move 8 (c + k) values per pixel against its 18 c, so winograd_gemm wins on traffic alone
// (64 to 256 channels at 56..14 pixels) and loses at 7x7 (16 points for 49 pixels, and a
// transformed filter as large as the activations).
// backward_weight moves the same bytes the other way (x and dy read, both transform-domain
// buffers written and read, U written and read, dw written) and does the same multiply-adds, on
// both sides: the formulas hold as they are, except that implicit_gemm computes no weight
// gradient (infinity), so the comparison is with im2col_gemm alone.
GpuCost gpu_cost(const ConvShape& s, Direction d, const Capabilities& caps) {
  GpuCost c;
  const Plan p = make_plan(s, d);
  if (!p.valid) return c;
  const double b = double(solvers::bytes_of(s.dtype, 1));
  const double balance = configs::gemm_flops_per_byte(caps, s.dtype);
  const double cs = double(p.src_ch), cd = double(p.dst_ch), g = double(p.g);
  const double ps = double(p.n * p.planes * p.src_h * p.src_w);
  const double pd = double(p.n * p.planes * p.dst_h * p.dst_w);
  const double T = double(p.transforms), rows = double(p.tiles()) * T;
  const double F = double(p.filt_h * p.filt_w);
  const double weights = F * cs * cd / g;
  const double direct_flops = 2.0 * pd * F * (cs / g) * cd;
  c.winograd = b * (ps * cs + 2.0 * rows * (cs + cd) + pd * cd + weights + 2.0 * T * cs * cd / g) +
               2.0 * rows * (cs / g) * cd / balance;
  c.im2col = b * (ps * cs + 2.0 * F * pd * cs + pd * cd + weights) + direct_flops / balance;
  const bool implicit_ok = d != Direction::backward_weight && s.dtype != DataType::f64 &&
                           (s.dtype == DataType::f32 || !caps.matrix_units);
  c.implicit = implicit_ok ? b * (ps * cs + pd * cd + weights) + direct_flops / balance
                           : std::numeric_limits<double>::infinity();
  return c;
}

}  // namespace winograd

namespace {

// Where the transforms pay for their memory traffic. On a GPU: the estimate above, winograd_gemm
// when it is at least 10% below both alternatives (its three transform kernels reach less of the
// bandwidth than a streaming copy and cost launches the estimate leaves out; the margin turns the
// near tie of fp16 512 channels at 7x7 on an H200, measured 0.050 ms against im2col_gemm's 0.039
// in channels-last, into a no). On the CPU (measured with the driver, see
// docs/performance.md) fp32 and fp64 gain from 16 channels per group on; f16 and bf16 do not,
// because the CPU GEMM provider widens and narrows every batch entry.
// backward_weight, on both devices, takes the same estimate against im2col_gemm (the only other
// solver for it) with at least 16 channels per group on each side: its GEMM per transform point
// is only Cg x Kg, reduced over every tile, and below the provider's smallest tiles (16 wide on
// matrix units) most of each tile is padding, which the estimate does not see. The estimate
// matters most where the batch is small against the channels: U (T Cg Kg values per group) is
// then written and read at a cost the few tiles do not repay (CPU, fp32, N=4, 512 channels at
// 7x7: 12.7 ms against im2col_gemm's 7.3; at N=16 18.9 against 27.2). The CPU's balance is the
// default family's; on the 2-core build machine it put every layer measured with at least 16
// channels on its faster side (docs/performance.md).
bool worthwhile(const ConvShape& s, Direction d, const Capabilities& caps) {
  const int64_t channels = std::min(s.cg(), s.kg());
  const bool wide = s.dtype == DataType::f32 || s.dtype == DataType::f64;
  if (d == Direction::backward_weight) {
    if (channels < 16 || (caps.kind != DeviceKind::gpu && !wide)) return false;
    const winograd::GpuCost c = winograd::gpu_cost(s, d, caps);
    return c.winograd < 0.9 * c.im2col;
  }
  if (caps.kind == DeviceKind::gpu) {
    const winograd::GpuCost c = winograd::gpu_cost(s, d, caps);
    return c.winograd < 0.9 * std::min(c.im2col, c.implicit);
  }
  return channels >= 16 && wide;
}

// The transforms on the device the context names.
struct Kernels {
  const ExecContext& ctx;
  const winograd::Plan& p;
  bool gpu;

  Status filter(const void* w, void* u) const {
#ifdef GEMMCONV_WITH_GPU
    if (gpu) return winograd::gpu::filter(ctx, p, w, u);
#endif
    return winograd::cpu::filter(p, w, u);
  }
  Status input(const void* src, void* buf, int64_t r0, int64_t rows) const {
#ifdef GEMMCONV_WITH_GPU
    if (gpu) return winograd::gpu::input(ctx, p, src, buf, r0, rows);
#endif
    return winograd::cpu::input(p, src, buf, r0, rows);
  }
  Status output(const void* buf, void* dst, int64_t r0, int64_t rows) const {
#ifdef GEMMCONV_WITH_GPU
    if (gpu) return winograd::gpu::output(ctx, p, buf, dst, r0, rows);
#endif
    return winograd::cpu::output(p, buf, dst, r0, rows);
  }
  Status grad_output(const void* dy, void* buf, int64_t r0, int64_t rows) const {
#ifdef GEMMCONV_WITH_GPU
    if (gpu) return winograd::gpu::grad_output(ctx, p, dy, buf, r0, rows);
#endif
    return winograd::cpu::grad_output(p, dy, buf, r0, rows);
  }
  Status grad_filter(const void* u, void* dw) const {
#ifdef GEMMCONV_WITH_GPU
    if (gpu) return winograd::gpu::grad_filter(ctx, p, u, dw);
#endif
    return winograd::cpu::grad_filter(p, u, dw);
  }
};

class WinogradGemmSolver final : public Solver {
 public:
  const char* name() const override { return "winograd_gemm"; }

  bool is_applicable(const ConvShape& s, Direction d, const PlanContext& ctx) const override {
    if (ctx.caps == nullptr) return false;
#ifndef GEMMCONV_WITH_GPU
    if (ctx.caps->kind == DeviceKind::gpu) return false;
#endif
    const winograd::Plan p = winograd::make_plan(s, d);
    return p.valid && chunk_plan(s, d, p, ctx.workspace_budget).chunk > 0;
  }

  bool preferred(const ConvShape& s, Direction d, const PlanContext& ctx) const override {
    return ctx.caps != nullptr && worthwhile(s, d, *ctx.caps);
  }

  size_t workspace_bytes(const ConvShape& s, Direction d, const PlanContext& ctx) const override {
    return chunk_plan(s, d, winograd::make_plan(s, d), ctx.workspace_budget).bytes;
  }

  Status run(const ConvShape& s, Direction d, const ConvTensors& t,
             const ExecContext& ctx) const override {
    if (ctx.caps == nullptr) {
      return Status(StatusCode::invalid_argument, "winograd_gemm: ctx.caps is null");
    }
    const winograd::Plan p = winograd::make_plan(s, d);
    if (!p.valid) {
      return Status(StatusCode::not_applicable, "winograd_gemm: not a stride-1 3-tap problem");
    }
    const ChunkPlan cp = chunk_plan(s, d, p, ctx.workspace_bytes);
    if (cp.chunk == 0) {
      return Status(StatusCode::workspace_too_small,
                    "winograd_gemm: not applicable to this problem within the workspace handed in");
    }
    if (ctx.workspace == nullptr) {
      return Status(StatusCode::invalid_argument, "winograd_gemm: workspace is null");
    }
    const bool gpu = ctx.caps->kind == DeviceKind::gpu;
#ifndef GEMMCONV_WITH_GPU
    if (gpu) return Status(StatusCode::unsupported, "winograd_gemm: this build has no GPU support");
#endif
    const Carve cv = carve(p, cp.chunk, cp.accumulator);
    void* u = solvers::at_byte(ctx.workspace, cv.u);
    void* src_buf = solvers::at_byte(ctx.workspace, cv.src);
    void* dst_buf = solvers::at_byte(ctx.workspace, cv.dst);
    const Kernels kern{ctx, p, gpu};
    if (p.weight_grad) {
      void* acc = cp.accumulator ? solvers::at_byte(ctx.workspace, cv.acc) : nullptr;
      return run_weight_grad(s, d, t, ctx, p, cp.chunk, kern, u, src_buf, dst_buf, acc);
    }
    const void* src = p.backward ? t.y : t.x;
    void* dst = p.backward ? t.x : t.y;

    Status st = kern.filter(t.w, u);
    if (!st.ok()) return st;
    const int64_t tiles = p.tiles();
    for (int64_t r0 = 0; r0 < tiles; r0 += cp.chunk) {
      const int64_t rows = std::min(cp.chunk, tiles - r0);
      st = kern.input(src, src_buf, r0, rows);
      if (!st.ok()) return st;
      st = solvers::run_gemm(ctx, chunk_gemm(s, d, p, rows, u, src_buf, dst_buf));
      if (!st.ok()) return st;
      st = kern.output(dst_buf, dst, r0, rows);
      if (!st.ok()) return st;
    }
    return Status::success();
  }

 private:
  // backward_weight: per chunk of tiles (in a fixed order) V from x, the transformed dy, and
  // U += V^T M through the GEMM (beta 1 after the first chunk, or an fp32 accumulator for
  // f16/bf16), then U back to dw. Every sum is over a fixed order: bitwise repeatable.
  static Status run_weight_grad(const ConvShape& s, Direction d, const ConvTensors& t,
                                const ExecContext& ctx, const winograd::Plan& p, int64_t chunk,
                                const Kernels& kern, void* u, void* src_buf, void* dst_buf,
                                void* acc) {
    solvers::WeightGradAccumulator usum(ctx, p.dtype, u, winograd::filter_elements(p), acc);
    const int64_t tiles = p.tiles();
    int64_t index = 0;
    Status st;
    for (int64_t r0 = 0; r0 < tiles; r0 += chunk, ++index) {
      const int64_t rows = std::min(chunk, tiles - r0);
      st = kern.input(t.x, src_buf, r0, rows);
      if (!st.ok()) return st;
      st = kern.grad_output(t.y, dst_buf, r0, rows);
      if (!st.ok()) return st;
      st = solvers::run_gemm(ctx, chunk_gemm(s, d, p, rows, u, src_buf, dst_buf, usum.beta(index)));
      if (!st.ok()) return st;
      st = usum.after_chunk(index);
      if (!st.ok()) return st;
    }
    st = usum.finish();
    if (!st.ok()) return st;
    return kern.grad_filter(u, t.w);
  }
};

}  // namespace

// Chunks count tiles of the whole problem.
solvers::ChunkPlan winograd_gemm_chunk_plan(const ConvShape& s, Direction d, size_t budget) {
  return chunk_plan(s, d, winograd::make_plan(s, d), budget);
}

const Solver& winograd_gemm_solver() {
  static const WinogradGemmSolver solver;
  return solver;
}

}  // namespace gemmconv
