// Registration of the engine's stateless algorithms: one instance of each, built on first use.
#pragma once

#include <type_traits>

namespace gemmconv {
namespace solvers {

// The size of a polymorphic class that holds nothing but its virtual-table pointer.
struct NoState {
  virtual ~NoState() = default;
};

// The one instance of solver or plan kind S. Solvers and plan kinds hold no state (MIOpen's
// rule: a solver shall not have variable internal state), so one shared instance serves every
// thread and every plan; a data member added to S fails to compile here. Virtual functions keep
// std::is_empty from applying, so the check compares S with a class that has only a vptr.
template <class S>
const S& stateless_instance() {
  static_assert(std::is_polymorphic<S>::value, "registered algorithms derive from an interface");
  static_assert(sizeof(S) == sizeof(NoState),
                "solvers and plan kinds are stateless: no data members");
  static const S instance;
  return instance;
}

}  // namespace solvers
}  // namespace gemmconv
