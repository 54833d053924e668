// Single-source depthwise kernels: staged tiles for the contiguous layout, channel-parallel
// threads for channels-last, and a two-pass fixed-order weight-gradient reduction.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "gpu/compat.h"
#include "kernels/conv_geometry.h"
#include "kernels/dispatch.h"
#include "kernels/reference_conv.h"
#include "solvers/depthwise_direct/depthwise.h"

namespace gemmconv {
namespace depthwise {
namespace gpu {
namespace {

constexpr int kItems = 4;            // written elements per thread in a staged tile
constexpr int kTileThreads = 256;    // most threads of a staged-tile block
constexpr int kReduceThreads = 256;  // every reduction block; fixed so that sums are repeatable
constexpr size_t kStageBytes = 40 * 1024;
constexpr int64_t kMaxTileWidth = 128;

// Enough margin that a grid-stride index never overflows int32 when the extent fits.
bool wide(int64_t extent) { return needs_index64(extent + (int64_t(1) << 26)); }

cudaStream_t stream_of(const ExecContext& ctx) { return static_cast<cudaStream_t>(ctx.stream); }

int64_t sms(const ExecContext& ctx) { return std::max(1, ctx.caps->multiprocessors); }

size_t stage_limit(const ExecContext& ctx) {
  const size_t dev = ctx.caps->shared_memory_per_block;
  return dev == 0 ? kStageBytes : std::min(kStageBytes, dev);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class A>
__device__ inline A* shared_buffer() {
  extern __shared__ double gc_depthwise_smem[];
  return reinterpret_cast<A*>(gc_depthwise_smem);
}

template <class I>
__device__ inline I floor_div(I a, I b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

template <class I>
__device__ inline I tid_x() {
  return static_cast<I>(threadIdx.x);
}

// ------------------------------------------------------------------ contiguous: staged tiles

// A tile of the written tensor (x or y): one slice along dim 0, th rows along dim 1, tw columns
// along dim 2. The block stages the window of the read tensor that the tile needs, for one
// (sample, input channel) plane, in shared memory, then every thread computes up to kItems
// elements of the tile from it.
template <class I>
struct Stage {
  I th, tw;
  I tiles1, tiles2;
  I span[3];
};

// kFwd: y from x (window of x, one per block, reused for every multiplier channel); otherwise
// x from dy (window of dy for each multiplier channel, summed in registers). kR > 0: a
// 1 x kR x kR filter, and kS > 0: stride kS along dims 1 and 2, known at compile time.
template <class T, class I, bool kFwd, int kR, int kS>
__global__ void staged_contiguous(ConvGeo<I> g, Stage<I> st, const T* __restrict__ src,
                                  const T* __restrict__ w, T* __restrict__ dst, I tiles) {
  using A = typename Elem<T>::acc;
  A* win = shared_buffer<A>();
  const I sp1 = st.span[1], sp2 = st.span[2];
  const I win_rows = st.span[0] * sp1;
  A* wsh = win + win_rows * sp2;
  // Sizes of the written (z) and read (r) tensors, as scalars: taking the address of a kernel
  // parameter would copy it to local memory.
  const I zd[3] = {kFwd ? g.out[0] : g.in[0], kFwd ? g.out[1] : g.in[1], kFwd ? g.out[2] : g.in[2]};
  const I rd[3] = {kFwd ? g.in[0] : g.out[0], kFwd ? g.in[1] : g.out[1], kFwd ? g.in[2] : g.out[2]};
  const I r_pix = kFwd ? g.in_pix : g.out_pix;
  const I z_pix = kFwd ? g.out_pix : g.in_pix;
  const I m = g.kg, F = g.filt_pix;
  const I fl0 = kR > 0 ? 1 : g.filt[0], fl1 = kR > 0 ? kR : g.filt[1],
          fl2 = kR > 0 ? kR : g.filt[2];
  const I s1 = kS > 0 ? kS : g.stride[1], s2 = kS > 0 ? kS : g.stride[2];
  const I tid = tid_x<I>(), nt = static_cast<I>(blockDim.x);
  // Window rows are copied by lanes of `cols` threads, so that no element needs a division.
  const I cols = sp2 < nt ? sp2 : nt;
  const I lanes = nt / cols;
  const I lane = tid / cols, col = tid - lane * cols;
  // The tile positions (row ia, column ib) of this thread's elements; ia < 0: none.
  I ia[kItems], ib[kItems];
#pragma unroll
  for (int v = 0; v < kItems; ++v) {
    const I item = tid + static_cast<I>(v) * nt;
    ia[v] = item < st.th * st.tw ? item / st.tw : I(-1);
    ib[v] = item - ia[v] * st.tw;
  }
  for (I tile = static_cast<I>(blockIdx.x); tile < tiles; tile += static_cast<I>(gridDim.x)) {
    I q = tile;
    const I c2 = q % st.tiles2;
    q /= st.tiles2;
    const I c1 = q % st.tiles1;
    q /= st.tiles1;
    const I z0 = q % zd[0];
    q /= zd[0];
    const I ch = q % g.c;
    const I i = q / g.c;
    const I zb[3] = {z0, c1 * st.th, c2 * st.tw};
    I lo[3];
    for (int d = 0; d < 3; ++d) {
      lo[d] = kFwd ? zb[d] * g.stride[d] - g.pad[d]
                   : floor_div<I>(zb[d] + g.pad[d] - (g.filt[d] - 1) * g.dil[d], g.stride[d]);
    }
    A acc[kItems];
#pragma unroll
    for (int v = 0; v < kItems; ++v) acc[v] = A(0);
    for (I j = 0; j < m; ++j) {
      const I kk = ch * m + j;
      __syncthreads();  // the previous window and weights are no longer read
      if (!kFwd || j == 0) {
        const T* rp = src + (kFwd ? i * g.c + ch : i * g.k + kk) * r_pix;
        for (I r = lane; lane < lanes && r < win_rows; r += lanes) {
          const I a0 = r / sp1, a1 = r - a0 * sp1;
          const I r0 = lo[0] + a0, r1 = lo[1] + a1;
          const bool row_ok = r0 >= 0 && r0 < rd[0] && r1 >= 0 && r1 < rd[1];
          const I roff = row_ok ? (r0 * rd[1] + r1) * rd[2] : I(0);
          A* wrow = win + r * sp2;
          for (I a2 = col; a2 < sp2; a2 += cols) {
            const I r2 = lo[2] + a2;
            wrow[a2] = row_ok && r2 >= 0 && r2 < rd[2] ? Elem<T>::load(rp[roff + r2]) : A(0);
          }
        }
      }
      for (I f = tid; f < F; f += nt) wsh[f] = Elem<T>::load(w[kk * F + f]);
      __syncthreads();
#pragma unroll
      for (int v = 0; v < kItems; ++v) {
        const I a = ia[v], b = ib[v];
        const I z1 = zb[1] + a, z2 = zb[2] + b;
        if (a < 0 || z1 >= zd[1] || z2 >= zd[2]) continue;
        A sum = A(0);
        I f = 0;
        if (kFwd) {
          for (I t0 = 0; t0 < fl0; ++t0) {
            const A* w0 = win + t0 * g.dil[0] * sp1 * sp2;
            for (I t1 = 0; t1 < fl1; ++t1) {
              const A* w1 = w0 + (a * s1 + t1 * g.dil[1]) * sp2 + b * s2;
              for (I t2 = 0; t2 < fl2; ++t2, ++f) sum += w1[t2 * g.dil[2]] * wsh[f];
            }
          }
          dst[(i * g.k + kk) * z_pix + (z0 * zd[1] + z1) * zd[2] + z2] = Elem<T>::store(sum);
          continue;
        }
        if (kR > 0 && kS > 0) {
          constexpr int ks = kS > 0 ? kS : 1;
          // The window is zero outside dy, so a tap only has to hit a multiple of the stride.
          const I o0 = tap_output<0>(z0, I(0), g.pad[0], g.dil[0], g.stride[0], g.out[0]);
          if (o0 >= 0) {
            const A* w0 = win + (o0 - lo[0]) * sp1 * sp2;
            for (I t1 = 0; t1 < fl1; ++t1) {
              const I n1 = z1 + g.pad[1] - t1 * g.dil[1];
              if (ks > 1 && n1 % ks != 0) continue;
              const I row = (n1 / ks - lo[1]) * sp2 - lo[2];
              for (I t2 = 0; t2 < fl2; ++t2) {
                const I n2 = z2 + g.pad[2] - t2 * g.dil[2];
                if (ks > 1 && n2 % ks != 0) continue;
                sum += w0[row + n2 / ks] * wsh[t1 * fl2 + t2];
              }
            }
          }
        } else {
          for (I t0 = 0; t0 < fl0; ++t0) {
            const I o0 = tap_output<kS>(z0, t0, g.pad[0], g.dil[0], g.stride[0], g.out[0]);
            if (o0 < 0) {
              f += fl1 * fl2;
              continue;
            }
            for (I t1 = 0; t1 < fl1; ++t1) {
              const I o1 = tap_output<kS>(z1, t1, g.pad[1], g.dil[1], g.stride[1], g.out[1]);
              if (o1 < 0) {
                f += fl2;
                continue;
              }
              const A* row = win + ((o0 - lo[0]) * sp1 + (o1 - lo[1])) * sp2;
              for (I t2 = 0; t2 < fl2; ++t2, ++f) {
                const I o2 = tap_output<kS>(z2, t2, g.pad[2], g.dil[2], g.stride[2], g.out[2]);
                if (o2 >= 0) sum += row[o2 - lo[2]] * wsh[f];
              }
            }
          }
        }
        acc[v] += sum;
      }
    }
    if (!kFwd) {
#pragma unroll
      for (int v = 0; v < kItems; ++v) {
        const I a = ia[v], b = ib[v];
        const I z1 = zb[1] + a, z2 = zb[2] + b;
        if (a < 0 || z1 >= zd[1] || z2 >= zd[2]) continue;
        dst[(i * g.c + ch) * z_pix + (z0 * zd[1] + z1) * zd[2] + z2] = Elem<T>::store(acc[v]);
      }
    }
  }
}

struct StagePlan {
  bool ok = false;
  int64_t th = 0, tw = 0, tiles = 0, tiles1 = 0, tiles2 = 0;
  int64_t span[3] = {0, 0, 0};
  int threads = 0;
  size_t smem = 0;
};

// Tiles as large as kItems * kTileThreads elements, balanced along each dimension, shrunk until
// the window and the weights fit in shared memory; not ok when even one element does not fit.
StagePlan plan_stage(const ConvShape& s, bool fwd, size_t limit) {
  StagePlan p;
  const Dims& z = fwd ? s.out : s.in;
  const int64_t es = s.dtype == DataType::f64 ? 8 : 4;
  int64_t tw = z[2] <= kMaxTileWidth ? z[2] : ceil_div(z[2], ceil_div(z[2], kMaxTileWidth));
  int64_t th = std::max<int64_t>(1, std::min<int64_t>(z[1], kItems * kTileThreads / tw));
  th = ceil_div(z[1], ceil_div(z[1], th));
  for (;;) {
    const int64_t t[3] = {1, th, tw};
    int64_t len = 1;
    for (int d = 0; d < 3; ++d) {
      const int64_t reach = (t[d] - 1) * (fwd ? s.stride[d] : 1) + (s.filt[d] - 1) * s.dilation[d];
      p.span[d] = fwd ? reach + 1 : ceil_div(reach, s.stride[d]) + 1;
      len = len > (int64_t(1) << 40) / std::max<int64_t>(p.span[d], 1) ? (int64_t(1) << 40)
                                                                       : len * p.span[d];
    }
    const int64_t bytes = (len + s.filt_pixels()) * es;
    if (bytes <= static_cast<int64_t>(limit)) {
      p.smem = static_cast<size_t>(bytes);
      break;
    }
    if (th > 1) {
      th = (th + 1) / 2;
    } else if (tw > 1) {
      tw = (tw + 1) / 2;
    } else {
      return p;
    }
  }
  p.th = th;
  p.tw = tw;
  p.tiles1 = ceil_div(z[1], th);
  p.tiles2 = ceil_div(z[2], tw);
  p.tiles = s.n * s.c * z[0] * p.tiles1 * p.tiles2;
  const int64_t per_thread = ceil_div(th * tw, kItems);
  p.threads = static_cast<int>(
      std::min<int64_t>(kTileThreads, std::max<int64_t>(64, ceil_div(per_thread, 64) * 64)));
  p.ok = true;
  return p;
}

// ------------------------------------------------------------------ any layout: one thread each

template <class T, class I>
__global__ void direct_forward(ConvGeo<I> g, const T* __restrict__ x, const T* __restrict__ w,
                               T* __restrict__ y, I total) {
  for (I idx = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + tid_x<I>(); idx < total;
       idx += static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x)) {
    y[idx] = ref_forward_elem(g, x, w, idx);
  }
}

template <class T, class I>
__global__ void direct_backward_data(ConvGeo<I> g, const T* __restrict__ y, const T* __restrict__ w,
                                     T* __restrict__ x, I total) {
  for (I idx = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + tid_x<I>(); idx < total;
       idx += static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x)) {
    x[idx] = ref_backward_data_elem(g, y, w, idx);
  }
}

// ------------------------------------------------------------------ channels-last

// Threads x along channels of the written tensor (coalesced), y along its pixels. The block's
// weights sit in shared memory with an odd row stride `fp` against bank conflicts.
template <class T, class I, bool kFwd, int kR, int kS>
__global__ void channels_last_kernel(ConvGeo<I> g, const T* __restrict__ src,
                                     const T* __restrict__ w, T* __restrict__ dst, I fp) {
  using A = typename Elem<T>::acc;
  A* wsh = shared_buffer<A>();
  const I bx = static_cast<I>(blockDim.x), by = static_cast<I>(blockDim.y);
  const I tx = tid_x<I>(), ty = static_cast<I>(threadIdx.y);
  const I m = g.kg, F = g.filt_pix;
  // kR > 0: a 1 x kR x kR filter known at compile time, so that the tap loops unroll.
  const I fl0 = kR > 0 ? 1 : g.filt[0], fl1 = kR > 0 ? kR : g.filt[1],
          fl2 = kR > 0 ? kR : g.filt[2];
  const I s1 = kS > 0 ? kS : g.stride[1], s2 = kS > 0 ? kS : g.stride[2];
  const I zc = kFwd ? g.k : g.c;  // channels of the written tensor
  const I c0 = static_cast<I>(blockIdx.x) * bx;
  // Weight rows of the block: output channels [c0, c0 + bx) forward, [c0 * m, (c0 + bx) * m)
  // backward, a contiguous stretch of w.
  const I wrows = kFwd ? bx : bx * m;
  const I wrow0 = kFwd ? c0 : c0 * m;
  for (I e = ty * bx + tx; e < wrows * F; e += bx * by) {
    const I r = e / F, f = e - r * F;
    wsh[r * fp + f] = wrow0 + r < g.k ? Elem<T>::load(w[wrow0 * F + e]) : A(0);
  }
  __syncthreads();
  const I ch = c0 + tx;
  if (ch >= zc) return;
  const I zd[3] = {kFwd ? g.out[0] : g.in[0], kFwd ? g.out[1] : g.in[1], kFwd ? g.out[2] : g.in[2]};
  const I z_pix = kFwd ? g.out_pix : g.in_pix;
  const I rows = g.n * z_pix;
  for (I r = static_cast<I>(blockIdx.y) * by + ty; r < rows; r += static_cast<I>(gridDim.y) * by) {
    const I i = r / z_pix;
    const I p = r - i * z_pix;
    const I z2 = p % zd[2];
    const I z1 = (p / zd[2]) % zd[1];
    const I z0 = p / (zd[2] * zd[1]);
    A acc = A(0);
    I f = 0;
    if (kFwd) {
      const I xc = ch / m;
      const A* wr = wsh + tx * fp;
      const T* xs = src + i * g.in_pix * g.c + xc;
      for (I t0 = 0; t0 < fl0; ++t0) {
        const I i0 = tap_input(z0, t0, g.pad[0], g.dil[0], g.stride[0]);
        const bool ok0 = i0 >= 0 && i0 < g.in[0];
        for (I t1 = 0; t1 < fl1; ++t1) {
          const I i1 = tap_input(z1, t1, g.pad[1], g.dil[1], s1);
          const bool ok1 = ok0 && i1 >= 0 && i1 < g.in[1];
          for (I t2 = 0; t2 < fl2; ++t2, ++f) {
            const I i2 = tap_input(z2, t2, g.pad[2], g.dil[2], s2);
            if (!ok1 || i2 < 0 || i2 >= g.in[2]) {
              acc += A(0) * wr[f];  // a padded tap: keeps a NaN weight visible, as in PyTorch
              continue;
            }
            acc += Elem<T>::load(xs[((i0 * g.in[1] + i1) * g.in[2] + i2) * g.c]) * wr[f];
          }
        }
      }
    } else {
      const T* ys = src + i * g.out_pix * g.k + ch * m;
      const A* wr = wsh + tx * m * fp;
      for (I t0 = 0; t0 < fl0; ++t0) {
        const I o0 = tap_output<kS>(z0, t0, g.pad[0], g.dil[0], g.stride[0], g.out[0]);
        if (o0 < 0) {
          f += fl1 * fl2;
          continue;
        }
        for (I t1 = 0; t1 < fl1; ++t1) {
          const I o1 = tap_output<kS>(z1, t1, g.pad[1], g.dil[1], g.stride[1], g.out[1]);
          if (o1 < 0) {
            f += fl2;
            continue;
          }
          for (I t2 = 0; t2 < fl2; ++t2, ++f) {
            const I o2 = tap_output<kS>(z2, t2, g.pad[2], g.dil[2], g.stride[2], g.out[2]);
            if (o2 < 0) continue;
            const T* yp = ys + ((o0 * g.out[1] + o1) * g.out[2] + o2) * g.k;
            for (I j = 0; j < m; ++j) acc += Elem<T>::load(yp[j]) * wr[j * fp + f];
          }
        }
      }
    }
    dst[r * zc + ch] = Elem<T>::store(acc);
  }
}

// ------------------------------------------------------------------ weight gradient

// Sums red[0 .. kReduceThreads) pairwise in a fixed tree over the lanes that share tx (stride
// bx): leaves each column's total in red[tx]. Called by every thread of the block.
template <class A>
__device__ inline A tree_sum(A* red, unsigned bx, unsigned lanes, unsigned tx, unsigned ty) {
  for (unsigned h = lanes >> 1; h > 0; h >>= 1) {
    if (ty < h) red[ty * bx + tx] += red[(ty + h) * bx + tx];
    __syncthreads();
  }
  const A v = red[tx];
  __syncthreads();
  return v;
}

// Writes the block's total of tap f of output channel kk: into w when there is one split,
// else into that split's slice of the partial sums.
template <class T, class A, class I>
__device__ inline void put_weight(T* w, A* partial, I split, I splits, I kF, I idx, A v) {
  if (splits == 1) {
    w[idx] = Elem<T>::store(v);
  } else {
    partial[split * kF + idx] = v;
  }
}

// Advances the position (i, o0, o1, o2) of the output pixels by `step` pixels in row-major
// order; divides only on a carry.
template <class I>
__device__ inline void advance(const ConvGeo<I>& g, I step, I* i, I* o0, I* o1, I* o2) {
  *o2 += step;
  if (*o2 < g.out[2]) return;
  I c = *o2 / g.out[2];
  *o2 -= c * g.out[2];
  *o1 += c;
  if (*o1 < g.out[1]) return;
  c = *o1 / g.out[1];
  *o1 -= c * g.out[1];
  *o0 += c;
  if (*o0 < g.out[0]) return;
  c = *o0 / g.out[0];
  *o0 -= c * g.out[0];
  *i += c;
}

// Position of output pixel number r (over samples and pixels, row-major).
template <class I>
__device__ inline void locate(const ConvGeo<I>& g, I r, I* i, I* o0, I* o1, I* o2) {
  *i = r / g.out_pix;
  const I p = r - *i * g.out_pix;
  *o2 = p % g.out[2];
  *o1 = (p / g.out[2]) % g.out[1];
  *o0 = p / (g.out[2] * g.out[1]);
}

// Contiguous: one block per (output channel, split), threads over the split's output elements
// (rows of the (sample, o0, o1) sequence times out[2]); taps in chunks of TC kept in registers.
template <class T, class I, int TC>
__global__ void weight_grad_contiguous(ConvGeo<I> g, const T* __restrict__ x,
                                       const T* __restrict__ y, T* __restrict__ w,
                                       typename Elem<T>::acc* __restrict__ partial, I splits) {
  using A = typename Elem<T>::acc;
  __shared__ A red[kReduceThreads];
  __shared__ I toff[TC][3];
  const I m = g.kg, F = g.filt_pix, kF = g.k * g.filt_pix;
  const I tid = tid_x<I>();
  const I plane_rows = g.out[0] * g.out[1];
  const int64_t rows = static_cast<int64_t>(g.n) * plane_rows;
  const I units = g.k * splits;
  for (I u = static_cast<I>(blockIdx.x); u < units; u += static_cast<I>(gridDim.x)) {
    const I kk = u / splits, sp = u - kk * splits, ch = kk / m;
    const I rb = static_cast<I>(rows * sp / splits);
    const I re = static_cast<I>(rows * (sp + 1) / splits);
    const I eb = rb * g.out[2], ee = re * g.out[2];
    for (I tc0 = 0; tc0 < F; tc0 += TC) {
      if (tid < TC && tc0 + tid < F) {
        const I f = tc0 + tid;
        const I t2 = f % g.filt[2], t1 = (f / g.filt[2]) % g.filt[1],
                t0 = f / (g.filt[2] * g.filt[1]);
        toff[tid][0] = t0 * g.dil[0] - g.pad[0];
        toff[tid][1] = t1 * g.dil[1] - g.pad[1];
        toff[tid][2] = t2 * g.dil[2] - g.pad[2];
      }
      __syncthreads();
      A acc[TC];
#pragma unroll
      for (int q = 0; q < TC; ++q) acc[q] = A(0);
      I i = 0, o0 = 0, o1 = 0, o2 = 0;
      if (eb + tid < ee) locate(g, eb + tid, &i, &o0, &o1, &o2);
      for (I e = eb + tid; e < ee; e += kReduceThreads) {
        const I pix = (o0 * g.out[1] + o1) * g.out[2] + o2;
        const A dy = Elem<T>::load(y[(i * g.k + kk) * g.out_pix + pix]);
        const T* xp = x + (i * g.c + ch) * g.in_pix;
        const I b0 = o0 * g.stride[0], b1 = o1 * g.stride[1], b2 = o2 * g.stride[2];
#pragma unroll
        for (int q = 0; q < TC; ++q) {
          if (tc0 + q < F) {
            const I i0 = b0 + toff[q][0], i1 = b1 + toff[q][1], i2 = b2 + toff[q][2];
            if (i0 >= 0 && i0 < g.in[0] && i1 >= 0 && i1 < g.in[1] && i2 >= 0 && i2 < g.in[2]) {
              acc[q] += Elem<T>::load(xp[(i0 * g.in[1] + i1) * g.in[2] + i2]) * dy;
            }
          }
        }
        advance(g, static_cast<I>(kReduceThreads), &i, &o0, &o1, &o2);
      }
#pragma unroll
      for (int q = 0; q < TC; ++q) {
        if (tc0 + q < F) {
          red[tid] = acc[q];
          __syncthreads();
          const A v = tree_sum(red, 1u, static_cast<unsigned>(kReduceThreads), 0u,
                               static_cast<unsigned>(tid));
          if (tid == 0) put_weight<T, A, I>(w, partial, sp, splits, kF, kk * F + tc0 + q, v);
        }
      }
    }
  }
}

// Channels-last: blocks of bx output channels (threads x, coalesced) by kReduceThreads / bx
// pixel lanes (threads y) per split of the n * out_pix pixels; a fixed tree over y.
template <class T, class I, int TC>
__global__ void weight_grad_channels_last(ConvGeo<I> g, const T* __restrict__ x,
                                          const T* __restrict__ y, T* __restrict__ w,
                                          typename Elem<T>::acc* __restrict__ partial, I splits) {
  using A = typename Elem<T>::acc;
  __shared__ A red[kReduceThreads];
  __shared__ I toff[TC][3];
  const unsigned ubx = blockDim.x, uby = blockDim.y;
  const I bx = static_cast<I>(ubx), by = static_cast<I>(uby);
  const I tx = tid_x<I>(), ty = static_cast<I>(threadIdx.y), tid = ty * bx + tx;
  const I m = g.kg, F = g.filt_pix, kF = g.k * g.filt_pix;
  const int64_t pixels = static_cast<int64_t>(g.n) * g.out_pix;
  const I tiles = (g.k + bx - 1) / bx;
  const I units = tiles * splits;
  for (I u = static_cast<I>(blockIdx.x); u < units; u += static_cast<I>(gridDim.x)) {
    const I tile = u / splits, sp = u - tile * splits;
    const I kk = tile * bx + tx;
    const bool active = kk < g.k;
    const I ch = active ? kk / m : 0;
    const I rb = static_cast<I>(pixels * sp / splits);
    const I re = static_cast<I>(pixels * (sp + 1) / splits);
    for (I tc0 = 0; tc0 < F; tc0 += TC) {
      if (tid < TC && tc0 + tid < F) {
        const I f = tc0 + tid;
        const I t2 = f % g.filt[2], t1 = (f / g.filt[2]) % g.filt[1],
                t0 = f / (g.filt[2] * g.filt[1]);
        toff[tid][0] = t0 * g.dil[0] - g.pad[0];
        toff[tid][1] = t1 * g.dil[1] - g.pad[1];
        toff[tid][2] = t2 * g.dil[2] - g.pad[2];
      }
      __syncthreads();
      A acc[TC];
#pragma unroll
      for (int q = 0; q < TC; ++q) acc[q] = A(0);
      if (active) {
        I i = 0, o0 = 0, o1 = 0, o2 = 0;
        if (rb + ty < re) locate(g, rb + ty, &i, &o0, &o1, &o2);
        for (I r = rb + ty; r < re; r += by) {
          const A dy = Elem<T>::load(y[r * g.k + kk]);
          const T* xp = x + i * g.in_pix * g.c + ch;
          const I b0 = o0 * g.stride[0], b1 = o1 * g.stride[1], b2 = o2 * g.stride[2];
#pragma unroll
          for (int q = 0; q < TC; ++q) {
            if (tc0 + q < F) {
              const I i0 = b0 + toff[q][0], i1 = b1 + toff[q][1], i2 = b2 + toff[q][2];
              if (i0 >= 0 && i0 < g.in[0] && i1 >= 0 && i1 < g.in[1] && i2 >= 0 && i2 < g.in[2]) {
                acc[q] += Elem<T>::load(xp[((i0 * g.in[1] + i1) * g.in[2] + i2) * g.c]) * dy;
              }
            }
          }
          advance(g, by, &i, &o0, &o1, &o2);
        }
      }
#pragma unroll
      for (int q = 0; q < TC; ++q) {
        if (tc0 + q < F) {
          red[tid] = acc[q];
          __syncthreads();
          const A v = tree_sum(red, ubx, uby, static_cast<unsigned>(tx), static_cast<unsigned>(ty));
          if (ty == 0 && active)
            put_weight<T, A, I>(w, partial, sp, splits, kF, kk * F + tc0 + q, v);
        }
      }
    }
  }
}

// w[idx] = the sum over splits of the partial sums, in split order.
template <class T, class I>
__global__ void weight_grad_finish(const typename Elem<T>::acc* __restrict__ partial,
                                   T* __restrict__ w, I kF, I splits) {
  using A = typename Elem<T>::acc;
  for (I idx = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + tid_x<I>(); idx < kF;
       idx += static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x)) {
    A acc = A(0);
    for (I sp = 0; sp < splits; ++sp) acc += partial[sp * kF + idx];
    w[idx] = Elem<T>::store(acc);
  }
}

// ------------------------------------------------------------------ launchers

unsigned grid_for(const ExecContext& ctx, int64_t units, int64_t per_sm) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(units, sms(ctx) * per_sm)));
}

template <class T, class I, bool kFwd, int kR, int kS>
void launch_staged(const ExecContext& ctx, const ConvGeo<I>& g, const StagePlan& p, const T* src,
                   const T* w, T* dst) {
  Stage<I> st;
  st.th = static_cast<I>(p.th);
  st.tw = static_cast<I>(p.tw);
  st.tiles1 = static_cast<I>(p.tiles1);
  st.tiles2 = static_cast<I>(p.tiles2);
  for (int d = 0; d < 3; ++d) st.span[d] = static_cast<I>(p.span[d]);
  const unsigned grid = grid_for(ctx, p.tiles, 2048 / p.threads * 4);
  staged_contiguous<T, I, kFwd, kR, kS>
      <<<grid, p.threads, p.smem, stream_of(ctx)>>>(g, st, src, w, dst, static_cast<I>(p.tiles));
}

template <class T, class I, bool kFwd, int kR, int kS>
void launch_channels_last(const ExecContext& ctx, const ConvGeo<I>& g, dim3 grid, dim3 block,
                          size_t smem, const T* src, const T* w, T* dst, int64_t fp) {
  channels_last_kernel<T, I, kFwd, kR, kS>
      <<<grid, block, smem, stream_of(ctx)>>>(g, src, w, dst, static_cast<I>(fp));
}

// Calls f(kFwd, kR, kS tags): the 3x3 filters of stride 1 or 2 get their own instantiations.
template <class F>
void with_variant(const ConvShape& s, bool fwd, F&& f) {
  const bool k3 = s.filt[0] == 1 && s.filt[1] == 3 && s.filt[2] == 3 &&
                  s.stride[1] == s.stride[2] && (s.stride[1] == 1 || s.stride[1] == 2);
  const int v = k3 ? static_cast<int>(s.stride[1]) : 0;
  using std::integral_constant;
  if (fwd) {
    if (v == 1)
      return f(std::true_type{}, integral_constant<int, 3>{}, integral_constant<int, 1>{});
    if (v == 2)
      return f(std::true_type{}, integral_constant<int, 3>{}, integral_constant<int, 2>{});
    return f(std::true_type{}, integral_constant<int, 0>{}, integral_constant<int, 0>{});
  }
  if (v == 1) return f(std::false_type{}, integral_constant<int, 3>{}, integral_constant<int, 1>{});
  if (v == 2) return f(std::false_type{}, integral_constant<int, 3>{}, integral_constant<int, 2>{});
  return f(std::false_type{}, integral_constant<int, 0>{}, integral_constant<int, 0>{});
}

template <class T, class I>
Status forward_or_data(const ExecContext& ctx, const ConvShape& s, bool fwd, const T* src,
                       const T* w, T* dst) {
  const ConvGeo<I> g = ConvGeo<I>::make(s);
  const size_t es = sizeof(typename Elem<T>::acc);
  const size_t limit = stage_limit(ctx);
  if (s.layout == Layout::contiguous) {
    const StagePlan p = plan_stage(s, fwd, limit);
    if (p.ok) {
      with_variant(s, fwd, [&](auto kf, auto kr, auto ks) {
        launch_staged<T, I, decltype(kf)::value, decltype(kr)::value, decltype(ks)::value>(
            ctx, g, p, src, w, dst);
      });
      GEMMCONV_CHECK_LAUNCH("depthwise staged kernel");
      return Status();
    }
  } else {
    const int64_t zc = fwd ? s.k : s.c;
    const int bx = channel_tile(zc);
    const int by = kTileThreads / bx;
    const int64_t F = s.filt_pixels();
    const int64_t fp = F % 2 == 0 ? F + 1 : F;
    const int64_t wrows = fwd ? bx : bx * s.kg();
    const size_t smem = static_cast<size_t>(wrows * fp) * es;
    if (smem <= limit) {
      const int64_t gx = ceil_div(zc, bx);
      const int64_t rows = s.n * (fwd ? s.out_pixels() : s.in_pixels());
      const int64_t gy = std::max<int64_t>(
          1, std::min<int64_t>({ceil_div(rows, by * 4), ceil_div(sms(ctx) * 32, gx), 65535}));
      const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), 1);
      const dim3 block(static_cast<unsigned>(bx), static_cast<unsigned>(by), 1);
      with_variant(s, fwd, [&](auto kf, auto kr, auto ks) {
        launch_channels_last<T, I, decltype(kf)::value, decltype(kr)::value, decltype(ks)::value>(
            ctx, g, grid, block, smem, src, w, dst, fp);
      });
      GEMMCONV_CHECK_LAUNCH("depthwise channels-last kernel");
      return Status();
    }
  }
  // Windows or weights beyond shared memory (huge dilations or filters): one thread per element.
  const int64_t total = fwd ? s.y_elements() : s.x_elements();
  const unsigned grid = grid_for(ctx, ceil_div(total, kTileThreads), 32);
  if (fwd) {
    direct_forward<T, I>
        <<<grid, kTileThreads, 0, stream_of(ctx)>>>(g, src, w, dst, static_cast<I>(total));
  } else {
    direct_backward_data<T, I>
        <<<grid, kTileThreads, 0, stream_of(ctx)>>>(g, src, w, dst, static_cast<I>(total));
  }
  GEMMCONV_CHECK_LAUNCH("depthwise direct kernel");
  return Status();
}

template <class T, class I, int TC>
void launch_weight_grad(const ExecContext& ctx, const ConvShape& s, const ConvGeo<I>& g, const T* x,
                        const T* y, T* w, typename Elem<T>::acc* partial, int64_t splits) {
  if (s.layout == Layout::channels_last) {
    const int bx = channel_tile(s.k);
    const int64_t units = ceil_div(s.k, bx) * splits;
    const dim3 block(static_cast<unsigned>(bx), static_cast<unsigned>(kReduceThreads / bx), 1);
    weight_grad_channels_last<T, I, TC><<<grid_for(ctx, units, 8), block, 0, stream_of(ctx)>>>(
        g, x, y, w, partial, static_cast<I>(splits));
  } else {
    const int64_t units = s.k * splits;
    weight_grad_contiguous<T, I, TC>
        <<<grid_for(ctx, units, 8), kReduceThreads, 0, stream_of(ctx)>>>(g, x, y, w, partial,
                                                                         static_cast<I>(splits));
  }
}

template <class T, class I>
Status weight_grad(const ExecContext& ctx, const ConvShape& s, const T* x, const T* y, T* w,
                   const WeightSplit& split) {
  using A = typename Elem<T>::acc;
  const ConvGeo<I> g = ConvGeo<I>::make(s);
  A* partial = split.splits > 1 ? static_cast<A*>(ctx.workspace) : nullptr;
  // One pass over the reduction for 3x3 and smaller filters, and for 5x5 and 3x3x3.
  if (s.filt_pixels() <= 9) {
    launch_weight_grad<T, I, 9>(ctx, s, g, x, y, w, partial, split.splits);
  } else {
    launch_weight_grad<T, I, 27>(ctx, s, g, x, y, w, partial, split.splits);
  }
  GEMMCONV_CHECK_LAUNCH("depthwise weight-gradient kernel");
  if (split.splits > 1) {
    const int64_t kF = s.k * s.filt_pixels();
    weight_grad_finish<T, I>
        <<<grid_for(ctx, ceil_div(kF, kTileThreads), 32), kTileThreads, 0, stream_of(ctx)>>>(
            partial, w, static_cast<I>(kF), static_cast<I>(split.splits));
    GEMMCONV_CHECK_LAUNCH("depthwise weight-gradient finish kernel");
  }
  return Status();
}

}  // namespace

Status run(const ConvShape& s, Direction d, const ConvTensors& t, const ExecContext& ctx,
           const WeightSplit& split) {
  const int64_t biggest = std::max(
      {s.x_elements(), s.y_elements(), s.w_elements() * std::max<int64_t>(1, split.splits)});
  const bool w64 = s.index64 || wide(biggest);
  return dispatch_dtype(s.dtype, [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    return dispatch_index(w64, [&](auto itag) {
      using I = typename decltype(itag)::type;
      T* x = static_cast<T*>(t.x);
      T* w = static_cast<T*>(t.w);
      T* y = static_cast<T*>(t.y);
      if (d == Direction::forward) return forward_or_data<T, I>(ctx, s, true, x, w, y);
      if (d == Direction::backward_data) return forward_or_data<T, I>(ctx, s, false, y, w, x);
      return weight_grad<T, I>(ctx, s, x, y, w, split);
    });
  });
}

}  // namespace gpu
}  // namespace depthwise
}  // namespace gemmconv
