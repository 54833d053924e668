// Single-source GPU kernels of the Winograd transforms: one thread per (tile, channel), with
// neighbouring threads on neighbouring channels in channels-last (buffers [T][g][rows][chg]) and
// on neighbouring tiles in the contiguous layout (channel-major buffers [T][g][chg][rows]), so
// that in both layouts the buffer is read and written in whole lines and the tensor along its
// innermost extent. The output transform writes the destination tensor in its final layout: no
// permute follows. The weight gradient's transforms (dy into the transform domain, the summed
// gradient back to the filter) mirror the output and filter transforms.
#include <algorithm>
#include <cstdint>

#include "gpu/compat.h"
#include "kernels/dispatch.h"
#include "solvers/winograd_gemm/winograd.h"
#include "solvers/winograd_gemm/winograd_kernels.h"

namespace gemmconv {
namespace winograd {
namespace gpu {
namespace {

constexpr int kThreads = 256;

cudaStream_t stream_of(const ExecContext& ctx) { return static_cast<cudaStream_t>(ctx.stream); }

unsigned grid_for(const ExecContext& ctx, int64_t items) {
  const int64_t cap = int64_t(std::max(1, ctx.caps->multiprocessors)) * 32;
  const int64_t blocks = std::max<int64_t>(1, (items + kThreads - 1) / kThreads);
  return static_cast<unsigned>(std::min(blocks, cap));
}

// Item -> (row, channel): channel fastest in channels-last, row fastest otherwise (where the
// plan's buffers are channel-major, rows innermost).
template <class I>
__device__ inline void split(const Geo<I>& q, I item, I channels, I* r, I* c) {
  if (q.cl) {
    *r = item / channels;
    *c = item - *r * channels;
  } else {
    *c = item / q.rows;
    *r = item - *c * q.rows;
  }
}

template <int kAH, int kAW, class T, class I>
__global__ void input_kernel(Geo<I> q, const T* __restrict__ src, T* __restrict__ buf, I items) {
  for (I item =
           static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
       item < items; item += static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x)) {
    I r, c;
    split(q, item, q.src_ch, &r, &c);
    input_one<kAH, kAW>(q, src, buf, r, c);
  }
}

template <int kAH, int kAW, class T, class I>
__global__ void output_kernel(Geo<I> q, const T* __restrict__ buf, T* __restrict__ dst, I items) {
  for (I item =
           static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
       item < items; item += static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x)) {
    I r, c;
    split(q, item, q.dst_ch, &r, &c);
    output_one<kAH, kAW>(q, buf, dst, r, c);
  }
}

// Column kk fastest: U rows [cg][kg] are written along kg.
template <int kAH, int kAW, class T, class I>
__global__ void filter_kernel(Geo<I> q, const T* __restrict__ w, T* __restrict__ u, I items) {
  for (I item =
           static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
       item < items; item += static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x)) {
    const I kk = item % q.kg;
    const I gc = item / q.kg;
    const I c = gc % q.cg;
    const I grp = gc / q.cg;
    filter_one<kAH, kAW>(q, w, u, grp, c, kk);
  }
}

// backward_weight: dy tiles into the destination-side buffer, one thread per (tile, channel),
// arranged like the output transform.
template <int kAH, int kAW, class T, class I>
__global__ void grad_output_kernel(Geo<I> q, const T* __restrict__ dy, T* __restrict__ buf,
                                   I items) {
  for (I item =
           static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
       item < items; item += static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x)) {
    I r, c;
    split(q, item, q.dst_ch, &r, &c);
    grad_output_one<kAH, kAW>(q, dy, buf, r, c);
  }
}

// backward_weight: U back to the filter, column kk fastest (U is read along kg), like the filter
// transform.
template <int kAH, int kAW, class T, class I>
__global__ void grad_filter_kernel(Geo<I> q, const T* __restrict__ u, T* __restrict__ dw, I items) {
  for (I item =
           static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
       item < items; item += static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x)) {
    const I kk = item % q.kg;
    const I gc = item / q.kg;
    const I c = gc % q.cg;
    const I grp = gc / q.cg;
    grad_filter_one<kAH, kAW>(q, u, dw, grp, c, kk);
  }
}

// Whether a 32-bit index covers the tensors, the buffers and the grid-stride overshoot.
bool wide(const Plan& p, int64_t rows) {
  const int64_t margin = int64_t(1) << 26;
  const int64_t src = p.n * p.planes * p.src_h * p.src_w * p.src_ch;
  const int64_t dst = p.n * p.planes * p.dst_h * p.dst_w * p.dst_ch;
  const int64_t biggest = std::max(
      {src, dst, source_elements(p, rows), dest_elements(p, rows), filter_elements(p), p.tiles()});
  return needs_index64(biggest + margin);
}

}  // namespace

Status filter(const ExecContext& ctx, const Plan& p, const void* w, void* u) {
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      return dispatch_index(wide(p, 0), [&](auto itag) {
        using I = typename decltype(itag)::type;
        const Geo<I> q = Geo<I>::make(p, 0, 0);
        const int64_t items = int64_t(q.g) * q.cg * q.kg;
        filter_kernel<Tl::kAlphaH, Tl::kAlphaW, T, I>
            <<<grid_for(ctx, items), kThreads, 0, stream_of(ctx)>>>(
                q, static_cast<const T*>(w), static_cast<T*>(u), static_cast<I>(items));
        GEMMCONV_CHECK_LAUNCH("winograd filter transform");
        return Status::success();
      });
    });
  });
}

Status input(const ExecContext& ctx, const Plan& p, const void* src, void* buf, int64_t r0,
             int64_t rows) {
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      return dispatch_index(wide(p, rows), [&](auto itag) {
        using I = typename decltype(itag)::type;
        const Geo<I> q = Geo<I>::make(p, r0, rows);
        const int64_t items = rows * p.src_ch;
        input_kernel<Tl::kAlphaH, Tl::kAlphaW, T, I>
            <<<grid_for(ctx, items), kThreads, 0, stream_of(ctx)>>>(
                q, static_cast<const T*>(src), static_cast<T*>(buf), static_cast<I>(items));
        GEMMCONV_CHECK_LAUNCH("winograd input transform");
        return Status::success();
      });
    });
  });
}

Status output(const ExecContext& ctx, const Plan& p, const void* buf, void* dst, int64_t r0,
              int64_t rows) {
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      return dispatch_index(wide(p, rows), [&](auto itag) {
        using I = typename decltype(itag)::type;
        const Geo<I> q = Geo<I>::make(p, r0, rows);
        const int64_t items = rows * p.dst_ch;
        output_kernel<Tl::kAlphaH, Tl::kAlphaW, T, I>
            <<<grid_for(ctx, items), kThreads, 0, stream_of(ctx)>>>(
                q, static_cast<const T*>(buf), static_cast<T*>(dst), static_cast<I>(items));
        GEMMCONV_CHECK_LAUNCH("winograd output transform");
        return Status::success();
      });
    });
  });
}

Status grad_output(const ExecContext& ctx, const Plan& p, const void* dy, void* buf, int64_t r0,
                   int64_t rows) {
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      return dispatch_index(wide(p, rows), [&](auto itag) {
        using I = typename decltype(itag)::type;
        const Geo<I> q = Geo<I>::make(p, r0, rows);
        const int64_t items = rows * p.dst_ch;
        grad_output_kernel<Tl::kAlphaH, Tl::kAlphaW, T, I>
            <<<grid_for(ctx, items), kThreads, 0, stream_of(ctx)>>>(
                q, static_cast<const T*>(dy), static_cast<T*>(buf), static_cast<I>(items));
        GEMMCONV_CHECK_LAUNCH("winograd weight-gradient dy transform");
        return Status::success();
      });
    });
  });
}

Status grad_filter(const ExecContext& ctx, const Plan& p, const void* u, void* dw) {
  return dispatch_tile(p, [&](auto tile) {
    using Tl = decltype(tile);
    return dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      return dispatch_index(wide(p, 0), [&](auto itag) {
        using I = typename decltype(itag)::type;
        const Geo<I> q = Geo<I>::make(p, 0, 0);
        const int64_t items = int64_t(q.g) * q.cg * q.kg;
        grad_filter_kernel<Tl::kAlphaH, Tl::kAlphaW, T, I>
            <<<grid_for(ctx, items), kThreads, 0, stream_of(ctx)>>>(
                q, static_cast<const T*>(u), static_cast<T*>(dw), static_cast<I>(items));
        GEMMCONV_CHECK_LAUNCH("winograd weight-gradient filter transform");
        return Status::success();
      });
    });
  });
}

}  // namespace gpu
}  // namespace winograd
}  // namespace gemmconv
