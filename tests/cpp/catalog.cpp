// The problem catalog: small shapes that cover every feature a PyTorch convolution can express.
#include "catalog.h"

#include <ostream>
#include <stdexcept>

namespace gemmconv {
namespace testing {

ProblemBuilder::ProblemBuilder(int dims) {
  p_.spatial_dims = dims;
  p_.batch = 2;
}

void ProblemBuilder::set(Dims* d, std::initializer_list<int64_t> v) const {
  if (v.size() != 1 && v.size() != static_cast<size_t>(p_.spatial_dims)) {
    throw std::invalid_argument("ProblemBuilder: list length must be 1 or spatial_dims");
  }
  for (int j = 0; j < p_.spatial_dims; ++j) {
    (*d)[j] = v.size() == 1 ? *v.begin() : *(v.begin() + j);
  }
}

ProblemBuilder& ProblemBuilder::batch(int64_t n) {
  p_.batch = n;
  return *this;
}
ProblemBuilder& ProblemBuilder::channels(int64_t in, int64_t out) {
  p_.in_channels = in;
  p_.out_channels = out;
  return *this;
}
ProblemBuilder& ProblemBuilder::groups(int64_t g) {
  p_.groups = g;
  return *this;
}
ProblemBuilder& ProblemBuilder::input(std::initializer_list<int64_t> v) {
  set(&p_.input_size, v);
  return *this;
}
ProblemBuilder& ProblemBuilder::filter(std::initializer_list<int64_t> v) {
  set(&p_.filter_size, v);
  return *this;
}
ProblemBuilder& ProblemBuilder::stride(std::initializer_list<int64_t> v) {
  set(&p_.stride, v);
  return *this;
}
ProblemBuilder& ProblemBuilder::dilation(std::initializer_list<int64_t> v) {
  set(&p_.dilation, v);
  return *this;
}
ProblemBuilder& ProblemBuilder::pad(std::initializer_list<int64_t> v) {
  set(&p_.pad_begin, v);
  set(&p_.pad_end, v);
  return *this;
}
ProblemBuilder& ProblemBuilder::pad_begin(std::initializer_list<int64_t> v) {
  set(&p_.pad_begin, v);
  return *this;
}
ProblemBuilder& ProblemBuilder::pad_end(std::initializer_list<int64_t> v) {
  set(&p_.pad_end, v);
  return *this;
}
ProblemBuilder& ProblemBuilder::output_padding(std::initializer_list<int64_t> v) {
  set(&p_.output_padding, v);
  return *this;
}
ProblemBuilder& ProblemBuilder::transposed(bool t) {
  p_.transposed = t;
  return *this;
}
ProblemBuilder& ProblemBuilder::layout(Layout l) {
  p_.layout = l;
  return *this;
}
ProblemBuilder& ProblemBuilder::dtype(DataType t) {
  p_.dtype = t;
  return *this;
}

void PrintTo(const CatalogEntry& e, std::ostream* os) {
  *os << e.name << " [" << to_string(e.problem) << "]";
}

bool degenerate(const ConvProblem& p) {
  return input_elements(p) == 0 || weight_elements(p) == 0 || output_elements(p) == 0;
}

namespace {

std::vector<CatalogEntry> build() {
  std::vector<CatalogEntry> c;
  auto add_one = [&c](const std::string& name, const ConvProblem& p) { c.push_back({name, p}); };
  // Every problem also in channels-last layout: its kernels are separate code paths.
  auto add = [&](const std::string& name, const ProblemBuilder& b) {
    add_one(name, b);
    add_one(name + "_cl", ProblemBuilder(b).layout(Layout::channels_last));
  };
  // Plus fp16 and bf16 twins.
  auto add_variants = [&](const std::string& name, const ProblemBuilder& b) {
    add(name, b);
    add_one(name + "_f16", ProblemBuilder(b).dtype(DataType::f16));
    add_one(name + "_f16_cl", ProblemBuilder(b).dtype(DataType::f16).layout(Layout::channels_last));
    add_one(name + "_bf16", ProblemBuilder(b).dtype(DataType::bf16));
  };
  using B = ProblemBuilder;

  // 1-D.
  add_variants("conv1d_k3", B(1).channels(3, 4).input({17}).filter({3}).pad({1}));
  add("conv1d_stride2_dil2",
      B(1).channels(4, 5).input({20}).filter({3}).stride({2}).dilation({2}).pad({2}));
  add("conv1d_k4_asym", B(1).channels(2, 3).input({11}).filter({4}).pad_begin({2}).pad_end({1}));
  add("conv1d_depthwise", B(1).channels(6, 6).groups(6).input({15}).filter({5}).pad({2}));

  // 2-D: 1x1.
  add_variants("conv2d_1x1", B(2).channels(8, 6).input({7, 5}));
  add("conv2d_1x1_stride2", B(2).channels(6, 10).input({9, 8}).filter({1}).stride({2}));
  add("conv2d_1x1_pad1", B(2).channels(3, 4).input({5, 6}).filter({1}).pad({1}));
  add("conv2d_1x1_groups", B(2).channels(8, 12).groups(4).input({6, 5}));
  // 2-D: the usual square kernels.
  add_variants("conv2d_3x3", B(2).channels(5, 7).input({9, 11}).filter({3}).pad({1}));
  add("conv2d_3x3_stride2", B(2).channels(4, 6).input({10, 10}).filter({3}).stride({2}).pad({1}));
  add("conv2d_3x3_nopad", B(2).channels(3, 4).input({8, 9}).filter({3}));
  add("conv2d_5x5", B(2).channels(3, 4).input({12, 12}).filter({5}).pad({2}));
  add("conv2d_7x7_stride2",
      B(2).batch(1).channels(3, 8).input({23, 23}).filter({7}).stride({2}).pad({3}));
  // 2-D: even kernels, rectangular kernels and inputs.
  add("conv2d_2x2", B(2).channels(4, 5).input({8, 8}).filter({2}));
  add("conv2d_4x4_stride2", B(2).channels(3, 4).input({12, 12}).filter({4}).stride({2}).pad({1}));
  add("conv2d_1x3_3x1", B(2).channels(3, 4).input({5, 13}).filter({3, 1}).pad({1, 0}));
  add("conv2d_rect", B(2).channels(2, 3).input({6, 14}).filter({2, 5}).stride({1, 2}).pad({0, 1}));
  // 2-D: padding and stride corner cases.
  add("conv2d_asym_pad",
      B(2).channels(3, 4).input({7, 8}).filter({3}).pad_begin({0, 2}).pad_end({1, 0}));
  add("conv2d_stride_gt_kernel", B(2).channels(3, 5).input({11, 11}).filter({2}).stride({3}));
  add("conv2d_stride_gt_kernel_pad",
      B(2).channels(2, 3).input({10, 9}).filter({1, 2}).stride({4, 3}).pad({1}));
  add("conv2d_kernel_eq_padded_input",
      B(2).channels(3, 4).input({3, 4}).filter({5, 4}).pad({1, 0}));
  add("conv2d_pad_gt_half_kernel", B(2).channels(2, 3).input({4, 5}).filter({3}).pad({2}));
  // 2-D: dilation.
  add("conv2d_dilation2", B(2).channels(3, 4).input({11, 10}).filter({3}).dilation({2}).pad({2}));
  add("conv2d_dilation_aniso",
      B(2).channels(2, 4).input({12, 13}).filter({3, 2}).dilation({2, 3}).stride({2, 1}).pad(
          {1, 2}));
  // 2-D: groups and depthwise.
  add_variants("conv2d_groups4", B(2).channels(8, 12).groups(4).input({7, 6}).filter({3}).pad({1}));
  add("conv2d_groups_stride2", B(2).channels(6, 4).groups(2).input({9, 9}).filter({3}).stride({2}));
  add_variants("conv2d_depthwise",
               B(2).channels(6, 6).groups(6).input({8, 9}).filter({3}).pad({1}));
  add("conv2d_depthwise_mult2",
      B(2).channels(4, 8).groups(4).input({9, 10}).filter({3}).stride({2}).pad({1}));
  // 2-D: batch and size corner cases.
  add("conv2d_n1", B(2).batch(1).channels(4, 4).input({6, 7}).filter({3}).pad({1}));
  add("conv2d_n0", B(2).batch(0).channels(3, 4).input({6, 6}).filter({3}).pad({1}));
  add("conv2d_odd", B(2).batch(3).channels(3, 5).input({13, 7}).filter({3}).stride({2}));
  add("conv2d_1pixel", B(2).channels(5, 3).input({1, 1}).filter({1}));
  add("conv2d_f64", B(2).channels(3, 4).input({7, 6}).filter({3}).pad({1}).dtype(DataType::f64));
  // Medium sizes, so that GPU kernels run more than one tile in every dimension.
  add_variants("conv2d_medium_3x3",
               B(2).batch(2).channels(16, 40).input({17, 19}).filter({3}).pad({1}));
  add("conv2d_medium_1x1_s2",
      B(2).batch(4).channels(48, 36).input({15, 14}).filter({1}).stride({2}));
  add("convT2d_medium", B(2).transposed()
                            .channels(32, 16)
                            .input({12, 11})
                            .filter({3})
                            .stride({2})
                            .pad({1})
                            .output_padding({1}));
  add("conv2d_wide_reduction", B(2).batch(1).channels(64, 4).input({5, 5}).filter({3}).pad({1}));
  // The contiguous weight gradient with one group sums per-sample partials where they are smaller
  // than the data they save moving (many output pixels), and gathers the batch otherwise.
  add("conv2d_3x3_many_pixels", B(2).batch(3).channels(4, 6).input({16, 15}).filter({3}).pad({1}));
  add("conv2d_3x3_few_pixels", B(2).batch(3).channels(16, 8).input({4, 4}).filter({3}).pad({1}));

  // 3-D.
  add_variants("conv3d_3x3x3", B(3).channels(3, 4).input({5, 6, 7}).filter({3}).pad({1}));
  add("conv3d_1x1x1", B(3).channels(4, 3).input({3, 4, 5}));
  add("conv3d_stride2_dil", B(3).channels(2, 4)
                                .input({7, 8, 6})
                                .filter({3, 2, 3})
                                .stride({2, 1, 2})
                                .dilation({1, 2, 1})
                                .pad({1, 0, 1}));
  add("conv3d_groups_asym",
      B(3).channels(4, 6).groups(2).input({4, 5, 6}).filter({2, 3, 3}).pad_begin({1, 0, 2}).pad_end(
          {0, 1, 1}));
  add("conv3d_depthwise", B(3).channels(3, 3).groups(3).input({4, 5, 5}).filter({3}).pad({1}));

  // Transposed.
  add_variants("convT2d_3x3_s2_op1", B(2).transposed()
                                         .channels(4, 6)
                                         .input({5, 5})
                                         .filter({3})
                                         .stride({2})
                                         .pad({1})
                                         .output_padding({1}));
  add("convT2d_4x4_s2",
      B(2).transposed().channels(6, 3).input({4, 5}).filter({4}).stride({2}).pad({1}));
  add("convT2d_1x1", B(2).transposed().channels(5, 4).input({4, 6}));
  add("convT2d_groups_s2_op1", B(2).transposed()
                                   .channels(4, 6)
                                   .groups(2)
                                   .input({5, 4})
                                   .filter({3})
                                   .stride({2})
                                   .output_padding({1}));
  add("convT2d_dil2_op1", B(2).transposed()
                              .channels(3, 4)
                              .input({5, 6})
                              .filter({3})
                              .dilation({2})
                              .pad({1})
                              .output_padding({1}));
  add("convT2d_s3_dil2_op2", B(2).transposed()
                                 .channels(2, 3)
                                 .input({4, 3})
                                 .filter({2, 3})
                                 .stride({3})
                                 .dilation({2})
                                 .pad({0, 1})
                                 .output_padding({2, 1}));
  add("convT2d_depthwise",
      B(2).transposed().channels(4, 4).groups(4).input({5, 5}).filter({3}).stride({2}).pad({1}));
  add("convT2d_stride_gt_kernel",
      B(2).transposed().channels(3, 2).input({4, 4}).filter({2}).stride({3}).output_padding({2}));
  add("convT2d_asym_pad", B(2).transposed()
                              .channels(3, 4)
                              .input({5, 6})
                              .filter({3})
                              .stride({2})
                              .pad_begin({1, 0})
                              .pad_end({0, 2}));
  add("convT2d_n0", B(2).transposed().batch(0).channels(3, 4).input({4, 4}).filter({3}));
  add("convT1d_s2_op1",
      B(1).transposed().channels(4, 3).input({9}).filter({3}).stride({2}).pad({1}).output_padding(
          {1}));
  add_variants("convT3d_s2", B(3).transposed()
                                 .channels(3, 4)
                                 .input({3, 4, 3})
                                 .filter({3})
                                 .stride({2})
                                 .pad({1})
                                 .output_padding({1, 0, 1}));
  add("convT3d_groups",
      B(3).transposed().channels(4, 2).groups(2).input({3, 3, 4}).filter({2}).stride({1, 2, 2}));

  // Winograd (winograd_gemm): stride-1 3x3 and 3-tap problems. Odd sizes that leave partial
  // tiles, sizes below one tile, every padding from 0 to 2 (asymmetric too), groups, 1-D, a depth
  // filter of 1, and problems with at least 32 channels per group, which the GPU takes.
  add_variants("wino_3x3_odd", B(2).channels(6, 5).input({13, 11}).filter({3}).pad({1}));
  add("wino_3x3_below_tile", B(2).channels(4, 6).input({3, 2}).filter({3}).pad({1}));
  add("wino_3x3_pad0", B(2).batch(3).channels(5, 4).input({10, 7}).filter({3}));
  add("wino_3x3_pad2", B(2).channels(3, 5).input({6, 9}).filter({3}).pad({2}));
  add("wino_3x3_asym_pad",
      B(2).channels(4, 3).input({9, 10}).filter({3}).pad_begin({0, 2}).pad_end({2, 1}));
  add("wino_3x3_groups", B(2).channels(8, 12).groups(2).input({10, 9}).filter({3}).pad({1}));
  add("wino_3x1", B(2).channels(6, 4).input({11, 5}).filter({3, 1}).pad({1, 0}));
  add_variants("wino_1d", B(1).channels(8, 6).input({37}).filter({3}).pad({1}));
  add("wino_3d_depth1", B(3).channels(4, 6).input({3, 7, 8}).filter({1, 3, 3}).pad({0, 1, 1}));
  add("wino_f64", B(2).channels(6, 4).input({9, 13}).filter({3}).pad({1}).dtype(DataType::f64));
  add("wino_convT_s1", B(2).transposed().channels(5, 6).input({9, 8}).filter({3}));
  add_variants("wino_c32", B(2).channels(32, 40).input({11, 9}).filter({3}).pad({1}));
  add("wino_c32_groups", B(2).channels(64, 64).groups(2).input({7, 6}).filter({3}).pad({1}));
  add("wino_c32_convT",
      B(2).transposed().channels(32, 32).input({9, 8}).filter({3}).pad_begin({0, 1}).pad_end(
          {1, 2}));

  // One problem whose user output has more than 2^31 elements, reached through the transposed
  // (backward-data) path, so that every kernel on that path must index with 64-bit integers.
  CatalogEntry big{"big_index_convT2d_f16",
                   B(2).transposed()
                       .batch(1)
                       .channels(16, 9)
                       .input({8192, 8192})
                       .filter({2})
                       .stride({2})
                       .dtype(DataType::f16),
                   true, size_t(16) << 30};
  c.push_back(big);
  return c;
}

}  // namespace

const std::vector<CatalogEntry>& catalog() {
  static const std::vector<CatalogEntry> entries = build();
  return entries;
}

std::vector<CatalogEntry> small_catalog() {
  std::vector<CatalogEntry> out;
  for (const CatalogEntry& e : catalog()) {
    if (!e.big) out.push_back(e);
  }
  return out;
}

const CatalogEntry* find_entry(const std::string& name) {
  for (const CatalogEntry& e : catalog()) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace testing
}  // namespace gemmconv
