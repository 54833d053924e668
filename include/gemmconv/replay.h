// Replay: the one-line gemmconv-driver command that reproduces a convolution.
#pragma once

#include <string>

#include "gemmconv/problem.h"
#include "gemmconv/types.h"

namespace gemmconv {

// A `gemmconv-driver ...` command line for one pass of a problem: every field of the problem
// (rank, batch, channels, groups, sizes, stride, padding per side, dilation, transposed with its
// output padding, layout, dtype), the pass, and where given the solver (left out when it is no
// registered solver, such as "empty" or "bias_reduce"), the device ("cpu" or "gpu") and a forward
// bias. gemmconv-driver parses it back into exactly this problem. Logged at info level for each
// planned convolution, and appended to every error message of make_plan and execute.
std::string replay_command(const ConvProblem& p, Direction d, const char* solver = nullptr,
                           const char* device = nullptr, bool bias = false);

}  // namespace gemmconv
