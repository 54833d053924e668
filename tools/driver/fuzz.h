// gemmconv-driver fuzz: random valid problems, every pass and applicable solver against float64.
#pragma once

#include <cstdint>
#include <random>

#include "cli.h"
#include "gemmconv/problem.h"

namespace gemmconv {
namespace driver {

// A random problem that validates, over the whole space the engine accepts: rank 1 to 3,
// transposed with output padding, groups and depthwise, stride, dilation, asymmetric padding,
// empty batches, every dtype and layout; small enough to check in milliseconds.
ConvProblem random_problem(std::mt19937_64& rng);

// Runs `count` problems from `seed`; prints the replay command of every failure. Returns the exit
// status: 0 when every run passed, 1 on any mismatch or error, 2 when the device is unavailable.
int run_fuzz(const FuzzOptions& f);

}  // namespace driver
}  // namespace gemmconv
