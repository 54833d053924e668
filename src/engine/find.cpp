// The find step (gemmconv/find.h): candidates, their guarded timed runs, and the perf database.
#include "gemmconv/find.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "engine/internal.h"
#include "engine/perfdb.h"

#ifndef GEMMCONV_VERSION
#define GEMMCONV_VERSION "0.1.0"
#endif

namespace gemmconv {
namespace {

std::atomic<uint64_t> g_finds{0}, g_trials{0}, g_hits{0}, g_table{0};

std::mutex& hook_mutex() {
  static std::mutex m;
  return m;
}

engine::TrialHook& hook_storage() {
  static engine::TrialHook h;
  return h;
}

// One find at a time per process: threads asking for the same problem wait and then read the
// winner instead of timing it twice.
std::mutex& find_mutex() {
  static std::mutex m;
  return m;
}

struct Candidate {
  const Solver* solver = nullptr;
  int variant = -1;
  std::string name;
  size_t workspace = 0;
};

std::string name_of(const Solver* s, int variant) {
  std::string n = s->name();
  if (variant >= 0) n += std::string("/") + s->variant_name(variant);
  return n;
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return perfdb::field(buf);
}

// "host pid" of an in-trial record names a process of this host that no longer exists.
bool trial_owner_gone(const std::string& owner) {
  const size_t space = owner.rfind(' ');
  if (space == std::string::npos) return true;
  if (owner.substr(0, space) != host_name()) return false;  // another host: cannot tell
  const long long pid = std::atoll(owner.c_str() + space + 1);
  if (pid <= 0) return true;
  if (pid == static_cast<long long>(::getpid())) return false;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

std::string format_ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g ms", ms);
  return buf;
}

void plan_with(const Candidate& c, const PlanContext& pctx, Plan* plan) {
  plan->solver = c.solver;
  plan->variant = c.variant;
  plan->workspace_bytes = c.solver->workspace_bytes(plan->shape, plan->regular, pctx);
}

// The candidate named `name` if it may run on this plan now.
bool resolve(const std::string& name, const Plan& plan, const PlanContext& pctx, const Config& cfg,
             bool gemm_available, Candidate* out) {
  const size_t slash = name.find('/');
  const Solver* s = find_solver(name.substr(0, slash));
  if (!s || !engine::solver_usable(s, plan.shape, plan.regular, pctx, cfg, gemm_available)) {
    return false;
  }
  int variant = -1;
  if (slash != std::string::npos) {
    const std::string v = name.substr(slash + 1);
    for (int i = 0; i < s->variants(); ++i) {
      if (v == s->variant_name(i)) variant = i;
    }
    if (variant < 0) return false;
  }
  out->solver = s;
  out->variant = variant;
  out->name = name;
  out->workspace = s->workspace_bytes(plan.shape, plan.regular, pctx);
  return true;
}

// One guarded run: an error status or an exception is a failure, never an escape.
Status guarded_run(const Plan& plan, const ConvBuffers& b, const ExecContext& ctx,
                   const std::string& name, bool gpu, double* ms) {
  *ms = 0.0;
  try {
    engine::TrialHook hook;
    {
      std::lock_guard<std::mutex> lock(hook_mutex());
      hook = hook_storage();
    }
    if (hook) {
      const Status hs = hook(name);
      if (!hs.ok()) return hs;
    }
    if (gpu) {
      GpuTimer timer;
      Status st = gpu_timer_create(&timer);
      if (st.ok()) st = gpu_timer_start(&timer, ctx.stream);
      if (st.ok()) st = engine::execute_uncounted(plan, b, ctx);
      float t = 0.0f;
      const Status stop = gpu_timer_stop(&timer, ctx.stream, &t);
      gpu_timer_destroy(&timer);
      if (st.ok()) st = stop;
      *ms = t;
      return st;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const Status st = engine::execute_uncounted(plan, b, ctx);
    *ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return st;
  } catch (const std::exception& e) {
    return Status(StatusCode::internal_error, std::string("exception: ") + e.what());
  } catch (...) {
    return Status(StatusCode::internal_error, "an exception of unknown type");
  }
}

enum class Verdict { ok, slower, failed, overran };

// Warm-up and timed runs of one candidate under the deadlines; `ms` is the median timed run.
Verdict time_candidate(const Plan& plan, const ConvBuffers& b, const ExecContext& ctx,
                       const std::string& name, bool gpu, FindMode mode, double best, double* ms,
                       std::string* why) {
  const bool exhaustive = mode == FindMode::exhaustive;
  const int warmups = exhaustive ? 2 : 1;
  const int reps = exhaustive ? 10 : 2;
  const double deadline = kFindDeadlineMs[exhaustive ? 1 : 0];
  std::vector<double> times;
  for (int i = 0; i < warmups + reps; ++i) {
    double t = 0.0;
    const Status st = guarded_run(plan, b, ctx, name, gpu, &t);
    ++g_trials;
    if (!st.ok()) {
      *why = std::string(to_string(st.code())) + ": " + st.message();
      return Verdict::failed;
    }
    // A warm-up also pays one-time start-up (library handles, code loading): ten times longer.
    const double limit = i < warmups ? 10.0 * deadline : deadline;
    if (t > limit) {
      *why = "a run took " + format_ms(t) + ", past the deadline of " + format_ms(limit);
      return Verdict::overran;
    }
    // Against the best so far, a warm-up too (it may include start-up, so ten times the factor).
    const double factor = i < warmups ? 10.0 * kFindSlowFactor : kFindSlowFactor;
    if (std::isfinite(best) && t > factor * best) {
      *why = "a run took " + format_ms(t) + ", more than " +
             std::to_string(static_cast<int>(factor)) + " times the best candidate's " +
             format_ms(best);
      return Verdict::overran;
    }
    if (i < warmups) continue;
    times.push_back(t);
    // Clearly slower after its first timed run: it cannot win, so its other runs are skipped.
    if (times.size() == 1 && std::isfinite(best) && t > 2.0 * best) {
      *ms = t;
      return Verdict::slower;
    }
  }
  std::sort(times.begin(), times.end());
  *ms = times[times.size() / 2];
  return Verdict::ok;
}

FindMode effective_mode(const Config& cfg, const Capabilities& caps) {
  if (caps.kind == DeviceKind::cpu && !cfg.find_on_cpu) return FindMode::off;
  return cfg.find_mode;
}

}  // namespace

void engine::set_trial_hook(TrialHook hook) {
  std::lock_guard<std::mutex> lock(hook_mutex());
  hook_storage() = std::move(hook);
}

const char* to_string(PlanSource s) {
  switch (s) {
    case PlanSource::table:
      return "table";
    case PlanSource::database:
      return "database";
    case PlanSource::find:
      return "find";
    case PlanSource::fixed:
      return "fixed";
  }
  return "table";
}

std::string candidate_name(const Plan& plan) {
  if (!plan.solver) return plan.solver_name();
  return name_of(plan.solver, plan.variant);
}

std::string perfdb_key(const ConvProblem& p, Direction d, const Capabilities& caps,
                       size_t workspace_budget) {
  // Budget classes are powers of two in MiB, so 500 and 512 MiB share results.
  uint64_t mib = (static_cast<uint64_t>(workspace_budget) + (1u << 20) - 1) >> 20;
  uint64_t cls = mib ? 1 : 0;
  while (cls && cls < mib) cls <<= 1;
  std::ostringstream k;
  k << to_string(p) << " | " << to_string(d) << " | " << caps.arch << " | " << caps.name
    << " | gemmconv " << GEMMCONV_VERSION << " | workspace " << cls << " MiB";
  return perfdb::field(k.str());
}

FindStats find_stats() {
  FindStats s;
  s.finds = g_finds.load();
  s.trials = g_trials.load();
  s.database_hits = g_hits.load();
  s.table_plans = g_table.load();
  return s;
}

void reset_find_stats() {
  g_finds = 0;
  g_trials = 0;
  g_hits = 0;
  g_table = 0;
}

std::string perfdb_path() { return config().perfdb_path; }

uint64_t perfdb_size() {
  const std::string path = perfdb_path();
  if (path.empty()) return 0;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return 0;
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  std::fclose(f);
  return size > 0 ? static_cast<uint64_t>(size) : 0;
}

void perfdb_forget() { perfdb::forget(); }

Status find_plan(const ConvProblem& p, Direction d, const Capabilities& caps,
                 const PlanOptions& opts, const FindRequest& req, Plan* out, FindResult* result) {
  FindResult local;
  FindResult& r = result ? *result : local;
  r = FindResult();
  if (!out) return Status(StatusCode::invalid_argument, "find_plan: out is null");
  Plan plan;
  Status st = make_plan(p, d, caps, opts, &plan);
  if (!st.ok()) return st;
  if (plan.kind || !opts.solver.empty()) {
    r.source = PlanSource::fixed;
    r.choice = candidate_name(plan);
    *out = plan;
    return st;
  }
  const Config cfg = config();
  const size_t budget = opts.workspace_budget ? opts.workspace_budget : cfg.workspace_budget;
  const PlanContext pctx{&caps, budget};
  const std::string& path = cfg.perfdb_path;
  const std::string key = perfdb_key(p, d, caps, budget);
  const FindMode mode = effective_mode(cfg, caps);
  const bool gpu = caps.kind == DeviceKind::gpu;

  const auto table = [&](const char* why) {
    ++g_table;
    r.source = PlanSource::table;
    r.choice = candidate_name(plan);
    if (cfg.log_level <= LogLevel::debug) {
      log_message(LogLevel::debug,
                  "find: " + key + " -> " + r.choice + " from the table (" + why + ")");
    }
    *out = plan;
    return Status::success();
  };
  // The database's winner, if there is one that may run now.
  const auto from_database = [&](bool* known) {
    perfdb::Entry e;
    *known = perfdb::lookup(path, key, &e) && !e.winner.empty();
    Candidate c;
    if (!*known || !resolve(e.winner, plan, pctx, cfg, opts.gemm_available, &c)) return false;
    plan_with(c, pctx, &plan);
    ++g_hits;
    r.source = PlanSource::database;
    r.choice = c.name;
    *out = plan;
    return true;
  };

  if (mode == FindMode::off) return table("GEMMCONV_FIND=off");
  bool known = false;
  if (from_database(&known)) return Status::success();
  if (known) return table("the database's choice is disabled or does not apply now");
  if (gpu) {
    bool capturing = false;
    if (gpu_stream_capturing(req.stream, &capturing).ok() && capturing) {
      return table("the stream is being captured into a graph");
    }
  }

  std::lock_guard<std::mutex> find_lock(find_mutex());
  if (from_database(&known)) return Status::success();  // another thread found it meanwhile
  perfdb::Entry entry;
  perfdb::lookup(path, key, &entry);

  // In-trial records of processes that no longer exist: the candidate took its process down.
  for (const auto& t : entry.in_trial) {
    if (!trial_owner_gone(t.second)) continue;
    const std::string cand = t.first;
    const std::string why = "was in trial when its process (" + t.second +
                            ") ended: it may have taken the process down";
    log_message(LogLevel::warning, "find: " + key + ": " + cand + " " + why + "; never used again");
    perfdb::update(path, key, [&](perfdb::Entry& e) {
      e.in_trial.erase(cand);
      e.unusable[cand] = why;
    });
  }
  perfdb::lookup(path, key, &entry);

  std::vector<Candidate> candidates;
  for (const Solver* s : engine::preferred_order(plan.shape, plan.regular, caps)) {
    if (!engine::solver_usable(s, plan.shape, plan.regular, pctx, cfg, opts.gemm_available)) {
      continue;
    }
    if (mode == FindMode::fast && std::string(s->name()) == "reference") continue;
    const int variants = mode == FindMode::exhaustive ? s->variants() : 0;
    for (int v = variants > 0 ? 0 : -1; v < std::max(variants, 0); ++v) {
      Candidate c;
      c.solver = s;
      c.variant = v;
      c.name = name_of(s, v);
      c.workspace = s->workspace_bytes(plan.shape, plan.regular, pctx);
      if (entry.unusable.count(c.name)) {
        r.trials.push_back({c.name, -1.0, "skipped: unusable (" + entry.unusable[c.name] + ")"});
        continue;
      }
      if (entry.in_trial.count(c.name)) {
        r.trials.push_back({c.name, -1.0, "skipped: another process is trying it"});
        continue;
      }
      candidates.push_back(c);
    }
  }
  if (candidates.empty()) return table("no candidate left to time");
  if (candidates.size() == 1) {
    // Nothing to compare: the one candidate is stored untimed (ms 0) so that later calls and
    // processes skip the enumeration, unless another candidate is only out while another
    // process tries it.
    bool others_busy = false;
    for (const FindTrial& t : r.trials) {
      others_busy = others_busy || t.outcome.find("another process") != std::string::npos;
    }
    if (!others_busy) {
      perfdb::update(path, key, [&](perfdb::Entry& e) {
        e.winner = candidates[0].name;
        e.ms = 0.0;
      });
    }
    plan_with(candidates[0], pctx, &plan);
    r.source = PlanSource::table;
    r.choice = candidates[0].name;
    ++g_table;
    *out = plan;
    return Status::success();
  }

  ++g_finds;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string me = host_name() + " " + std::to_string(::getpid());
  double best = std::numeric_limits<double>::infinity();
  int winner = -1;
  // The outcome of the previous candidate is written together with the next one's trial mark.
  std::string last_name, last_bad;
  Status fatal;
  for (size_t i = 0; i < candidates.size() && fatal.ok(); ++i) {
    const Candidate& c = candidates[i];
    void* ws = nullptr;
    if (c.workspace > 0) {
      try {
        if (req.workspace.allocate) {
          ws = req.workspace.allocate(c.workspace);
        } else if (gpu) {
          if (!gpu_malloc(&ws, c.workspace).ok()) ws = nullptr;
        } else {
          ws = new (std::nothrow) unsigned char[c.workspace];
        }
      } catch (...) {
        ws = nullptr;
      }
      if (!ws) {
        r.trials.push_back({c.name, -1.0, "skipped: its workspace could not be allocated"});
        continue;
      }
    }
    perfdb::update(path, key, [&](perfdb::Entry& e) {
      if (!last_name.empty()) e.in_trial.erase(last_name);
      if (!last_bad.empty()) e.unusable[last_name] = last_bad;
      e.in_trial[c.name] = me;
    });
    Plan cp = plan;
    plan_with(c, pctx, &cp);
    ExecContext ctx;
    ctx.caps = &caps;
    ctx.stream = req.stream;
    ctx.gemm = req.gemm;
    ctx.workspace = ws;
    ctx.workspace_bytes = c.workspace;
    double ms = -1.0;
    std::string why;
    const Verdict v = time_candidate(cp, req.buffers, ctx, c.name, gpu, mode, best, &ms, &why);
    if (v != Verdict::ok && v != Verdict::slower) ms = -1.0;
    if (v == Verdict::failed && gpu) {
      // A fault that poisons the GPU context ends the find: nothing after it can run.
      const Status sync = gpu_synchronize();
      if (!sync.ok()) {
        fatal = Status(StatusCode::device_error,
                       "the GPU failed while the find step ran " + c.name + ": " + sync.message());
      }
    }
    if (ws) {
      if (req.workspace.release) {
        req.workspace.release(ws);
      } else if (gpu) {
        gpu_free(ws);
      } else {
        delete[] static_cast<unsigned char*>(ws);
      }
    }
    const char* label = v == Verdict::ok       ? "ok"
                        : v == Verdict::slower ? "slower"
                        : v == Verdict::failed ? "failed: "
                                               : "overran: ";
    r.trials.push_back({c.name, ms, label + why});
    last_name = c.name;
    last_bad = v == Verdict::failed || v == Verdict::overran ? std::string(label) + why : "";
    if (!last_bad.empty()) {
      log_message(LogLevel::warning,
                  "find: " + key + ": " + c.name + " " + last_bad + "; recorded as unusable");
    }
    if (v == Verdict::ok && ms < best) {
      best = ms;
      winner = static_cast<int>(i);
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  perfdb::update(path, key, [&](perfdb::Entry& e) {
    if (!last_name.empty()) e.in_trial.erase(last_name);
    if (!last_bad.empty()) e.unusable[last_name] = last_bad;
    if (winner >= 0) {
      e.winner = candidates[static_cast<size_t>(winner)].name;
      e.ms = best;
    }
  });
  if (!fatal.ok()) return fatal;
  if (winner < 0) return table("no candidate finished its runs");
  plan_with(candidates[static_cast<size_t>(winner)], pctx, &plan);
  r.source = PlanSource::find;
  r.choice = candidates[static_cast<size_t>(winner)].name;
  if (cfg.log_level <= LogLevel::info) {
    std::ostringstream ss;
    ss << "find: " << key << " -> " << r.choice << " " << format_ms(best) << " (";
    for (size_t i = 0; i < r.trials.size(); ++i) {
      ss << (i ? ", " : "") << r.trials[i].candidate << " " << r.trials[i].outcome;
      if (r.trials[i].ms >= 0) ss << " " << format_ms(r.trials[i].ms);
    }
    ss << ") in " << r.seconds << " s";
    log_message(LogLevel::info, ss.str());
  }
  *out = plan;
  return Status::success();
}

}  // namespace gemmconv
