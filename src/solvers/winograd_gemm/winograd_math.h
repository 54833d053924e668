// The Winograd transforms F(2,3) and F(4,3) along one axis, and their 2-D products, as host+device
// inline code shared by the CPU and GPU kernels; plus the transform matrices as tables.
//
// Along one axis, a tile of `alpha` input values d, the 3 filter taps g and the m = alpha - 2
// outputs y of the correlation y[o] = sum_j d[o + j] g[j] satisfy y = A^T [(G g) . (B^T d)].
// Alpha 1 is the identity (an axis whose filter has one tap). A 2-D tile applies the 1-D
// transform along W (rows) and then along H (columns): V = B^T d B, U = G g G^T, Y = A^T M A.
//
// F(4,3) interpolates at 0, -1, 1, -2, 2 and infinity (the usual choice: the smallest points,
// which keeps the matrices' entries, and so the rounding amplification, smallest).
#pragma once

#include "base/half.h"

namespace gemmconv {
namespace winograd {

template <int kAlpha>
struct Axis;

// One tap: the identity.
template <>
struct Axis<1> {
  static constexpr int kM = 1;
  static constexpr int kR = 1;
  template <class A>
  GEMMCONV_HD static void input(const A* d, int ds, A* v, int vs) {
    v[0] = d[0 * ds];
    (void)vs;
  }
  template <class A>
  GEMMCONV_HD static void filter(const A* g, int gs, A* u, int us) {
    u[0] = g[0 * gs];
    (void)us;
  }
  template <class A>
  GEMMCONV_HD static void output(const A* m, int ms, A* y, int ys) {
    y[0] = m[0 * ms];
    (void)ys;
  }
  template <class A>
  GEMMCONV_HD static void grad_output(const A* y, int ys, A* v, int vs) {
    v[0] = y[0 * ys];
    (void)vs;
  }
  template <class A>
  GEMMCONV_HD static void grad_filter(const A* u, int us, A* g, int gs) {
    g[0] = u[0 * us];
    (void)gs;
  }
};

// F(2,3).
template <>
struct Axis<4> {
  static constexpr int kM = 2;
  static constexpr int kR = 3;
  template <class A>
  GEMMCONV_HD static void input(const A* d, int ds, A* v, int vs) {
    const A d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds];
    v[0] = d0 - d2;
    v[vs] = d1 + d2;
    v[2 * vs] = d2 - d1;
    v[3 * vs] = d1 - d3;
  }
  template <class A>
  GEMMCONV_HD static void filter(const A* g, int gs, A* u, int us) {
    const A g0 = g[0], g1 = g[gs], g2 = g[2 * gs];
    const A h = A(0.5);
    u[0] = g0;
    u[us] = h * (g0 + g1 + g2);
    u[2 * us] = h * (g0 - g1 + g2);
    u[3 * us] = g2;
  }
  template <class A>
  GEMMCONV_HD static void output(const A* m, int ms, A* y, int ys) {
    const A m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms];
    y[0] = m0 + m1 + m2;
    y[ys] = m1 - m2 - m3;
  }
  // v = A y (the transpose of output).
  template <class A>
  GEMMCONV_HD static void grad_output(const A* y, int ys, A* v, int vs) {
    const A y0 = y[0], y1 = y[ys];
    v[0] = y0;
    v[vs] = y0 + y1;
    v[2 * vs] = y0 - y1;
    v[3 * vs] = -y1;
  }
  // g = G^T u (the transpose of filter).
  template <class A>
  GEMMCONV_HD static void grad_filter(const A* u, int us, A* g, int gs) {
    const A u0 = u[0], u1 = u[us], u2 = u[2 * us], u3 = u[3 * us];
    const A h = A(0.5);
    const A s = h * (u1 + u2);
    g[0] = u0 + s;
    g[gs] = h * (u1 - u2);
    g[2 * gs] = s + u3;
  }
};

// F(4,3).
template <>
struct Axis<6> {
  static constexpr int kM = 4;
  static constexpr int kR = 3;
  template <class A>
  GEMMCONV_HD static void input(const A* d, int ds, A* v, int vs) {
    const A d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
    const A four = A(4), five = A(5), two = A(2);
    v[0] = four * d0 - five * d2 + d4;
    v[vs] = d4 + d3 - four * (d1 + d2);
    v[2 * vs] = d4 - d3 + four * (d1 - d2);
    v[3 * vs] = d4 - d2 + two * (d3 - d1);
    v[4 * vs] = d4 - d2 - two * (d3 - d1);
    v[5 * vs] = four * d1 - five * d3 + d5;
  }
  template <class A>
  GEMMCONV_HD static void filter(const A* g, int gs, A* u, int us) {
    const A g0 = g[0], g1 = g[gs], g2 = g[2 * gs];
    const A sixth = A(1) / A(6), twelfth = A(1) / A(12), quarter = A(0.25);
    const A a = g0 + g2;
    u[0] = quarter * g0;
    u[us] = -sixth * (a + g1);
    u[2 * us] = -sixth * (a - g1);
    const A b = quarter * g0 + g2;  // g0 / 24 + g2 / 6 = (g0 / 4 + g2) / 6
    u[3 * us] = sixth * b + twelfth * g1;
    u[4 * us] = sixth * b - twelfth * g1;
    u[5 * us] = g2;
  }
  template <class A>
  GEMMCONV_HD static void output(const A* m, int ms, A* y, int ys) {
    const A m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms], m4 = m[4 * ms], m5 = m[5 * ms];
    const A s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
    y[0] = m0 + s12 + s34;
    y[ys] = d12 + A(2) * d34;
    y[2 * ys] = s12 + A(4) * s34;
    y[3 * ys] = d12 + A(8) * d34 + m5;
  }
  // v = A y (the transpose of output).
  template <class A>
  GEMMCONV_HD static void grad_output(const A* y, int ys, A* v, int vs) {
    const A y0 = y[0], y1 = y[ys], y2 = y[2 * ys], y3 = y[3 * ys];
    const A e = y0 + y2, o = y1 + y3;
    const A e4 = y0 + A(4) * y2, o8 = A(2) * y1 + A(8) * y3;
    v[0] = y0;
    v[vs] = e + o;
    v[2 * vs] = e - o;
    v[3 * vs] = e4 + o8;
    v[4 * vs] = e4 - o8;
    v[5 * vs] = y3;
  }
  // g = G^T u (the transpose of filter).
  template <class A>
  GEMMCONV_HD static void grad_filter(const A* u, int us, A* g, int gs) {
    const A u0 = u[0], u1 = u[us], u2 = u[2 * us], u3 = u[3 * us], u4 = u[4 * us], u5 = u[5 * us];
    const A sixth = A(1) / A(6), twelfth = A(1) / A(12), quarter = A(0.25);
    const A s12 = u1 + u2, d12 = u1 - u2, s34 = u3 + u4, d34 = u3 - u4;
    g[0] = quarter * (u0 + sixth * s34) - sixth * s12;  // u0/4 - s12/6 + s34/24
    g[gs] = twelfth * d34 - sixth * d12;
    g[2 * gs] = sixth * (s34 - s12) + u5;
  }
};

// 2-D transforms of one tile, kAH x kAW transform points, row-major arrays.
template <int kAH, int kAW>
struct Tile {
  using H = Axis<kAH>;
  using W = Axis<kAW>;
  static constexpr int kAlphaH = kAH, kAlphaW = kAW;
  static constexpr int kT = kAH * kAW;
  static constexpr int kMH = H::kM, kMW = W::kM;
  static constexpr int kRH = H::kR, kRW = W::kR;

  // d [kAH][kAW] -> v [kAH][kAW].
  template <class A>
  GEMMCONV_HD static void input(const A* d, A* v) {
    A t[kT];
    for (int a = 0; a < kAH; ++a) W::input(d + a * kAW, 1, t + a * kAW, 1);
    for (int b = 0; b < kAW; ++b) H::input(t + b, kAW, v + b, kAW);
  }
  // g [kRH][kRW] -> u [kAH][kAW].
  template <class A>
  GEMMCONV_HD static void filter(const A* g, A* u) {
    A t[kRH * kAW];
    for (int a = 0; a < kRH; ++a) W::filter(g + a * kRW, 1, t + a * kAW, 1);
    for (int b = 0; b < kAW; ++b) H::filter(t + b, kAW, u + b, kAW);
  }
  // m [kAH][kAW] -> y [kMH][kMW].
  template <class A>
  GEMMCONV_HD static void output(const A* m, A* y) {
    A t[kAH * kMW];
    for (int a = 0; a < kAH; ++a) W::output(m + a * kAW, 1, t + a * kMW, 1);
    for (int b = 0; b < kMW; ++b) H::output(t + b, kMW, y + b, kMW);
  }
  // The weight gradient's transforms, the transposes of output and filter.
  // dy [kMH][kMW] -> [kAH][kAW] (A dy A^T).
  template <class A>
  GEMMCONV_HD static void grad_output(const A* y, A* v) {
    A t[kMH * kAW];
    for (int a = 0; a < kMH; ++a) W::grad_output(y + a * kMW, 1, t + a * kAW, 1);
    for (int b = 0; b < kAW; ++b) H::grad_output(t + b, kAW, v + b, kAW);
  }
  // u [kAH][kAW] -> g [kRH][kRW] (G^T u G).
  template <class A>
  GEMMCONV_HD static void grad_filter(const A* u, A* g) {
    A t[kAH * kRW];
    for (int a = 0; a < kAH; ++a) W::grad_filter(u + a * kAW, 1, t + a * kRW, 1);
    for (int b = 0; b < kRW; ++b) H::grad_filter(t + b, kRW, g + b, kRW);
  }
};

// The matrices themselves (row-major), for the error analysis and the tests; the code above is
// their product written out. alpha 4: B^T 4x4, G 4x3, A^T 2x4; alpha 6: B^T 6x6, G 6x3, A^T 4x6.
struct Matrices {
  int alpha, m, r;
  const double* bt;  // [alpha][alpha]
  const double* g;   // [alpha][r]
  const double* at;  // [m][alpha]
};
Matrices matrices(int alpha);

// Rounding amplification of one axis (1 for alpha 1). A rounding error relative to the
// transform-domain value at point xi reaches output o scaled by A^T[o][xi], and with data and
// filter of unit variance that value's typical size is |G[xi][:]|_2 |B^T[xi][:]|_2 against a
// typical direct sum of sqrt(r): the amplification is
//   max_o |(A^T[o][xi] |G[xi][:]|_2 |B^T[xi][:]|_2)_xi|_2 / sqrt(r),
// sqrt(5/3) = 1.29 for F(2,3) and 5.61 for F(4,3); the 2-D factor is the product of the axes'.
double axis_amplification(int alpha);
// The worst case of the same (every error of one sign at its bound, relative to the sum of the
// absolute direct products): max_o sum_{i, j, xi} |A^T[o][xi]| |G[xi][j]| |B^T[xi][i]| / r,
// 8/3 for F(2,3) and 16 for F(4,3). It bounds the storage roundings in the tolerance.
double axis_worst_case(int alpha);

// The same two factors for the weight gradient, dw[j] = sum_xi G[xi][j] (sum over tiles of
// (B^T d)[xi] (A dy)[xi]): the roles of A^T and G swap. An error relative to the transform-domain
// sum at xi reaches tap j scaled by G[xi][j]; the sum's typical size per tile is
// |B^T[xi][:]|_2 |A^T[:][xi]|_2 against sqrt(m) for the direct sum of the tile's m products:
//   max_j |(G[xi][j] |B^T[xi][:]|_2 |A^T[:][xi]|_2)_xi|_2 / sqrt(m),
// sqrt(2) = 1.41 for F(2,3) and 4.92 for F(4,3); and in the worst case
//   max_j sum_{xi, i, o} |G[xi][j]| |B^T[xi][i]| |A^T[o][xi]| / m,
// 3 for F(2,3) and 40/3 for F(4,3).
double axis_amplification_wgrad(int alpha);
double axis_worst_case_wgrad(int alpha);

}  // namespace winograd
}  // namespace gemmconv
