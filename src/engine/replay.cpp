// The replay command of a convolution, in gemmconv-driver's flag syntax.
#include "gemmconv/replay.h"

#include <sstream>

#include "gemmconv/engine.h"

namespace gemmconv {
namespace {

// "AxBxC" over the first `dims` entries.
std::string dims_string(const Dims& v, int dims) {
  std::ostringstream os;
  for (int j = 0; j < dims; ++j) os << (j ? "x" : "") << v[j];
  return os.str();
}

}  // namespace

std::string replay_command(const ConvProblem& p, Direction d, const char* solver,
                           const char* device, bool bias) {
  // Out-of-range fields are printed as they are: the driver then names the bad value.
  const int dims = p.spatial_dims >= 1 && p.spatial_dims <= kMaxSpatialDims ? p.spatial_dims : 2;
  std::ostringstream os;
  os << "gemmconv-driver";
  if (device && *device) os << " --device " << device;
  os << " --dims " << p.spatial_dims << " -n " << p.batch << " -c " << p.in_channels << " -k "
     << p.out_channels << " -g " << p.groups << " --input " << dims_string(p.input_size, dims)
     << " --filter " << dims_string(p.filter_size, dims) << " --stride "
     << dims_string(p.stride, dims) << " --pad-begin " << dims_string(p.pad_begin, dims)
     << " --pad-end " << dims_string(p.pad_end, dims) << " --dilation "
     << dims_string(p.dilation, dims);
  if (p.transposed) {
    os << " --transposed --output-padding " << dims_string(p.output_padding, dims);
  }
  os << " --layout " << to_string(p.layout) << " --dtype " << to_string(p.dtype) << " --direction "
     << to_string(d);
  if (bias && d == Direction::forward) os << " --bias";
  if (solver && d != Direction::backward_bias && find_solver(solver)) os << " --solver " << solver;
  return os.str();
}

}  // namespace gemmconv
