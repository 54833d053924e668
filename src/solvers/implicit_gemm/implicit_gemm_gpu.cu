// Implicit-GEMM convolution kernel: im2col tiles gathered on the fly into shared memory, SIMT
// register micro-tiles, fp32 accumulation, no column buffer.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "gpu/compat.h"
#include "kernels/dispatch.h"
#include "solvers/gemm_map.h"
#include "solvers/implicit_gemm/implicit_gemm.h"

namespace gemmconv {
namespace implicit_gemm {
namespace {

// AMD's compiler hoists every shared-memory read of a fully unrolled step and then spills.
#if defined(__HIP_DEVICE_COMPILE__)
#define IG_UNROLL_K _Pragma("unroll 2")
#else
#define IG_UNROLL_K _Pragma("unroll")
#endif

constexpr int kThreads = 256;
constexpr int kHalf = 8;                  // reduction indices loaded per sweep of the block
constexpr int kBK = 2 * kHalf;            // reduction step: two sweeps, one prefetch distance
constexpr int kLanes = kThreads / kHalf;  // threads that share one reduction index in a sweep
constexpr int kPad = 4;                   // keeps k-major stores free of bank conflicts
constexpr int kGrid = 16;                 // the 16 x 16 thread grid of the micro-tiles
constexpr int kChunk = 4 * kGrid;         // micro-tile rows come in float4 chunks this far apart
constexpr int kFar = INT_MIN / 2;         // a coordinate that fails every bounds check
constexpr int kTabTaps = 64;              // filters up to this many taps read them from a table

// One group's GEMM C[m][n] = sum_r A[m][r] B[r][n]. Rows m are (sample, pixel of `out`); the
// reduction index r is (channel c, tap f), ordered c-major (r = c * taps + f) or tap-major
// (r = f * ca + c) to follow the weight's memory order, so B loads run along r.
template <class I>
struct Params {
  I m, pix;  // rows, and pixels per sample
  int out[3], src[3], stride[3], dil[3], pad[3], filt[3];
  int nn, ca, taps, kred;
  bool tap_major;
  int step_q, step_r;  // kHalf = step_q * inner + step_r, inner = ca (tap-major) or taps
  // A (sample i, channel c of the group, pixel) at i * a_sn + c * a_sc + pixel * a_sp.
  I a_grp, a_sn, a_sc, a_sp;
  // B (column n, channel c, tap f) at n * b_sn + c * b_sc + (flip ? taps - 1 - f : f) * b_sf.
  I b_grp, b_sn, b_sc, b_sf;
  bool flip;
  // C (sample i, column n of the group, pixel) at i * o_sn + n * o_sc + pixel * o_sp.
  I o_grp, o_sn, o_sc, o_sp;
  bool m_fast;  // C is contiguous along rows: neighbouring threads store neighbouring rows
  bool vec;     // f32, and every run of four contiguous elements of C is whole and aligned
};

// A thread's reduction index r and its (channel, tap), advanced by kHalf without divisions.
struct RPos {
  int r, c, f;
};

template <class I>
__device__ inline RPos rpos_at(const Params<I>& p, int r) {
  RPos q;
  q.r = r;
  if (p.tap_major) {
    q.c = r % p.ca;
    q.f = r / p.ca;
  } else {
    q.f = r % p.taps;
    q.c = r / p.taps;
  }
  return q;
}

template <class I>
__device__ inline void rpos_advance(const Params<I>& p, RPos* q) {
  q->r += kHalf;
  if (p.tap_major) {
    q->c += p.step_r;
    q->f += p.step_q;
    if (q->c >= p.ca) {
      q->c -= p.ca;
      ++q->f;
    }
  } else {
    q->f += p.step_r;
    q->c += p.step_q;
    if (q->f >= p.taps) {
      q->f -= p.taps;
      ++q->c;
    }
  }
}

template <class T>
__device__ inline float load_f(const T* p) {
  return Elem<T>::load(*p);
}

// Four consecutive elements of C; one vector store in f32.
template <class T>
__device__ inline void store4(T* dst, float v0, float v1, float v2, float v3) {
  if constexpr (std::is_same<T, float>::value) {
    *reinterpret_cast<float4*>(dst) = make_float4(v0, v1, v2, v3);
  } else {
    dst[0] = Elem<T>::store(v0);
    dst[1] = Elem<T>::store(v1);
    dst[2] = Elem<T>::store(v2);
    dst[3] = Elem<T>::store(v3);
  }
}

template <class T, class I, int BM, int BN>
__global__ void __launch_bounds__(kThreads, (BM * BN >= 128 * 64 ? 2 : 3))
    implicit_gemm_kernel(Params<I> p, const T* __restrict__ a, const T* __restrict__ b,
                         T* __restrict__ out) {
  constexpr int TM = BM / kGrid;
  constexpr int TN = BN / kGrid;
  constexpr int APER = BM / kLanes;  // A elements each thread loads per sweep
  constexpr int BPER = BN / kLanes;
  struct alignas(16) Smem {
    float a[2][kBK][BM + kPad];
    float b[2][kBK][BN + kPad];
    int4 tap[kTabTaps];  // (t0, t1, t2) * dilation of each tap
  };
  __shared__ Smem sm;

  const int t = static_cast<int>(threadIdx.x);
  const I grp = static_cast<I>(blockIdx.z);
  const I m0 = static_cast<I>(blockIdx.x) * BM;
  const int n0 = static_cast<int>(blockIdx.y) * BN;
  a += grp * p.a_grp;
  b += grp * p.b_grp;
  out += grp * p.o_grp;

  // A loads: lanes along pixels when channels are strided (contiguous layout), along the
  // reduction when channels are contiguous (channels_last).
  const int a_col = p.tap_major ? t % kHalf : t / kLanes;
  const int a_lane = p.tap_major ? t / kHalf : t % kLanes;
  I a_row[APER];
  int a_b0[APER], a_b1[APER], a_b2[APER];
#pragma unroll
  for (int j = 0; j < APER; ++j) {
    const I m = m0 + a_lane + j * kLanes;
    a_row[j] = 0;
    a_b0[j] = a_b1[j] = a_b2[j] = kFar;
    if (m < p.m) {
      const I i = m / p.pix;
      const I px = m - i * p.pix;
      const int o2 = static_cast<int>(px % p.out[2]);
      const I q = px / p.out[2];
      const int o1 = static_cast<int>(q % p.out[1]);
      const int o0 = static_cast<int>(q / p.out[1]);
      a_b0[j] = o0 * p.stride[0] - p.pad[0];
      a_b1[j] = o1 * p.stride[1] - p.pad[1];
      a_b2[j] = o2 * p.stride[2] - p.pad[2];
      a_row[j] = i * p.a_sn +
                 ((static_cast<I>(a_b0[j]) * p.src[1] + a_b1[j]) * p.src[2] + a_b2[j]) * p.a_sp;
    }
  }
  // B loads: lanes along the reduction; a thread's columns are kLanes apart.
  const int b_col = t % kHalf;
  const int b_n = n0 + t / kHalf;
  const I b_row = static_cast<I>(b_n) * p.b_sn;
  const I b_step = static_cast<I>(kLanes) * p.b_sn;

  const bool tabled = p.taps <= kTabTaps;
  if (tabled) {
    for (int f = t; f < p.taps; f += kThreads) {
      const int q = f / p.filt[2];
      sm.tap[f] = make_int4(q / p.filt[1] * p.dil[0], q % p.filt[1] * p.dil[1],
                            f % p.filt[2] * p.dil[2], 0);
    }
  }

  RPos ra = rpos_at(p, a_col);
  RPos rb = rpos_at(p, b_col);
  float va[2][APER], vb[2][BPER];

  // Loads the next reduction step into registers, leaving ra and rb at the step after it.
  const auto load_tile = [&]() {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      int d0 = kFar, d1 = 0, d2 = 0;
      I koff = 0;
      if (ra.r < p.kred) {
        if (tabled) {
          const int4 e = sm.tap[ra.f];
          d0 = e.x;
          d1 = e.y;
          d2 = e.z;
        } else {
          const int q = ra.f / p.filt[2];
          d0 = q / p.filt[1] * p.dil[0];
          d1 = q % p.filt[1] * p.dil[1];
          d2 = ra.f % p.filt[2] * p.dil[2];
        }
        koff = static_cast<I>(ra.c) * p.a_sc +
               ((static_cast<I>(d0) * p.src[1] + d1) * p.src[2] + d2) * p.a_sp;
      }
#pragma unroll
      for (int j = 0; j < APER; ++j) {
        const bool ok = static_cast<unsigned>(a_b0[j] + d0) < static_cast<unsigned>(p.src[0]) &&
                        static_cast<unsigned>(a_b1[j] + d1) < static_cast<unsigned>(p.src[1]) &&
                        static_cast<unsigned>(a_b2[j] + d2) < static_cast<unsigned>(p.src[2]);
        va[h][j] = ok ? load_f(a + (a_row[j] + koff)) : 0.0f;
      }
      const bool kb = rb.r < p.kred;
      const I kboff = kb ? static_cast<I>(rb.c) * p.b_sc +
                               static_cast<I>(p.flip ? p.taps - 1 - rb.f : rb.f) * p.b_sf
                         : I(0);
#pragma unroll
      for (int j = 0; j < BPER; ++j) {
        const bool ok = kb && b_n + j * kLanes < p.nn;
        vb[h][j] = ok ? load_f(b + (b_row + j * b_step + kboff)) : 0.0f;
      }
      rpos_advance(p, &ra);
      rpos_advance(p, &rb);
    }
  };
  const auto store_tile = [&](int buf) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int j = 0; j < APER; ++j) sm.a[buf][a_col + h * kHalf][a_lane + j * kLanes] = va[h][j];
#pragma unroll
      for (int j = 0; j < BPER; ++j) {
        sm.b[buf][b_col + h * kHalf][b_n - n0 + j * kLanes] = vb[h][j];
      }
    }
  };

  const int tm = p.m_fast ? t % kGrid : t / kGrid;
  const int tn = p.m_fast ? t / kGrid : t % kGrid;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i) {
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
  }

  const int steps = (p.kred + kBK - 1) / kBK;
  __syncthreads();  // the tap table
  load_tile();
  store_tile(0);
  __syncthreads();
  for (int s = 0; s < steps; ++s) {
    const int cur = s & 1;
    const bool more = s + 1 < steps;
    if (more) load_tile();
    IG_UNROLL_K
    for (int k = 0; k < kBK; ++k) {
      float fa[TM], fb[TN];
#pragma unroll
      for (int h = 0; h < TM / 4; ++h) {
        const float4 v = *reinterpret_cast<const float4*>(&sm.a[cur][k][h * kChunk + tm * 4]);
        fa[h * 4 + 0] = v.x;
        fa[h * 4 + 1] = v.y;
        fa[h * 4 + 2] = v.z;
        fa[h * 4 + 3] = v.w;
      }
#pragma unroll
      for (int h = 0; h < TN / 4; ++h) {
        const float4 v = *reinterpret_cast<const float4*>(&sm.b[cur][k][h * kChunk + tn * 4]);
        fb[h * 4 + 0] = v.x;
        fb[h * 4 + 1] = v.y;
        fb[h * 4 + 2] = v.z;
        fb[h * 4 + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(fa[i], fb[j], acc[i][j]);
      }
    }
    if (more) store_tile(cur ^ 1);
    __syncthreads();
  }

  I col_off[TN];
  bool col_ok[TN];
#pragma unroll
  for (int j = 0; j < TN; ++j) {
    const int n = n0 + (j / 4) * kChunk + tn * 4 + j % 4;
    col_ok[j] = n < p.nn;
    col_off[j] = static_cast<I>(n) * p.o_sc;
  }
  if (p.vec && p.m_fast) {
#pragma unroll
    for (int h = 0; h < TM / 4; ++h) {
      const I m = m0 + h * kChunk + tm * 4;
      if (m >= p.m) continue;
      const I smp = m / p.pix;
      T* dst = out + (smp * p.o_sn + (m - smp * p.pix));
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        if (col_ok[j]) {
          store4(dst + col_off[j], acc[h * 4][j], acc[h * 4 + 1][j], acc[h * 4 + 2][j],
                 acc[h * 4 + 3][j]);
        }
      }
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const I m = m0 + (i / 4) * kChunk + tm * 4 + i % 4;
    if (m >= p.m) continue;
    const I smp = m / p.pix;
    T* dst = out + (smp * p.o_sn + (m - smp * p.pix) * p.o_sp);
    if (p.vec) {
#pragma unroll
      for (int h = 0; h < TN / 4; ++h) {
        const int j = h * 4;
        if (col_ok[j]) {
          store4(dst + col_off[j], acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
        }
      }
    } else {
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        if (col_ok[j]) dst[col_off[j]] = Elem<T>::store(acc[i][j]);
      }
    }
  }
}

template <class I>
Params<I> make_params(const ConvShape& s, Direction d) {
  Params<I> p{};
  const bool fwd = d == Direction::forward;
  const solvers::GemmMap g = solvers::gemm_map(s, d, solvers::GemmScheme::implicit, 0);
  const solvers::ImplicitView& v = g.view;
  const Dims& rows = fwd ? s.out : s.in;  // the written tensor's spatial dims
  const Dims& src = fwd ? s.in : s.out;   // the gathered tensor's
  p.pix = static_cast<I>(v.pixels);
  p.m = static_cast<I>(g.m);
  for (int i = 0; i < 3; ++i) {
    p.out[i] = static_cast<int>(rows[i]);
    p.src[i] = static_cast<int>(src[i]);
    p.filt[i] = static_cast<int>(s.filt[i]);
    p.dil[i] = static_cast<int>(s.dilation[i]);
    // backward_data (stride 1) is the forward pass of dy with the flipped weight, whose
    // leading padding is dil * (filt - 1) - pad.
    p.stride[i] = fwd ? static_cast<int>(s.stride[i]) : 1;
    p.pad[i] = static_cast<int>(fwd ? s.pad[i] : s.dilation[i] * (s.filt[i] - 1) - s.pad[i]);
  }
  p.nn = static_cast<int>(g.n);
  p.taps = static_cast<int>(s.filt_pixels());
  p.kred = static_cast<int>(g.k);
  p.ca = p.kred / p.taps;
  p.tap_major = v.tap_major;
  const int inner = p.tap_major ? p.ca : p.taps;
  p.step_q = kHalf / inner;
  p.step_r = kHalf % inner;
  p.flip = v.flip;
  p.a_sn = static_cast<I>(v.a_sample);
  p.a_sc = static_cast<I>(v.a_channel);
  p.a_sp = static_cast<I>(v.a_pixel);
  p.a_grp = static_cast<I>(g.a.batch_stride);
  p.b_grp = static_cast<I>(g.b.batch_stride);
  p.b_sn = static_cast<I>(v.b_column);
  p.b_sc = static_cast<I>(v.b_channel);
  p.b_sf = static_cast<I>(v.b_tap);
  p.o_sn = static_cast<I>(v.c_sample);
  p.o_sc = static_cast<I>(v.c_column);
  p.o_sp = static_cast<I>(v.c_pixel);
  p.o_grp = static_cast<I>(g.c.batch_stride);
  p.m_fast = !p.tap_major;
  // Runs of four start at multiples of four rows (contiguous) or columns (channels_last); they
  // are whole and 16-byte aligned when these sizes are multiples of four.
  const int64_t rows_ch = fwd ? s.k : s.c;
  p.vec = s.dtype == DataType::f32 &&
          (p.tap_major ? rows_ch % 4 == 0 && p.nn % 4 == 0 : v.pixels % 4 == 0);
  return p;
}

template <class T, class I, int BM, int BN>
Status launch_typed(const ExecContext& ctx, const ConvShape& s, Direction d, const ConvTensors& t) {
  Params<I> p = make_params<I>(s, d);
  const bool fwd = d == Direction::forward;
  const T* a = static_cast<const T*>(fwd ? t.x : t.y);
  const T* b = static_cast<const T*>(t.w);
  T* out = static_cast<T*>(fwd ? t.y : t.x);
  p.vec = p.vec && reinterpret_cast<uintptr_t>(out) % 16 == 0;
  const int64_t mt = (static_cast<int64_t>(p.m) + BM - 1) / BM;
  const int64_t nt = (static_cast<int64_t>(p.nn) + BN - 1) / BN;
  const dim3 grid(static_cast<unsigned>(mt), static_cast<unsigned>(nt), static_cast<unsigned>(s.g));
  implicit_gemm_kernel<T, I, BM, BN>
      <<<grid, kThreads, 0, static_cast<cudaStream_t>(ctx.stream)>>>(p, a, b, out);
  GEMMCONV_CHECK_LAUNCH("implicit_gemm_kernel");
  return Status::success();
}

template <class T, class I>
Status launch_tile(const ExecContext& ctx, const ConvShape& s, Direction d, const ConvTensors& t,
                   Tile tile) {
  switch (tile) {
    case Tile::t128x128:
      return launch_typed<T, I, 128, 128>(ctx, s, d, t);
    case Tile::t128x64:
      return launch_typed<T, I, 128, 64>(ctx, s, d, t);
    case Tile::t64x64:
      break;
  }
  return launch_typed<T, I, 64, 64>(ctx, s, d, t);
}

template <class T>
Status launch_index(const ExecContext& ctx, const ConvShape& s, Direction d, const ConvTensors& t,
                    Tile tile) {
  // Offsets are also formed (never dereferenced) for rows and columns past the last tile.
  const int64_t pix = std::max(s.in_pixels(), s.out_pixels());
  const int64_t reach = std::max(std::max(s.x_elements(), s.y_elements()) + 256 * pix,
                                 s.w_elements() + 256 * s.filt_pixels() * std::max(s.cg(), s.kg()));
  const bool wide = s.index64 || needs_index64(reach + (int64_t(1) << 26));
  return dispatch_index(wide, [&](auto it) {
    return launch_tile<T, typename decltype(it)::type>(ctx, s, d, t, tile);
  });
}

}  // namespace

Status launch(const ExecContext& ctx, const ConvShape& s, Direction d, const ConvTensors& t,
              Tile tile) {
  if (!supports(s, d)) {
    return Status(StatusCode::invalid_argument, "implicit_gemm: problem not supported");
  }
  switch (s.dtype) {
    case DataType::f32:
      return launch_index<float>(ctx, s, d, t, tile);
    case DataType::f16:
      return launch_index<f16_t>(ctx, s, d, t, tile);
    case DataType::bf16:
      return launch_index<bf16_t>(ctx, s, d, t, tile);
    case DataType::f64:
      break;
  }
  return Status(StatusCode::invalid_argument, "implicit_gemm: f64 is not supported");
}

}  // namespace implicit_gemm
}  // namespace gemmconv
