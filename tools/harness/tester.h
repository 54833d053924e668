// The harness shared by the tests and gemmconv-driver: typed host tensors, device buffers, the
// mapping from a pass to the engine's buffers, a float64 truth, the tolerance, and runs of a plan
// checked against that truth or timed with device events.
//
// Error metric. For each element of the written tensor, the truth is a sum of L products plus,
// for forward with bias, the bias. We also sum the absolute values of those terms ("abs"). Any
// summation order in fp32 with inputs and output rounded to the storage type satisfies
//     |got - truth| <= (u_out + gamma(L) * u_acc) * abs
// so we report err = max |got - truth| / abs over the elements (an element with abs == 0 must be
// exactly zero). This is a relative error that does not blow up where the truth cancels to
// nearly zero, yet a lost or doubled term (|term| ~ abs / L) or a wrong index shows as an error
// far above the tolerance. Tolerance: 3 * u_out + 8 * u_acc * sqrt(L), with u the unit roundoff
// (f64 2^-53, f32 2^-24, f16 2^-11, bf16 2^-8) and fp32 accumulation for f32/f16/bf16: the
// sqrt(L) term is the usual random-walk growth with a safety factor, 3 * u_out covers rounding
// of a GEMM result to the storage type, a second rounding when partial sums (chunks, col2im
// columns, bias) are stored in it, and the final store. That is ~1.5e-3 for fp16, ~1.2e-2 for
// bf16 and ~2e-7 + 5e-7 * sqrt(L) for fp32. A NaN or an infinity never passes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gemmconv/engine.h"
#include "gemmconv/find.h"
#include "gemmconv/gemm.h"
#include "gemmconv/problem.h"

namespace gemmconv {
namespace testing {

// The user's passes, with forward split into without and with bias.
enum class Pass : uint8_t { forward, forward_bias, backward_data, backward_weight, backward_bias };
const char* to_string(Pass p);
Direction direction_of(Pass p);
const std::vector<Pass>& all_passes();

// The engine's buffers for a pass, from tensors given in the order input, output, weight, bias (the
// user's tensors, or their gradients).
ConvBuffers buffers_for(Pass pass, void* const tensors[4]);
// Index (in that order) of the tensor a pass writes.
int written_tensor(Pass pass);
// FLOPs of one pass: 2*N*K*P*Q*(C/groups)*R*S.
double pass_flops(const ConvProblem& p);

// A seed for one test: GEMMCONV_TEST_SEED when set (to reproduce a failure), else fresh.
uint64_t test_seed();

// Unit roundoff of a storage type.
double unit_roundoff(DataType t);
// The tolerance described above for L-term sums stored as `t`.
double tolerance(DataType t, int64_t terms);
// The tolerance of a transform-domain (Winograd) solver. Three roundings to the storage type in
// the transform domain (input, filter, product) are amplified at most by `worst`
// (winograd::worst_error_factor, a bound relative to abs), and the fp32 accumulation's random
// walk by the typical `factor` (winograd::error_factor):
//     (1 + 3 * worst) * u_out + 8 * factor * u_acc * sqrt(L).
// See docs/design.md for the derivation of both factors.
double transform_tolerance(DataType t, int64_t terms, double factor, double worst);

// Typed host storage; values are read and written as doubles.
class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DataType t, int64_t count);
  DataType dtype() const { return dtype_; }
  int64_t count() const { return count_; }
  size_t bytes() const { return size_; }
  unsigned char* data() { return bytes_.data(); }
  const unsigned char* data() const { return bytes_.data(); }
  double get(int64_t i) const;
  void set(int64_t i, double v);  // rounds to the storage type
  // Values with magnitude in [1/16, 1] and random sign, exact in the storage type; never zero.
  void fill_random(uint64_t seed);
  void poison();  // all bits set: a NaN in every floating-point format

 private:
  DataType dtype_ = DataType::f32;
  int64_t count_ = 0;
  size_t size_ = 0;
  std::vector<unsigned char> bytes_;
};

// A device to run on: its capabilities and its GEMM provider.
struct DeviceEnv {
  Capabilities caps;
  std::unique_ptr<GemmProvider> gemm;
  DeviceKind kind() const { return caps.kind; }
  const char* name() const { return caps.kind == DeviceKind::gpu ? "gpu" : "cpu"; }
};
// The CPU; gemm may be null when the build has no CPU BLAS.
std::unique_ptr<DeviceEnv> make_cpu_env();
// GPU 0, or nullptr with `why` filled in ("no GPU visible", a runtime error). `allow_tf32` lets
// fp32 GEMMs use TF32 tensor cores.
std::unique_ptr<DeviceEnv> make_gpu_env(std::string* why, bool allow_tf32 = false);
// "cpu", "gpu", or "" for the GPU when one is visible and the CPU otherwise; nullptr with `why`
// filled in when the device asked for is not available.
std::unique_ptr<DeviceEnv> make_env(const std::string& device, bool allow_tf32, std::string* why);
// One GPU environment for the whole process (creating a BLAS handle per test is slow), never
// destroyed: tearing it down after the vendor runtime has unloaded would crash at exit.
DeviceEnv* shared_gpu_env(std::string* why);

// The outcome of planning and running one solver (or the planner's own choice) on one device.
struct RunResult {
  std::string solver;     // as the plan names it (or as requested when planning failed)
  bool declined = false;  // make_plan said not_applicable: nothing was run
  Status status;          // the first failing plan/execute status, else ok
  size_t workspace_bytes = 0;
  double max_err = 0.0;
  double tol = 0.0;
  int64_t worst_index = -1;
  double worst_got = 0.0, worst_want = 0.0;
  int64_t non_finite = 0;     // NaN or inf elements in the result
  bool repeatable = true;     // two runs gave identical bytes
  bool inputs_intact = true;  // the read-only tensors were not written
  bool guards_intact = true;  // GPU: nothing written past the result or the workspace
  bool passed() const;
  std::string describe() const;  // one line for a failure message
};

// Timed runs of one plan: milliseconds per run (device events on the GPU, a steady clock on the
// CPU), after the untimed warm-up runs.
struct TimeResult {
  std::string solver;
  bool declined = false;  // make_plan said not_applicable: nothing was run
  Status status;          // the first failing plan/execute status, else ok
  size_t workspace_bytes = 0;
  std::vector<double> ms;
};

// Progress of a long preparation: a stage name and the fraction done (0 to 1), called from one
// thread at a time.
using ProgressFn = std::function<void(const char* stage, double fraction)>;

// One (problem, pass): inputs, the truth, and runs on devices. Small problems are verified on
// every element against the `reference` solver run in float64 on the CPU (itself checked against
// the tester's own direct loop, written from the user's definition of the problem). A problem
// marked `sampled` is verified on a fixed sample of elements against the direct loop only.
class Tester {
 public:
  Tester(std::string name, const ConvProblem& p, Pass pass, uint64_t seed, bool sampled = false);
  ~Tester();
  Tester(const Tester&) = delete;
  Tester& operator=(const Tester&) = delete;

  const ConvProblem& problem() const { return p_; }
  Pass pass() const { return pass_; }
  const std::string& name() const { return name_; }
  uint64_t seed() const { return seed_; }
  // Fills the tensors with random values (no truth yet); enough for `time`.
  Status setup();
  // Builds the truth (after setup); a non-ok status says why it could not (or that the reference
  // solver disagrees with the direct loop). Called once before any run.
  Status prepare();
  int64_t reduction_length() const { return max_terms_; }
  double tolerance() const;
  // Added to the tolerance (TF32 GEMMs round every factor to 10 mantissa bits).
  void set_extra_tolerance(double t) { extra_tol_ = t; }
  void set_progress(ProgressFn fn) { progress_ = std::move(fn); }

  // Plans with `opts` on `dev` (for backward_bias the solver name is ignored: the bias reduction
  // has no solvers), hands in exactly plan.workspace_bytes, poisons the result, runs twice,
  // checks repeatability and compares. Appends a row to the report when GEMMCONV_TEST_REPORT is
  // set.
  RunResult run(DeviceEnv& dev, const PlanOptions& opts);
  // Plans the pass as `run` and `time` do (for backward_bias the solver name is ignored): the plan
  // `find` chose when it was called, else make_plan.
  Status plan(DeviceEnv& dev, const PlanOptions& opts, Plan* out) const;
  // Plans through the find step (find_plan, with the configured find mode and perf database) on
  // the tester's own buffers, allocated first (the tensors filled as by `setup`; the candidates
  // overwrite the result, which `run` poisons again). From then on `run` and `time` use the plan
  // it returns. `result` receives the find step's report.
  Status find(DeviceEnv& dev, const PlanOptions& opts, Plan* out, FindResult* result);
  // Plans with `opts` on `dev` and runs the plan warmup + reps times on the tester's tensors.
  TimeResult time(DeviceEnv& dev, const PlanOptions& opts, int64_t warmup, int64_t reps);

 private:
  struct Geometry;
  struct DeviceTensors;
  struct Bound;
  // The tensors on `dev` and a NaN-filled workspace of `workspace_bytes`.
  Status bind(DeviceEnv& dev, size_t workspace_bytes, Bound* out);
  void truth_element(int64_t index, double* sum, double* abs, int64_t* terms) const;
  HostTensor& result_tensor();
  std::vector<HostTensor*> read_tensors();

  std::string name_;
  ConvProblem p_;
  Pass pass_;
  uint64_t seed_;
  bool sampled_;
  std::unique_ptr<Geometry> geo_;
  HostTensor in_, out_, w_, bias_;  // the user's input, output, weight, bias (or their grads)
  std::vector<int64_t> sample_;     // indices compared (all elements when not sampled)
  std::vector<double> truth_, abs_;
  int64_t max_terms_ = 1;
  bool set_up_ = false;
  bool prepared_ = false;
  double extra_tol_ = 0.0;
  ProgressFn progress_;
  std::unique_ptr<DeviceTensors> gpu_;  // uploaded once per tester
  std::unique_ptr<Plan> found_;         // the plan `find` chose, used by `plan` from then on
};

// Runs every solver of the registry (forcing each by name) and returns the results, declined
// ones included. For backward_bias, runs the planner's choice once.
std::vector<RunResult> run_all_solvers(Tester& t, DeviceEnv& dev, size_t workspace_budget = 0);

// Appends one row to $GEMMCONV_TEST_REPORT (no-op when unset).
void report_row(const std::string& problem, const ConvProblem& p, Pass pass, const char* device,
                const RunResult& r);

}  // namespace testing
}  // namespace gemmconv
