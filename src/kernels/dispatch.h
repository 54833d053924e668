// Dtype and index-type dispatch: the storage type and the index type a kernel is instantiated for.
#pragma once

#include <cstdint>
#include <limits>

#include "base/half.h"
#include "gemmconv/types.h"

namespace gemmconv {

template <class T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<T>{}) with T the storage type of `t` and returns what f returns.
template <class F>
auto dispatch_dtype(DataType t, F&& f) -> decltype(f(TypeTag<float>{})) {
  switch (t) {
    case DataType::f32:
      return f(TypeTag<float>{});
    case DataType::f16:
      return f(TypeTag<f16_t>{});
    case DataType::bf16:
      return f(TypeTag<bf16_t>{});
    case DataType::f64:
      return f(TypeTag<double>{});
  }
  return f(TypeTag<float>{});
}

// Calls f(TypeTag<I>{}) with I = int64_t when `wide`, else int32_t.
template <class F>
auto dispatch_index(bool wide, F&& f) -> decltype(f(TypeTag<int64_t>{})) {
  if (wide) return f(TypeTag<int64_t>{});
  return f(TypeTag<int32_t>{});
}

inline bool needs_index64(int64_t max_extent) {
  return max_extent > static_cast<int64_t>(std::numeric_limits<int32_t>::max());
}

}  // namespace gemmconv
