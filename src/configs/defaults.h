// The shipped default table: per architecture family, how the planner reorders the solver
// registry when no find result exists (GEMMCONV_FIND=off, CUDA-graph capture, or before the first
// find of a problem). The registry order (src/engine/registry.cpp) is the base; a rule moves one
// solver ahead of another for the problems it names, so a solver added to the registry keeps its
// place in every family.
#pragma once

#include <vector>

#include "configs/hardware.h"
#include "gemmconv/problem.h"
#include "gemmconv/types.h"

namespace gemmconv {
namespace configs {

struct Promotion {
  const char* solver;  // this solver is tried ...
  const char* before;  // ... directly ahead of this one
};

// The rules of `family` for the regular pass `d` of `s`, applied in order.
std::vector<Promotion> solver_promotions(ArchFamily family, const ConvShape& s, Direction d);

}  // namespace configs
}  // namespace gemmconv
