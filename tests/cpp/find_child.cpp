// A second process for tests/cpp/test_find.cpp: the find step and the perf database seen from a
// process that did not write them. Configuration comes from the environment (GEMMCONV_FIND,
// GEMMCONV_PERFDB), as in any program.
//   find_child read EXPECTED     plan the test problem; exit 0 when it came from the database
//                                with no candidate run and the choice is EXPECTED
//   find_child crash CANDIDATE   find the test problem; end the process (exit 3) when CANDIDATE
//                                is about to run, as a GPU fault would
//   find_child write TAG COUNT   COUNT database updates of keys "TAG i" (concurrent writers)
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/internal.h"
#include "engine/perfdb.h"
#include "gemmconv/engine.h"
#include "gemmconv/find.h"
#include "gemmconv/gemm.h"

namespace gc = gemmconv;

namespace {

// The problem every role and the tests use: small enough for the reference solver.
gc::ConvProblem test_problem() {
  gc::ConvProblem p;
  p.batch = 2;
  p.in_channels = 4;
  p.out_channels = 6;
  p.input_size = {7, 8, 1};
  p.filter_size = {3, 3, 1};
  p.pad_begin = {1, 1, 0};
  p.pad_end = {1, 1, 0};
  return p;
}

int find_once(gc::FindResult* r) {
  const gc::ConvProblem p = test_problem();
  const gc::Capabilities caps = gc::cpu_capabilities();
  std::unique_ptr<gc::GemmProvider> gemm = gc::make_cpu_gemm_provider();
  if (!gemm) {
    std::fprintf(stderr, "find_child: no CPU GEMM provider in this build\n");
    return 2;
  }
  std::vector<float> x(static_cast<size_t>(gc::input_elements(p)), 0.5f);
  std::vector<float> w(static_cast<size_t>(gc::weight_elements(p)), 0.25f);
  std::vector<float> y(static_cast<size_t>(gc::output_elements(p)), 0.0f);
  gc::FindRequest req;
  req.buffers.input = x.data();
  req.buffers.weight = w.data();
  req.buffers.output = y.data();
  req.gemm = gemm.get();
  gc::Plan plan;
  const gc::Status st =
      gc::find_plan(p, gc::Direction::forward, caps, gc::PlanOptions(), req, &plan, r);
  if (!st.ok()) {
    std::fprintf(stderr, "find_child: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: find_child read EXPECTED | crash CANDIDATE | write TAG COUNT\n");
    return 2;
  }
  const std::string role = argv[1];
  if (role == "read") {
    gc::FindResult r;
    const int rc = find_once(&r);
    if (rc != 0) return rc;
    const gc::FindStats s = gc::find_stats();
    std::printf("source=%s choice=%s trials=%llu finds=%llu\n", gc::to_string(r.source),
                r.choice.c_str(), static_cast<unsigned long long>(s.trials),
                static_cast<unsigned long long>(s.finds));
    return r.source == gc::PlanSource::database && s.trials == 0 && s.finds == 0 &&
                   r.choice == argv[2]
               ? 0
               : 1;
  }
  if (role == "crash") {
    const std::string victim = argv[2];
    gc::engine::set_trial_hook([victim](const std::string& candidate) {
      if (candidate == victim) std::_Exit(3);
      return gc::Status();
    });
    gc::FindResult r;
    return find_once(&r);
  }
  if (role == "write" && argc == 4) {
    const std::string path = gc::config().perfdb_path;
    const int count = std::atoi(argv[3]);
    for (int i = 0; i < count; ++i) {
      gc::perfdb::update(path, std::string(argv[2]) + " " + std::to_string(i),
                         [i](gc::perfdb::Entry& e) {
                           e.winner = "im2col_gemm";
                           e.ms = i;
                         });
    }
    return 0;
  }
  std::fprintf(stderr, "find_child: unknown role %s\n", role.c_str());
  return 2;
}
