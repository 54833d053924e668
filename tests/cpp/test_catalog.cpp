// Every catalog problem, pass and applicable solver, on the CPU and the GPU, against float64.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "catalog.h"
#include "tester.h"

namespace gemmconv {
namespace testing {
namespace {

// The tests run with a clean configuration (no solver disabled, default budget) whatever the
// environment says, and restore it afterwards.
class CleanConfig {
 public:
  CleanConfig() : saved_(config()) { set_config(Config{}); }
  ~CleanConfig() { set_config(saved_); }

 private:
  Config saved_;
};

std::string context(const Tester& t, const char* device) {
  return t.name() + " [" + to_string(t.problem()) + "] pass=" + to_string(t.pass()) +
         " device=" + device + " seed=" + std::to_string(t.seed()) +
         " (rerun with GEMMCONV_TEST_SEED=" + std::to_string(t.seed()) + ")";
}

// Runs every solver on one device for every pass and checks the results and who ran.
void check_entry(const CatalogEntry& e, DeviceEnv& dev) {
  CleanConfig clean;
  for (Pass pass : all_passes()) {
    Tester t(e.name, e.problem, pass, test_seed());
    const Status prep = t.prepare();
    ASSERT_TRUE(prep.ok()) << context(t, dev.name()) << ": " << prep.message();
    std::set<std::string> ran;
    for (const RunResult& r : run_all_solvers(t, dev)) {
      EXPECT_TRUE(r.passed()) << context(t, dev.name()) << ": " << r.describe();
      if (!r.declined) ran.insert(r.solver);
    }
    if (pass == Pass::backward_bias) {
      EXPECT_EQ(ran.size(), 1u) << context(t, dev.name()) << ": the bias reduction did not run";
      continue;
    }
    if (degenerate(e.problem)) {
      // Nothing to compute: the planner may short-cut every solver; something must still run.
      EXPECT_FALSE(ran.empty()) << context(t, dev.name()) << ": nothing ran";
      continue;
    }
    EXPECT_TRUE(ran.count("reference")) << context(t, dev.name()) << ": reference did not run";
    // Without a GEMM provider (a CPU build without BLAS) GEMM solvers cannot apply.
    if (dev.gemm) {
      EXPECT_TRUE(ran.count("im2col_gemm"))
          << context(t, dev.name()) << ": im2col_gemm declined a non-degenerate problem";
    }
  }
}

class Catalog : public ::testing::TestWithParam<CatalogEntry> {};

TEST_P(Catalog, Cpu) {
  auto dev = make_cpu_env();
  check_entry(GetParam(), *dev);
}

TEST_P(Catalog, Gpu) {
  std::string why;
  DeviceEnv* dev = shared_gpu_env(&why);
  if (!dev) GTEST_SKIP() << why;
  check_entry(GetParam(), *dev);
}

INSTANTIATE_TEST_SUITE_P(All, Catalog, ::testing::ValuesIn(small_catalog()),
                         [](const ::testing::TestParamInfo<CatalogEntry>& param) {
                           return param.param.name;
                         });

TEST(CatalogNames, UniqueAndSmall) {
  std::set<std::string> names;
  int big = 0;
  for (const CatalogEntry& e : catalog()) {
    EXPECT_TRUE(names.insert(e.name).second) << "duplicate catalog name " << e.name;
    EXPECT_TRUE(validate(e.problem).ok()) << e.name << ": " << validate(e.problem).message();
    if (e.big) {
      ++big;
      EXPECT_TRUE(canonical_shape(e.problem).index64) << e.name << " must need 64-bit indexing";
    } else {
      // Keep the CPU run short: no small problem above ~10M multiply-adds per pass.
      const ConvShape s = canonical_shape(e.problem);
      EXPECT_LE(s.n * s.k * s.out_pixels() * s.cg() * s.filt_pixels(), 10000000) << e.name;
      EXPECT_FALSE(s.index64) << e.name;
    }
  }
  EXPECT_EQ(big, 1);
}

// The 64-bit indexing problem: on a GPU with enough memory, every pass and solver, verified on a
// sample of elements against the direct loop (a full float64 reference would take hours).
TEST(CatalogBig, Gpu) {
  std::string why;
  DeviceEnv* dev = shared_gpu_env(&why);
  if (!dev) GTEST_SKIP() << why;
  for (const CatalogEntry& e : catalog()) {
    if (!e.big) continue;
    if (dev->caps.global_memory < e.min_device_bytes) {
      GTEST_SKIP() << e.name << " needs " << (e.min_device_bytes >> 30) << " GiB of GPU memory, "
                   << dev->caps.name << " has " << (dev->caps.global_memory >> 30) << " GiB";
    }
    CleanConfig clean;
    for (Pass pass : all_passes()) {
      if (pass == Pass::forward_bias) continue;  // the same kernels as forward plus a bias add
      Tester t(e.name, e.problem, pass, test_seed(), /*sampled=*/true);
      const Status prep = t.prepare();
      ASSERT_TRUE(prep.ok()) << context(t, dev->name()) << ": " << prep.message();
      std::set<std::string> ran;
      for (const RunResult& r : run_all_solvers(t, *dev, size_t(6) << 30)) {
        EXPECT_TRUE(r.passed()) << context(t, dev->name()) << ": " << r.describe();
        if (!r.declined) ran.insert(r.solver);
      }
      EXPECT_FALSE(ran.empty()) << context(t, dev->name()) << ": no solver ran";
    }
  }
}

}  // namespace
}  // namespace testing
}  // namespace gemmconv
