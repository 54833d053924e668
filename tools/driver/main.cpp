// gemmconv-driver: plan, run, verify and time one convolution problem from the command line. A thin
// front end: the command line is cli.h, the tensors, truth and timing are the shared harness
// (tools/harness), and fuzz mode is fuzz.h.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "cli.h"
#include "fuzz.h"
#include "gemmconv/gemmconv.h"
#include "tester.h"

namespace gc = gemmconv;
namespace gt = gemmconv::testing;
using gemmconv::driver::Options;

namespace {

const char* kHelp = R"(gemmconv-driver: run, verify and time one convolution through gemmconv.

Usage: gemmconv-driver [flags]
       gemmconv-driver conv|convfp16|convbfp16 [MIOpenDriver conv flags] [run flags]
       gemmconv-driver fuzz [--seed S] [--count N] [--device cpu|gpu] [--verbose]

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

What to run (the run flags):
  --direction D             forward | backward_data | backward_weight | backward_bias | all
                            (default forward)
  --bias                    forward adds a bias
  --device cpu|gpu          where to run (default gpu when one is visible, else cpu)
  --solver NAME             use exactly this solver (default: the planner's choice)
  --workspace-mb MB         workspace budget in MiB (default: GEMMCONV_WORKSPACE_MB or 512)
  --allow-tf32              let fp32 GEMMs on the GPU use TF32 tensor cores
  --seed S                  seed of the random inputs (default 1)

Checks and measurements:
  --verify                  compare with the float64 truth on the CPU (a direct loop and the
                            reference solver); prints the maximum relative error (|got - want| over
                            the sum of the absolute values of the terms, per element) and the
                            tolerance for the dtype and reduction length; exit status 1 when it
                            fails. Also checks that two runs give the same bytes.
  --progress                show the progress of --verify on stderr (default: only on a terminal)
  --time                    median time of one pass over --reps runs after --warmup runs (device
                            events on the GPU), and TFLOP/s with 2*N*K*P*Q*(C/groups)*R*S FLOPs
  --reps N                  timed runs (default 20)
  --warmup N                untimed runs first (default 3)
  --list-solvers            list the registered solvers and, for the problem given, where each
                            one applies, then exit
  --find                    plan through the find step (as the binding does) on the driver's
                            buffers, on the CPU too: the perf database's winner (GEMMCONV_PERFDB,
                            default $XDG_CACHE_HOME/gemmconv/perfdb.txt), else time the candidates
                            and record the winner; prints the source (database, find, table or
                            fixed), the choice and each candidate's time or why it was skipped,
                            then verifies/times the chosen plan
  --find-mode M             fast | exhaustive: the find mode (implies --find; default
                            GEMMCONV_FIND's mode, else fast)
  -h, --help                this text (ends with what this build can run)
  --version                 the version and this build's GEMM providers

Replay: every engine error, and GEMMCONV_LOG_LEVEL=info for every planned convolution, prints a
`gemmconv-driver ...` line that this driver runs as it is (add --verify to check the numbers).

MIOpenDriver syntax: after conv (f32), convfp16 or convbfp16, MIOpenDriver's flags and defaults:
  -n -c -H -W -k -y -x -p -q -u -v -l -j -g, 3-D with --spatial_dim 3 and -! -@ -$ -# -^,
  -m conv|trans with -Y -X -% (output padding), -F 0..7 (1 forward, 2 backward data, 4 backward
  weight, sums; 0 all), -b 1 (bias), -V 0|1 (verify, default 1), -t 1 (time), -i N (timed runs),
  --in_layout/--out_layout/--fil_layout NCHW|NHWC|NCDHW|NDHWC (all the same). -s, -P, -w and -S
  are accepted without effect; -z, -r, -o, -Z and -L only with their defaults; any other flag is
  an error naming it. The run flags above (--device, --solver, ...) may follow.

Fuzz mode: --count random valid problems from --seed (default 1 and 100) over the whole space
(rank 1-3, transposed, groups, depthwise, stride, dilation, asymmetric padding, every dtype and
layout), every pass and applicable solver against the float64 truth; prints the replay line of
each failure and exits 1 on any.

Exit status: 0 success; 1 a verification failed or a run returned an error; 2 a usage error
(unknown flag, malformed value, impossible problem, unavailable device or solver).

Example (a ResNet-50 3x3 layer):
  gemmconv-driver -n 32 -c 64 -k 64 --input 56x56 --filter 3x3 --pad 1 --direction all --verify --time
  gemmconv-driver conv -n 32 -c 64 -H 56 -W 56 -k 64 -y 3 -x 3 -p 1 -q 1 -u 1 -v 1 -F 1 -t 1
)";

#ifndef GEMMCONV_VERSION
#define GEMMCONV_VERSION "unknown"
#endif

// What this build can run: its GEMM providers. A build without a CPU BLAS (a pip install on a
// machine without OpenBLAS) runs only the direct solvers on the CPU.
void print_build() {
  const std::unique_ptr<gc::GemmProvider> cpu = gc::make_cpu_gemm_provider();
  if (cpu) {
    std::printf("CPU GEMM provider: %s (every solver)\n", cpu->name());
  } else {
    std::printf(
        "CPU GEMM provider: none (built without a CBLAS such as OpenBLAS): only the direct solvers "
        "(reference, depthwise_direct) run on the CPU; the GEMM solvers decline. For them, build "
        "with OpenBLAS: install libopenblas-dev and reinstall, or cmake -S . -B build && cmake "
        "--build build --target gemmconv-driver\n");
  }
  std::printf("GPU support: %s\n", gc::gpu_support_compiled()
                                       ? "compiled in (cuBLAS or rocBLAS GEMM provider)"
                                       : "not compiled in (CPU only; the CMake build with "
                                         "GEMMCONV_GPU=cuda|hip has it)");
}

int usage(const std::string& m) {
  std::fprintf(stderr, "gemmconv-driver: %s\nTry 'gemmconv-driver --help'.\n", m.c_str());
  return 2;
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

void print_problem(const gc::ConvProblem& p, const gt::DeviceEnv& dev, size_t budget) {
  const char* cl = p.layout == gc::Layout::channels_last ? " channels_last" : "";
  const int sd = p.spatial_dims;
  std::printf("problem: %s\n", gc::to_string(p).c_str());
  std::printf("  input  %s %s%s\n", shape_string(p.batch, p.in_channels, p.input_size, sd).c_str(),
              gc::to_string(p.dtype), cl);
  std::printf(
      "  weight %s\n",
      (p.transposed ? shape_string(p.in_channels, p.out_channels / p.groups, p.filter_size, sd)
                    : shape_string(p.out_channels, p.in_channels / p.groups, p.filter_size, sd))
          .c_str());
  std::printf("  output %s\n",
              shape_string(p.batch, p.out_channels, gc::output_size(p), sd).c_str());
  std::printf("  device %s (%s), workspace budget %s\n", dev.name(), dev.caps.name.c_str(),
              bytes_string(budget).c_str());
}

// Progress of the float64 truth on stderr: redrawn in place on a terminal, otherwise a line at
// most every few seconds. Shown once a stage has run for a second, or at once with --progress.
class Progress {
 public:
  explicit Progress(bool forced) : forced_(forced), tty_(isatty(2) != 0) {}
  bool enabled() const { return forced_ || tty_; }
  void operator()(const char* stage, double fraction) {
    const auto now = std::chrono::steady_clock::now();
    if (stage_ != stage) {
      stage_ = stage;
      stage_start_ = now;
    }
    const double age = std::chrono::duration<double>(now - stage_start_).count();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (!forced_ && age < 1.0) return;
    if (fraction < 1.0 && since < (tty_ ? 0.2 : 5.0)) return;
    last_ = now;
    std::fprintf(stderr, "%s  verify: %s %3.0f%%%s", tty_ ? "\r" : "", stage, 100.0 * fraction,
                 tty_ ? "\x1b[K" : "\n");
    shown_ = true;
  }
  ~Progress() {
    if (shown_ && tty_) std::fprintf(stderr, "\r\x1b[K");
  }

 private:
  bool forced_, tty_;
  bool shown_ = false;
  std::string stage_;
  std::chrono::steady_clock::time_point stage_start_, last_;
};

// The find step's report: where the plan came from, the choice, and each candidate timed now.
void print_find(const gc::FindResult& f) {
  std::printf("  find: source=%s choice=%s", gc::to_string(f.source), f.choice.c_str());
  if (f.source == gc::PlanSource::find) std::printf(" (%.3f s)", f.seconds);
  std::printf("\n");
  for (const gc::FindTrial& tr : f.trials) {
    std::printf("    %-28s", tr.candidate.c_str());
    if (tr.ms >= 0) {
      std::printf(" %10.4f ms", tr.ms);
    } else {
      std::printf(" %13s", "-");
    }
    std::printf("  %s\n", tr.outcome.c_str());
  }
}

// Checks one pass against the float64 truth; returns the exit status of the pass (0 or 1).
int verify_pass(const Options& o, gt::Tester& t, gt::DeviceEnv& dev, const gc::PlanOptions& opts) {
  Progress progress(o.progress);
  if (progress.enabled()) t.set_progress(std::ref(progress));
  // TF32 rounds both factors of every product to 10 mantissa bits.
  if (dev.kind() == gc::DeviceKind::gpu && o.allow_tf32 && t.problem().dtype == gc::DataType::f32) {
    t.set_extra_tolerance(2.0 * std::ldexp(1.0, -11));
  }
  const gt::RunResult r = t.run(dev, opts);
  t.set_progress(nullptr);
  if (!r.status.ok()) {
    std::printf("  run failed: %s: %s\n", gc::to_string(r.status.code()),
                r.status.message().c_str());
    return 1;
  }
  const int64_t counts[4] = {gc::input_elements(t.problem()), gc::output_elements(t.problem()),
                             gc::weight_elements(t.problem()), t.problem().out_channels};
  const bool pass = r.passed();
  std::printf("  verify: max_rel_err=%.3e tol=%.3e elements=%lld %s", r.max_err, r.tol,
              static_cast<long long>(counts[gt::written_tensor(t.pass())]), pass ? "PASS" : "FAIL");
  if (!pass) std::printf(" (%s)", r.describe().c_str());
  std::printf("\n");
  return pass ? 0 : 1;
}

// Runs the plan (warmup + reps times with --time, once otherwise); returns 0 or 1.
int time_pass(const Options& o, gt::Tester& t, gt::DeviceEnv& dev, const gc::PlanOptions& opts) {
  const gt::TimeResult tr = t.time(dev, opts, o.time ? o.warmup : 0, o.time ? o.reps : 1);
  if (!tr.status.ok()) {
    std::printf("  %s failed: %s: %s\n", o.time ? "time: run" : "run",
                gc::to_string(tr.status.code()), tr.status.message().c_str());
    return 1;
  }
  if (!o.time) return 0;
  std::vector<double> ms = tr.ms;
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  std::printf("  time: median %.4f ms (min %.4f, max %.4f) over %lld reps", med, ms.front(),
              ms.back(), static_cast<long long>(o.reps));
  if (t.pass() != gt::Pass::backward_bias && med > 0) {
    std::printf(", %.4g TFLOP/s", gt::pass_flops(t.problem()) / (med * 1e-3) / 1e12);
  }
  std::printf("\n");
  return 0;
}

// Plans, then verifies and times, one pass. Returns 0, 1 (a failure) or 2 (it cannot be planned).
int run_pass(const Options& o, gt::DeviceEnv& dev, gc::Direction d, size_t budget) {
  const bool with_bias = o.bias && d == gc::Direction::forward;
  const gt::Pass pass = with_bias
                            ? gt::Pass::forward_bias
                            : (d == gc::Direction::forward           ? gt::Pass::forward
                               : d == gc::Direction::backward_data   ? gt::Pass::backward_data
                               : d == gc::Direction::backward_weight ? gt::Pass::backward_weight
                                                                     : gt::Pass::backward_bias);
  gt::Tester t("driver", o.problem, pass, o.seed);
  gc::PlanOptions opts;
  opts.workspace_budget = budget;
  opts.solver = o.solver;
  gc::Plan plan;
  gc::FindResult found;
  const gc::Status ps = o.find ? t.find(dev, opts, &plan, &found) : t.plan(dev, opts, &plan);
  if (ps.code() == gc::StatusCode::not_applicable || ps.code() == gc::StatusCode::invalid_problem ||
      ps.code() == gc::StatusCode::invalid_argument) {
    std::fflush(stdout);
    return usage(std::string("cannot plan ") + gc::to_string(d) + ": " + ps.message());
  }
  std::printf("%s%s:", gc::to_string(d), with_bias ? " (with bias)" : "");
  if (!ps.ok()) {
    std::printf(" cannot plan: %s: %s\n", gc::to_string(ps.code()), ps.message().c_str());
    return 1;
  }
  std::printf(" solver=%s workspace=%s\n", plan.solver_name(),
              bytes_string(plan.workspace_bytes).c_str());
  if (o.find) print_find(found);
  std::fflush(stdout);
  int status = 0;
  if (o.verify) status = std::max(status, verify_pass(o, t, dev, opts));
  if (o.time || !o.verify) status = std::max(status, time_pass(o, t, dev, opts));
  return status;
}

int run_problem(const Options& o) {
  for (const std::string& w : o.warnings) std::fprintf(stderr, "gemmconv-driver: %s\n", w.c_str());
  if (o.workspace_set) {
    gc::Config cfg = gc::config();
    cfg.workspace_budget = o.workspace_mb << 20;
    gc::set_config(cfg);
  }
  if (o.find) {
    // --find plans through the find step on the CPU too; --find-mode overrides GEMMCONV_FIND.
    gc::Config cfg = gc::config();
    cfg.find_on_cpu = true;
    if (o.find_mode_set) cfg.find_mode = o.find_mode;
    gc::set_config(cfg);
  }
  const size_t budget = gc::config().workspace_budget;
  std::string why;
  const std::unique_ptr<gt::DeviceEnv> dev = gt::make_env(o.device, o.allow_tf32, &why);
  if (!dev) return usage("--device gpu: " + why);

  const gc::ConvProblem& p = o.problem;
  const gc::Status valid = gc::validate(p);
  if (o.list_solvers) {
    list_solvers(p, dev->caps, budget, valid.ok());
    return 0;
  }
  if (!valid.ok()) return usage("impossible problem: " + valid.message());
  if (!o.solver.empty() && !gc::find_solver(o.solver)) {
    return usage("unknown solver '" + o.solver + "' (see --list-solvers)");
  }
  for (int64_t c : {gc::input_elements(p), gc::output_elements(p), gc::weight_elements(p)}) {
    if (c < 0 || c > (int64_t(1) << 46)) return usage("problem too large for this driver");
  }
  print_problem(p, *dev, budget);
  int status = 0;
  for (gc::Direction d : o.directions) {
    const int s = run_pass(o, *dev, d, budget);
    if (s == 2) return 2;
    status = std::max(status, s);
  }
  return status;
}

int run(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (!args.empty() && args[0] == "fuzz") {
      const gc::driver::FuzzOptions f =
          gc::driver::parse_fuzz_command_line({args.begin() + 1, args.end()});
      if (f.help) {
        std::fputs(kHelp, stdout);
        std::printf("\nThis build:\n");
        print_build();
        return 0;
      }
      return gc::driver::run_fuzz(f);
    }
    const Options o = gc::driver::parse_command_line(args);
    if (o.help) {
      std::fputs(kHelp, stdout);
      std::printf("\nThis build:\n");
      print_build();
      return 0;
    }
    if (o.version) {
      std::printf("gemmconv-driver %s\n", GEMMCONV_VERSION);
      print_build();
      return 0;
    }
    return run_problem(o);
  } catch (const gc::driver::UsageError& e) {
    return usage(e.message);
  }
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
