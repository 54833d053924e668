// A deterministic parallel loop for the CPU twins of the kernels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace gemmconv {

// Runs f(begin, end) over [0, count) split into contiguous chunks on up to hardware_concurrency
// threads, using fewer threads when the work (count * work_per_item) is small. Each item is
// computed by exactly one thread, so results do not depend on the split.
template <class F>
void parallel_for(int64_t count, int64_t work_per_item, F f) {
  if (count <= 0) return;
  const int64_t total = count * std::max<int64_t>(work_per_item, 1);
  const int64_t hw = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t threads = std::min({hw, count, std::max<int64_t>(1, total / (int64_t(1) << 15))});
  if (threads <= 1) {
    f(int64_t(0), count);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads - 1));
  const int64_t chunk = (count + threads - 1) / threads;
  for (int64_t t = 1; t < threads; ++t) {
    const int64_t b = t * chunk;
    const int64_t e = std::min(count, b + chunk);
    if (b < e) pool.emplace_back([=] { f(b, e); });
  }
  f(int64_t(0), std::min(count, chunk));
  for (auto& th : pool) th.join();
}

}  // namespace gemmconv
