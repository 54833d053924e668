// Tests of the ops: CPU twins against naive loops and adjoints; GPU kernels against the CPU twins.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/half.h"
#include "gemmconv/device.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

namespace gemmconv {
namespace {

// ---------------------------------------------------------------- typed host buffers

struct Buf {
  DataType t = DataType::f64;
  size_t count = 0;
  std::vector<unsigned char> bytes;
  void* data() { return bytes.data(); }
  const void* data() const { return bytes.data(); }
};

Buf make_buf(DataType t, const std::vector<double>& v) {
  Buf b;
  b.t = t;
  b.count = v.size();
  b.bytes.resize(v.size() * element_size(t) + 1);
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename Elem<T>::acc;
    T* p = reinterpret_cast<T*>(b.bytes.data());
    for (size_t i = 0; i < v.size(); ++i) p[i] = Elem<T>::store(static_cast<A>(v[i]));
    return 0;
  });
  return b;
}

Buf zeros(DataType t, size_t n) { return make_buf(t, std::vector<double>(n, 0.0)); }

std::vector<double> to_double(const Buf& b) {
  std::vector<double> v(b.count);
  dispatch_dtype(b.t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = reinterpret_cast<const T*>(b.bytes.data());
    for (size_t i = 0; i < b.count; ++i) v[i] = static_cast<double>(Elem<T>::load(p[i]));
    return 0;
  });
  return v;
}

std::vector<double> random_vec(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(n);
  for (auto& e : v) e = dist(gen);
  return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double s = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) s += a[i] * b[i];
  return s;
}

double abs_dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) s += std::fabs(a[i] * b[i]);
  return s;
}

// ---------------------------------------------------------------- shapes

struct Case {
  std::string name;
  int64_t n, c, k, g;
  Dims in, filt, stride, dil, pad;
  Dims pad_end_extra{0, 0, 0};  // trailing padding beyond the leading one
  Layout layout = Layout::contiguous;
};

ConvShape shape_of(const Case& k, DataType t) {
  ConvShape s;
  s.n = k.n;
  s.c = k.c;
  s.k = k.k;
  s.g = k.g;
  s.in = k.in;
  s.filt = k.filt;
  s.stride = k.stride;
  s.dilation = k.dil;
  s.pad = k.pad;
  for (int d = 0; d < 3; ++d) {
    const int64_t span = k.dil[d] * (k.filt[d] - 1) + 1;
    s.out[d] = (k.in[d] + 2 * k.pad[d] + k.pad_end_extra[d] - span) / k.stride[d] + 1;
  }
  s.layout = k.layout;
  s.dtype = t;
  return s;
}

std::vector<Case> cases() {
  std::vector<Case> v = {
      {"conv2d_3x3", 2, 3, 4, 1, {1, 6, 5}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}},
      {"conv1d_stride", 2, 4, 3, 1, {1, 1, 11}, {1, 1, 3}, {1, 1, 2}, {1, 1, 1}, {0, 0, 1}},
      {"conv2d_dil_stride", 1, 2, 3, 1, {1, 9, 8}, {1, 3, 2}, {1, 2, 3}, {1, 2, 2}, {0, 2, 1}},
      {"conv2d_groups", 2, 6, 4, 2, {1, 5, 5}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 0}},
      {"depthwise", 1, 4, 8, 4, {1, 5, 6}, {1, 3, 3}, {1, 2, 1}, {1, 1, 1}, {0, 1, 1}},
      {"conv3d", 2, 3, 2, 1, {4, 5, 4}, {2, 3, 2}, {1, 2, 1}, {2, 1, 1}, {1, 1, 0}},
      {"conv3d_groups_cl",
       1,
       4,
       6,
       2,
       {3, 4, 5},
       {3, 2, 2},
       {2, 1, 2},
       {1, 1, 1},
       {1, 0, 1},
       {0, 0, 0},
       Layout::channels_last},
      {"conv2d_cl",
       2,
       3,
       5,
       1,
       {1, 6, 7},
       {1, 3, 3},
       {1, 2, 1},
       {1, 1, 2},
       {0, 1, 2},
       {0, 0, 0},
       Layout::channels_last},
      {"conv2d_groups_cl",
       2,
       6,
       3,
       3,
       {1, 5, 4},
       {1, 2, 3},
       {1, 1, 1},
       {1, 1, 1},
       {0, 0, 1},
       {0, 0, 0},
       Layout::channels_last},
      {"asym_pad", 1, 2, 2, 1, {1, 4, 6}, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}},
      {"1x1", 2, 5, 3, 1, {1, 4, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
      {"empty_batch", 0, 2, 2, 1, {1, 4, 4}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}},
  };
  return v;
}

// Naive offsets written independently of the library's helpers.
int64_t x_index(const ConvShape& s, int64_t i, int64_t c, int64_t a, int64_t b, int64_t d) {
  if (s.layout == Layout::channels_last) {
    return (((i * s.in[0] + a) * s.in[1] + b) * s.in[2] + d) * s.c + c;
  }
  return (((i * s.c + c) * s.in[0] + a) * s.in[1] + b) * s.in[2] + d;
}

int64_t y_index(const ConvShape& s, int64_t i, int64_t k, int64_t a, int64_t b, int64_t d) {
  if (s.layout == Layout::channels_last) {
    return (((i * s.out[0] + a) * s.out[1] + b) * s.out[2] + d) * s.k + k;
  }
  return (((i * s.k + k) * s.out[0] + a) * s.out[1] + b) * s.out[2] + d;
}

int64_t w_index(const ConvShape& s, int64_t k, int64_t c, int64_t a, int64_t b, int64_t d) {
  if (s.layout == Layout::channels_last) {
    return (((k * s.filt[0] + a) * s.filt[1] + b) * s.filt[2] + d) * s.cg() + c;
  }
  return (((k * s.cg() + c) * s.filt[0] + a) * s.filt[1] + b) * s.filt[2] + d;
}

// Column strides of the two orders the solvers use (see ops.h).
ops::ColStrides sample_major(const ConvShape& s) {
  const int64_t F = s.filt_pixels(), P = s.out_pixels();
  return {s.c * F * P, F * P, P};
}
ops::ColStrides group_major(const ConvShape& s, int64_t nb) {
  const int64_t F = s.filt_pixels(), P = s.out_pixels();
  return {P, F * nb * P, nb * P};
}

int64_t col_size(const ConvShape& s, int64_t nb) {
  return nb * s.c * s.filt_pixels() * s.out_pixels();
}

// The column matrix by its definition, straight from the comments of ops.h.
std::vector<double> naive_im2col(const ConvShape& s, const std::vector<double>& x, int64_t n0,
                                 int64_t nb, const ops::ColStrides& cs) {
  std::vector<double> col(static_cast<size_t>(col_size(s, nb)), 0.0);
  const int64_t F = s.filt_pixels(), Cg = s.cg();
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t t0 = 0; t0 < s.filt[0]; ++t0)
        for (int64_t t1 = 0; t1 < s.filt[1]; ++t1)
          for (int64_t t2 = 0; t2 < s.filt[2]; ++t2)
            for (int64_t o0 = 0; o0 < s.out[0]; ++o0)
              for (int64_t o1 = 0; o1 < s.out[1]; ++o1)
                for (int64_t o2 = 0; o2 < s.out[2]; ++o2) {
                  const int64_t a = o0 * s.stride[0] - s.pad[0] + t0 * s.dilation[0];
                  const int64_t b = o1 * s.stride[1] - s.pad[1] + t1 * s.dilation[1];
                  const int64_t d = o2 * s.stride[2] - s.pad[2] + t2 * s.dilation[2];
                  double v = 0;
                  if (a >= 0 && a < s.in[0] && b >= 0 && b < s.in[1] && d >= 0 && d < s.in[2]) {
                    v = x[static_cast<size_t>(x_index(s, n0 + i, c, a, b, d))];
                  }
                  const int64_t f = (t0 * s.filt[1] + t1) * s.filt[2] + t2;
                  const int64_t p = (o0 * s.out[1] + o1) * s.out[2] + o2;
                  int64_t off;
                  if (s.layout == Layout::channels_last) {
                    const int64_t g = c / Cg, cg = c % Cg;
                    off = (i * s.out_pixels() + p) * s.c * F + g * F * Cg + f * Cg + cg;
                  } else {
                    off = i * cs.n + c * cs.c + f * cs.f + p;
                  }
                  col[static_cast<size_t>(off)] = v;
                }
  return col;
}

// A direct forward convolution written from the definition.
std::vector<double> naive_forward(const ConvShape& s, const std::vector<double>& x,
                                  const std::vector<double>& w) {
  std::vector<double> y(static_cast<size_t>(s.y_elements()), 0.0);
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t k = 0; k < s.k; ++k)
      for (int64_t o0 = 0; o0 < s.out[0]; ++o0)
        for (int64_t o1 = 0; o1 < s.out[1]; ++o1)
          for (int64_t o2 = 0; o2 < s.out[2]; ++o2) {
            double acc = 0;
            const int64_t g = k / s.kg();
            for (int64_t cg = 0; cg < s.cg(); ++cg)
              for (int64_t t0 = 0; t0 < s.filt[0]; ++t0)
                for (int64_t t1 = 0; t1 < s.filt[1]; ++t1)
                  for (int64_t t2 = 0; t2 < s.filt[2]; ++t2) {
                    const int64_t a = o0 * s.stride[0] - s.pad[0] + t0 * s.dilation[0];
                    const int64_t b = o1 * s.stride[1] - s.pad[1] + t1 * s.dilation[1];
                    const int64_t d = o2 * s.stride[2] - s.pad[2] + t2 * s.dilation[2];
                    if (a < 0 || a >= s.in[0] || b < 0 || b >= s.in[1] || d < 0 || d >= s.in[2])
                      continue;
                    acc += x[static_cast<size_t>(x_index(s, i, g * s.cg() + cg, a, b, d))] *
                           w[static_cast<size_t>(w_index(s, k, cg, t0, t1, t2))];
                  }
            y[static_cast<size_t>(y_index(s, i, k, o0, o1, o2))] = acc;
          }
  return y;
}

Capabilities g_host = cpu_capabilities();

ExecContext cpu_ctx() {
  ExecContext ctx;
  ctx.caps = &g_host;
  return ctx;
}

void expect_near_rel(const std::vector<double>& got, const std::vector<double>& want, double rtol,
                     double atol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], atol + rtol * std::fabs(want[i])) << what << " at " << i;
  }
}

// ---------------------------------------------------------------- fp16 / bf16

TEST(Half, HalfBitsRoundTripExactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_bits_to_float(static_cast<uint16_t>(h));
    const uint16_t back = float_to_half_bits(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(half_bits_to_float(back))) << h;
    } else {
      EXPECT_EQ(back, h) << h;
    }
  }
}

TEST(Half, KnownHalfValues) {
  EXPECT_EQ(half_bits_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_bits_to_float(0xc000), -2.0f);
  EXPECT_EQ(half_bits_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(half_bits_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(half_bits_to_float(0x7c00)));
  EXPECT_EQ(float_to_half_bits(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_half_bits(65520.0f), 0x7c00);               // tie rounds to even: inf
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -25)), 0x0000);  // tie to even: zero
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(float_to_half_bits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie to even
  EXPECT_EQ(float_to_half_bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(float_to_half_bits(-0.0f), 0x8000);
}

// Checks that `r` is a nearest representable value of f, ties to the even code.
template <class ToBits, class ToFloat>
void check_nearest(float f, ToBits to_bits, ToFloat to_float) {
  const uint16_t r = to_bits(f);
  const double rf = to_float(r);
  if (std::isinf(rf)) return;
  const double err = std::fabs(rf - static_cast<double>(f));
  for (int delta : {-1, 1}) {
    const int nb = static_cast<int>(r & 0x7fff) + delta;
    if (nb < 0 || nb > 0x7fff) continue;
    const double other = to_float(static_cast<uint16_t>((r & 0x8000) | nb));
    if (std::isinf(other) || std::isnan(other)) continue;
    const double oerr = std::fabs(other - static_cast<double>(f));
    ASSERT_LE(err, oerr) << f;
    if (err == oerr) {
      ASSERT_EQ(r & 1, 0) << "tie not to even for " << f;
    }
  }
}

TEST(Half, FloatToHalfAndBf16RoundToNearestEven) {
  std::mt19937 gen(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 200000; ++i) {
    // Random floats of half-precision magnitude, plus exact ties made from random codes.
    float f;
    uint32_t u = bits(gen);
    const uint32_t exp = 100 + (u % 45);  // 2^-27 .. 2^17
    u = (u & 0x807fffffu) | (exp << 23);
    std::memcpy(&f, &u, sizeof f);
    check_nearest(f, float_to_half_bits, half_bits_to_float);
    check_nearest(f, float_to_bf16_bits, bf16_bits_to_float);
    const uint16_t h = static_cast<uint16_t>(bits(gen) & 0x7bfe);
    const float tie = static_cast<float>((static_cast<double>(half_bits_to_float(h)) +
                                          half_bits_to_float(static_cast<uint16_t>(h + 1))) /
                                         2);
    check_nearest(tie, float_to_half_bits, half_bits_to_float);
  }
}

TEST(Half, Bf16BitsRoundTripExactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_bits_to_float(static_cast<uint16_t>(h));
    const uint16_t back = float_to_bf16_bits(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_bits_to_float(back))) << h;
    } else {
      EXPECT_EQ(back, h) << h;
    }
  }
  EXPECT_EQ(float_to_bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16_bits(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie to even
  EXPECT_EQ(float_to_bf16_bits(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie to even
}

// ---------------------------------------------------------------- im2col / col2im

TEST(OpsCpu, Im2colMatchesDefinition) {
  for (const Case& k : cases()) {
    const ConvShape s = shape_of(k, DataType::f64);
    const auto xv = random_vec(static_cast<size_t>(s.x_elements()), 1);
    const Buf x = make_buf(DataType::f64, xv);
    for (int order = 0; order < 2; ++order) {
      const int64_t n0 = s.n > 1 ? 1 : 0, nb = s.n - n0;
      const ops::ColStrides cs = order == 0 ? sample_major(s) : group_major(s, nb);
      Buf col = make_buf(DataType::f64, random_vec(static_cast<size_t>(col_size(s, nb)), 2));
      ASSERT_TRUE(ops::im2col(cpu_ctx(), s, x.data(), col.data(), n0, nb, cs).ok());
      EXPECT_EQ(to_double(col), naive_im2col(s, xv, n0, nb, cs)) << k.name << " order " << order;
    }
  }
}

TEST(OpsCpu, Col2imIsTheAdjointOfIm2col) {
  for (const Case& k : cases()) {
    const ConvShape s = shape_of(k, DataType::f64);
    for (int order = 0; order < 2; ++order) {
      const ops::ColStrides cs = order == 0 ? sample_major(s) : group_major(s, s.n);
      const auto xv = random_vec(static_cast<size_t>(s.x_elements()), 3);
      const auto cv = random_vec(static_cast<size_t>(col_size(s, s.n)), 4);
      Buf x = make_buf(DataType::f64, xv), col = make_buf(DataType::f64, cv);
      Buf colx = zeros(DataType::f64, cv.size());
      Buf xc = make_buf(DataType::f64, random_vec(xv.size(), 5));  // overwritten entirely
      ASSERT_TRUE(ops::im2col(cpu_ctx(), s, x.data(), colx.data(), 0, s.n, cs).ok());
      ASSERT_TRUE(ops::col2im(cpu_ctx(), s, col.data(), xc.data(), 0, s.n, cs).ok());
      const double lhs = dot(to_double(xc), xv), rhs = dot(cv, to_double(colx));
      EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + abs_dot(cv, to_double(colx)))) << k.name;
    }
  }
}

TEST(OpsCpu, Col2imOfASampleRangeLeavesOtherSamples) {
  Case k{"r", 3, 2, 2, 1, {1, 5, 5}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}};
  const ConvShape s = shape_of(k, DataType::f32);
  const auto cs = sample_major(s);
  const auto cv = random_vec(static_cast<size_t>(col_size(s, 1)), 6);
  Buf col = make_buf(DataType::f32, cv);
  std::vector<double> sentinel(static_cast<size_t>(s.x_elements()), 42.0);
  Buf x = make_buf(DataType::f32, sentinel);
  ASSERT_TRUE(ops::col2im(cpu_ctx(), s, col.data(), x.data(), 1, 1, cs).ok());
  const auto xv = to_double(x);
  const size_t per = static_cast<size_t>(s.c * s.in_pixels());
  for (size_t i = 0; i < per; ++i) {
    EXPECT_EQ(xv[i], 42.0);
    EXPECT_EQ(xv[2 * per + i], 42.0);
  }
  // The centre pixel of a 5x5 input with a 3x3 filter, pad 1, gets all nine taps.
  double want = 0;
  for (int64_t f = 0; f < 9; ++f) {
    const int64_t r = f / 3, q = f % 3;
    const int64_t p = (2 + 1 - r) * 5 + (2 + 1 - q);
    want += static_cast<double>(static_cast<float>(cv[static_cast<size_t>(f * cs.f + p)]));
  }
  EXPECT_NEAR(xv[per + 12], want, 1e-5);
}

// ---------------------------------------------------------------- small ops

TEST(OpsCpu, Permute021) {
  for (DataType t : {DataType::f32, DataType::f16, DataType::bf16, DataType::f64}) {
    const int64_t a = 3, b = 4, c = 5;
    const auto sv = random_vec(static_cast<size_t>(a * b * c), 8);
    Buf src = make_buf(t, sv), dst = zeros(t, sv.size());
    ASSERT_TRUE(ops::permute_021(cpu_ctx(), t, src.data(), dst.data(), a, b, c).ok());
    const auto got = to_double(dst), in = to_double(src);
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j)
        for (int64_t q = 0; q < c; ++q)
          EXPECT_EQ(got[static_cast<size_t>((j * a + i) * c + q)],
                    in[static_cast<size_t>((i * b + j) * c + q)]);
  }
}

TEST(OpsCpu, BiasAddAndGrad) {
  const int64_t n = 3, ch = 5, pix = 7;
  for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
    const auto yv = random_vec(static_cast<size_t>(n * ch * pix), 9);
    const auto bv = random_vec(static_cast<size_t>(ch), 10);
    Buf y = make_buf(DataType::f64, yv), b = make_buf(DataType::f64, bv);
    ASSERT_TRUE(
        ops::bias_add(cpu_ctx(), DataType::f64, layout, y.data(), b.data(), n, ch, pix).ok());
    Buf db = zeros(DataType::f64, static_cast<size_t>(ch));
    ASSERT_TRUE(
        ops::bias_grad(cpu_ctx(), DataType::f64, layout, y.data(), db.data(), n, ch, pix).ok());
    const auto got = to_double(y), grad = to_double(db);
    std::vector<double> want_grad(static_cast<size_t>(ch), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < ch; ++c)
        for (int64_t p = 0; p < pix; ++p) {
          const int64_t off =
              layout == Layout::contiguous ? (i * ch + c) * pix + p : (i * pix + p) * ch + c;
          const double want = yv[static_cast<size_t>(off)] + bv[static_cast<size_t>(c)];
          EXPECT_DOUBLE_EQ(got[static_cast<size_t>(off)], want);
          want_grad[static_cast<size_t>(c)] += want;
        }
    expect_near_rel(grad, want_grad, 1e-13, 1e-13, "bias_grad");
  }
}

TEST(OpsCpu, AccumulateNarrowFillZero) {
  for (DataType t : {DataType::f32, DataType::f16, DataType::bf16, DataType::f64}) {
    const int64_t count = 37;
    const auto a = random_vec(static_cast<size_t>(count), 11);
    const auto b = random_vec(static_cast<size_t>(count), 12);
    Buf sa = make_buf(t, a), sb = make_buf(t, b);
    const DataType acc_t = t == DataType::f64 ? DataType::f64 : DataType::f32;
    Buf acc = make_buf(acc_t, random_vec(static_cast<size_t>(count), 13));
    ASSERT_TRUE(ops::accumulate(cpu_ctx(), t, sa.data(), acc.data(), count, true).ok());
    ASSERT_TRUE(ops::accumulate(cpu_ctx(), t, sb.data(), acc.data(), count, false).ok());
    Buf out = zeros(t, static_cast<size_t>(count));
    ASSERT_TRUE(ops::narrow(cpu_ctx(), t, acc.data(), out.data(), count).ok());
    const auto av = to_double(sa), bv = to_double(sb), accv = to_double(acc);
    const auto want = make_buf(t, accv);  // rounding acc to t
    EXPECT_EQ(out.bytes, want.bytes) << to_string(t);
    for (size_t i = 0; i < a.size(); ++i) {
      const double sum =
          acc_t == DataType::f64
              ? av[i] + bv[i]
              : static_cast<double>(static_cast<float>(av[i]) + static_cast<float>(bv[i]));
      EXPECT_EQ(accv[i], sum);
    }
    ASSERT_TRUE(ops::fill_zero(cpu_ctx(), out.data(), out.count * element_size(t)).ok());
    for (double v : to_double(out)) EXPECT_EQ(v, 0.0);
  }
}

// ---------------------------------------------------------------- reference convolution

struct ConvData {
  std::vector<double> x, w, y;
};

ConvData run_three(const ExecContext& ctx, const ConvShape& s, const ConvData& in) {
  ConvData out;
  Buf x = make_buf(s.dtype, in.x), w = make_buf(s.dtype, in.w), y = make_buf(s.dtype, in.y);
  Buf yo = zeros(s.dtype, in.y.size()), xo = zeros(s.dtype, in.x.size()),
      wo = zeros(s.dtype, in.w.size());
  EXPECT_TRUE(
      ops::reference_conv(ctx, s, Direction::forward, {x.data(), w.data(), yo.data()}).ok());
  EXPECT_TRUE(
      ops::reference_conv(ctx, s, Direction::backward_data, {xo.data(), w.data(), y.data()}).ok());
  EXPECT_TRUE(
      ops::reference_conv(ctx, s, Direction::backward_weight, {x.data(), wo.data(), y.data()})
          .ok());
  out.y = to_double(yo);
  out.x = to_double(xo);
  out.w = to_double(wo);
  return out;
}

ConvData random_data(const ConvShape& s, unsigned seed) {
  return {random_vec(static_cast<size_t>(s.x_elements()), seed),
          random_vec(static_cast<size_t>(s.w_elements()), seed + 1),
          random_vec(static_cast<size_t>(s.y_elements()), seed + 2)};
}

// partials [batch][count]; the running total starts from w or acc unless first.
std::vector<double> sum_in_order(DataType t, const std::vector<double>& partials, int64_t batch,
                                 int64_t count, const std::vector<double>& start, bool first) {
  std::vector<double> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    if (t == DataType::f64) {
      double acc = first ? 0.0 : start[static_cast<size_t>(i)];
      for (int64_t b = 0; b < batch; ++b) acc += partials[static_cast<size_t>(b * count + i)];
      out[static_cast<size_t>(i)] = acc;
    } else {
      float acc = first ? 0.0f : static_cast<float>(start[static_cast<size_t>(i)]);
      for (int64_t b = 0; b < batch; ++b) {
        acc += static_cast<float>(partials[static_cast<size_t>(b * count + i)]);
      }
      out[static_cast<size_t>(i)] = static_cast<double>(acc);
    }
  }
  return out;
}

TEST(OpsCpu, SumPartialsAddsSamplesInOrder) {
  for (DataType t : {DataType::f32, DataType::f16, DataType::bf16, DataType::f64}) {
    const std::string what = to_string(t);
    const int64_t batch = 7, count = 1001;
    const DataType acc_t = t == DataType::f64 ? DataType::f64 : DataType::f32;
    Buf parts = make_buf(t, random_vec(static_cast<size_t>(batch * count), 21));
    const std::vector<double> pv = to_double(parts);
    // Into w directly, in one call.
    Buf w = make_buf(t, random_vec(static_cast<size_t>(count), 22));
    ASSERT_TRUE(
        ops::sum_partials(cpu_ctx(), t, parts.data(), batch, count, w.data(), nullptr, true).ok());
    const std::vector<double> once = sum_in_order(t, pv, batch, count, {}, true);
    EXPECT_EQ(w.bytes, make_buf(t, once).bytes) << what;
    // Into the accumulator in three calls (3, 3, 1 samples): the same bits as one call, w left
    // alone until narrowed.
    Buf acc = make_buf(acc_t, random_vec(static_cast<size_t>(count), 23));
    Buf w2 = make_buf(t, random_vec(static_cast<size_t>(count), 24));
    const Buf w2_before = w2;
    const size_t row = static_cast<size_t>(count) * element_size(t);
    for (int64_t b0 = 0; b0 < batch; b0 += 3) {
      const int64_t nb = std::min<int64_t>(3, batch - b0);
      ASSERT_TRUE(ops::sum_partials(cpu_ctx(), t, parts.bytes.data() + size_t(b0) * row, nb, count,
                                    w2.data(), acc.data(), b0 == 0)
                      .ok());
    }
    EXPECT_EQ(w2.bytes, w2_before.bytes) << what;
    EXPECT_EQ(to_double(acc), sum_in_order(acc_t, pv, batch, count, {}, true)) << what;
    ASSERT_TRUE(ops::narrow(cpu_ctx(), t, acc.data(), w2.data(), count).ok());
    EXPECT_EQ(w2.bytes, w.bytes) << what;
    if (t == DataType::f32 || t == DataType::f64) {
      // Without an accumulator, the running total in w: the same bits again.
      Buf w3 = zeros(t, static_cast<size_t>(count));
      for (int64_t b0 = 0; b0 < batch; b0 += 3) {
        const int64_t nb = std::min<int64_t>(3, batch - b0);
        ASSERT_TRUE(ops::sum_partials(cpu_ctx(), t, parts.bytes.data() + size_t(b0) * row, nb,
                                      count, w3.data(), nullptr, b0 == 0)
                        .ok());
      }
      EXPECT_EQ(w3.bytes, w.bytes) << what;
    } else {
      // A running total in f16/bf16 would be rounded between calls: refused.
      EXPECT_EQ(
          ops::sum_partials(cpu_ctx(), t, parts.data(), batch, count, w.data(), nullptr, false)
              .code(),
          StatusCode::invalid_argument)
          << what;
    }
  }
  Buf x = zeros(DataType::f32, 4);
  EXPECT_EQ(
      ops::sum_partials(cpu_ctx(), DataType::f32, nullptr, 1, 4, x.data(), nullptr, true).code(),
      StatusCode::invalid_argument);
  EXPECT_EQ(
      ops::sum_partials(cpu_ctx(), DataType::f32, x.data(), -1, 4, x.data(), nullptr, true).code(),
      StatusCode::invalid_argument);
  EXPECT_EQ(
      ops::sum_partials(cpu_ctx(), DataType::f32, x.data(), 1, 4, nullptr, nullptr, true).code(),
      StatusCode::invalid_argument);
  // Nothing to add: zeros.
  Buf z = make_buf(DataType::f32, {1.0, 2.0});
  ASSERT_TRUE(
      ops::sum_partials(cpu_ctx(), DataType::f32, nullptr, 0, 2, z.data(), nullptr, true).ok());
  EXPECT_EQ(to_double(z), (std::vector<double>{0.0, 0.0}));
}

TEST(OpsCpu, ReferencePassesAreMutualAdjoints) {
  for (const Case& k : cases()) {
    const ConvShape s = shape_of(k, DataType::f64);
    const ConvData in = random_data(s, 20);
    const ConvData out = run_three(cpu_ctx(), s, in);
    const double fwd = dot(out.y, in.y);  // <fwd(x, w), dy>
    const double bwd = dot(in.x, out.x);  // <x, bwd_data(dy, w)>
    const double wgt = dot(in.w, out.w);  // <w, bwd_weight(x, dy)>
    const double scale = 1 + abs_dot(out.y, in.y);
    EXPECT_NEAR(fwd, bwd, 1e-12 * scale) << k.name;
    EXPECT_NEAR(fwd, wgt, 1e-12 * scale) << k.name;
    if (s.y_elements() > 0) {
      EXPECT_GT(std::fabs(fwd), 0.0) << k.name;
    }
  }
}

TEST(OpsCpu, ReferenceForwardMatchesNaiveLoops) {
  for (const Case& k : cases()) {
    const ConvShape s = shape_of(k, DataType::f64);
    const ConvData in = random_data(s, 30);
    Buf x = make_buf(DataType::f64, in.x), w = make_buf(DataType::f64, in.w);
    Buf y = zeros(DataType::f64, in.y.size());
    ASSERT_TRUE(
        ops::reference_conv(cpu_ctx(), s, Direction::forward, {x.data(), w.data(), y.data()}).ok());
    expect_near_rel(to_double(y), naive_forward(s, in.x, in.w), 1e-13, 1e-13, k.name);
  }
}

TEST(OpsCpu, ReferenceForwardHandWritten) {
  // 1 sample, 1 channel, 3x3 input, 2x2 filter, no padding: four products spelled out.
  Case k{"hand", 1, 1, 1, 1, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
  const ConvShape s = shape_of(k, DataType::f32);
  Buf x = make_buf(DataType::f32, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Buf w = make_buf(DataType::f32, {1, 0, -1, 2});
  Buf y = zeros(DataType::f32, 4);
  ASSERT_TRUE(
      ops::reference_conv(cpu_ctx(), s, Direction::forward, {x.data(), w.data(), y.data()}).ok());
  EXPECT_EQ(to_double(y), (std::vector<double>{1 - 4 + 10, 2 - 5 + 12, 4 - 7 + 16, 5 - 8 + 18}));
}

TEST(OpsCpu, ReferenceLowPrecisionCloseToF64) {
  for (DataType t : {DataType::f32, DataType::f16, DataType::bf16}) {
    for (const Case& k : cases()) {
      const ConvShape s64 = shape_of(k, DataType::f64);
      const ConvShape s = shape_of(k, t);
      ConvData in = random_data(s64, 40);
      // Round the inputs to t first so that only the summation differs.
      in.x = to_double(make_buf(t, in.x));
      in.w = to_double(make_buf(t, in.w));
      in.y = to_double(make_buf(t, in.y));
      const ConvData want = run_three(cpu_ctx(), s64, in);
      const ConvData got = run_three(cpu_ctx(), s, in);
      const double rtol = t == DataType::f32 ? 1e-5 : t == DataType::f16 ? 2e-3 : 1.6e-2;
      const double atol = t == DataType::f32 ? 1e-5 : 2e-2;
      expect_near_rel(got.y, want.y, rtol, atol, k.name + " fwd " + to_string(t));
      expect_near_rel(got.x, want.x, rtol, atol, k.name + " bwd_data " + to_string(t));
      expect_near_rel(got.w, want.w, rtol, atol * 4, k.name + " bwd_weight " + to_string(t));
    }
  }
}

TEST(OpsCpu, RejectsBadArguments) {
  Case k{"bad", 1, 2, 2, 1, {1, 4, 4}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}};
  const ConvShape s = shape_of(k, DataType::f32);
  ExecContext no_caps;
  Buf x = zeros(DataType::f32, static_cast<size_t>(s.x_elements()));
  Buf col = zeros(DataType::f32, static_cast<size_t>(col_size(s, 1)));
  EXPECT_EQ(ops::im2col(no_caps, s, x.data(), col.data(), 0, 1, sample_major(s)).code(),
            StatusCode::invalid_argument);
  EXPECT_EQ(ops::im2col(cpu_ctx(), s, nullptr, col.data(), 0, 1, sample_major(s)).code(),
            StatusCode::invalid_argument);
  EXPECT_EQ(ops::col2im(cpu_ctx(), s, col.data(), x.data(), 1, 1, sample_major(s)).code(),
            StatusCode::invalid_argument);
  EXPECT_EQ(
      ops::reference_conv(cpu_ctx(), s, Direction::backward_bias, {x.data(), x.data(), x.data()})
          .code(),
      StatusCode::invalid_argument);
  EXPECT_EQ(
      ops::reference_conv(cpu_ctx(), s, Direction::forward, {x.data(), nullptr, x.data()}).code(),
      StatusCode::invalid_argument);
  EXPECT_EQ(ops::permute_021(cpu_ctx(), DataType::f32, nullptr, x.data(), 1, 2, 3).code(),
            StatusCode::invalid_argument);
  EXPECT_EQ(ops::accumulate(cpu_ctx(), DataType::f32, x.data(), x.data(), -1, true).code(),
            StatusCode::invalid_argument);
  EXPECT_EQ(ops::fill_zero(cpu_ctx(), nullptr, 4).code(), StatusCode::invalid_argument);
  EXPECT_TRUE(ops::fill_zero(cpu_ctx(), nullptr, 0).ok());
  Capabilities gpu = g_host;
  gpu.kind = DeviceKind::gpu;
  ExecContext gctx;
  gctx.caps = &gpu;
  if (!gpu_support_compiled()) {
    EXPECT_EQ(ops::fill_zero(gctx, x.data(), 4).code(), StatusCode::unsupported);
  }
}

// ---------------------------------------------------------------- GPU against the CPU twins

class DevBuf {
 public:
  explicit DevBuf(const Buf& b) : bytes_(b.bytes.size()) {
    EXPECT_TRUE(gpu_malloc(&p_, bytes_).ok());
    EXPECT_TRUE(gpu_memcpy_to_device(p_, b.bytes.data(), bytes_).ok());
  }
  ~DevBuf() { (void)gpu_free(p_); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void* get() { return p_; }
  Buf download(DataType t, size_t count) {
    Buf b;
    b.t = t;
    b.count = count;
    b.bytes.resize(bytes_);
    EXPECT_TRUE(gpu_synchronize().ok());
    EXPECT_TRUE(gpu_memcpy_to_host(b.bytes.data(), p_, bytes_).ok());
    return b;
  }

 private:
  void* p_ = nullptr;
  size_t bytes_;
};

class OpsGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (gpu_device_count() <= 0) GTEST_SKIP() << "no GPU visible";
    ASSERT_TRUE(query_gpu_capabilities(0, &caps_).ok());
    ctx_.caps = &caps_;
  }
  Capabilities caps_;
  ExecContext ctx_;
};

const DataType kAllTypes[] = {DataType::f32, DataType::f16, DataType::bf16, DataType::f64};

TEST_F(OpsGpu, Im2colAndCol2imMatchCpu) {
  for (DataType t : kAllTypes) {
    for (const Case& k : cases()) {
      const ConvShape s = shape_of(k, t);
      const int64_t n0 = s.n > 1 ? 1 : 0, nb = s.n - n0;
      for (int order = 0; order < 2; ++order) {
        const ops::ColStrides cs = order == 0 ? sample_major(s) : group_major(s, nb);
        const std::string what = k.name + " " + to_string(t) + " order " + std::to_string(order);
        Buf x = make_buf(t, random_vec(static_cast<size_t>(s.x_elements()), 50));
        Buf col = make_buf(t, random_vec(static_cast<size_t>(col_size(s, nb)), 51));
        Buf col_cpu = col;
        ASSERT_TRUE(ops::im2col(cpu_ctx(), s, x.data(), col_cpu.data(), n0, nb, cs).ok());
        DevBuf dx(x), dcol(col);
        ASSERT_TRUE(ops::im2col(ctx_, s, dx.get(), dcol.get(), n0, nb, cs).ok()) << what;
        EXPECT_EQ(dcol.download(t, col.count).bytes, col_cpu.bytes) << what;

        Buf x_cpu = x;
        ASSERT_TRUE(ops::col2im(cpu_ctx(), s, col.data(), x_cpu.data(), n0, nb, cs).ok());
        DevBuf dcol2(col), dx2(x);
        ASSERT_TRUE(ops::col2im(ctx_, s, dcol2.get(), dx2.get(), n0, nb, cs).ok()) << what;
        // Both sum each element's terms in tap order with the same accumulator type.
        EXPECT_EQ(dx2.download(t, x.count).bytes, x_cpu.bytes) << what;
      }
    }
  }
}

TEST_F(OpsGpu, ReferenceConvMatchesCpu) {
  for (DataType t : kAllTypes) {
    for (const Case& k : cases()) {
      const ConvShape s = shape_of(k, t);
      ConvData in = random_data(shape_of(k, DataType::f64), 60);
      const ConvData want = run_three(cpu_ctx(), s, in);
      Buf x = make_buf(t, in.x), w = make_buf(t, in.w), y = make_buf(t, in.y);
      DevBuf dx(x), dw(w), dy(y), dyo(y), dxo(x), dwo(w);
      ASSERT_TRUE(
          ops::reference_conv(ctx_, s, Direction::forward, {dx.get(), dw.get(), dyo.get()}).ok());
      ASSERT_TRUE(
          ops::reference_conv(ctx_, s, Direction::backward_data, {dxo.get(), dw.get(), dy.get()})
              .ok());
      ASSERT_TRUE(
          ops::reference_conv(ctx_, s, Direction::backward_weight, {dx.get(), dwo.get(), dy.get()})
              .ok());
      // Same summation order; only fused multiply-adds may differ, so allow one rounding of t.
      const double rtol = t == DataType::f64   ? 1e-12
                          : t == DataType::f32 ? 1e-5
                          : t == DataType::f16 ? 1e-3
                                               : 8e-3;
      const std::string what = k.name + " " + to_string(t);
      expect_near_rel(to_double(dyo.download(t, y.count)), want.y, rtol, rtol, what + " fwd");
      expect_near_rel(to_double(dxo.download(t, x.count)), want.x, rtol, rtol, what + " bwd_data");
      expect_near_rel(to_double(dwo.download(t, w.count)), want.w, rtol, rtol * 4,
                      what + " bwd_weight");
    }
  }
}

TEST_F(OpsGpu, SmallOpsMatchCpu) {
  for (DataType t : kAllTypes) {
    const std::string what = to_string(t);
    for (int64_t c : {1, 3, 70}) {
      const int64_t a = 37, b = 29;
      Buf src = make_buf(t, random_vec(static_cast<size_t>(a * b * c), 70));
      Buf dst_cpu = zeros(t, src.count);
      ASSERT_TRUE(ops::permute_021(cpu_ctx(), t, src.data(), dst_cpu.data(), a, b, c).ok());
      DevBuf ds(src), dd(dst_cpu);
      ASSERT_TRUE(ops::permute_021(ctx_, t, ds.get(), dd.get(), a, b, c).ok());
      EXPECT_EQ(dd.download(t, src.count).bytes, dst_cpu.bytes) << what;
    }
    for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
      for (int64_t ch : {1, 5, 300}) {
        const int64_t n = 3, pix = 1000;
        Buf y = make_buf(t, random_vec(static_cast<size_t>(n * ch * pix), 71));
        Buf bias = make_buf(t, random_vec(static_cast<size_t>(ch), 72));
        Buf y_cpu = y;
        ASSERT_TRUE(
            ops::bias_add(cpu_ctx(), t, layout, y_cpu.data(), bias.data(), n, ch, pix).ok());
        DevBuf dy(y), db(bias);
        ASSERT_TRUE(ops::bias_add(ctx_, t, layout, dy.get(), db.get(), n, ch, pix).ok());
        EXPECT_EQ(dy.download(t, y.count).bytes, y_cpu.bytes) << what;

        Buf g_cpu = zeros(t, static_cast<size_t>(ch));
        ASSERT_TRUE(ops::bias_grad(cpu_ctx(), t, layout, y.data(), g_cpu.data(), n, ch, pix).ok());
        DevBuf dg(g_cpu), dy2(y);
        ASSERT_TRUE(ops::bias_grad(ctx_, t, layout, dy2.get(), dg.get(), n, ch, pix).ok());
        const Buf g1 = dg.download(t, g_cpu.count);
        const double tol = t == DataType::f64 ? 1e-11 : t == DataType::f32 ? 1e-3 : 0.3;
        expect_near_rel(to_double(g1), to_double(g_cpu), tol, tol, what + " bias_grad");
        // Deterministic: a second run gives the same bits.
        ASSERT_TRUE(ops::bias_grad(ctx_, t, layout, dy2.get(), dg.get(), n, ch, pix).ok());
        EXPECT_EQ(dg.download(t, g_cpu.count).bytes, g1.bytes) << what;
      }
    }
    const int64_t count = 1001;
    const DataType acc_t = t == DataType::f64 ? DataType::f64 : DataType::f32;
    Buf s1 = make_buf(t, random_vec(static_cast<size_t>(count), 73));
    Buf s2 = make_buf(t, random_vec(static_cast<size_t>(count), 74));
    Buf acc = make_buf(acc_t, random_vec(static_cast<size_t>(count), 75));
    Buf acc_cpu = acc;
    ASSERT_TRUE(ops::accumulate(cpu_ctx(), t, s1.data(), acc_cpu.data(), count, true).ok());
    ASSERT_TRUE(ops::accumulate(cpu_ctx(), t, s2.data(), acc_cpu.data(), count, false).ok());
    Buf out_cpu = zeros(t, static_cast<size_t>(count));
    ASSERT_TRUE(ops::narrow(cpu_ctx(), t, acc_cpu.data(), out_cpu.data(), count).ok());
    DevBuf d1(s1), d2(s2), dacc(acc), dout(out_cpu);
    ASSERT_TRUE(ops::fill_zero(ctx_, dout.get(), out_cpu.count * element_size(t)).ok());
    ASSERT_TRUE(ops::accumulate(ctx_, t, d1.get(), dacc.get(), count, true).ok());
    ASSERT_TRUE(ops::accumulate(ctx_, t, d2.get(), dacc.get(), count, false).ok());
    ASSERT_TRUE(ops::narrow(ctx_, t, dacc.get(), dout.get(), count).ok());
    EXPECT_EQ(dacc.download(acc_t, acc.count).bytes, acc_cpu.bytes) << what;
    EXPECT_EQ(dout.download(t, out_cpu.count).bytes, out_cpu.bytes) << what;
  }
}

TEST_F(OpsGpu, SumPartialsMatchesCpu) {
  for (DataType t : kAllTypes) {
    const std::string what = to_string(t);
    const DataType acc_t = t == DataType::f64 ? DataType::f64 : DataType::f32;
    // Enough elements that the grid-stride loop wraps.
    const int64_t batch = 9, count = int64_t(1) << 20;
    const int64_t first_part = 4;
    Buf parts = make_buf(t, random_vec(static_cast<size_t>(batch * count), 90));
    Buf acc_cpu = zeros(acc_t, static_cast<size_t>(count));
    Buf w_cpu = zeros(t, static_cast<size_t>(count));
    const size_t split = size_t(first_part) * size_t(count) * element_size(t);
    ASSERT_TRUE(ops::sum_partials(cpu_ctx(), t, parts.data(), first_part, count, w_cpu.data(),
                                  acc_cpu.data(), true)
                    .ok());
    ASSERT_TRUE(ops::sum_partials(cpu_ctx(), t, parts.bytes.data() + split, batch - first_part,
                                  count, w_cpu.data(), acc_cpu.data(), false)
                    .ok());
    ASSERT_TRUE(
        ops::sum_partials(cpu_ctx(), t, parts.data(), batch, count, w_cpu.data(), nullptr, true)
            .ok());
    DevBuf dparts(parts), dacc(acc_cpu), dw(w_cpu);
    ASSERT_TRUE(ops::fill_zero(ctx_, dacc.get(), acc_cpu.count * element_size(acc_t)).ok());
    ASSERT_TRUE(ops::fill_zero(ctx_, dw.get(), w_cpu.count * element_size(t)).ok());
    ASSERT_TRUE(
        ops::sum_partials(ctx_, t, dparts.get(), first_part, count, dw.get(), dacc.get(), true)
            .ok());
    ASSERT_TRUE(ops::sum_partials(ctx_, t, static_cast<unsigned char*>(dparts.get()) + split,
                                  batch - first_part, count, dw.get(), dacc.get(), false)
                    .ok());
    EXPECT_EQ(dacc.download(acc_t, acc_cpu.count).bytes, acc_cpu.bytes) << what;
    ASSERT_TRUE(
        ops::sum_partials(ctx_, t, dparts.get(), batch, count, dw.get(), nullptr, true).ok());
    EXPECT_EQ(dw.download(t, w_cpu.count).bytes, w_cpu.bytes) << what;
  }
}

TEST_F(OpsGpu, LargerIm2colMatchesCpu) {
  // Enough rows and pixels that the kernels' grid-stride loops wrap.
  Case k{"big", 4, 64, 8, 1, {1, 56, 56}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}};
  for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
    k.layout = layout;
    const ConvShape s = shape_of(k, DataType::f32);
    const auto cs = sample_major(s);
    Buf x = make_buf(DataType::f32, random_vec(static_cast<size_t>(s.x_elements()), 80));
    Buf col = zeros(DataType::f32, static_cast<size_t>(col_size(s, s.n)));
    Buf x_cpu = x;
    ASSERT_TRUE(ops::im2col(cpu_ctx(), s, x.data(), col.data(), 0, s.n, cs).ok());
    ASSERT_TRUE(ops::col2im(cpu_ctx(), s, col.data(), x_cpu.data(), 0, s.n, cs).ok());
    DevBuf dx(x), dcol(col);
    ASSERT_TRUE(ops::fill_zero(ctx_, dcol.get(), col.count * 4).ok());
    ASSERT_TRUE(ops::im2col(ctx_, s, dx.get(), dcol.get(), 0, s.n, cs).ok());
    EXPECT_EQ(dcol.download(DataType::f32, col.count).bytes, col.bytes);
    ASSERT_TRUE(ops::col2im(ctx_, s, dcol.get(), dx.get(), 0, s.n, cs).ok());
    EXPECT_EQ(dx.download(DataType::f32, x.count).bytes, x_cpu.bytes);
  }
}

}  // namespace
}  // namespace gemmconv
