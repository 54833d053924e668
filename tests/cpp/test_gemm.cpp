// Tests of the GEMM providers against a naive loop, and of check_gemm_desc.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/half.h"
#include "gemmconv/device.h"
#include "gemmconv/gemm.h"
#include "kernels/dispatch.h"
#include "tester.h"

namespace gemmconv {
namespace {

// Values stored in type t, kept as doubles that are exactly representable in t.
struct Mat {
  DataType t;
  std::vector<double> v;
  std::vector<unsigned char> bytes() const {
    std::vector<unsigned char> b(v.size() * element_size(t) + 1);
    if (v.empty()) return b;
    dispatch_dtype(t, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using A = typename Elem<T>::acc;
      T* p = reinterpret_cast<T*>(b.data());
      for (size_t i = 0; i < v.size(); ++i) p[i] = Elem<T>::store(static_cast<A>(v[i]));
      return 0;
    });
    return b;
  }
};

std::vector<double> from_bytes(DataType t, const std::vector<unsigned char>& b, size_t n) {
  std::vector<double> v(n);
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = reinterpret_cast<const T*>(b.data());
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<double>(Elem<T>::load(p[i]));
    return 0;
  });
  return v;
}

double round_to(DataType t, double x) {
  Mat m{t, {x}};
  return from_bytes(t, m.bytes(), 1)[0];
}

Mat random_mat(DataType t, size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  Mat m{t, std::vector<double>(n)};
  for (auto& e : m.v) e = round_to(t, dist(gen));
  return m;
}

using gemmconv::testing::unit_roundoff;  // the harness's (tester.h)

struct Problem {
  bool ta, tb;
  int64_t m, n, k;
  double alpha, beta;
  int64_t batch;
  bool share_a, share_b;  // stride 0
  int64_t pad;            // extra leading-dimension elements
};

// What a GEMM call must produce, from the stored inputs, plus an error bound per element.
struct Expect {
  std::vector<double> c;
  std::vector<double> bound;
};

struct Operands {
  GemmDesc d;
  Mat a, b, c;
};

Operands make_operands(DataType t, const Problem& p, unsigned seed) {
  Operands o;
  GemmDesc& d = o.d;
  d.dtype = t;
  d.trans_a = p.ta;
  d.trans_b = p.tb;
  d.m = p.m;
  d.n = p.n;
  d.k = p.k;
  d.alpha = p.alpha;
  d.beta = p.beta;
  d.batch = p.batch;
  const int64_t a_rows = p.ta ? p.k : p.m, a_cols = p.ta ? p.m : p.k;
  const int64_t b_rows = p.tb ? p.n : p.k, b_cols = p.tb ? p.k : p.n;
  d.lda = std::max<int64_t>(1, a_cols) + p.pad;
  d.ldb = std::max<int64_t>(1, b_cols) + p.pad;
  d.ldc = std::max<int64_t>(1, p.n) + p.pad;
  d.stride_a = p.share_a ? 0 : a_rows * d.lda + p.pad;
  d.stride_b = p.share_b ? 0 : b_rows * d.ldb + 3;
  d.stride_c = p.m * d.ldc + 1;
  o.a = random_mat(t,
                   static_cast<size_t>((p.share_a ? 1 : p.batch) *
                                       std::max<int64_t>(d.stride_a, a_rows * d.lda)),
                   seed);
  o.b = random_mat(t,
                   static_cast<size_t>((p.share_b ? 1 : p.batch) *
                                       std::max<int64_t>(d.stride_b, b_rows * d.ldb)),
                   seed + 1);
  o.c = random_mat(t, static_cast<size_t>(p.batch * d.stride_c), seed + 2);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Padding columns of A and B hold NaN: reading them would poison the result.
  for (int64_t bi = 0; bi < (p.share_a ? 1 : p.batch); ++bi)
    for (int64_t r = 0; r < a_rows; ++r)
      for (int64_t q = a_cols; q < d.lda; ++q)
        o.a.v[static_cast<size_t>(bi * d.stride_a + r * d.lda + q)] = nan;
  for (int64_t bi = 0; bi < (p.share_b ? 1 : p.batch); ++bi)
    for (int64_t r = 0; r < b_rows; ++r)
      for (int64_t q = b_cols; q < d.ldb; ++q)
        o.b.v[static_cast<size_t>(bi * d.stride_b + r * d.ldb + q)] = nan;
  // With beta == 0, C must not be read: make it NaN.
  if (p.beta == 0.0) {
    for (int64_t bi = 0; bi < p.batch; ++bi)
      for (int64_t i = 0; i < p.m; ++i)
        for (int64_t j = 0; j < p.n; ++j)
          o.c.v[static_cast<size_t>(bi * d.stride_c + i * d.ldc + j)] = nan;
  }
  return o;
}

Expect naive(const Operands& o) {
  const GemmDesc& d = o.d;
  Expect e{o.c.v, std::vector<double>(o.c.v.size(), 0.0)};
  const double u_acc =
      d.dtype == DataType::f64 ? unit_roundoff(DataType::f64) : unit_roundoff(DataType::f32);
  const double u_out = unit_roundoff(d.dtype);
  for (int64_t bi = 0; bi < d.batch; ++bi) {
    for (int64_t i = 0; i < d.m; ++i) {
      for (int64_t j = 0; j < d.n; ++j) {
        double acc = 0, mag = 0;
        for (int64_t q = 0; q < d.k; ++q) {
          const double av = d.trans_a ? o.a.v[static_cast<size_t>(bi * d.stride_a + q * d.lda + i)]
                                      : o.a.v[static_cast<size_t>(bi * d.stride_a + i * d.lda + q)];
          const double bv = d.trans_b ? o.b.v[static_cast<size_t>(bi * d.stride_b + j * d.ldb + q)]
                                      : o.b.v[static_cast<size_t>(bi * d.stride_b + q * d.ldb + j)];
          acc += av * bv;
          mag += std::fabs(av * bv);
        }
        const size_t ci = static_cast<size_t>(bi * d.stride_c + i * d.ldc + j);
        const double cin = d.beta == 0.0 ? 0.0 : d.beta * o.c.v[ci];
        const double r = d.alpha * acc + cin;
        e.c[ci] = r;
        e.bound[ci] = 1e-300 + u_out * std::fabs(r) +
                      4.0 * (static_cast<double>(d.k) + 2) * u_acc *
                          (std::fabs(d.alpha) * mag + std::fabs(cin));
      }
    }
  }
  return e;
}

void check_result(const Operands& o, const std::vector<double>& got, const std::string& what) {
  const Expect e = naive(o);
  ASSERT_EQ(got.size(), e.c.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(e.c[i])) {  // padding of C that held NaN is never written here
      continue;
    }
    ASSERT_FALSE(std::isnan(got[i])) << what << " at " << i;
    ASSERT_LE(std::fabs(got[i] - e.c[i]), e.bound[i]) << what << " at " << i << " want " << e.c[i];
  }
}

std::vector<Problem> problems() {
  std::vector<Problem> v;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      v.push_back({ta, tb, 7, 5, 9, 1.0, 0.0, 1, false, false, 0});
      v.push_back({ta, tb, 13, 17, 33, 0.5, 1.0, 3, false, false, 2});
      v.push_back({ta, tb, 4, 6, 5, -1.5, 0.25, 2, true, false, 1});
      v.push_back({ta, tb, 6, 3, 8, 2.0, 0.0, 3, false, true, 0});
    }
  v.push_back({false, false, 5, 4, 0, 1.0, 0.5, 2, false, false, 0});  // k = 0: C = beta * C
  v.push_back({false, false, 5, 4, 0, 1.0, 0.0, 1, false, false, 0});  // k = 0, beta = 0: zeros
  v.push_back({false, true, 0, 4, 3, 1.0, 0.0, 1, false, false, 0});   // empty
  v.push_back({true, false, 64, 48, 130, 1.0, 0.0, 2, false, false, 0});
  return v;
}

const DataType kTypes[] = {DataType::f32, DataType::f16, DataType::bf16, DataType::f64};

std::string describe(DataType t, const Problem& p) {
  return std::string(to_string(t)) + " ta=" + std::to_string(p.ta) + " tb=" + std::to_string(p.tb) +
         " m=" + std::to_string(p.m) + " n=" + std::to_string(p.n) + " k=" + std::to_string(p.k) +
         " alpha=" + std::to_string(p.alpha) + " beta=" + std::to_string(p.beta) +
         " batch=" + std::to_string(p.batch) + " share_a=" + std::to_string(p.share_a) +
         " share_b=" + std::to_string(p.share_b);
}

// ---------------------------------------------------------------- check_gemm_desc

GemmDesc valid_desc() {
  static float a[64], b[64], c[64];
  GemmDesc d;
  d.m = 2;
  d.n = 3;
  d.k = 4;
  d.a = a;
  d.lda = 4;
  d.b = b;
  d.ldb = 3;
  d.c = c;
  d.ldc = 3;
  return d;
}

void expect_bad(const GemmDesc& d, const std::string& needle) {
  const Status st = check_gemm_desc(d);
  EXPECT_EQ(st.code(), StatusCode::invalid_argument) << needle;
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
}

TEST(GemmDesc, AcceptsValidAndRejectsBad) {
  EXPECT_TRUE(check_gemm_desc(valid_desc()).ok());
  GemmDesc d = valid_desc();
  d.m = -1;
  expect_bad(d, "m=-1");
  d = valid_desc();
  d.k = -2;
  expect_bad(d, "k=-2");
  d = valid_desc();
  d.batch = 0;
  expect_bad(d, "batch=0");
  d = valid_desc();
  d.lda = 3;
  expect_bad(d, "lda=3");
  d = valid_desc();
  d.trans_a = true;  // A stored k x m: lda >= m = 2, so 4 is fine, 1 is not
  EXPECT_TRUE(check_gemm_desc(d).ok());
  d.lda = 1;
  expect_bad(d, "lda=1");
  d = valid_desc();
  d.trans_b = true;  // B stored n x k: ldb >= 4
  expect_bad(d, "ldb=3");
  d = valid_desc();
  d.ldc = 2;
  expect_bad(d, "ldc=2");
  d = valid_desc();
  d.a = nullptr;
  expect_bad(d, "A is null");
  d = valid_desc();
  d.c = nullptr;
  expect_bad(d, "C is null");
  d = valid_desc();
  d.stride_b = -1;
  expect_bad(d, "stride_b=-1");
  d = valid_desc();
  d.batch = 2;
  expect_bad(d, "stride_c=0");
  d.stride_c = 6;
  EXPECT_TRUE(check_gemm_desc(d).ok());
  d = valid_desc();
  d.k = 0;
  d.a = nullptr;
  d.b = nullptr;
  d.lda = 1;
  EXPECT_TRUE(check_gemm_desc(d).ok());  // nothing to read
}

// ---------------------------------------------------------------- CPU provider

TEST(GemmCpu, MatchesNaiveLoop) {
  auto prov = make_cpu_gemm_provider();
  ASSERT_NE(prov, nullptr);
  EXPECT_EQ(prov->device(), DeviceKind::cpu);
  unsigned seed = 100;
  for (DataType t : kTypes) {
    for (const Problem& p : problems()) {
      Operands o = make_operands(t, p, seed += 3);
      auto a = o.a.bytes(), b = o.b.bytes(), c = o.c.bytes();
      o.d.a = a.data();
      o.d.b = b.data();
      o.d.c = c.data();
      const Status st = prov->gemm(o.d, nullptr);
      ASSERT_TRUE(st.ok()) << st.message() << " " << describe(t, p);
      check_result(o, from_bytes(t, c, o.c.v.size()), describe(t, p));
    }
  }
}

TEST(GemmCpu, RejectsBadDescriptor) {
  auto prov = make_cpu_gemm_provider();
  ASSERT_NE(prov, nullptr);
  GemmDesc d = valid_desc();
  d.ldb = 1;
  EXPECT_EQ(prov->gemm(d, nullptr).code(), StatusCode::invalid_argument);
}

TEST(GemmGpuStub, NullWithoutGpuBuild) {
  if (gpu_support_compiled()) GTEST_SKIP() << "GPU build: covered by GemmGpu";
  EXPECT_EQ(make_gpu_gemm_provider(), nullptr);
  EXPECT_EQ(gpu_device_count(), 0);
}

// ---------------------------------------------------------------- GPU provider

struct DevMem {
  void* p = nullptr;
  explicit DevMem(const std::vector<unsigned char>& host) {
    EXPECT_TRUE(gpu_malloc(&p, host.size()).ok());
    EXPECT_TRUE(gpu_memcpy_to_device(p, host.data(), host.size()).ok());
  }
  ~DevMem() { (void)gpu_free(p); }
  DevMem(const DevMem&) = delete;
  DevMem& operator=(const DevMem&) = delete;
};

TEST(GemmGpu, MatchesNaiveLoop) {
  if (gpu_device_count() <= 0) GTEST_SKIP() << "no GPU visible";
  auto prov = make_gpu_gemm_provider(false);
  if (prov == nullptr) GTEST_SKIP() << "this build has no GPU BLAS";
  EXPECT_EQ(prov->device(), DeviceKind::gpu);
  unsigned seed = 500;
  for (DataType t : kTypes) {
    for (const Problem& p : problems()) {
      Operands o = make_operands(t, p, seed += 3);
      auto a = o.a.bytes(), b = o.b.bytes(), c = o.c.bytes();
      DevMem da(a), db(b), dc(c);
      o.d.a = da.p;
      o.d.b = db.p;
      o.d.c = dc.p;
      const Status st = prov->gemm(o.d, nullptr);
      ASSERT_TRUE(st.ok()) << st.message() << " " << describe(t, p);
      ASSERT_TRUE(gpu_synchronize().ok());
      ASSERT_TRUE(gpu_memcpy_to_host(c.data(), dc.p, c.size()).ok());
      check_result(o, from_bytes(t, c, o.c.v.size()), describe(t, p));
    }
  }
}

TEST(GemmGpu, RejectsBadDescriptorAndHugeDims) {
  if (gpu_device_count() <= 0) GTEST_SKIP() << "no GPU visible";
  auto prov = make_gpu_gemm_provider(false);
  if (prov == nullptr) GTEST_SKIP() << "this build has no GPU BLAS";
  GemmDesc d = valid_desc();
  d.ldc = 1;
  EXPECT_EQ(prov->gemm(d, nullptr).code(), StatusCode::invalid_argument);
  d = valid_desc();
  d.m = int64_t(1) << 32;  // cuBLAS/rocBLAS take int dims
  d.a = nullptr;
  d.k = 0;
  d.lda = 1;
  const Status st = prov->gemm(d, nullptr);
  EXPECT_EQ(st.code(), StatusCode::invalid_argument);
  EXPECT_NE(st.message().find("m="), std::string::npos) << st.message();
}

}  // namespace
}  // namespace gemmconv
