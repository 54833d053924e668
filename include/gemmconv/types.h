// Basic vocabulary of the engine: element types, layouts, directions, devices and the typed status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace gemmconv {

enum class DataType : uint8_t { f32, f16, bf16, f64 };

// Memory order of activations and weights. `contiguous` is N,C,(D,)H,W for activations and
// K,C/groups,(T,)R,S for weights; `channels_last` is N,(D,)H,W,C and K,(T,)R,S,C/groups.
enum class Layout : uint8_t { contiguous, channels_last };

// The four passes of a convolution layer, always named from the user's point of view: for a
// transposed convolution `forward` still means "compute the layer's output".
enum class Direction : uint8_t { forward, backward_data, backward_weight, backward_bias };

// The passes a solver computes: every pass but the bias gradient (a reduction, not a convolution).
inline bool is_regular_pass(Direction d) {
  return d == Direction::forward || d == Direction::backward_data ||
         d == Direction::backward_weight;
}

enum class DeviceKind : uint8_t { cpu, gpu };

enum class StatusCode : uint8_t {
  ok,
  not_applicable,    // a solver cannot compute this problem; a value, not an error
  invalid_problem,   // the problem itself is impossible (message names the value)
  invalid_argument,  // a null pointer, a wrong workspace, a provider of the wrong device
  workspace_too_small,
  unsupported,  // the build lacks what is needed (no GPU support compiled in, say)
  gemm_error,
  out_of_memory,  // memory ran out inside a provider; the pass may be retried with less workspace
  device_error,
  internal_error,
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status success() { return Status(); }

  bool ok() const { return code_ == StatusCode::ok; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::ok;
  std::string message_;
};

const char* to_string(DataType t);
const char* to_string(Layout l);
const char* to_string(Direction d);
const char* to_string(DeviceKind k);
const char* to_string(StatusCode c);

// Parsers used by the driver and the bindings; return false on an unknown name.
bool parse_data_type(const std::string& s, DataType* out);
bool parse_layout(const std::string& s, Layout* out);
bool parse_direction(const std::string& s, Direction* out);

inline size_t element_size(DataType t) {
  switch (t) {
    case DataType::f64:
      return 8;
    case DataType::f32:
      return 4;
    case DataType::f16:
    case DataType::bf16:
      return 2;
  }
  return 0;
}

}  // namespace gemmconv
