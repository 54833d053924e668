// The sample-batched weight gradient of the contiguous layout (gemm_map's sample_major
// backward_weight): per-sample partials summed in sample order. Chunked and unchunked runs agree,
// repeated runs give the same bits, and both solvers that use it are checked on the CPU and,
// where one is visible, the GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "catalog.h"
#include "gemmconv/device.h"
#include "gemmconv/engine.h"
#include "solvers/common.h"
#include "solvers/gemm_map.h"
#include "solvers/solvers.h"
#include "tester.h"

namespace gemmconv {
namespace testing {
namespace {

class CleanConfig {
 public:
  CleanConfig() : saved_(config()) { set_config(Config{}); }
  ~CleanConfig() { set_config(saved_); }

 private:
  Config saved_;
};

struct Case {
  std::string name;
  const char* solver;
  bool x_in_place;  // gemm_1x1 at stride 1 reads x as the column matrix
  ConvProblem p;
};

// Five samples, so that a budget for two gives chunks of 2, 2 and 1.
std::vector<Case> cases() {
  return {
      {"1x1_s1", "gemm_1x1", true, ProblemBuilder(2).batch(5).channels(16, 8).input({7, 6})},
      {"1x1_s2", "gemm_1x1", false,
       ProblemBuilder(2).batch(5).channels(6, 4).input({9, 8}).filter({1}).stride({2})},
      {"3x3", "im2col_gemm", false,
       ProblemBuilder(2).batch(5).channels(4, 6).input({10, 9}).filter({3}).pad({1})},
      {"1x1_s1_im2col", "im2col_gemm", false,
       ProblemBuilder(2).batch(5).channels(16, 8).input({7, 6})},
  };
}

const DataType kTypes[] = {DataType::f32, DataType::f16, DataType::bf16, DataType::f64};

solvers::ChunkPlan chunk_plan(const char* solver, const ConvShape& s, size_t budget) {
  const Direction d = Direction::backward_weight;
  return std::string(solver) == "gemm_1x1" ? gemm_1x1_chunk_plan(s, d, budget)
                                           : im2col_gemm_chunk_plan(s, d, budget);
}

// The least budget under which the solver takes chunks of two samples.
size_t two_sample_budget(const char* solver, const ConvShape& s) {
  size_t lo = 0, hi = size_t(1) << 32;
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    (chunk_plan(solver, s, mid).chunk >= 2 ? hi : lo) = mid;
  }
  return hi;
}

TEST(SampleMajorWgrad, CasesTakeTheSampleMajorScheme) {
  for (const Case& c : cases()) {
    for (DataType t : kTypes) {
      ConvProblem p = c.p;
      p.dtype = t;
      const ConvShape s = canonical_shape(p);
      SCOPED_TRACE(c.name + " " + to_string(t));
      EXPECT_EQ(solvers::explicit_scheme(s, Direction::backward_weight, c.x_in_place),
                solvers::GemmScheme::sample_major);
      const solvers::ChunkPlan whole = chunk_plan(c.solver, s, SIZE_MAX);
      EXPECT_EQ(whole.chunk, s.n);
      EXPECT_FALSE(whole.accumulator);
      const solvers::ChunkPlan two = chunk_plan(c.solver, s, two_sample_budget(c.solver, s));
      EXPECT_EQ(two.chunk, 2);
      EXPECT_EQ(two.accumulator, t == DataType::f16 || t == DataType::bf16);
    }
  }
}

// Through the harness: against the float64 truth, repeatable, within the budget, unchunked and in
// chunks of one and two samples.
void check_through_tester(DeviceEnv& dev) {
  if (!dev.gemm) GTEST_SKIP() << "no GEMM provider on the " << dev.name() << " in this build";
  CleanConfig clean;
  for (const Case& c : cases()) {
    for (DataType t : kTypes) {
      ConvProblem p = c.p;
      p.dtype = t;
      const ConvShape s = canonical_shape(p);
      const size_t two = two_sample_budget(c.solver, s);
      Tester tr(c.name, p, Pass::backward_weight, test_seed());
      ASSERT_TRUE(tr.prepare().ok());
      for (size_t budget : {size_t(1) << 30, two, two - 1}) {
        PlanOptions opts;
        opts.solver = c.solver;
        opts.workspace_budget = budget;
        const RunResult r = tr.run(dev, opts);
        const std::string what = c.name + " " + to_string(t) + " " + dev.name() +
                                 " budget=" + std::to_string(budget) +
                                 " seed=" + std::to_string(tr.seed());
        EXPECT_FALSE(r.declined) << what;
        EXPECT_TRUE(r.passed()) << what << ": " << r.describe();
        EXPECT_LE(r.workspace_bytes, budget) << what;
      }
    }
  }
}

TEST(SampleMajorWgrad, MatchesTruthInChunksCpu) {
  auto dev = make_cpu_env();
  check_through_tester(*dev);
}

TEST(SampleMajorWgrad, MatchesTruthInChunksGpu) {
  std::string why;
  DeviceEnv* dev = shared_gpu_env(&why);
  if (!dev) GTEST_SKIP() << why;
  check_through_tester(*dev);
}

// A buffer on the device of `dev`: host memory for the CPU, device memory for the GPU.
class Buffer {
 public:
  Buffer(const DeviceEnv& dev, size_t bytes) : gpu_(dev.kind() == DeviceKind::gpu), bytes_(bytes) {
    if (gpu_) {
      if (bytes_ > 0 && !gpu_malloc(&p_, bytes_).ok()) p_ = nullptr;
    } else {
      host_.resize(bytes_);
      p_ = host_.data();
    }
  }
  ~Buffer() {
    if (gpu_ && p_ != nullptr) (void)gpu_free(p_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* get() const { return p_; }
  bool ok() const { return bytes_ == 0 || p_ != nullptr; }
  bool upload(const void* src) {
    if (!gpu_) {
      std::memcpy(p_, src, bytes_);
      return true;
    }
    return gpu_memcpy_to_device(p_, src, bytes_).ok();
  }
  bool download(void* dst) const {
    if (!gpu_) {
      std::memcpy(dst, p_, bytes_);
      return true;
    }
    return gpu_synchronize().ok() && gpu_memcpy_to_host(dst, p_, bytes_).ok();
  }
  // Every byte 0xff: a NaN in every floating-point format.
  bool poison() {
    if (!gpu_) {
      std::memset(p_, 0xff, bytes_);
      return true;
    }
    return gpu_memset(p_, 0xff, bytes_).ok();
  }

 private:
  bool gpu_;
  size_t bytes_;
  void* p_ = nullptr;
  std::vector<unsigned char> host_;
};

// Runs the solver's weight gradient under `budget`, with a NaN-filled workspace and result.
HostTensor run_solver(DeviceEnv& dev, const Solver& solver, const ConvShape& s, const HostTensor& x,
                      const HostTensor& y, size_t budget) {
  const Direction d = Direction::backward_weight;
  PlanContext pc;
  pc.caps = &dev.caps;
  pc.workspace_budget = budget;
  HostTensor w(s.dtype, s.w_elements());
  if (!solver.is_applicable(s, d, pc)) {
    ADD_FAILURE() << solver.name() << " declined budget " << budget;
    return w;
  }
  const size_t ws_bytes = solver.workspace_bytes(s, d, pc);
  Buffer dx(dev, x.bytes()), dy(dev, y.bytes()), dw(dev, w.bytes()), ws(dev, ws_bytes);
  if (!dx.ok() || !dy.ok() || !dw.ok() || !ws.ok() || !dx.upload(x.data()) ||
      !dy.upload(y.data()) || !dw.poison() || !ws.poison()) {
    ADD_FAILURE() << "could not set up the buffers on the " << dev.name();
    return w;
  }
  ExecContext ctx;
  ctx.caps = &dev.caps;
  ctx.gemm = dev.gemm.get();
  ctx.workspace = ws.get();
  ctx.workspace_bytes = ws_bytes;
  const Status st = solver.run(s, d, ConvTensors{dx.get(), dw.get(), dy.get()}, ctx);
  EXPECT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(dw.download(w.data()));
  return w;
}

// dw[k][c][f] in float64, and the sum of the absolute values of its terms.
void truth(const ConvShape& s, const HostTensor& x, const HostTensor& y, std::vector<double>* sum,
           std::vector<double>* abs) {
  const int64_t F = s.filt_pixels(), P = s.out_pixels(), I = s.in_pixels();
  sum->assign(static_cast<size_t>(s.w_elements()), 0.0);
  abs->assign(static_cast<size_t>(s.w_elements()), 0.0);
  for (int64_t k = 0; k < s.k; ++k)
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t f = 0; f < F; ++f) {
        const int64_t f2 = f % s.filt[2], f1 = (f / s.filt[2]) % s.filt[1],
                      f0 = f / (s.filt[2] * s.filt[1]);
        double acc = 0.0, mag = 0.0;
        for (int64_t n = 0; n < s.n; ++n)
          for (int64_t p = 0; p < P; ++p) {
            const int64_t o2 = p % s.out[2], o1 = (p / s.out[2]) % s.out[1],
                          o0 = p / (s.out[2] * s.out[1]);
            const int64_t i0 = o0 * s.stride[0] - s.pad[0] + f0 * s.dilation[0];
            const int64_t i1 = o1 * s.stride[1] - s.pad[1] + f1 * s.dilation[1];
            const int64_t i2 = o2 * s.stride[2] - s.pad[2] + f2 * s.dilation[2];
            if (i0 < 0 || i0 >= s.in[0] || i1 < 0 || i1 >= s.in[1] || i2 < 0 || i2 >= s.in[2])
              continue;
            const double term = y.get((n * s.k + k) * P + p) *
                                x.get((n * s.c + c) * I + (i0 * s.in[1] + i1) * s.in[2] + i2);
            acc += term;
            mag += std::fabs(term);
          }
        (*sum)[static_cast<size_t>((k * s.c + c) * F + f)] = acc;
        (*abs)[static_cast<size_t>((k * s.c + c) * F + f)] = mag;
      }
}

// Unchunked and chunked runs: each within the tolerance of the truth, within twice of each other,
// and each bitwise equal to a second run of itself.
void check_chunked_against_unchunked(DeviceEnv& dev) {
  if (!dev.gemm) GTEST_SKIP() << "no GEMM provider on the " << dev.name() << " in this build";
  const uint64_t seed = test_seed();
  for (const Case& c : cases()) {
    const Solver* solver = find_solver(c.solver);
    ASSERT_NE(solver, nullptr) << c.solver;
    for (DataType t : kTypes) {
      ConvProblem p = c.p;
      p.dtype = t;
      const ConvShape s = canonical_shape(p);
      const std::string what = c.name + " " + to_string(t) + " " + dev.name() +
                               " seed=" + std::to_string(seed) + " (GEMMCONV_TEST_SEED)";
      HostTensor x(t, s.x_elements()), y(t, s.y_elements());
      x.fill_random(seed);
      y.fill_random(seed + 1);
      std::vector<double> want, mag;
      truth(s, x, y, &want, &mag);
      const double tol = tolerance(t, s.n * s.out_pixels());
      const size_t two = two_sample_budget(c.solver, s);
      ASSERT_EQ(chunk_plan(c.solver, s, two).chunk, 2) << what;
      const HostTensor whole = run_solver(dev, *solver, s, x, y, SIZE_MAX);
      const HostTensor chunked = run_solver(dev, *solver, s, x, y, two);
      const HostTensor whole2 = run_solver(dev, *solver, s, x, y, SIZE_MAX);
      const HostTensor chunked2 = run_solver(dev, *solver, s, x, y, two);
      EXPECT_EQ(std::memcmp(whole.data(), whole2.data(), whole.bytes()), 0)
          << what << ": two unchunked runs differ";
      EXPECT_EQ(std::memcmp(chunked.data(), chunked2.data(), chunked.bytes()), 0)
          << what << ": two chunked runs differ";
      double worst_whole = 0.0, worst_chunked = 0.0, worst_apart = 0.0;
      for (int64_t i = 0; i < s.w_elements(); ++i) {
        const double m = mag[static_cast<size_t>(i)], ref = want[static_cast<size_t>(i)];
        ASSERT_GT(m, 0.0);
        worst_whole = std::max(worst_whole, std::fabs(whole.get(i) - ref) / m);
        worst_chunked = std::max(worst_chunked, std::fabs(chunked.get(i) - ref) / m);
        worst_apart = std::max(worst_apart, std::fabs(whole.get(i) - chunked.get(i)) / m);
      }
      EXPECT_LE(worst_whole, tol) << what << ": unchunked";
      EXPECT_LE(worst_chunked, tol) << what << ": chunked";
      EXPECT_LE(worst_apart, 2 * tol) << what << ": chunked against unchunked";
    }
  }
}

TEST(SampleMajorWgrad, ChunkedAgreesWithUnchunkedCpu) {
  auto dev = make_cpu_env();
  check_chunked_against_unchunked(*dev);
}

TEST(SampleMajorWgrad, ChunkedAgreesWithUnchunkedGpu) {
  std::string why;
  DeviceEnv* dev = shared_gpu_env(&why);
  if (!dev) GTEST_SKIP() << why;
  check_chunked_against_unchunked(*dev);
}

// The catalog exercises the new path and the old one: for each, a named entry whose contiguous
// weight gradient takes it (1x1 at stride 1 through gemm_1x1, a 3x3 with many pixels through
// im2col_gemm) and entries that stay group_major; the catalog test then runs them.
TEST(SampleMajorWgrad, CatalogCoversBothSchemes) {
  const Capabilities caps = cpu_capabilities();
  PlanContext pc;
  pc.caps = &caps;
  pc.workspace_budget = size_t(1) << 30;
  const auto scheme_of = [](const std::string& name, bool x_in_place) {
    const CatalogEntry* e = find_entry(name);
    EXPECT_NE(e, nullptr) << name << " is not in the catalog";
    if (e == nullptr) return solvers::GemmScheme::channels_last;
    const ConvShape s = canonical_shape(e->problem);
    EXPECT_EQ(regular_direction(e->problem, Direction::backward_weight),
              Direction::backward_weight);
    return solvers::explicit_scheme(s, Direction::backward_weight, x_in_place);
  };
  const auto gemm_1x1_takes = [&](const std::string& name) {
    const CatalogEntry* e = find_entry(name);
    return e != nullptr && gemm_1x1_solver().is_applicable(canonical_shape(e->problem),
                                                           Direction::backward_weight, pc);
  };
  for (const char* name : {"conv2d_1x1", "conv2d_1x1_f16", "conv2d_1x1_bf16", "conv3d_1x1x1"}) {
    EXPECT_EQ(scheme_of(name, true), solvers::GemmScheme::sample_major) << name;
    EXPECT_TRUE(gemm_1x1_takes(name)) << name;
  }
  for (const char* name :
       {"conv2d_3x3", "conv2d_3x3_f16", "conv2d_medium_3x3", "conv2d_3x3_many_pixels"}) {
    EXPECT_EQ(scheme_of(name, false), solvers::GemmScheme::sample_major) << name;
  }
  // Few output pixels: the partials would outweigh what they replace.
  EXPECT_EQ(scheme_of("conv2d_3x3_few_pixels", false), solvers::GemmScheme::group_major);
  EXPECT_EQ(scheme_of("conv2d_1pixel", true), solvers::GemmScheme::group_major);
  EXPECT_FALSE(gemm_1x1_takes("conv2d_1pixel"));
  // One sample, groups, channels-last: never.
  EXPECT_EQ(scheme_of("conv2d_n1", false), solvers::GemmScheme::group_major);
  EXPECT_EQ(scheme_of("conv2d_groups4", false), solvers::GemmScheme::group_major);
  EXPECT_EQ(scheme_of("conv2d_1x1_cl", true), solvers::GemmScheme::channels_last);
}

}  // namespace
}  // namespace testing
}  // namespace gemmconv
