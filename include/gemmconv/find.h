// The find step: time the applicable solvers (and their tuning variants) of a problem once on the
// device, keep the winner in a per-user perf database, and plan with it from then on.
//
// Modes (Config::find_mode, GEMMCONV_FIND):
//   off         the shipped default table (src/configs/defaults.h); nothing is timed
//   fast        the default: every enabled applicable solver but `reference`, each with its own
//               tuning choice, one warm-up and two timed runs
//   exhaustive  every candidate, the reference solver and every variant (tiles) included, two
//               warm-ups and ten timed runs
// A problem already in the database is planned from it in every mode but off, without timing.
//
// Guards: a candidate that returns an error, throws, or overruns its deadline (a run longer than
// kFindDeadlineMs of the mode (ten times that for a warm-up run), or longer than kFindSlowFactor
// times the best candidate so far, ten times that for a warm-up) is recorded as unusable for that
// key and never tried again. Before a candidate runs it is recorded "in trial"; a later process
// that finds the record of a process that no longer exists marks the candidate unusable (it took
// its process down: a GPU fault, say). A GPU kernel that never returns cannot be stopped from the
// host: the deadline is checked when the run comes back.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gemmconv/engine.h"

namespace gemmconv {

// Per-candidate run deadlines in milliseconds: fast, exhaustive.
constexpr double kFindDeadlineMs[2] = {1000.0, 10000.0};
constexpr double kFindSlowFactor = 10.0;

// Workspace for one candidate: allocate(bytes) returns nullptr when it cannot (the candidate is
// then skipped for this call, not marked). Unset: gpu_malloc/gpu_free on a GPU, new/delete on the
// CPU.
struct WorkspaceAllocator {
  std::function<void*(size_t)> allocate;
  std::function<void(void*)> release;
};

// What the find step runs the candidates on: the caller's buffers (the pass's written tensor is
// overwritten by every candidate; the inputs are only read), stream and GEMM provider.
struct FindRequest {
  ConvBuffers buffers;
  void* stream = nullptr;
  GemmProvider* gemm = nullptr;
  WorkspaceAllocator workspace;
};

enum class PlanSource : uint8_t {
  table,     // the default table (find off, graph capture, a single candidate, or nothing won)
  database,  // the perf database (this process's copy or the file)
  find,      // timed now
  fixed,     // a plan kind or an explicit PlanOptions::solver
};
const char* to_string(PlanSource s);

struct FindTrial {
  std::string candidate;  // "im2col_gemm", "implicit_gemm/128x64"
  double ms = -1.0;       // median time of one run; -1 when it did not finish its runs
  std::string outcome;    // "ok", "slower", "failed: ...", "overran: ...", "skipped: ..."
};

struct FindResult {
  PlanSource source = PlanSource::table;
  std::string choice;    // the candidate planned
  double seconds = 0.0;  // wall time this call spent timing candidates
  std::vector<FindTrial> trials;
};

// make_plan, then the database or the find step as the configuration says. The plan it returns
// is executed by the caller (so the winner's result is the last one written). During CUDA/HIP
// graph capture of req.stream nothing is timed: the plan comes from the database or the table.
Status find_plan(const ConvProblem& p, Direction d, const Capabilities& caps,
                 const PlanOptions& opts, const FindRequest& req, Plan* out,
                 FindResult* result = nullptr);

// The candidate name of a plan ("implicit_gemm/64x64", "im2col_gemm", or a plan kind's name).
std::string candidate_name(const Plan& plan);

// Counters since the start or the last reset: find steps run, candidate runs timed, plans taken
// from the database, plans from the table.
struct FindStats {
  uint64_t finds = 0;
  uint64_t trials = 0;
  uint64_t database_hits = 0;
  uint64_t table_plans = 0;
};
FindStats find_stats();
void reset_find_stats();

// The perf database file in use ("" when none), and its size in bytes (0 when it does not exist).
std::string perfdb_path();
uint64_t perfdb_size();
// Forgets this process's copy of the database so that the next lookup reads the file again.
void perfdb_forget();

// The database key of a problem's pass on a device: problem (dtype and layout included), pass,
// device arch and name, engine version and workspace budget class.
std::string perfdb_key(const ConvProblem& p, Direction d, const Capabilities& caps,
                       size_t workspace_budget);

}  // namespace gemmconv
