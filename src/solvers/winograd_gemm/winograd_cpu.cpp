// CPU twins of the Winograd transform kernels: the shared per-element bodies in parallel loops.
#include <algorithm>

#include "kernels/dispatch.h"
#include "kernels/parallel.h"
#include "solvers/winograd_gemm/winograd.h"
#include "solvers/winograd_gemm/winograd_kernels.h"

namespace gemmconv {
namespace winograd {
namespace cpu {
namespace {

// Channels (or filter columns) transformed together: the T values of a block are stored point
// by point, so that each store runs along one row instead of striding across the T points (whose
// distance is often a multiple of 4 KiB, making every store of an element miss the same cache
// set).
constexpr int64_t kBlock = 32;

int64_t blocks_of(int64_t rows) { return (rows + kBlock - 1) / kBlock; }

// Every (group, channel, block of up to kBlock filter columns) of the filter side, in parallel:
// `block(grp, c, k0, nk, uv)` with scratch uv[kBlock][kT] for the block's transform values.
template <int kT, class A, class F>
void for_filter_blocks(const Geo<int64_t>& q, F block) {
  parallel_for(q.g * q.cg, q.kg * kT, [&](int64_t b, int64_t e) {
    A uv[kBlock][kT];
    for (int64_t item = b; item < e; ++item) {
      const int64_t grp = item / q.cg, c = item % q.cg;
      for (int64_t k0 = 0; k0 < q.kg; k0 += kBlock) {
        block(grp, c, k0, std::min(kBlock, q.kg - k0), uv);
      }
    }
  });
}

// Transforms the tiles of one tensor into a transform-domain buffer: x into V (`input`) or dy into
// the weight gradient's other operand (`grad_output`). `dy_side` picks the channel count and
// group stride of that side; `tile_fn(tile, q, src, row, channel, v)` computes one tile's values.
template <class TileFn>
Status transform_tiles(const Plan& p, const void* src, void* buf, int64_t r0, int64_t rows,
                       bool dy_side, TileFn tile_fn) {
  const Geo<int64_t> q = Geo<int64_t>::make(p, r0, rows);
  const int64_t channels = dy_side ? q.dst_ch : q.src_ch;
  const int64_t chg = dy_side ? q.dst_chg : q.src_chg;
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    constexpr int kT = Tl::kT;
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using A = typename Elem<T>::acc;
      const T* s = static_cast<const T*>(src);
      T* bt = static_cast<T*>(buf);
      const int64_t point = point_stride(q, chg);
      if (q.cm) {
        // Channel-major buffers: a block of consecutive tiles of one channel, stored along rows.
        parallel_for(channels * blocks_of(rows), kBlock * kT, [&](int64_t b, int64_t e) {
          A v[kBlock][kT];
          for (int64_t item = b; item < e; ++item) {
            const int64_t c = item / blocks_of(rows), rb = (item % blocks_of(rows)) * kBlock;
            const int64_t nr = std::min(kBlock, rows - rb);
            for (int64_t j = 0; j < nr; ++j) {
              tile_fn(tile, q, s, rb + j, c, v[j]);
            }
            T* out = bt + row_offset(q, rb, c, chg);
            for (int t = 0; t < kT; ++t) {
              for (int64_t j = 0; j < nr; ++j) out[t * point + j] = Elem<T>::store(v[j][t]);
            }
          }
        });
        return Status::success();
      }
      parallel_for(rows, channels * kT, [&](int64_t b, int64_t e) {
        A v[kBlock][kT];
        for (int64_t r = b; r < e; ++r) {
          for (int64_t c0 = 0; c0 < channels; c0 += kBlock) {
            const int64_t nc = std::min(kBlock, channels - c0);
            for (int64_t j = 0; j < nc; ++j) {
              tile_fn(tile, q, s, r, c0 + j, v[j]);
            }
            int64_t base[kBlock];
            for (int64_t j = 0; j < nc; ++j) base[j] = row_offset(q, r, c0 + j, chg);
            for (int t = 0; t < kT; ++t) {
              for (int64_t j = 0; j < nc; ++j) bt[base[j] + t * point] = Elem<T>::store(v[j][t]);
            }
          }
        }
      });
      return Status::success();
    });
  });
}

}  // namespace

Status filter(const Plan& p, const void* w, void* u) {
  const Geo<int64_t> q = Geo<int64_t>::make(p, 0, 0);
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    constexpr int kT = Tl::kT;
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using A = typename Elem<T>::acc;
      const T* wt = static_cast<const T*>(w);
      T* ut = static_cast<T*>(u);
      const int64_t point = filter_point_stride(q);
      for_filter_blocks<kT, A>(q, [&](int64_t grp, int64_t c, int64_t k0, int64_t nk, A(*uv)[kT]) {
        for (int64_t j = 0; j < nk; ++j) {
          filter_tile<Tl::kAlphaH, Tl::kAlphaW>(q, wt, grp, c, k0 + j, uv[j]);
        }
        T* out = ut + filter_offset(q, grp, c, k0);
        for (int t = 0; t < kT; ++t) {
          for (int64_t j = 0; j < nk; ++j) out[t * point + j] = Elem<T>::store(uv[j][t]);
        }
      });
      return Status::success();
    });
  });
}

Status input(const Plan& p, const void* src, void* buf, int64_t r0, int64_t rows) {
  return transform_tiles(
      p, src, buf, r0, rows, false,
      [](auto tile, const auto& q, const auto* s, int64_t r, int64_t c, auto* v) {
        using Tl = decltype(tile);
        input_tile<Tl::kAlphaH, Tl::kAlphaW>(q, s, r, c, v);
      });
}

Status output(const Plan& p, const void* buf, void* dst, int64_t r0, int64_t rows) {
  const Geo<int64_t> q = Geo<int64_t>::make(p, r0, rows);
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    constexpr int kT = Tl::kT;
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using A = typename Elem<T>::acc;
      const T* bt = static_cast<const T*>(buf);
      T* d = static_cast<T*>(dst);
      const int64_t point = point_stride(q, q.dst_chg);
      if (q.cm) {
        parallel_for(q.dst_ch * blocks_of(rows), kBlock * kT, [&](int64_t b, int64_t e) {
          A m[kBlock][kT];
          for (int64_t item = b; item < e; ++item) {
            const int64_t c = item / blocks_of(rows), rb = (item % blocks_of(rows)) * kBlock;
            const int64_t nr = std::min(kBlock, rows - rb);
            const T* in = bt + row_offset(q, rb, c, q.dst_chg);
            for (int t = 0; t < kT; ++t) {
              for (int64_t j = 0; j < nr; ++j) m[j][t] = Elem<T>::load(in[t * point + j]);
            }
            for (int64_t j = 0; j < nr; ++j) {
              output_tile<Tl::kAlphaH, Tl::kAlphaW, T>(q, m[j], d, rb + j, c);
            }
          }
        });
        return Status::success();
      }
      parallel_for(rows, q.dst_ch * kT, [&](int64_t b, int64_t e) {
        A m[kBlock][kT];
        for (int64_t r = b; r < e; ++r) {
          for (int64_t c0 = 0; c0 < q.dst_ch; c0 += kBlock) {
            const int64_t nc = std::min(kBlock, q.dst_ch - c0);
            int64_t base[kBlock];
            for (int64_t j = 0; j < nc; ++j) base[j] = row_offset(q, r, c0 + j, q.dst_chg);
            for (int t = 0; t < kT; ++t) {
              for (int64_t j = 0; j < nc; ++j) m[j][t] = Elem<T>::load(bt[base[j] + t * point]);
            }
            for (int64_t j = 0; j < nc; ++j) {
              output_tile<Tl::kAlphaH, Tl::kAlphaW, T>(q, m[j], d, r, c0 + j);
            }
          }
        }
      });
      return Status::success();
    });
  });
}

Status grad_output(const Plan& p, const void* dy, void* buf, int64_t r0, int64_t rows) {
  return transform_tiles(
      p, dy, buf, r0, rows, true,
      [](auto tile, const auto& q, const auto* s, int64_t r, int64_t c, auto* v) {
        using Tl = decltype(tile);
        grad_output_tile<Tl::kAlphaH, Tl::kAlphaW>(q, s, r, c, v);
      });
}

Status grad_filter(const Plan& p, const void* u, void* dw) {
  const Geo<int64_t> q = Geo<int64_t>::make(p, 0, 0);
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    constexpr int kT = Tl::kT;
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using A = typename Elem<T>::acc;
      const T* ut = static_cast<const T*>(u);
      T* wt = static_cast<T*>(dw);
      const int64_t point = filter_point_stride(q);
      for_filter_blocks<kT, A>(q, [&](int64_t grp, int64_t c, int64_t k0, int64_t nk, A(*uv)[kT]) {
        const T* in = ut + filter_offset(q, grp, c, k0);
        for (int t = 0; t < kT; ++t) {
          for (int64_t j = 0; j < nk; ++j) uv[j][t] = Elem<T>::load(in[t * point + j]);
        }
        for (int64_t j = 0; j < nk; ++j) {
          grad_filter_tile<Tl::kAlphaH, Tl::kAlphaW, T>(q, uv[j], wt, grp, c, k0 + j);
        }
      });
      return Status::success();
    });
  });
}

}  // namespace cpu
}  // namespace winograd
}  // namespace gemmconv
