// ConvProblem: validation and its messages, output-size algebra, the canonical shape, equality.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "catalog.h"
#include "gemmconv/engine.h"
#include "gemmconv/problem.h"

namespace gemmconv {
namespace testing {
namespace {

using B = ProblemBuilder;

ConvProblem base2d() { return B(2).channels(4, 6).input({8, 9}).filter({3}).pad({1}); }

// The problem is rejected as invalid_problem and the message contains every fragment.
void expect_rejected(const ConvProblem& p, const std::vector<std::string>& fragments) {
  const Status s = validate(p);
  EXPECT_EQ(s.code(), StatusCode::invalid_problem) << to_string(p) << ": " << s.message();
  for (const std::string& f : fragments) {
    EXPECT_NE(s.message().find(f), std::string::npos)
        << "message '" << s.message() << "' lacks '" << f << "'";
  }
}

TEST(ProblemValidate, AcceptsValidProblems) {
  EXPECT_TRUE(validate(base2d()).ok()) << validate(base2d()).message();
  EXPECT_TRUE(validate(B(2).batch(0).channels(3, 4).input({5}).filter({3})).ok());
  EXPECT_TRUE(validate(B(1).channels(2, 2).input({5}).filter({5})).ok());  // kernel == input
  EXPECT_TRUE(validate(B(2).transposed().channels(2, 4).input({1}).filter({1})).ok());
  // Output padding may reach the stride when the dilation is larger, and conversely.
  EXPECT_TRUE(
      validate(
          B(2).transposed().channels(2, 2).input({4}).filter({3}).dilation({3}).output_padding({2}))
          .ok());
  EXPECT_TRUE(
      validate(
          B(2).transposed().channels(2, 2).input({4}).filter({3}).stride({3}).output_padding({2}))
          .ok());
  for (const CatalogEntry& e : catalog()) {
    EXPECT_TRUE(validate(e.problem).ok()) << e.name << ": " << validate(e.problem).message();
  }
}

TEST(ProblemValidate, GroupsMustDivideChannels) {
  expect_rejected(B(2).channels(6, 8).groups(4).input({5}).filter({3}), {"groups", "4", "6"});
  expect_rejected(B(2).channels(8, 6).groups(4).input({5}).filter({3}), {"groups", "4", "6"});
  expect_rejected(B(2).transposed().channels(4, 6).groups(4).input({5}).filter({3}),
                  {"groups", "4", "6"});
}

TEST(ProblemValidate, NonPositiveGroups) {
  expect_rejected(B(2).channels(4, 4).groups(0).input({5}).filter({3}), {"groups", "0"});
  expect_rejected(B(2).channels(4, 4).groups(-2).input({5}).filter({3}), {"groups", "-2"});
}

TEST(ProblemValidate, KernelLargerThanPaddedInput) {
  // PyTorch: "Calculated padded input size per channel: (2 x 2). Kernel size: (3 x 3). Kernel
  // size can't be greater than actual input size".
  expect_rejected(B(2).channels(3, 4).input({2}).filter({3}),
                  {"(2 x 2)", "(3 x 3)", "Kernel size can't be greater than actual input size"});
  // Dilation enlarges the kernel: 3 taps at dilation 3 span 7 > 5 + 1.
  expect_rejected(
      B(2).channels(3, 4).input({5, 9}).filter({3}).dilation({3}).pad({0, 1}).pad_end({1, 1}),
      {"(6 x 11)", "(7 x 7)"});
  expect_rejected(B(1).channels(1, 1).input({4}).filter({6}).pad_begin({1}), {"(5)", "(6)"});
}

TEST(ProblemValidate, NonPositiveStrideAndDilation) {
  expect_rejected(B(2).channels(3, 4).input({5}).filter({3}).stride({1, 0}),
                  {"non-positive stride is not supported"});
  expect_rejected(B(3).channels(3, 4).input({5}).filter({3}).stride({-1, 1, 1}),
                  {"non-positive stride is not supported", "-1"});
  expect_rejected(B(2).channels(3, 4).input({5}).filter({3}).dilation({0, 1}), {"dilation", "0"});
  expect_rejected(B(2).transposed().channels(3, 4).input({5}).filter({3}).stride({0}),
                  {"non-positive stride is not supported"});
}

TEST(ProblemValidate, NegativePadding) {
  expect_rejected(B(2).channels(3, 4).input({5}).filter({3}).pad({-1}),
                  {"negative padding is not supported", "-1"});
  expect_rejected(B(2).channels(3, 4).input({5}).filter({3}).pad_begin({0, 0}).pad_end({0, -2}),
                  {"negative padding is not supported", "-2"});
  expect_rejected(B(2).transposed().channels(3, 4).input({5}).filter({3}).pad_begin({-3, 0}),
                  {"negative padding is not supported", "-3"});
}

TEST(ProblemValidate, OutputPadding) {
  // PyTorch: "output padding must be smaller than either stride or dilation".
  expect_rejected(
      B(2).transposed().channels(3, 4).input({5}).filter({3}).stride({2}).output_padding({2}),
      {"output padding must be smaller than either stride or dilation", "2"});
  expect_rejected(B(1).transposed().channels(3, 4).input({5}).filter({3}).output_padding({1}),
                  {"output padding must be smaller than either stride or dilation"});
  expect_rejected(
      B(2).transposed().channels(3, 4).input({5}).filter({3}).stride({2}).output_padding({0, -1}),
      {"output_padding", "-1"});
}

TEST(ProblemValidate, SpatialDims) {
  for (int d : {0, 4, -1}) {
    ConvProblem p = base2d();
    p.spatial_dims = d;
    expect_rejected(p, {"spatial_dims", std::to_string(d)});
  }
}

TEST(ProblemValidate, NonPositiveSizes) {
  ConvProblem p = base2d();
  p.in_channels = 0;
  expect_rejected(p, {"in_channels", "0"});
  p = base2d();
  p.out_channels = -3;
  expect_rejected(p, {"out_channels", "-3"});
  p = base2d();
  p.batch = -1;
  expect_rejected(p, {"batch", "-1"});
  p = base2d();
  p.filter_size[1] = 0;
  expect_rejected(p, {"0"});
  p = base2d();
  p.input_size[0] = 0;
  expect_rejected(p, {"0"});
}

TEST(ProblemValidate, TransposedOutputMustBePositive) {
  // (1 - 1) * 1 - 1 - 1 + 1 = -1
  const Status s = validate(B(2).transposed().channels(2, 2).input({1}).filter({1}).pad({1}));
  EXPECT_EQ(s.code(), StatusCode::invalid_problem) << s.message();
}

TEST(ProblemValidate, EmptyBatchIsValid) {
  const ConvProblem p = B(2).batch(0).channels(3, 4).input({6, 7}).filter({3});
  ASSERT_TRUE(validate(p).ok()) << validate(p).message();
  EXPECT_EQ(input_elements(p), 0);
  EXPECT_EQ(output_elements(p), 0);
  EXPECT_EQ(weight_elements(p), 4 * 3 * 9);
}

// Output sizes worked out by hand from PyTorch's formulas.
TEST(ProblemAlgebra, OutputSizeRegular) {
  EXPECT_EQ(output_size(B(2).input({7}).filter({3}).stride({2}).pad({1}))[0], 4);  // (7+2-3)/2+1
  EXPECT_EQ(output_size(B(2).input({10}).filter({3}).dilation({2}))[1], 6);        // 10-5+1
  EXPECT_EQ(output_size(B(2).input({224}).filter({7}).stride({2}).pad({3}))[0], 112);
  EXPECT_EQ(output_size(B(2).input({56}).filter({1}).stride({2}))[0], 28);
  EXPECT_EQ(output_size(B(2).input({11}).filter({2}).stride({3}))[0], 4);  // (11-2)/3+1
  // Asymmetric padding: 8 + 0 + 2 = 10 wide, 3 taps: 8 outputs; 7 + 2 + 1 = 10, stride 4: 2.
  const Dims a =
      output_size(B(2).input({7, 8}).filter({3}).stride({4, 1}).pad_begin({2, 0}).pad_end({1, 2}));
  EXPECT_EQ(a[0], 2);
  EXPECT_EQ(a[1], 8);
  const Dims d3 =
      output_size(B(3).input({5, 6, 7}).filter({3, 1, 2}).stride({2, 1, 3}).pad({1, 0, 0}));
  EXPECT_EQ(d3[0], 3);  // (5+2-3)/2+1
  EXPECT_EQ(d3[1], 6);
  EXPECT_EQ(d3[2], 2);  // (7-2)/3+1
  EXPECT_EQ(output_size(B(1).input({20}).filter({3}).stride({2}).dilation({2}).pad({2}))[0], 10);
}

TEST(ProblemAlgebra, OutputSizeTransposed) {
  // (in - 1) * stride - pad_begin - pad_end + dilation * (filter - 1) + output_padding + 1
  EXPECT_EQ(
      output_size(
          B(2).transposed().input({5}).filter({3}).stride({2}).pad({1}).output_padding({1}))[0],
      10);
  EXPECT_EQ(output_size(B(2).transposed().input({4}).filter({4}).stride({2}).pad({1}))[1], 8);
  EXPECT_EQ(
      output_size(
          B(2).transposed().input({5}).filter({3}).dilation({2}).pad({1}).output_padding({1}))[0],
      8);  // 4 - 2 + 4 + 1 + 1
  EXPECT_EQ(
      output_size(
          B(1).transposed().input({9}).filter({3}).stride({2}).pad({1}).output_padding({1}))[0],
      18);
  const Dims a = output_size(
      B(2).transposed().input({5, 6}).filter({3}).stride({2}).pad_begin({1, 0}).pad_end({0, 2}));
  EXPECT_EQ(a[0], 10);  // 8 - 1 + 2 + 1
  EXPECT_EQ(a[1], 11);  // 10 - 2 + 2 + 1
  const Dims d3 = output_size(
      B(3).transposed().input({3, 4, 3}).filter({3}).stride({2}).pad({1}).output_padding(
          {1, 0, 1}));
  EXPECT_EQ(d3[0], 6);
  EXPECT_EQ(d3[1], 7);
  EXPECT_EQ(d3[2], 6);
}

TEST(ProblemAlgebra, ElementCounts) {
  const ConvProblem p = B(2).batch(3).channels(4, 6).groups(2).input({8, 9}).filter({3, 2});
  EXPECT_EQ(input_elements(p), 3 * 4 * 8 * 9);
  EXPECT_EQ(weight_elements(p), 6 * 2 * 3 * 2);
  EXPECT_EQ(output_elements(p), 3 * 6 * 6 * 8);
  const ConvProblem t = B(1).transposed().batch(2).channels(4, 6).groups(2).input({5}).filter({3});
  EXPECT_EQ(weight_elements(t), 4 * 3 * 3);  // [in, out / groups, filter]
  EXPECT_EQ(output_elements(t), 2 * 6 * 7);
}

TEST(ProblemShape, RegularIsPaddedTo3d) {
  const ConvProblem p = B(2).batch(3)
                            .channels(4, 6)
                            .groups(2)
                            .input({8, 9})
                            .filter({3, 2})
                            .stride({2, 1})
                            .dilation({1, 2})
                            .pad_begin({1, 0})
                            .pad_end({0, 1})
                            .layout(Layout::channels_last)
                            .dtype(DataType::f16);
  const ConvShape s = canonical_shape(p);
  EXPECT_EQ(s.n, 3);
  EXPECT_EQ(s.c, 4);
  EXPECT_EQ(s.k, 6);
  EXPECT_EQ(s.g, 2);
  EXPECT_EQ(s.in, (Dims{1, 8, 9}));
  EXPECT_EQ(s.filt, (Dims{1, 3, 2}));
  EXPECT_EQ(s.out, (Dims{1, 4, 8}));  // (8+1-3)/2+1, 9+1-3+1
  EXPECT_EQ(s.stride, (Dims{1, 2, 1}));
  EXPECT_EQ(s.dilation, (Dims{1, 1, 2}));
  EXPECT_EQ(s.pad, (Dims{0, 1, 0}));
  EXPECT_EQ(s.layout, Layout::channels_last);
  EXPECT_EQ(s.dtype, DataType::f16);
  EXPECT_FALSE(s.index64);
  EXPECT_FALSE(s.is_1x1_unit());
  for (Direction d : {Direction::forward, Direction::backward_data, Direction::backward_weight,
                      Direction::backward_bias}) {
    EXPECT_EQ(regular_direction(p, d), d);
  }
  const ConvShape s1 = canonical_shape(B(1).channels(3, 5).input({7}).filter({4}));
  EXPECT_EQ(s1.in, (Dims{1, 1, 7}));
  EXPECT_EQ(s1.out, (Dims{1, 1, 4}));
  EXPECT_TRUE(canonical_shape(B(3).channels(3, 5).input({2, 3, 4}).filter({1})).is_1x1_unit());
  EXPECT_FALSE(
      canonical_shape(B(2).channels(3, 5).input({4}).filter({1}).stride({2})).is_1x1_unit());
}

TEST(ProblemShape, TransposedIsTheDualRegularProblem) {
  // User: input [2, 4, 5, 6] -> output [2, 6, 10, 12]; weight [4, 3, 3, 3] with groups 2.
  const ConvProblem p = B(2).transposed()
                            .batch(2)
                            .channels(4, 6)
                            .groups(2)
                            .input({5, 6})
                            .filter({3})
                            .stride({2})
                            .pad({1})
                            .output_padding({1});
  const ConvShape s = canonical_shape(p);
  EXPECT_EQ(s.n, 2);
  EXPECT_EQ(s.c, 6);  // regular x is the user's output
  EXPECT_EQ(s.k, 4);  // regular y is the user's input
  EXPECT_EQ(s.g, 2);
  EXPECT_EQ(s.in, (Dims{1, 10, 12}));
  EXPECT_EQ(s.out, (Dims{1, 5, 6}));
  EXPECT_EQ(s.filt, (Dims{1, 3, 3}));
  EXPECT_EQ(s.stride, (Dims{1, 2, 2}));
  EXPECT_EQ(s.pad, (Dims{0, 1, 1}));
  // The regular weight [k, c/g] = [4, 3] is the transposed weight [in, out/groups].
  EXPECT_EQ(s.w_elements(), weight_elements(p));
  EXPECT_EQ(s.x_elements(), output_elements(p));
  EXPECT_EQ(s.y_elements(), input_elements(p));
  EXPECT_EQ(regular_direction(p, Direction::forward), Direction::backward_data);
  EXPECT_EQ(regular_direction(p, Direction::backward_data), Direction::forward);
  EXPECT_EQ(regular_direction(p, Direction::backward_weight), Direction::backward_weight);
  EXPECT_EQ(regular_direction(p, Direction::backward_bias), Direction::backward_bias);
  // The regular problem's own output size, with the trailing padding implied, is the user's input.
  for (int j = 1; j < 3; ++j) {
    const int64_t span = s.in[j] + s.pad[j] - s.dilation[j] * (s.filt[j] - 1) - 1;
    EXPECT_GE(span / s.stride[j] + 1, s.out[j]) << "dimension " << j;
  }
  const ConvShape t3 = canonical_shape(B(3).transposed()
                                           .channels(3, 4)
                                           .input({3, 4, 3})
                                           .filter({3})
                                           .stride({2})
                                           .pad({1})
                                           .output_padding({1, 0, 1}));
  EXPECT_EQ(t3.in, (Dims{6, 7, 6}));
  EXPECT_EQ(t3.out, (Dims{3, 4, 3}));
}

TEST(ProblemShape, Index64ForHugeProblems) {
  // x has 2 * 8 * 11600^2 > 2^31 elements.
  EXPECT_TRUE(canonical_shape(B(2).channels(8, 8).input({11600}).filter({3}).pad({1})).index64);
  // x fits, but one sample's column matrix (256 * 9 * 1024^2) does not.
  EXPECT_TRUE(
      canonical_shape(B(2).batch(1).channels(256, 4).input({1024}).filter({3}).pad({1})).index64);
  // The transposed output is the regular x: 9 * 16384^2 > 2^31 elements.
  EXPECT_TRUE(
      canonical_shape(
          B(2).transposed().batch(1).channels(16, 9).input({8192}).filter({2}).stride({2}).dtype(
              DataType::f16))
          .index64);
  // A large weight alone: 65536 * 65536 * 1 > 2^31.
  EXPECT_TRUE(canonical_shape(B(1).batch(1).channels(65536, 65536).input({1}).filter({1})).index64);
  EXPECT_FALSE(canonical_shape(base2d()).index64);
  EXPECT_FALSE(
      canonical_shape(B(2).batch(32).channels(64, 64).input({56}).filter({3}).pad({1})).index64);
}

TEST(ProblemIdentity, EqualityAndHash) {
  const ConvProblem a = base2d();
  ConvProblem b = a;
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a != b);
  EXPECT_EQ(ConvProblemHash()(a), ConvProblemHash()(b));

  const std::vector<std::function<void(ConvProblem&)>> changes = {
      [](ConvProblem& p) { p.spatial_dims = 3; },
      [](ConvProblem& p) { p.batch = 5; },
      [](ConvProblem& p) { p.in_channels = 8; },
      [](ConvProblem& p) { p.out_channels = 8; },
      [](ConvProblem& p) { p.groups = 2; },
      [](ConvProblem& p) { p.input_size[1] = 10; },
      [](ConvProblem& p) { p.filter_size[0] = 1; },
      [](ConvProblem& p) { p.stride[1] = 2; },
      [](ConvProblem& p) { p.dilation[0] = 2; },
      [](ConvProblem& p) { p.pad_begin[1] = 0; },
      [](ConvProblem& p) { p.pad_end[0] = 2; },
      [](ConvProblem& p) { p.transposed = true; },
      [](ConvProblem& p) { p.layout = Layout::channels_last; },
      [](ConvProblem& p) { p.dtype = DataType::bf16; },
  };
  int distinct_hashes = 0;
  for (size_t i = 0; i < changes.size(); ++i) {
    ConvProblem c = a;
    changes[i](c);
    EXPECT_FALSE(c == a) << "change " << i;
    EXPECT_TRUE(c != a) << "change " << i;
    if (ConvProblemHash()(c) != ConvProblemHash()(a)) ++distinct_hashes;
  }
  // A hash may collide, but not for most single-field changes.
  EXPECT_GE(distinct_hashes, static_cast<int>(changes.size()) - 1);
  ConvProblem t = B(2).transposed().channels(4, 6).input({5}).filter({3}).stride({2});
  ConvProblem u = t;
  u.output_padding[0] = 1;
  EXPECT_FALSE(t == u);

  // Every catalog problem is distinct from every other.
  const auto& cat = catalog();
  for (size_t i = 0; i < cat.size(); ++i) {
    for (size_t j = i + 1; j < cat.size(); ++j) {
      EXPECT_FALSE(cat[i].problem == cat[j].problem) << cat[i].name << " == " << cat[j].name;
    }
  }
}

TEST(ProblemIdentity, DescriptionNamesTheProblem) {
  const std::string s = to_string(
      B(3).transposed().batch(7).channels(12, 34).groups(2).input({5, 6, 7}).filter({3}).dtype(
          DataType::bf16));
  for (const char* f : {"7", "12", "34", "5", "6", "bf16"}) {
    EXPECT_NE(s.find(f), std::string::npos) << s << " lacks " << f;
  }
  EXPECT_NE(to_string(base2d()), to_string(B(2).channels(4, 6).input({8, 9}).filter({3})));
}

TEST(Types, NamesRoundTrip) {
  for (DataType t : {DataType::f32, DataType::f16, DataType::bf16, DataType::f64}) {
    DataType back = DataType::f64;
    EXPECT_TRUE(parse_data_type(to_string(t), &back)) << to_string(t);
    EXPECT_EQ(back, t);
  }
  for (Layout l : {Layout::contiguous, Layout::channels_last}) {
    Layout back = Layout::contiguous;
    EXPECT_TRUE(parse_layout(to_string(l), &back)) << to_string(l);
    EXPECT_EQ(back, l);
  }
  for (Direction d : {Direction::forward, Direction::backward_data, Direction::backward_weight,
                      Direction::backward_bias}) {
    Direction back = Direction::forward;
    EXPECT_TRUE(parse_direction(to_string(d), &back)) << to_string(d);
    EXPECT_EQ(back, d);
  }
  DataType t;
  Layout l;
  Direction d;
  EXPECT_FALSE(parse_data_type("f8", &t));
  EXPECT_FALSE(parse_layout("nhwc?", &l));
  EXPECT_FALSE(parse_direction("sideways", &d));
  EXPECT_EQ(element_size(DataType::bf16), 2u);
  EXPECT_EQ(element_size(DataType::f64), 8u);
}

}  // namespace
}  // namespace testing
}  // namespace gemmconv
