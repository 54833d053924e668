// What the planner, the executor and the find step share inside the engine.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "gemmconv/engine.h"

namespace gemmconv {
namespace engine {

// The registry in the order of the default table for `caps`' architecture family.
std::vector<const Solver*> preferred_order(const ConvShape& s, Direction d,
                                           const Capabilities& caps);

// Whether the planner may pick `s`: enabled, a GEMM provider when it needs one, applicable, and
// within the budget.
bool solver_usable(const Solver* s, const ConvShape& shape, Direction regular,
                   const PlanContext& ctx, const Config& cfg, bool gemm_available);

// execute() without counting the call in the statistics (the find step's trial runs).
Status execute_uncounted(const Plan& plan, const ConvBuffers& b, const ExecContext& ctx);

}  // namespace engine
}  // namespace gemmconv

namespace gemmconv {
namespace engine {

// Tests only: called before every run of a find candidate with its name. A non-ok status fails
// the run as a solver error would; the hook may also throw or end the process. Empty: none.
using TrialHook = std::function<Status(const std::string& candidate)>;
void set_trial_hook(TrialHook hook);

}  // namespace engine
}  // namespace gemmconv
