// Single-source GPU kernels of the ops: grid-stride loops, no warp-size assumptions, no atomics.
#include <algorithm>
#include <cstdint>

#include "gpu/compat.h"
#include "kernels/conv_geometry.h"
#include "kernels/dispatch.h"
#include "kernels/ops_gpu.h"
#include "kernels/reference_conv.h"

namespace gemmconv {
namespace gpu_ops {
namespace {

constexpr int kBlock = 256;

// Enough margin that a grid-stride index never overflows int32 when the extent fits.
bool wide(int64_t extent) { return needs_index64(extent + (int64_t(1) << 26)); }

cudaStream_t stream_of(const ExecContext& ctx) { return static_cast<cudaStream_t>(ctx.stream); }

int sms(const ExecContext& ctx) { return std::max(1, ctx.caps->multiprocessors); }

unsigned grid_1d(const ExecContext& ctx, int64_t n, int block) {
  const int64_t blocks = (n + block - 1) / block;
  const int64_t cap = int64_t(sms(ctx)) * 32;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(blocks, cap)));
}

template <class I>
__device__ inline I global_x() {
  return static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
}

template <class I>
__device__ inline I stride_x() {
  return static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x);
}

// A 2-D launch: threads along one tensor dimension (x), blocks along rows (y). Each blockIdx.y
// owns a contiguous chunk of rows so that row coordinates advance by increments, not divisions.
struct Launch2d {
  dim3 grid;
  dim3 block;
};

Launch2d launch_2d(const ExecContext& ctx, int64_t xs, int64_t rows) {
  Launch2d l;
  int bx = kBlock;
  if (xs < kBlock) bx = static_cast<int>(std::max<int64_t>(64, (xs + 63) / 64 * 64));
  const int64_t gx = std::min<int64_t>((xs + bx - 1) / bx, int64_t(sms(ctx)) * 64);
  const int64_t target_threads = int64_t(sms(ctx)) * 4096;
  int64_t gy = (target_threads + gx * bx - 1) / (gx * bx);
  gy = std::max<int64_t>(1, std::min<int64_t>({gy, rows, 65535}));
  l.grid = dim3(static_cast<unsigned>(std::max<int64_t>(1, gx)), static_cast<unsigned>(gy), 1);
  l.block = dim3(static_cast<unsigned>(bx), 1, 1);
  return l;
}

template <class I>
__device__ inline void row_chunk(I rows, I* begin, I* end) {
  const I chunk = (rows + static_cast<I>(gridDim.y) - 1) / static_cast<I>(gridDim.y);
  *begin = static_cast<I>(blockIdx.y) * chunk;
  *end = *begin + chunk < rows ? *begin + chunk : rows;
}

// ------------------------------------------------------------------ im2col / col2im

// Rows a thread of the contiguous im2col/col2im kernels moves at once: their loads are
// independent, so that several are in flight per thread (one at a time left the copy bound by
// memory latency, at a fraction of the bandwidth).
constexpr int kRowsAtOnce = 4;

// Contiguous layout: threads along output pixels p (the column buffer's contiguous index),
// rows (sample, channel), kRowsAtOnce of them per pass over the taps.
template <class T, class I>
__global__ void im2col_contiguous(ConvGeo<I> g, const T* __restrict__ x, T* __restrict__ col, I n0,
                                  I nb, I csn, I csc, I csf) {
  const T zero = Elem<T>::store(typename Elem<T>::acc(0));
  I rb, re;
  row_chunk(nb * g.c, &rb, &re);
  if (rb >= re) return;
  for (I p = global_x<I>(); p < g.out_pix; p += stride_x<I>()) {
    const I o2 = p % g.out[2];
    const I o1 = (p / g.out[2]) % g.out[1];
    const I o0 = p / (g.out[2] * g.out[1]);
    const I b0 = o0 * g.stride[0] - g.pad[0];
    const I b1 = o1 * g.stride[1] - g.pad[1];
    const I b2 = o2 * g.stride[2] - g.pad[2];
    for (I r0 = rb; r0 < re; r0 += kRowsAtOnce) {
      // Row r is x's row n0 * c + r (rows are (sample, channel) pairs in x's order).
      const T* xp[kRowsAtOnce];
      T* cp[kRowsAtOnce];
      bool live[kRowsAtOnce];
#pragma unroll
      for (int u = 0; u < kRowsAtOnce; ++u) {
        live[u] = r0 + u < re;
        const I r = live[u] ? r0 + u : r0;  // a row past the end stands on row r0, unused
        const I i = r / g.c;
        const I c = r - i * g.c;
        xp[u] = x + (n0 * g.c + r) * g.in_pix;
        cp[u] = col + i * csn + c * csc + p;
      }
      I f = 0;
      for (I t0 = 0; t0 < g.filt[0]; ++t0) {
        const I i0 = b0 + t0 * g.dil[0];
        const bool ok0 = i0 >= 0 && i0 < g.in[0];
        for (I t1 = 0; t1 < g.filt[1]; ++t1) {
          const I i1 = b1 + t1 * g.dil[1];
          const bool ok1 = ok0 && i1 >= 0 && i1 < g.in[1];
          for (I t2 = 0; t2 < g.filt[2]; ++t2, ++f) {
            const I i2 = b2 + t2 * g.dil[2];
            const bool ok = ok1 && i2 >= 0 && i2 < g.in[2];
            const I off = (i0 * g.in[1] + i1) * g.in[2] + i2;
            T v[kRowsAtOnce];
#pragma unroll
            for (int u = 0; u < kRowsAtOnce; ++u) v[u] = (ok && live[u]) ? xp[u][off] : zero;
#pragma unroll
            for (int u = 0; u < kRowsAtOnce; ++u) {
              if (live[u]) cp[u][f * csf] = v[u];
            }
          }
        }
      }
    }
  }
}

// Channels-last layout: threads along the column index j = (group, tap, channel in group) of a
// row, rows (sample, output pixel).
template <class T, class I>
__global__ void im2col_channels_last(ConvGeo<I> g, const T* __restrict__ x, T* __restrict__ col,
                                     I n0, I nb) {
  const T zero = Elem<T>::store(typename Elem<T>::acc(0));
  const I row_len = g.c * g.filt_pix;
  I rb, re;
  row_chunk(nb * g.out_pix, &rb, &re);
  if (rb >= re) return;
  for (I j = global_x<I>(); j < row_len; j += stride_x<I>()) {
    const I cgi = j % g.cg;
    const I q = j / g.cg;
    const I f = q % g.filt_pix;
    const I ch = (q / g.filt_pix) * g.cg + cgi;
    const I t2 = f % g.filt[2];
    const I t1 = (f / g.filt[2]) % g.filt[1];
    const I t0 = f / (g.filt[2] * g.filt[1]);
    const I d0 = t0 * g.dil[0] - g.pad[0];
    const I d1 = t1 * g.dil[1] - g.pad[1];
    const I d2 = t2 * g.dil[2] - g.pad[2];
    I i = rb / g.out_pix;
    I p = rb - i * g.out_pix;
    I o2 = p % g.out[2];
    I o1 = (p / g.out[2]) % g.out[1];
    I o0 = p / (g.out[2] * g.out[1]);
    for (I r = rb; r < re; ++r) {
      const I i0 = o0 * g.stride[0] + d0;
      const I i1 = o1 * g.stride[1] + d1;
      const I i2 = o2 * g.stride[2] + d2;
      const bool ok = i0 >= 0 && i0 < g.in[0] && i1 >= 0 && i1 < g.in[1] && i2 >= 0 && i2 < g.in[2];
      col[r * row_len + j] = ok ? x[g.x_off(n0 + i, ch, i0, i1, i2)] : zero;
      if (++o2 == g.out[2]) {
        o2 = 0;
        if (++o1 == g.out[1]) {
          o1 = 0;
          if (++o0 == g.out[0]) {
            o0 = 0;
            ++i;
          }
        }
      }
    }
  }
}

// Contiguous layout gather: threads along input pixels, rows (sample, channel); each x element
// sums its taps in (t0, t1, t2) order. The taps that reach a pixel do not depend on the row, so a
// thread lists their column offsets once and reuses them for every row of its chunk.
constexpr int kMaxListedTaps = 32;

template <class T, class I>
__global__ void col2im_contiguous(ConvGeo<I> g, const T* __restrict__ col, T* __restrict__ x, I n0,
                                  I nb, I csn, I csc, I csf) {
  using A = typename Elem<T>::acc;
  I rb, re;
  row_chunk(nb * g.c, &rb, &re);
  if (rb >= re) return;
  for (I ip = global_x<I>(); ip < g.in_pix; ip += stride_x<I>()) {
    const I i2 = ip % g.in[2];
    const I i1 = (ip / g.in[2]) % g.in[1];
    const I i0 = ip / (g.in[2] * g.in[1]);
    I offs[kMaxListedTaps];
    int count = 0;
    bool listed = true;
    for (I t0 = 0; t0 < g.filt[0] && listed; ++t0) {
      const I o0 = tap_output(g, 0, i0, t0);
      if (o0 < 0) continue;
      for (I t1 = 0; t1 < g.filt[1] && listed; ++t1) {
        const I o1 = tap_output(g, 1, i1, t1);
        if (o1 < 0) continue;
        for (I t2 = 0; t2 < g.filt[2]; ++t2) {
          const I o2 = tap_output(g, 2, i2, t2);
          if (o2 < 0) continue;
          if (count == kMaxListedTaps) {
            listed = false;
            break;
          }
          const I f = (t0 * g.filt[1] + t1) * g.filt[2] + t2;
          offs[count++] = f * csf + (o0 * g.out[1] + o1) * g.out[2] + o2;
        }
      }
    }
    I r = rb;
    if (listed) {
      // kRowsAtOnce rows per pass, each summing its taps in the listed order.
      for (; r < re; r += kRowsAtOnce) {
        const T* cp[kRowsAtOnce];
        A acc[kRowsAtOnce];
#pragma unroll
        for (int u = 0; u < kRowsAtOnce; ++u) {
          const I ru = r + u < re ? r + u : r;  // a row past the end re-reads row r, unwritten
          const I i = ru / g.c;
          cp[u] = col + i * csn + (ru - i * g.c) * csc;
          acc[u] = A(0);
        }
        for (int q = 0; q < count; ++q) {
#pragma unroll
          for (int u = 0; u < kRowsAtOnce; ++u) acc[u] += Elem<T>::load(cp[u][offs[q]]);
        }
#pragma unroll
        for (int u = 0; u < kRowsAtOnce; ++u) {
          if (r + u < re) x[(n0 * g.c + r + u) * g.in_pix + ip] = Elem<T>::store(acc[u]);
        }
      }
      continue;
    }
    I i = rb / g.c;
    I c = rb - i * g.c;
    for (; r < re; ++r) {
      // More taps reach this pixel than a thread lists: they are walked again for every row.
      const T* cp = col + i * csn + c * csc;
      A acc = A(0);
      for (I t0 = 0; t0 < g.filt[0]; ++t0) {
        const I o0 = tap_output(g, 0, i0, t0);
        if (o0 < 0) continue;
        for (I t1 = 0; t1 < g.filt[1]; ++t1) {
          const I o1 = tap_output(g, 1, i1, t1);
          if (o1 < 0) continue;
          for (I t2 = 0; t2 < g.filt[2]; ++t2) {
            const I o2 = tap_output(g, 2, i2, t2);
            if (o2 < 0) continue;
            const I f = (t0 * g.filt[1] + t1) * g.filt[2] + t2;
            acc += Elem<T>::load(cp[f * csf + (o0 * g.out[1] + o1) * g.out[2] + o2]);
          }
        }
      }
      x[((n0 + i) * g.c + c) * g.in_pix + ip] = Elem<T>::store(acc);
      if (++c == g.c) {
        c = 0;
        ++i;
      }
    }
  }
}

// Channels-last gather: one thread per x element, consecutive threads along channels (the
// contiguous index), so that few channels still fill whole blocks.
template <class T, class I>
__global__ void col2im_channels_last(ConvGeo<I> g, const T* __restrict__ col, T* __restrict__ x,
                                     I n0, I nb) {
  using A = typename Elem<T>::acc;
  const I row_len = g.c * g.filt_pix;
  const I total = nb * g.in_pix * g.c;
  for (I idx = global_x<I>(); idx < total; idx += stride_x<I>()) {
    const I ch = idx % g.c;
    const I r = idx / g.c;
    const I i = r / g.in_pix;
    const I ip = r - i * g.in_pix;
    const I i2 = ip % g.in[2];
    const I i1 = (ip / g.in[2]) % g.in[1];
    const I i0 = ip / (g.in[2] * g.in[1]);
    const I grp = ch / g.cg;
    const I base = grp * g.filt_pix * g.cg + (ch - grp * g.cg);
    A acc = A(0);
    for (I t0 = 0; t0 < g.filt[0]; ++t0) {
      const I o0 = tap_output(g, 0, i0, t0);
      if (o0 < 0) continue;
      for (I t1 = 0; t1 < g.filt[1]; ++t1) {
        const I o1 = tap_output(g, 1, i1, t1);
        if (o1 < 0) continue;
        for (I t2 = 0; t2 < g.filt[2]; ++t2) {
          const I o2 = tap_output(g, 2, i2, t2);
          if (o2 < 0) continue;
          const I f = (t0 * g.filt[1] + t1) * g.filt[2] + t2;
          const I p = (o0 * g.out[1] + o1) * g.out[2] + o2;
          acc += Elem<T>::load(col[(i * g.out_pix + p) * row_len + base + f * g.cg]);
        }
      }
    }
    x[g.x_off(n0 + i, ch, i0, i1, i2)] = Elem<T>::store(acc);
  }
}

template <bool kIm2col>
Status run_cols(const ExecContext& ctx, const ConvShape& s, const void* src, void* dst, int64_t n0,
                int64_t nb, const ops::ColStrides& cs) {
  const bool cl = s.layout == Layout::channels_last;
  if (nb == 0 || s.c == 0) return Status();
  if (kIm2col && s.out_pixels() == 0) return Status();
  if (!kIm2col && s.in_pixels() == 0) return Status();
  const int64_t col_end =
      cl ? nb * s.out_pixels() * s.c * s.filt_pixels()
         : (nb - 1) * cs.n + (s.c - 1) * cs.c + (s.filt_pixels() - 1) * cs.f + s.out_pixels();
  const bool w64 = s.index64 || wide(std::max(s.x_elements(), col_end));
  return dispatch_dtype(s.dtype, [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    return dispatch_index(w64, [&](auto itag) {
      using I = typename decltype(itag)::type;
      const ConvGeo<I> g = ConvGeo<I>::make(s);
      const I in0 = static_cast<I>(n0), inb = static_cast<I>(nb);
      if (kIm2col) {
        const T* x = static_cast<const T*>(src);
        T* col = static_cast<T*>(dst);
        if (cl) {
          const Launch2d l = launch_2d(ctx, s.c * s.filt_pixels(), nb * s.out_pixels());
          im2col_channels_last<T, I><<<l.grid, l.block, 0, stream_of(ctx)>>>(g, x, col, in0, inb);
        } else {
          const Launch2d l = launch_2d(ctx, s.out_pixels(), nb * s.c);
          im2col_contiguous<T, I>
              <<<l.grid, l.block, 0, stream_of(ctx)>>>(g, x, col, in0, inb, static_cast<I>(cs.n),
                                                       static_cast<I>(cs.c), static_cast<I>(cs.f));
        }
        GEMMCONV_CHECK_LAUNCH("im2col kernel");
      } else {
        const T* col = static_cast<const T*>(src);
        T* x = static_cast<T*>(dst);
        if (cl) {
          const int64_t total = nb * s.in_pixels() * s.c;
          col2im_channels_last<T, I>
              <<<grid_1d(ctx, total, kBlock), kBlock, 0, stream_of(ctx)>>>(g, col, x, in0, inb);
        } else {
          const Launch2d l = launch_2d(ctx, s.in_pixels(), nb * s.c);
          col2im_contiguous<T, I>
              <<<l.grid, l.block, 0, stream_of(ctx)>>>(g, col, x, in0, inb, static_cast<I>(cs.n),
                                                       static_cast<I>(cs.c), static_cast<I>(cs.f));
        }
        GEMMCONV_CHECK_LAUNCH("col2im kernel");
      }
      return Status();
    });
  });
}

// ------------------------------------------------------------------ permute, bias, element-wise

constexpr int kTile = 32;
constexpr int kTileRows = 8;

// [a][b] -> [b][a] through a shared-memory tile so that reads and writes are both coalesced.
// The grid's z dimension is unused; x runs over tiles of b, y over tiles of a (grid-strided).
template <class T, class I>
__global__ void transpose_2d(const T* __restrict__ src, T* __restrict__ dst, I a, I b) {
  __shared__ T tile[kTile][kTile + 1];
  const I tiles_b = (b + kTile - 1) / kTile;
  const I tiles_a = (a + kTile - 1) / kTile;
  for (I ta = static_cast<I>(blockIdx.y); ta < tiles_a; ta += static_cast<I>(gridDim.y)) {
    for (I tb = static_cast<I>(blockIdx.x); tb < tiles_b; tb += static_cast<I>(gridDim.x)) {
      const I a0 = ta * kTile, b0 = tb * kTile;
      for (int r = static_cast<int>(threadIdx.y); r < kTile; r += static_cast<int>(blockDim.y)) {
        for (int q = static_cast<int>(threadIdx.x); q < kTile; q += static_cast<int>(blockDim.x)) {
          const I ia = a0 + r, jb = b0 + q;
          if (ia < a && jb < b) tile[r][q] = src[ia * b + jb];
        }
      }
      __syncthreads();
      for (int r = static_cast<int>(threadIdx.y); r < kTile; r += static_cast<int>(blockDim.y)) {
        for (int q = static_cast<int>(threadIdx.x); q < kTile; q += static_cast<int>(blockDim.x)) {
          const I jb = b0 + r, ia = a0 + q;
          if (ia < a && jb < b) dst[jb * a + ia] = tile[q][r];
        }
      }
      __syncthreads();
    }
  }
}

template <class T, class I>
__global__ void permute_021_kernel(const T* __restrict__ src, T* __restrict__ dst, I a, I b, I c) {
  const I total = a * b * c;
  for (I idx = global_x<I>(); idx < total; idx += stride_x<I>()) {
    const I k = idx % c;
    const I q = idx / c;
    const I i = q % a;
    const I j = q / a;
    dst[idx] = src[(i * b + j) * c + k];
  }
}

template <class T, class I>
__global__ void bias_add_kernel(T* y, const T* __restrict__ bias, I total, I channels, I pixels,
                                bool cl) {
  for (I idx = global_x<I>(); idx < total; idx += stride_x<I>()) {
    const I ch = cl ? idx % channels : (idx / pixels) % channels;
    y[idx] = Elem<T>::store(Elem<T>::load(y[idx]) + Elem<T>::load(bias[ch]));
  }
}

// Sums the blockDim.x * blockDim.y values of `sh` over y for each x, pairwise in a fixed tree.
// Leaves the result in sh[0 * bx + x]. Works for any block shape.
template <class A>
__device__ inline void reduce_over_y(A* sh) {
  const unsigned bx = blockDim.x, by = blockDim.y, tx = threadIdx.x, ty = threadIdx.y;
  unsigned span = 1;
  while (span < by) span <<= 1;
  for (unsigned h = span >> 1; h > 0; h >>= 1) {
    if (ty < h && ty + h < by) sh[ty * bx + tx] += sh[(ty + h) * bx + tx];
    __syncthreads();
  }
}

// Contiguous: one block per channel (grid-strided), threads along pixels, a tree over threads.
template <class T, class I>
__global__ void bias_grad_contiguous(const T* __restrict__ dy, T* __restrict__ db, I n, I channels,
                                     I pixels) {
  using A = typename Elem<T>::acc;
  extern __shared__ unsigned char smem[];
  A* sh = reinterpret_cast<A*>(smem);
  for (I ch = static_cast<I>(blockIdx.x); ch < channels; ch += static_cast<I>(gridDim.x)) {
    A acc = A(0);
    for (I i = 0; i < n; ++i) {
      const T* row = dy + (i * channels + ch) * pixels;
      for (I p = static_cast<I>(threadIdx.x); p < pixels; p += static_cast<I>(blockDim.x)) {
        acc += Elem<T>::load(row[p]);
      }
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    const unsigned bt = blockDim.x;
    unsigned span = 1;
    while (span < bt) span <<= 1;
    for (unsigned h = span >> 1; h > 0; h >>= 1) {
      if (threadIdx.x < h && threadIdx.x + h < bt) sh[threadIdx.x] += sh[threadIdx.x + h];
      __syncthreads();
    }
    if (threadIdx.x == 0) db[ch] = Elem<T>::store(sh[0]);
    __syncthreads();
  }
}

// Channels-last: threads x along channels (coalesced), y along rows; a tree over y.
template <class T, class I>
__global__ void bias_grad_channels_last(const T* __restrict__ dy, T* __restrict__ db, I rows,
                                        I channels) {
  using A = typename Elem<T>::acc;
  extern __shared__ unsigned char smem[];
  A* sh = reinterpret_cast<A*>(smem);
  const I bx = static_cast<I>(blockDim.x);
  for (I c0 = static_cast<I>(blockIdx.x) * bx; c0 < channels;
       c0 += static_cast<I>(gridDim.x) * bx) {
    const I ch = c0 + static_cast<I>(threadIdx.x);
    A acc = A(0);
    if (ch < channels) {
      for (I r = static_cast<I>(threadIdx.y); r < rows; r += static_cast<I>(blockDim.y)) {
        acc += Elem<T>::load(dy[r * channels + ch]);
      }
    }
    sh[threadIdx.y * blockDim.x + threadIdx.x] = acc;
    __syncthreads();
    reduce_over_y(sh);
    if (threadIdx.y == 0 && ch < channels) db[ch] = Elem<T>::store(sh[threadIdx.x]);
    __syncthreads();
  }
}

template <class T, class I>
__global__ void accumulate_kernel(const T* __restrict__ src, typename Elem<T>::acc* acc, I count,
                                  bool first) {
  using A = typename Elem<T>::acc;
  for (I idx = global_x<I>(); idx < count; idx += stride_x<I>()) {
    acc[idx] = (first ? A(0) : acc[idx]) + Elem<T>::load(src[idx]);
  }
}

template <class T, class I>
__global__ void narrow_kernel(const typename Elem<T>::acc* __restrict__ acc, T* __restrict__ dst,
                              I count) {
  for (I idx = global_x<I>(); idx < count; idx += stride_x<I>())
    dst[idx] = Elem<T>::store(acc[idx]);
}

// One thread per element, consecutive threads on consecutive elements (coalesced for every
// sample's row), summing the samples in ascending order.
template <class T, class I>
__global__ void sum_partials_kernel(const T* __restrict__ partials, I batch, I count,
                                    T* __restrict__ w, typename Elem<T>::acc* __restrict__ acc,
                                    bool first) {
  using A = typename Elem<T>::acc;
  for (I idx = global_x<I>(); idx < count; idx += stride_x<I>()) {
    A total = A(0);
    if (!first) total = acc != nullptr ? acc[idx] : Elem<T>::load(w[idx]);
    for (I b = 0; b < batch; ++b) total += Elem<T>::load(partials[b * count + idx]);
    if (acc != nullptr) {
      acc[idx] = total;
    } else {
      w[idx] = Elem<T>::store(total);
    }
  }
}

// ------------------------------------------------------------------ reference convolution

template <class T, class I>
__global__ void ref_forward_kernel(ConvGeo<I> g, const T* __restrict__ x, const T* __restrict__ w,
                                   T* __restrict__ y, I total) {
  for (I idx = global_x<I>(); idx < total; idx += stride_x<I>())
    y[idx] = ref_forward_elem(g, x, w, idx);
}

template <class T, class I>
__global__ void ref_backward_data_kernel(ConvGeo<I> g, const T* __restrict__ y,
                                         const T* __restrict__ w, T* __restrict__ x, I total) {
  for (I idx = global_x<I>(); idx < total; idx += stride_x<I>()) {
    x[idx] = ref_backward_data_elem(g, y, w, idx);
  }
}

template <class T, class I>
__global__ void ref_backward_weight_kernel(ConvGeo<I> g, const T* __restrict__ x,
                                           const T* __restrict__ y, T* __restrict__ w, I total) {
  for (I idx = global_x<I>(); idx < total; idx += stride_x<I>()) {
    w[idx] = ref_backward_weight_elem(g, x, y, idx);
  }
}

}  // namespace

Status im2col(const ExecContext& ctx, const ConvShape& s, const void* x, void* col, int64_t n0,
              int64_t nb, const ops::ColStrides& cs) {
  return run_cols<true>(ctx, s, x, col, n0, nb, cs);
}

Status col2im(const ExecContext& ctx, const ConvShape& s, const void* col, void* x, int64_t n0,
              int64_t nb, const ops::ColStrides& cs) {
  return run_cols<false>(ctx, s, col, x, n0, nb, cs);
}

Status permute_021(const ExecContext& ctx, DataType t, const void* src, void* dst, int64_t a,
                   int64_t b, int64_t c) {
  const int64_t total = a * b * c;
  if (total == 0) return Status();
  return dispatch_dtype(t, [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    return dispatch_index(wide(total), [&](auto itag) {
      using I = typename decltype(itag)::type;
      const T* sp = static_cast<const T*>(src);
      T* dp = static_cast<T*>(dst);
      if (c == 1) {
        const int64_t tb = (b + kTile - 1) / kTile, ta = (a + kTile - 1) / kTile;
        const dim3 grid(static_cast<unsigned>(std::min<int64_t>(tb, 65535)),
                        static_cast<unsigned>(std::min<int64_t>(ta, 65535)), 1);
        transpose_2d<T, I><<<grid, dim3(kTile, kTileRows, 1), 0, stream_of(ctx)>>>(
            sp, dp, static_cast<I>(a), static_cast<I>(b));
      } else {
        permute_021_kernel<T, I><<<grid_1d(ctx, total, kBlock), kBlock, 0, stream_of(ctx)>>>(
            sp, dp, static_cast<I>(a), static_cast<I>(b), static_cast<I>(c));
      }
      GEMMCONV_CHECK_LAUNCH("permute_021 kernel");
      return Status();
    });
  });
}

Status bias_add(const ExecContext& ctx, DataType t, Layout layout, void* y, const void* bias,
                int64_t n, int64_t channels, int64_t pixels) {
  const int64_t total = n * channels * pixels;
  if (total == 0) return Status();
  return dispatch_dtype(t, [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    return dispatch_index(wide(total), [&](auto itag) {
      using I = typename decltype(itag)::type;
      bias_add_kernel<T, I><<<grid_1d(ctx, total, kBlock), kBlock, 0, stream_of(ctx)>>>(
          static_cast<T*>(y), static_cast<const T*>(bias), static_cast<I>(total),
          static_cast<I>(channels), static_cast<I>(pixels), layout == Layout::channels_last);
      GEMMCONV_CHECK_LAUNCH("bias_add kernel");
      return Status();
    });
  });
}

Status bias_grad(const ExecContext& ctx, DataType t, Layout layout, const void* dy, void* db,
                 int64_t n, int64_t channels, int64_t pixels) {
  if (channels == 0) return Status();
  const int64_t total = n * channels * pixels;
  return dispatch_dtype(t, [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    using A = typename Elem<T>::acc;
    return dispatch_index(wide(total), [&](auto itag) {
      using I = typename decltype(itag)::type;
      const T* g = static_cast<const T*>(dy);
      T* out = static_cast<T*>(db);
      if (layout == Layout::channels_last) {
        // Narrow x tiles when channels are few, so that more blocks share the work.
        const unsigned bx = channels < int64_t(32) * sms(ctx) ? 8u : 32u;
        const unsigned by = 1024u / bx > 128u ? 128u : 1024u / bx;
        const int64_t blocks = std::min<int64_t>((channels + bx - 1) / bx, int64_t(sms(ctx)) * 32);
        bias_grad_channels_last<T, I>
            <<<static_cast<unsigned>(blocks), dim3(bx, by, 1), sizeof(A) * bx * by,
               stream_of(ctx)>>>(g, out, static_cast<I>(n * pixels), static_cast<I>(channels));
      } else {
        const int64_t blocks = std::min<int64_t>(channels, int64_t(sms(ctx)) * 32);
        bias_grad_contiguous<T, I>
            <<<static_cast<unsigned>(blocks), kBlock, sizeof(A) * kBlock, stream_of(ctx)>>>(
                g, out, static_cast<I>(n), static_cast<I>(channels), static_cast<I>(pixels));
      }
      GEMMCONV_CHECK_LAUNCH("bias_grad kernel");
      return Status();
    });
  });
}

Status reference_conv(const ExecContext& ctx, const ConvShape& s, Direction regular,
                      const ConvTensors& t) {
  const int64_t total = regular == Direction::forward         ? s.y_elements()
                        : regular == Direction::backward_data ? s.x_elements()
                                                              : s.w_elements();
  if (total == 0) return Status();
  const bool w64 = s.index64 || wide(std::max({s.x_elements(), s.y_elements(), s.w_elements()}));
  return dispatch_dtype(s.dtype, [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    return dispatch_index(w64, [&](auto itag) {
      using I = typename decltype(itag)::type;
      const ConvGeo<I> g = ConvGeo<I>::make(s);
      const unsigned grid = grid_1d(ctx, total, kBlock);
      T* x = static_cast<T*>(t.x);
      T* w = static_cast<T*>(t.w);
      T* y = static_cast<T*>(t.y);
      const I n = static_cast<I>(total);
      if (regular == Direction::forward) {
        ref_forward_kernel<T, I><<<grid, kBlock, 0, stream_of(ctx)>>>(g, x, w, y, n);
      } else if (regular == Direction::backward_data) {
        ref_backward_data_kernel<T, I><<<grid, kBlock, 0, stream_of(ctx)>>>(g, y, w, x, n);
      } else {
        ref_backward_weight_kernel<T, I><<<grid, kBlock, 0, stream_of(ctx)>>>(g, x, y, w, n);
      }
      GEMMCONV_CHECK_LAUNCH("reference_conv kernel");
      return Status();
    });
  });
}

Status accumulate(const ExecContext& ctx, DataType t, const void* src, void* acc, int64_t count,
                  bool first) {
  if (count == 0) return Status();
  return dispatch_dtype(t, [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    using A = typename Elem<T>::acc;
    return dispatch_index(wide(count), [&](auto itag) {
      using I = typename decltype(itag)::type;
      accumulate_kernel<T, I><<<grid_1d(ctx, count, kBlock), kBlock, 0, stream_of(ctx)>>>(
          static_cast<const T*>(src), static_cast<A*>(acc), static_cast<I>(count), first);
      GEMMCONV_CHECK_LAUNCH("accumulate kernel");
      return Status();
    });
  });
}

Status narrow(const ExecContext& ctx, DataType t, const void* acc, void* dst, int64_t count) {
  if (count == 0) return Status();
  return dispatch_dtype(t, [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    using A = typename Elem<T>::acc;
    return dispatch_index(wide(count), [&](auto itag) {
      using I = typename decltype(itag)::type;
      narrow_kernel<T, I><<<grid_1d(ctx, count, kBlock), kBlock, 0, stream_of(ctx)>>>(
          static_cast<const A*>(acc), static_cast<T*>(dst), static_cast<I>(count));
      GEMMCONV_CHECK_LAUNCH("narrow kernel");
      return Status();
    });
  });
}

Status sum_partials(const ExecContext& ctx, DataType t, const void* partials, int64_t batch,
                    int64_t count, void* w, void* acc, bool first) {
  if (count == 0) return Status();
  return dispatch_dtype(t, [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    using A = typename Elem<T>::acc;
    return dispatch_index(wide(batch * count), [&](auto itag) {
      using I = typename decltype(itag)::type;
      sum_partials_kernel<T, I><<<grid_1d(ctx, count, kBlock), kBlock, 0, stream_of(ctx)>>>(
          static_cast<const T*>(partials), static_cast<I>(batch), static_cast<I>(count),
          static_cast<T*>(w), static_cast<A*>(acc), first);
      GEMMCONV_CHECK_LAUNCH("sum_partials kernel");
      return Status();
    });
  });
}

Status fill_zero(const ExecContext& ctx, void* dst, size_t bytes) {
  if (bytes == 0) return Status();
  GEMMCONV_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_of(ctx)));
  return Status();
}

}  // namespace gpu_ops
}  // namespace gemmconv
