// The one catalog of named convolution problems that the numeric tests draw from.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <iosfwd>
#include <string>
#include <vector>

#include "gemmconv/problem.h"

namespace gemmconv {
namespace testing {

struct CatalogEntry {
  std::string name;
  ConvProblem problem;
  // A problem too large for the CPU reference: run only on a GPU with at least
  // `min_device_bytes` of memory, and verified on a sample of elements.
  bool big = false;
  size_t min_device_bytes = 0;
};

// gtest prints parameters with this: the name and the problem in driver flag syntax.
void PrintTo(const CatalogEntry& e, std::ostream* os);

// Every entry, small ones first; names are unique and usable as gtest parameter names.
const std::vector<CatalogEntry>& catalog();
// The entries that are not `big`.
std::vector<CatalogEntry> small_catalog();
// nullptr when no entry has that name.
const CatalogEntry* find_entry(const std::string& name);

// A problem with no work at all (empty batch or an empty tensor): solvers may legitimately
// decline it, and there is nothing to compare.
bool degenerate(const ConvProblem& p);

// Fluent construction, used by the catalog and the tests; spatial lists set the first
// `dims` entries (a single value is repeated).
class ProblemBuilder {
 public:
  explicit ProblemBuilder(int dims);
  ProblemBuilder& batch(int64_t n);
  ProblemBuilder& channels(int64_t in, int64_t out);
  ProblemBuilder& groups(int64_t g);
  ProblemBuilder& input(std::initializer_list<int64_t> v);
  ProblemBuilder& filter(std::initializer_list<int64_t> v);
  ProblemBuilder& stride(std::initializer_list<int64_t> v);
  ProblemBuilder& dilation(std::initializer_list<int64_t> v);
  ProblemBuilder& pad(std::initializer_list<int64_t> v);  // both sides
  ProblemBuilder& pad_begin(std::initializer_list<int64_t> v);
  ProblemBuilder& pad_end(std::initializer_list<int64_t> v);
  ProblemBuilder& output_padding(std::initializer_list<int64_t> v);
  ProblemBuilder& transposed(bool t = true);
  ProblemBuilder& layout(Layout l);
  ProblemBuilder& dtype(DataType t);
  const ConvProblem& get() const { return p_; }
  operator ConvProblem() const { return p_; }  // NOLINT: builder converts implicitly

 private:
  void set(Dims* d, std::initializer_list<int64_t> v) const;
  ConvProblem p_;
};

}  // namespace testing
}  // namespace gemmconv
