// Host+device fp16/bf16 <-> fp32 conversions (round-to-nearest-even) and the element traits.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define GEMMCONV_HD __host__ __device__
#if !defined(__HIPCC__)
#include <cuda_fp16.h>
#endif
#else
#define GEMMCONV_HD
#endif

namespace gemmconv {

// Storage types with the bit layout of IEEE binary16 and bfloat16: plain structs, so that host,
// CUDA and HIP code share one definition independent of the vendor's half types.
struct f16_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};

GEMMCONV_HD inline uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

GEMMCONV_HD inline float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

// Device code uses the hardware conversions (also round-to-nearest-even); the host and the
// tests use the bit-exact software version below, and the GPU tests compare the two.
GEMMCONV_HD inline uint16_t float_to_half_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#elif defined(__HIP_DEVICE_COMPILE__)
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t b;
  memcpy(&b, &h, sizeof b);
  return b;
#else
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) {  // inf stays inf; NaN becomes a quiet NaN
    return static_cast<uint16_t>(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
  }
  if (a >= 0x477ff000u) {  // >= 65520: the tie above 65504 rounds (to even) to inf
    return static_cast<uint16_t>(sign | 0x7c00u);
  }
  if (a < 0x38800000u) {  // below 2^-14: a subnormal half or zero
    const uint32_t e = a >> 23;
    if (e < 102) return static_cast<uint16_t>(sign);  // < 2^-25 rounds to zero
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // value / 2^-24 = mant >> shift
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (q & 1u))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  const uint32_t r = a - 0x38000000u;  // rebias the exponent from 127 to 15
  uint32_t q = r >> 13;
  const uint32_t rem = r & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;
  return static_cast<uint16_t>(sign | q);
#endif
}

GEMMCONV_HD inline float half_bits_to_float(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#elif defined(__HIP_DEVICE_COMPILE__)
  _Float16 v;
  memcpy(&v, &h, sizeof v);
  return static_cast<float>(v);
#else
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0x1f) return bits_float(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
    return sign ? -v : v;
  }
  return bits_float(sign | ((e + 112) << 23) | (m << 13));
#endif
}

GEMMCONV_HD inline uint16_t float_to_bf16_bits(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

GEMMCONV_HD inline float bf16_bits_to_float(uint16_t b) {
  return bits_float(static_cast<uint32_t>(b) << 16);
}

// Element traits: the accumulation type and the load/store conversions.
template <class T>
struct Elem;

template <>
struct Elem<float> {
  using acc = float;
  GEMMCONV_HD static float load(float v) { return v; }
  GEMMCONV_HD static float store(float a) { return a; }
};

template <>
struct Elem<double> {
  using acc = double;
  GEMMCONV_HD static double load(double v) { return v; }
  GEMMCONV_HD static double store(double a) { return a; }
};

template <>
struct Elem<f16_t> {
  using acc = float;
  GEMMCONV_HD static float load(f16_t v) { return half_bits_to_float(v.bits); }
  GEMMCONV_HD static f16_t store(float a) { return f16_t{float_to_half_bits(a)}; }
};

template <>
struct Elem<bf16_t> {
  using acc = float;
  GEMMCONV_HD static float load(bf16_t v) { return bf16_bits_to_float(v.bits); }
  GEMMCONV_HD static bf16_t store(float a) { return bf16_t{float_to_bf16_bits(a)}; }
};

}  // namespace gemmconv
