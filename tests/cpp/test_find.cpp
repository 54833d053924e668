// The find step and the perf database: default tables, the database file (format, damage,
// concurrent writers), guarded candidates, and a second process that reads the results.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/internal.h"
#include "engine/perfdb.h"
#include "gemmconv/engine.h"
#include "gemmconv/find.h"
#include "gemmconv/gemm.h"

namespace gemmconv {
namespace testing {
namespace {

std::vector<std::string> order_names(const ConvShape& s, Direction d, const Capabilities& caps) {
  std::vector<std::string> out;
  for (const Solver* x : engine::preferred_order(s, d, caps)) out.push_back(x->name());
  return out;
}

size_t index_of(const std::vector<std::string>& v, const std::string& name) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == name) return i;
  }
  return v.size();
}

Capabilities gpu_caps(const char* arch) {
  Capabilities c;
  c.kind = DeviceKind::gpu;
  c.arch = arch;
  c.name = std::string("test ") + arch;
  c.matrix_units = arch_has_matrix_units(arch);
  return c;
}

ConvShape shape3x3(int64_t pixels, DataType dt = DataType::f32) {
  ConvProblem p;
  p.batch = 2;
  p.in_channels = 8;
  p.out_channels = 8;
  p.input_size = {pixels, pixels, 1};
  p.filter_size = {3, 3, 1};
  p.pad_begin = {1, 1, 0};
  p.pad_end = {1, 1, 0};
  p.dtype = dt;
  return canonical_shape(p);
}

TEST(FindTable, RegistryOrderOnCpu) {
  const Capabilities cpu = cpu_capabilities();
  std::vector<std::string> reg;
  for (const Solver* s : solver_registry()) reg.push_back(s->name());
  EXPECT_EQ(order_names(shape3x3(56), Direction::forward, cpu), reg);
}

TEST(FindTable, NvidiaPrefersImplicitGemmOnLargeFp32Images) {
  const Capabilities h200 = gpu_caps("sm_90");
  const auto big = order_names(shape3x3(56), Direction::forward, h200);
  EXPECT_LT(index_of(big, "implicit_gemm"), index_of(big, "im2col_gemm"));
  const auto small = order_names(shape3x3(7), Direction::forward, h200);
  EXPECT_GT(index_of(small, "implicit_gemm"), index_of(small, "im2col_gemm"));
  const auto half = order_names(shape3x3(56, DataType::f16), Direction::forward, h200);
  EXPECT_GT(index_of(half, "implicit_gemm"), index_of(half, "im2col_gemm"));
  const auto wgrad = order_names(shape3x3(56), Direction::backward_weight, h200);
  EXPECT_GT(index_of(wgrad, "implicit_gemm"), index_of(wgrad, "im2col_gemm"));
  EXPECT_EQ(big.back(), "reference");
}

TEST(FindTable, RdnaPrefersImplicitGemm) {
  const auto o = order_names(shape3x3(7), Direction::backward_data, gpu_caps("gfx1010"));
  EXPECT_LT(index_of(o, "implicit_gemm"), index_of(o, "im2col_gemm"));
  EXPECT_EQ(o.back(), "reference");
}

TEST(PerfDbFormat, RoundTrip) {
  perfdb::Table t;
  t["key a"].winner = "implicit_gemm/64x64";
  t["key a"].ms = 0.25;
  t["key a"].unusable["im2col_gemm"] = "failed: gemm_error: boom";
  t["key b"].in_trial["reference"] = "host 1234";
  perfdb::Table back;
  std::string problem;
  ASSERT_TRUE(perfdb::parse(perfdb::serialize(t), &back, &problem)) << problem;
  EXPECT_EQ(perfdb::serialize(back), perfdb::serialize(t));
  EXPECT_EQ(back["key a"].winner, "implicit_gemm/64x64");
  EXPECT_DOUBLE_EQ(back["key a"].ms, 0.25);
  EXPECT_EQ(back["key a"].unusable["im2col_gemm"], "failed: gemm_error: boom");
  EXPECT_EQ(back["key b"].in_trial["reference"], "host 1234");
}

TEST(PerfDbFormat, DamageIsReportedAndTheRestKept) {
  perfdb::Table t;
  t["a"].winner = "im2col_gemm";
  t["a"].ms = 1.5;
  t["b"].winner = "gemm_1x1";
  t["b"].ms = 2.0;
  const std::string text = perfdb::serialize(t);
  perfdb::Table back;
  std::string problem;
  // Truncated in the middle of its last line: the whole records survive.
  ASSERT_FALSE(perfdb::parse(text.substr(0, text.size() - 3), &back, &problem));
  EXPECT_NE(problem.find("line 3"), std::string::npos) << problem;
  EXPECT_EQ(back["a"].winner, "im2col_gemm");
  EXPECT_EQ(back.count("b"), 0u);
  // Not a database at all.
  EXPECT_FALSE(
      perfdb::parse("\x7f"
                    "ELF garbage\nwin\tx\n",
                    &back, &problem));
  EXPECT_TRUE(back.empty());
  EXPECT_NE(problem.find("header"), std::string::npos);
  // A bad number, a wrong field count, an unknown record.
  EXPECT_FALSE(perfdb::parse("gemmconv-perfdb\t1\nwin\tk\ts\tfast\nbad\tk\ts\nwhat\tk\ts\tx\n",
                             &back, &problem));
  EXPECT_TRUE(back.empty());
  EXPECT_NE(problem.find("3 unreadable"), std::string::npos) << problem;
  EXPECT_TRUE(perfdb::parse("", &back, &problem));
}

// A temporary directory for one test's database, removed afterwards.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/gemmconv_find_XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    path_ = d ? d : "/tmp";
  }
  ~TempDir() {
    std::error_code ec;  // best effort: a leftover temporary folder fails no test
    if (path_ != "/tmp") std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The problem of find_child.cpp.
ConvProblem child_problem() {
  ConvProblem p;
  p.batch = 2;
  p.in_channels = 4;
  p.out_channels = 6;
  p.input_size = {7, 8, 1};
  p.filter_size = {3, 3, 1};
  p.pad_begin = {1, 1, 0};
  p.pad_end = {1, 1, 0};
  return p;
}

// Runs find_child with the database at `db` and GEMMCONV_FIND=exhaustive; its exit status.
int run_child(const std::string& db, const std::string& args) {
  const std::string cmd = "GEMMCONV_FIND=exhaustive GEMMCONV_PERFDB='" + db + "' '" +
                          GEMMCONV_FIND_CHILD + "' " + args + " >/dev/null";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Find on the CPU (exhaustive: im2col_gemm and the reference solver for the child's problem)
// with the database in a temporary directory; restores the configuration, the hook and the
// counters afterwards.
class FindCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    gemm_ = make_cpu_gemm_provider();
    if (!gemm_) GTEST_SKIP() << "this build has no CPU GEMM provider (no OpenBLAS)";
    saved_ = config();
    Config c = saved_;
    c.find_mode = FindMode::exhaustive;
    c.find_on_cpu = true;
    c.disabled.clear();
    db_ = dir_.path() + "/cache/gemmconv/perfdb.txt";
    c.perfdb_path = db_;
    set_config(c);
    perfdb_forget();
    reset_find_stats();
    p_ = child_problem();
    x_.assign(static_cast<size_t>(input_elements(p_)), 0.5f);
    w_.assign(static_cast<size_t>(weight_elements(p_)), 0.25f);
    y_.assign(static_cast<size_t>(output_elements(p_)), 0.0f);
  }
  void TearDown() override {
    engine::set_trial_hook(nullptr);
    if (gemm_) set_config(saved_);
    perfdb_forget();
    reset_find_stats();
  }
  Status find(Plan* plan, FindResult* r) {
    FindRequest req;
    req.buffers.input = x_.data();
    req.buffers.weight = w_.data();
    req.buffers.output = y_.data();
    req.gemm = gemm_.get();
    return find_plan(p_, Direction::forward, caps_, PlanOptions(), req, plan, r);
  }
  std::string key() const {
    return perfdb_key(p_, Direction::forward, caps_, config().workspace_budget);
  }

  TempDir dir_;
  std::string db_;
  Config saved_;
  Capabilities caps_ = cpu_capabilities();
  std::unique_ptr<GemmProvider> gemm_;
  ConvProblem p_;
  std::vector<float> x_, w_, y_;
};

TEST_F(FindCpu, TimesTheCandidatesOnceAndASecondProcessReadsTheWinner) {
  Plan plan;
  FindResult r;
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(r.source, PlanSource::find);
  ASSERT_EQ(r.trials.size(), 2u);  // im2col_gemm and reference
  EXPECT_EQ(find_stats().finds, 1u);
  // Two warm-ups and ten timed runs for the first; the second stops early when it is clearly
  // slower (after its first timed run) or overruns (a hundred times the best in a warm-up).
  const uint64_t trials = find_stats().trials;
  EXPECT_GE(trials, 12u + 1u);
  EXPECT_LE(trials, 2u * 12u);
  EXPECT_EQ(candidate_name(plan), r.choice);
  const std::string text = read_text(db_);
  EXPECT_NE(text.find("win\t" + key() + "\t" + r.choice), std::string::npos) << text;
  EXPECT_EQ(text.find("trial\t"), std::string::npos) << "trial marks must be cleared:\n" << text;
  // The same process again: its own copy, no timing.
  FindResult again;
  ASSERT_TRUE(find(&plan, &again).ok());
  EXPECT_EQ(again.source, PlanSource::database);
  EXPECT_EQ(again.choice, r.choice);
  EXPECT_EQ(find_stats().trials, trials);
  // Another process: reads the file, runs nothing, makes the same choice.
  EXPECT_EQ(run_child(db_, "read " + r.choice), 0);
  EXPECT_EQ(run_child(db_, "read no_such_choice"), 1);  // the check can fail
}

TEST_F(FindCpu, OffModeAndCpuDefaultUseTheTable) {
  Config c = config();
  c.find_mode = FindMode::off;
  set_config(c);
  Plan plan;
  FindResult r;
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(r.source, PlanSource::table);
  EXPECT_EQ(r.choice, "im2col_gemm");
  c.find_mode = FindMode::fast;
  c.find_on_cpu = false;  // GEMMCONV_FIND unset: CPU problems are not timed
  set_config(c);
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(r.source, PlanSource::table);
  EXPECT_EQ(find_stats().trials, 0u);
  EXPECT_EQ(read_text(db_), "");
}

TEST_F(FindCpu, AFailingCandidateIsRecordedAndNeverRetried) {
  int im2col_runs = 0;
  engine::set_trial_hook([&](const std::string& candidate) {
    if (candidate != "im2col_gemm") return Status();
    ++im2col_runs;
    return Status(StatusCode::gemm_error, "made to fail by the test");
  });
  Plan plan;
  FindResult r;
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(im2col_runs, 1);
  EXPECT_EQ(r.choice, "reference");
  ASSERT_EQ(r.trials.size(), 2u);
  EXPECT_EQ(r.trials[0].candidate, "im2col_gemm");
  EXPECT_NE(r.trials[0].outcome.find("failed: gemm_error: made to fail"), std::string::npos);
  std::string text = read_text(db_);
  EXPECT_NE(text.find("bad\t" + key() + "\tim2col_gemm\tfailed: gemm_error"), std::string::npos)
      << text;

  // Without the winner (a newer solver set, say) the next find still skips the failed one.
  perfdb::update(db_, key(), [](perfdb::Entry& e) { e.winner.clear(); });
  perfdb_forget();
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(im2col_runs, 1);
  EXPECT_EQ(r.choice, "reference");
  ASSERT_FALSE(r.trials.empty());
  EXPECT_NE(r.trials[0].outcome.find("skipped: unusable"), std::string::npos);
  // The one candidate left is stored untimed.
  EXPECT_NE(read_text(db_).find("win\t" + key() + "\treference\t0\n"), std::string::npos);
  // And so does a second process.
  perfdb::update(db_, key(), [](perfdb::Entry& e) {
    e.winner = "reference";
    e.ms = 1.0;
  });
  EXPECT_EQ(run_child(db_, "read reference"), 0);
}

TEST_F(FindCpu, AnExceptionIsAFailureNotAnEscape) {
  engine::set_trial_hook([](const std::string& candidate) -> Status {
    if (candidate == "reference") throw std::runtime_error("thrown by the test");
    return Status();
  });
  Plan plan;
  FindResult r;
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(r.choice, "im2col_gemm");
  EXPECT_NE(read_text(db_).find("\treference\tfailed: internal_error: exception: thrown"),
            std::string::npos);
}

TEST_F(FindCpu, ACandidateThatKilledItsProcessIsMarkedUnusable) {
  // The child dies while im2col_gemm is in trial, as a process does on a GPU fault.
  EXPECT_EQ(run_child(db_, "crash im2col_gemm"), 3);
  const std::string left = read_text(db_);
  ASSERT_NE(left.find("trial\t" + key() + "\tim2col_gemm\t"), std::string::npos) << left;
  Plan plan;
  FindResult r;
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(r.choice, "reference");
  ASSERT_FALSE(r.trials.empty());
  EXPECT_EQ(r.trials[0].candidate, "im2col_gemm");
  EXPECT_NE(r.trials[0].outcome.find("skipped: unusable"), std::string::npos);
  const std::string text = read_text(db_);
  EXPECT_NE(text.find("bad\t" + key() + "\tim2col_gemm\twas in trial when its process"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("trial\t"), std::string::npos) << text;
}

TEST_F(FindCpu, ATrialOfALiveProcessIsLeftAlone) {
  perfdb::update(db_, key(), [](perfdb::Entry& e) {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    e.in_trial["im2col_gemm"] = std::string(host) + " " + std::to_string(::getppid());
  });
  perfdb_forget();
  Plan plan;
  FindResult r;
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(r.choice, "reference");  // the only candidate not being tried elsewhere
  const std::string text = read_text(db_);
  EXPECT_EQ(text.find("bad\t"), std::string::npos) << text;
  EXPECT_NE(text.find("trial\t" + key() + "\tim2col_gemm"), std::string::npos) << text;
  EXPECT_EQ(text.find("win\t"), std::string::npos) << "no choice while the other is out:\n" << text;
}

TEST_F(FindCpu, ADamagedFileIsReportedIgnoredAndRebuilt) {
  ASSERT_EQ(std::system(("mkdir -p '" + dir_.path() + "/cache/gemmconv'").c_str()), 0);
  {
    std::ofstream out(db_, std::ios::binary);
    out << "\x01\x02 not a database\nwin\t";
  }
  Plan plan;
  FindResult r;
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(r.source, PlanSource::find);
  perfdb::Table t;
  std::string problem;
  ASSERT_TRUE(perfdb::parse(read_text(db_), &t, &problem)) << problem;
  EXPECT_EQ(t[key()].winner, r.choice);
  // Truncated mid-record: the records before the cut are still used.
  const std::string text = read_text(db_);
  {
    std::ofstream out(db_, std::ios::binary | std::ios::trunc);
    out << text << "win\t" << key().substr(0, 10);
  }
  perfdb_forget();
  reset_find_stats();
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(r.source, PlanSource::database);
  EXPECT_EQ(find_stats().trials, 0u);
}

TEST_F(FindCpu, ConcurrentWritersKeepTheFileWholeAndEveryRecord) {
  const std::string cmd = std::string("GEMMCONV_PERFDB='") + db_ + "' '" + GEMMCONV_FIND_CHILD +
                          "' write A 150 & GEMMCONV_PERFDB='" + db_ + "' '" + GEMMCONV_FIND_CHILD +
                          "' write B 150 & wait";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  perfdb::Table t;
  std::string problem;
  ASSERT_TRUE(perfdb::parse(read_text(db_), &t, &problem)) << problem;
  EXPECT_EQ(t.size(), 300u);
  for (int i = 0; i < 150; ++i) {
    EXPECT_EQ(t["A " + std::to_string(i)].winner, "im2col_gemm");
    EXPECT_EQ(t["B " + std::to_string(i)].winner, "im2col_gemm");
  }
}

TEST_F(FindCpu, AnUnwritableDatabaseKeepsResultsInTheProcess) {
  Config c = config();
  c.perfdb_path = "/proc/gemmconv-cannot-write-here/perfdb.txt";
  set_config(c);
  Plan plan;
  FindResult r;
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(r.source, PlanSource::find);
  ASSERT_TRUE(find(&plan, &r).ok());
  EXPECT_EQ(r.source, PlanSource::database);
}

// On the GPU: every implicit_gemm tile is a candidate in exhaustive mode, the winner is stored,
// and the next lookup times nothing. Skips where no GPU is visible.
TEST(FindGpu, TilesAreCandidatesAndTheWinnerIsStored) {
  if (!gpu_support_compiled() || gpu_device_count() == 0) {
    GTEST_SKIP()
        << "no GPU visible (or a CPU-only build): the GPU find test runs on the GPU machine";
  }
  Capabilities caps;
  ASSERT_TRUE(query_gpu_capabilities(0, &caps).ok());
  std::unique_ptr<GemmProvider> gemm = make_gpu_gemm_provider();
  ASSERT_TRUE(gemm != nullptr);
  TempDir dir;
  const Config saved = config();
  Config c = saved;
  c.find_mode = FindMode::exhaustive;
  c.disabled.clear();
  c.perfdb_path = dir.path() + "/perfdb.txt";
  set_config(c);
  perfdb_forget();
  reset_find_stats();
  ConvProblem p;
  p.batch = 8;
  p.in_channels = 32;
  p.out_channels = 32;
  p.input_size = {28, 28, 1};
  p.filter_size = {3, 3, 1};
  p.pad_begin = {1, 1, 0};
  p.pad_end = {1, 1, 0};
  const size_t bytes[3] = {static_cast<size_t>(input_elements(p)) * 4,
                           static_cast<size_t>(weight_elements(p)) * 4,
                           static_cast<size_t>(output_elements(p)) * 4};
  void* mem[3] = {nullptr, nullptr, nullptr};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(gpu_malloc(&mem[i], bytes[i]).ok());
    ASSERT_TRUE(gpu_memset(mem[i], 0, bytes[i]).ok());
  }
  FindRequest req;
  req.buffers.input = mem[0];
  req.buffers.weight = mem[1];
  req.buffers.output = mem[2];
  req.gemm = gemm.get();
  Plan plan;
  FindResult r;
  ASSERT_TRUE(find_plan(p, Direction::forward, caps, PlanOptions(), req, &plan, &r).ok());
  EXPECT_EQ(r.source, PlanSource::find);
  std::set<std::string> tried;
  for (const FindTrial& t : r.trials) tried.insert(t.candidate);
  if (find_solver("implicit_gemm")
          ->is_applicable(canonical_shape(p), Direction::forward,
                          PlanContext{&caps, c.workspace_budget})) {
    EXPECT_TRUE(tried.count("implicit_gemm/128x128") && tried.count("implicit_gemm/128x64") &&
                tried.count("implicit_gemm/64x64"));
  }
  EXPECT_TRUE(tried.count("im2col_gemm"));
  FindResult again;
  const uint64_t trials = find_stats().trials;
  ASSERT_TRUE(find_plan(p, Direction::forward, caps, PlanOptions(), req, &plan, &again).ok());
  EXPECT_EQ(again.source, PlanSource::database);
  EXPECT_EQ(again.choice, r.choice);
  EXPECT_EQ(find_stats().trials, trials);
  for (void* m : mem) gpu_free(m);
  set_config(saved);
  perfdb_forget();
}

TEST(FindConfig, EnvironmentAndDefaultPath) {
  const char* names[] = {"GEMMCONV_FIND", "GEMMCONV_PERFDB", "XDG_CACHE_HOME", "HOME"};
  std::vector<std::pair<bool, std::string>> saved;
  for (const char* n : names) {
    const char* v = std::getenv(n);
    saved.emplace_back(v != nullptr, v ? v : "");
  }
  unsetenv("GEMMCONV_FIND");
  unsetenv("GEMMCONV_PERFDB");
  setenv("XDG_CACHE_HOME", "/x/cache", 1);
  Config c = config_from_environment();
  EXPECT_EQ(c.find_mode, FindMode::fast);
  EXPECT_FALSE(c.find_on_cpu);
  EXPECT_EQ(c.perfdb_path, "/x/cache/gemmconv/perfdb.txt");
  setenv("XDG_CACHE_HOME", "relative", 1);  // invalid by the XDG rules: ignored
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(config_from_environment().perfdb_path, "/home/u/.cache/gemmconv/perfdb.txt");
  setenv("GEMMCONV_PERFDB", "/elsewhere/db.txt", 1);
  setenv("GEMMCONV_FIND", "exhaustive", 1);
  c = config_from_environment();
  EXPECT_EQ(c.perfdb_path, "/elsewhere/db.txt");
  EXPECT_EQ(c.find_mode, FindMode::exhaustive);
  EXPECT_TRUE(c.find_on_cpu);
  setenv("GEMMCONV_FIND", "sometimes", 1);
  EXPECT_EQ(config_from_environment().find_mode, FindMode::fast);  // ignored with a message
  for (size_t i = 0; i < saved.size(); ++i) {
    if (saved[i].first) {
      setenv(names[i], saved[i].second.c_str(), 1);
    } else {
      unsetenv(names[i]);
    }
  }
}

TEST(FindKey, NamesEverythingThatChangesTheChoice) {
  ConvProblem p = child_problem();
  const Capabilities a = gpu_caps("sm_90");
  Capabilities b = a;
  b.name = "another card";
  const std::string k = perfdb_key(p, Direction::forward, a, size_t(512) << 20);
  EXPECT_NE(k, perfdb_key(p, Direction::backward_data, a, size_t(512) << 20));
  EXPECT_NE(k, perfdb_key(p, Direction::forward, b, size_t(512) << 20));
  EXPECT_NE(k, perfdb_key(p, Direction::forward, a, size_t(64) << 20));
  EXPECT_EQ(k, perfdb_key(p, Direction::forward, a, size_t(500) << 20));  // same class
  ConvProblem q = p;
  q.dtype = DataType::f16;
  EXPECT_NE(k, perfdb_key(q, Direction::forward, a, size_t(512) << 20));
  q = p;
  q.layout = Layout::channels_last;
  EXPECT_NE(k, perfdb_key(q, Direction::forward, a, size_t(512) << 20));
  EXPECT_NE(k.find("gemmconv "), std::string::npos);
  EXPECT_EQ(k.find('\t'), std::string::npos);
}

}  // namespace
}  // namespace testing
}  // namespace gemmconv
