// Names of the engine's enumerations, and their parsers.
#include "gemmconv/types.h"

namespace gemmconv {

const char* to_string(DataType t) {
  switch (t) {
    case DataType::f32:
      return "f32";
    case DataType::f16:
      return "f16";
    case DataType::bf16:
      return "bf16";
    case DataType::f64:
      return "f64";
  }
  return "?";
}

const char* to_string(Layout l) {
  switch (l) {
    case Layout::contiguous:
      return "contiguous";
    case Layout::channels_last:
      return "channels_last";
  }
  return "?";
}

const char* to_string(Direction d) {
  switch (d) {
    case Direction::forward:
      return "forward";
    case Direction::backward_data:
      return "backward_data";
    case Direction::backward_weight:
      return "backward_weight";
    case Direction::backward_bias:
      return "backward_bias";
  }
  return "?";
}

const char* to_string(DeviceKind k) { return k == DeviceKind::cpu ? "cpu" : "gpu"; }

const char* to_string(StatusCode c) {
  switch (c) {
    case StatusCode::ok:
      return "ok";
    case StatusCode::not_applicable:
      return "not_applicable";
    case StatusCode::invalid_problem:
      return "invalid_problem";
    case StatusCode::invalid_argument:
      return "invalid_argument";
    case StatusCode::workspace_too_small:
      return "workspace_too_small";
    case StatusCode::unsupported:
      return "unsupported";
    case StatusCode::gemm_error:
      return "gemm_error";
    case StatusCode::device_error:
      return "device_error";
    case StatusCode::out_of_memory:
      return "out_of_memory";
    case StatusCode::internal_error:
      return "internal_error";
  }
  return "?";
}

bool parse_data_type(const std::string& s, DataType* out) {
  for (DataType t : {DataType::f32, DataType::f16, DataType::bf16, DataType::f64}) {
    if (s == to_string(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

bool parse_layout(const std::string& s, Layout* out) {
  for (Layout l : {Layout::contiguous, Layout::channels_last}) {
    if (s == to_string(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

bool parse_direction(const std::string& s, Direction* out) {
  for (Direction d : {Direction::forward, Direction::backward_data, Direction::backward_weight,
                      Direction::backward_bias}) {
    if (s == to_string(d)) {
      *out = d;
      return true;
    }
  }
  return false;
}

}  // namespace gemmconv
