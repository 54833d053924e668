// CPU twins of the Winograd transform kernels: the shared per-element bodies in parallel loops.
#include "kernels/dispatch.h"
#include "kernels/parallel.h"
#include "solvers/winograd_gemm/winograd.h"
#include "solvers/winograd_gemm/winograd_kernels.h"

namespace gemmconv {
namespace winograd {
namespace cpu {

Status filter(const Plan& p, const void* w, void* u) {
  const Geo<int64_t> q = Geo<int64_t>::make(p, 0, 0);
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* wt = static_cast<const T*>(w);
      T* ut = static_cast<T*>(u);
      parallel_for(q.g * q.cg, q.kg * 64, [&](int64_t b, int64_t e) {
        for (int64_t item = b; item < e; ++item) {
          const int64_t grp = item / q.cg, c = item % q.cg;
          for (int64_t kk = 0; kk < q.kg; ++kk)
            filter_one<Tl::kAlphaH, Tl::kAlphaW>(q, wt, ut, grp, c, kk);
        }
      });
      return Status::success();
    });
  });
}

Status input(const Plan& p, const void* src, void* buf, int64_t r0, int64_t rows) {
  const Geo<int64_t> q = Geo<int64_t>::make(p, r0, rows);
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* s = static_cast<const T*>(src);
      T* bt = static_cast<T*>(buf);
      parallel_for(rows, q.src_ch * 64, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          for (int64_t c = 0; c < q.src_ch; ++c)
            input_one<Tl::kAlphaH, Tl::kAlphaW>(q, s, bt, r, c);
        }
      });
      return Status::success();
    });
  });
}

Status output(const Plan& p, const void* buf, void* dst, int64_t r0, int64_t rows) {
  const Geo<int64_t> q = Geo<int64_t>::make(p, r0, rows);
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* bt = static_cast<const T*>(buf);
      T* d = static_cast<T*>(dst);
      parallel_for(rows, q.dst_ch * 64, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          for (int64_t c = 0; c < q.dst_ch; ++c)
            output_one<Tl::kAlphaH, Tl::kAlphaW>(q, bt, d, r, c);
        }
      });
      return Status::success();
    });
  });
}

}  // namespace cpu
}  // namespace winograd
}  // namespace gemmconv
