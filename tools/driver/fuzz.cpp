// Fuzz mode: random problems through the shared harness, failures printed as replay commands.
#include "fuzz.h"

#include <cstdio>
#include <string>

#include "gemmconv/engine.h"
#include "gemmconv/replay.h"
#include "tester.h"

namespace gemmconv {
namespace driver {
namespace {

int64_t uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

bool chance(std::mt19937_64& rng, double p) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng) < p;
}

// Multiply-adds of one pass, to keep every problem quick on the CPU reference.
int64_t work(const ConvProblem& p) {
  const ConvShape s = canonical_shape(p);
  return s.n * s.k * s.out_pixels() * s.cg() * s.filt_pixels();
}

}  // namespace

ConvProblem random_problem(std::mt19937_64& rng) {
  static const DataType kTypes[] = {DataType::f32, DataType::f32, DataType::f16, DataType::bf16,
                                    DataType::f64};
  for (;;) {
    ConvProblem p;
    p.spatial_dims = static_cast<int>(uniform(rng, 1, 3));
    p.transposed = chance(rng, 0.3);
    p.batch = chance(rng, 0.05) ? 0 : uniform(rng, 1, 3);
    const int64_t g = chance(rng, 0.5) ? 1 : uniform(rng, 2, 4);
    if (g > 1 && chance(rng, 0.4)) {  // depthwise, with a channel multiplier
      p.in_channels = g;
      p.out_channels = g * uniform(rng, 1, 2);
    } else {
      p.in_channels = g * uniform(rng, 1, 4);
      p.out_channels = g * uniform(rng, 1, 4);
    }
    p.groups = g;
    const int64_t max_in = p.spatial_dims == 1 ? 24 : p.spatial_dims == 2 ? 10 : 6;
    for (int j = 0; j < p.spatial_dims; ++j) {
      p.input_size[j] = uniform(rng, 1, max_in);
      p.filter_size[j] = uniform(rng, 1, p.spatial_dims == 3 ? 3 : 5);
      p.stride[j] = chance(rng, 0.5) ? 1 : uniform(rng, 2, 3);
      p.dilation[j] = chance(rng, 0.7) ? 1 : uniform(rng, 2, 3);
      p.pad_begin[j] = uniform(rng, 0, 2);
      p.pad_end[j] = chance(rng, 0.6) ? p.pad_begin[j] : uniform(rng, 0, 2);
      if (p.transposed && chance(rng, 0.4)) {
        p.output_padding[j] = uniform(rng, 0, std::max(p.stride[j], p.dilation[j]) - 1);
      }
    }
    p.layout = chance(rng, 0.5) ? Layout::contiguous : Layout::channels_last;
    p.dtype = kTypes[uniform(rng, 0, 4)];
    if (validate(p).ok() && work(p) <= 200000) return p;
  }
}

int run_fuzz(const FuzzOptions& f) {
  std::string why;
  auto dev = testing::make_env(f.device, false, &why);
  if (!dev) {
    std::fprintf(stderr, "gemmconv-driver fuzz: --device %s: %s\n", f.device.c_str(), why.c_str());
    return 2;
  }
  // A clean configuration: every solver enabled, the default budget.
  set_config(Config{});
  std::mt19937_64 rng(f.seed);
  int64_t runs = 0, failures = 0;
  for (int64_t i = 0; i < f.count; ++i) {
    const ConvProblem p = random_problem(rng);
    const uint64_t seed = rng() >> 1;
    if (f.verbose) std::printf("%lld: %s\n", static_cast<long long>(i), to_string(p).c_str());
    for (testing::Pass pass : testing::all_passes()) {
      const std::string name = "fuzz" + std::to_string(i);
      testing::Tester t(name, p, pass, seed);
      const Direction d = testing::direction_of(pass);
      const bool bias = pass == testing::Pass::forward_bias;
      auto report = [&](const char* solver, const std::string& what) {
        ++failures;
        std::printf("FAIL %s %s %s: %s\n  replay: %s --verify --seed %llu\n", name.c_str(),
                    testing::to_string(pass), to_string(p).c_str(), what.c_str(),
                    replay_command(p, d, solver, dev->name(), bias).c_str(),
                    static_cast<unsigned long long>(seed));
      };
      const Status prep = t.prepare();
      if (!prep.ok()) {
        report(nullptr, "preparing the truth: " + prep.message());
        continue;
      }
      for (const testing::RunResult& r : testing::run_all_solvers(t, *dev)) {
        if (r.declined) continue;
        ++runs;
        if (!r.passed()) report(r.solver.c_str(), r.describe());
      }
    }
    std::fflush(stdout);
  }
  std::printf("fuzz: seed %llu, %lld problems, %lld solver runs on the %s, %lld failures\n",
              static_cast<unsigned long long>(f.seed), static_cast<long long>(f.count),
              static_cast<long long>(runs), dev->name(), static_cast<long long>(failures));
  return failures ? 1 : 0;
}

}  // namespace driver
}  // namespace gemmconv
