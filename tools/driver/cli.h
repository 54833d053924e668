// gemmconv-driver's command lines: its own flags, MIOpenDriver's `conv` syntax, and fuzz mode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gemmconv/engine.h"
#include "gemmconv/problem.h"
#include "gemmconv/types.h"

namespace gemmconv {
namespace driver {

// A malformed command line; the driver prints the message and exits with status 2.
struct UsageError {
  std::string message;
};

// One run of the driver: a problem, the passes to run on it, and what to do with them.
struct Options {
  ConvProblem problem;
  std::vector<Direction> directions{Direction::forward};
  bool bias = false;   // forward adds a bias
  std::string device;  // "cpu", "gpu", or empty: the GPU when one is visible
  std::string solver;  // empty: the planner's choice
  bool workspace_set = false;
  size_t workspace_mb = 0;
  bool allow_tf32 = false;
  uint64_t seed = 1;
  bool verify = false;
  bool time = false;
  int64_t reps = 20, warmup = 3;
  bool list_solvers = false;
  bool find = false;           // plan through the find step (find_plan) and print its result
  bool find_mode_set = false;  // --find-mode given (implies --find); else GEMMCONV_FIND's mode
  FindMode find_mode = FindMode::fast;
  bool progress = false;  // progress of --verify on stderr even when it is not a terminal
  bool help = false;
  bool version = false;               // print the version and the build's GEMM providers, then exit
  bool miopen = false;                // parsed from MIOpenDriver's `conv` syntax
  std::vector<std::string> warnings;  // flags accepted without effect (MIOpenDriver syntax)
};

// Parses the arguments after the program name: gemmconv-driver's flags, or, when the first word is
// conv, convfp16 or convbfp16, MIOpenDriver's conv flags (with gemmconv-driver's run flags such as
// --device and --solver allowed too). Throws UsageError naming the offending flag or value.
Options parse_command_line(const std::vector<std::string>& args);

// What `gemmconv-driver fuzz` runs.
struct FuzzOptions {
  uint64_t seed = 1;
  int64_t count = 100;
  std::string device;  // "cpu", "gpu", or empty: the GPU when one is visible
  bool verbose = false;
  bool help = false;
};
// Parses the arguments after `fuzz`.
FuzzOptions parse_fuzz_command_line(const std::vector<std::string>& args);

// Splits a command line at white space (replay lines hold no quotes).
std::vector<std::string> split_words(const std::string& line);

}  // namespace driver
}  // namespace gemmconv
