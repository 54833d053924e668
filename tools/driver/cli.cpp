// Parsing of gemmconv-driver's command lines into a problem and what to do with it.
#include "cli.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

namespace gemmconv {
namespace driver {
namespace {

[[noreturn]] void fail(const std::string& message) { throw UsageError{message}; }

int64_t parse_int(const std::string& flag, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE) {
    fail("invalid value '" + v + "' for " + flag + ": expected an integer");
  }
  return static_cast<int64_t>(x);
}

std::vector<int64_t> parse_list(const std::string& flag, const std::string& v) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (true) {
    const size_t x = v.find('x', start);
    out.push_back(parse_int(flag, v.substr(start, x == std::string::npos ? x : x - start)));
    if (x == std::string::npos) break;
    start = x + 1;
  }
  if (out.size() > 3) fail("invalid value '" + v + "' for " + flag + ": at most 3 dimensions");
  return out;
}

// Fills the first `dims` entries from a list of 1 or `dims` values.
void fill_dims(const char* flag, const std::vector<int64_t>& v, int dims, Dims* out) {
  if (v.empty()) return;
  if (v.size() != 1 && static_cast<int>(v.size()) != dims) {
    fail(std::string(flag) + " has " + std::to_string(v.size()) + " entries for a problem of " +
         std::to_string(dims) + " spatial dimensions");
  }
  for (int j = 0; j < dims; ++j) (*out)[j] = v.size() == 1 ? v[0] : v[j];
}

// The spatial lists of gemmconv-driver's own syntax, before the rank is known.
struct SpatialFlags {
  int dims = 0;
  std::vector<int64_t> input, filter, stride, pad, pad_begin, pad_end, dilation, output_padding;
};

ConvProblem build_problem(const SpatialFlags& f, ConvProblem p) {
  p.spatial_dims = f.dims ? f.dims : (f.input.empty() ? 2 : static_cast<int>(f.input.size()));
  p.input_size = {16, 16, 16};
  p.filter_size = {3, 3, 3};
  fill_dims("--input", f.input, p.spatial_dims, &p.input_size);
  fill_dims("--filter", f.filter, p.spatial_dims, &p.filter_size);
  fill_dims("--stride", f.stride, p.spatial_dims, &p.stride);
  fill_dims("--pad", f.pad, p.spatial_dims, &p.pad_begin);
  fill_dims("--pad", f.pad, p.spatial_dims, &p.pad_end);
  fill_dims("--pad-begin", f.pad_begin, p.spatial_dims, &p.pad_begin);
  fill_dims("--pad-end", f.pad_end, p.spatial_dims, &p.pad_end);
  fill_dims("--dilation", f.dilation, p.spatial_dims, &p.dilation);
  fill_dims("--output-padding", f.output_padding, p.spatial_dims, &p.output_padding);
  for (int j = p.spatial_dims; j < kMaxSpatialDims; ++j) p.input_size[j] = p.filter_size[j] = 1;
  if (!f.output_padding.empty() && !p.transposed) fail("--output-padding needs --transposed");
  return p;
}

// Flags that describe the problem (refused after MIOpenDriver's `conv`, which has its own).
const std::set<std::string>& problem_flags() {
  static const std::set<std::string> s = {"--dims",         "--batch",          "--in-channels",
                                          "--out-channels", "--groups",         "--input",
                                          "--filter",       "--stride",         "--pad",
                                          "--pad-begin",    "--pad-end",        "--dilation",
                                          "--transposed",   "--output-padding", "--layout",
                                          "--dtype",        "--direction",      "--bias"};
  return s;
}

// gemmconv-driver's own flags into `o` (and the spatial lists into `sf`).
void parse_native(const std::vector<std::string>& args, bool run_flags_only, Options* o,
                  SpatialFlags* sf) {
  const std::map<std::string, std::string> aliases = {{"-n", "--batch"},
                                                      {"-c", "--in-channels"},
                                                      {"-k", "--out-channels"},
                                                      {"-g", "--groups"},
                                                      {"-h", "--help"}};
  static const std::set<std::string> valued = {
      "--dims",           "--batch",  "--in-channels", "--out-channels", "--input",    "--filter",
      "--stride",         "--pad",    "--pad-begin",   "--pad-end",      "--dilation", "--groups",
      "--output-padding", "--layout", "--dtype",       "--direction",    "--device",   "--solver",
      "--workspace-mb",   "--seed",   "--reps",        "--warmup",       "--find-mode"};
  ConvProblem& p = o->problem;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    bool has_value = false;
    const size_t eq = flag.find('=');
    if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    auto al = aliases.find(flag);
    if (al != aliases.end()) flag = al->second;
    const bool takes_value = valued.count(flag) > 0;
    if (takes_value && !has_value) {
      if (i + 1 >= args.size()) fail("missing value for " + flag);
      value = args[++i];
    } else if (!takes_value && has_value) {
      fail("flag " + flag + " takes no value");
    }
    if (run_flags_only && problem_flags().count(flag)) {
      fail("flag '" + args[i] + "' mixes gemmconv-driver's problem flags into MIOpenDriver syntax");
    }

    if (flag == "--help") {
      o->help = true;
    } else if (flag == "--dims") {
      const int64_t d = parse_int(flag, value);
      if (d < 1 || d > 3) fail("invalid value '" + value + "' for --dims: 1, 2 or 3");
      sf->dims = static_cast<int>(d);
    } else if (flag == "--batch") {
      p.batch = parse_int(flag, value);
    } else if (flag == "--in-channels") {
      p.in_channels = parse_int(flag, value);
    } else if (flag == "--out-channels") {
      p.out_channels = parse_int(flag, value);
    } else if (flag == "--groups") {
      p.groups = parse_int(flag, value);
    } else if (flag == "--input") {
      sf->input = parse_list(flag, value);
    } else if (flag == "--filter") {
      sf->filter = parse_list(flag, value);
    } else if (flag == "--stride") {
      sf->stride = parse_list(flag, value);
    } else if (flag == "--pad") {
      sf->pad = parse_list(flag, value);
    } else if (flag == "--pad-begin") {
      sf->pad_begin = parse_list(flag, value);
    } else if (flag == "--pad-end") {
      sf->pad_end = parse_list(flag, value);
    } else if (flag == "--dilation") {
      sf->dilation = parse_list(flag, value);
    } else if (flag == "--output-padding") {
      sf->output_padding = parse_list(flag, value);
    } else if (flag == "--transposed") {
      p.transposed = true;
    } else if (flag == "--layout") {
      if (!parse_layout(value, &p.layout)) {
        fail("invalid value '" + value + "' for --layout: contiguous or channels_last");
      }
    } else if (flag == "--dtype") {
      if (!parse_data_type(value, &p.dtype)) {
        fail("invalid value '" + value + "' for --dtype: f32, f16, bf16 or f64");
      }
    } else if (flag == "--direction") {
      o->directions.clear();
      if (value == "all") {
        o->directions = {Direction::forward, Direction::backward_data, Direction::backward_weight,
                         Direction::backward_bias};
      } else {
        Direction d;
        if (!parse_direction(value, &d)) {
          fail("invalid value '" + value +
               "' for --direction: forward, backward_data, backward_weight, backward_bias or all");
        }
        o->directions.push_back(d);
      }
    } else if (flag == "--bias") {
      o->bias = true;
    } else if (flag == "--device") {
      if (value != "cpu" && value != "gpu") {
        fail("invalid value '" + value + "' for --device: cpu or gpu");
      }
      o->device = value;
    } else if (flag == "--solver") {
      o->solver = value;
    } else if (flag == "--workspace-mb") {
      const int64_t mb = parse_int(flag, value);
      if (mb < 0 || mb > (int64_t(1) << 40))
        fail("invalid value '" + value + "' for --workspace-mb");
      o->workspace_set = true;
      o->workspace_mb = static_cast<size_t>(mb);
    } else if (flag == "--allow-tf32") {
      o->allow_tf32 = true;
    } else if (flag == "--seed") {
      o->seed = static_cast<uint64_t>(parse_int(flag, value));
    } else if (flag == "--verify") {
      o->verify = true;
    } else if (flag == "--progress") {
      o->progress = true;
    } else if (flag == "--time") {
      o->time = true;
    } else if (flag == "--reps" || flag == "--warmup") {
      const int64_t n = parse_int(flag, value);
      if (n < (flag == "--reps" ? 1 : 0) || n > 1000000) {
        fail("invalid value '" + value + "' for " + flag);
      }
      (flag == "--reps" ? o->reps : o->warmup) = n;
    } else if (flag == "--list-solvers") {
      o->list_solvers = true;
    } else if (flag == "--version") {
      o->version = true;
    } else if (flag == "--find") {
      o->find = true;
    } else if (flag == "--find-mode") {
      FindMode m = FindMode::off;
      if (!parse_find_mode(value, &m) || m == FindMode::off) {
        fail("invalid value '" + value + "' for --find-mode (fast | exhaustive)");
      }
      o->find = true;
      o->find_mode_set = true;
      o->find_mode = m;
    } else {
      fail("unknown flag '" + args[i] + "'");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// MIOpenDriver's conv syntax: `-c 64` or `--in_channels 64`, MIOpenDriver's defaults.

enum class MiKind {
  value,    // an integer or a word that sets part of the problem or the run
  ignored,  // accepted without effect (a warning says so)
  zero,     // supported only with its default value
};

struct MiFlag {
  const char* name;
  char letter;
  MiKind kind;
  const char* default_value;  // MiKind::zero: the one value allowed; ignored: not worth a warning
};

const std::vector<MiFlag>& miopen_flags() {
  static const std::vector<MiFlag> f = {
      {"spatial_dim", '_', MiKind::value, nullptr},
      {"forw", 'F', MiKind::value, nullptr},
      {"batchsize", 'n', MiKind::value, nullptr},
      {"in_channels", 'c', MiKind::value, nullptr},
      {"in_d", '!', MiKind::value, nullptr},
      {"in_h", 'H', MiKind::value, nullptr},
      {"in_w", 'W', MiKind::value, nullptr},
      {"out_channels", 'k', MiKind::value, nullptr},
      {"fil_d", '@', MiKind::value, nullptr},
      {"fil_h", 'y', MiKind::value, nullptr},
      {"fil_w", 'x', MiKind::value, nullptr},
      {"conv_stride_d", '#', MiKind::value, nullptr},
      {"conv_stride_h", 'u', MiKind::value, nullptr},
      {"conv_stride_w", 'v', MiKind::value, nullptr},
      {"pad_d", '$', MiKind::value, nullptr},
      {"pad_h", 'p', MiKind::value, nullptr},
      {"pad_w", 'q', MiKind::value, nullptr},
      {"trans_output_pad_d", '%', MiKind::value, nullptr},
      {"trans_output_pad_h", 'Y', MiKind::value, nullptr},
      {"trans_output_pad_w", 'X', MiKind::value, nullptr},
      {"dilation_d", '^', MiKind::value, nullptr},
      {"dilation_h", 'l', MiKind::value, nullptr},
      {"dilation_w", 'j', MiKind::value, nullptr},
      {"group_count", 'g', MiKind::value, nullptr},
      {"mode", 'm', MiKind::value, nullptr},
      {"bias", 'b', MiKind::value, nullptr},
      {"verify", 'V', MiKind::value, nullptr},
      {"time", 't', MiKind::value, nullptr},
      {"iter", 'i', MiKind::value, nullptr},
      {"in_layout", 'I', MiKind::value, nullptr},
      {"out_layout", 'O', MiKind::value, nullptr},
      {"fil_layout", 'f', MiKind::value, nullptr},
      {"pad_mode", 'z', MiKind::zero, "default"},
      {"pad_val", 'r', MiKind::zero, "0"},
      {"dump_output", 'o', MiKind::zero, "0"},
      {"tensor_vect", 'Z', MiKind::zero, "0"},
      {"vector_length", 'L', MiKind::zero, "1"},
      {"search", 's', MiKind::ignored, "0"},
      {"printconv", 'P', MiKind::ignored, "1"},
      {"wall", 'w', MiKind::ignored, "0"},
      {"solution", 'S', MiKind::ignored, "-1"},
  };
  return f;
}

Layout miopen_layout(const std::string& flag, const std::string& v) {
  if (v == "NCHW" || v == "NCDHW") return Layout::contiguous;
  if (v == "NHWC" || v == "NDHWC") return Layout::channels_last;
  fail("invalid value '" + v + "' for " + flag + ": NCHW, NHWC, NCDHW or NDHWC");
}

Options parse_miopen(const std::vector<std::string>& args) {
  Options o;
  o.miopen = true;
  ConvProblem& p = o.problem;
  if (args[0] == "conv") {
    p.dtype = DataType::f32;
  } else if (args[0] == "convfp16") {
    p.dtype = DataType::f16;
  } else if (args[0] == "convbfp16") {
    p.dtype = DataType::bf16;
  } else {
    fail("unsupported MIOpenDriver command '" + args[0] + "': conv, convfp16 or convbfp16");
  }
  // MIOpenDriver's defaults; the depth entries count only with --spatial_dim 3.
  std::map<std::string, std::string> v = {{"spatial_dim", "2"},
                                          {"forw", "0"},
                                          {"batchsize", "100"},
                                          {"in_channels", "3"},
                                          {"in_d", "32"},
                                          {"in_h", "32"},
                                          {"in_w", "32"},
                                          {"out_channels", "32"},
                                          {"fil_d", "3"},
                                          {"fil_h", "3"},
                                          {"fil_w", "3"},
                                          {"conv_stride_d", "1"},
                                          {"conv_stride_h", "1"},
                                          {"conv_stride_w", "1"},
                                          {"pad_d", "0"},
                                          {"pad_h", "0"},
                                          {"pad_w", "0"},
                                          {"trans_output_pad_d", "0"},
                                          {"trans_output_pad_h", "0"},
                                          {"trans_output_pad_w", "0"},
                                          {"dilation_d", "1"},
                                          {"dilation_h", "1"},
                                          {"dilation_w", "1"},
                                          {"group_count", "1"},
                                          {"mode", "conv"},
                                          {"bias", "0"},
                                          {"verify", "1"},
                                          {"time", "0"},
                                          {"iter", "10"}};
  std::vector<std::string> layouts[3];  // in, out, filter
  std::vector<std::string> native;      // gemmconv-driver's run flags
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word == "-h" || word == "--help") {
      o.help = true;
      continue;
    }
    const MiFlag* flag = nullptr;
    for (const MiFlag& f : miopen_flags()) {
      if (word == std::string("--") + f.name || word == std::string("-") + f.letter) flag = &f;
    }
    if (!flag) {
      if (word.rfind("--", 0) == 0 && word.find('_') == std::string::npos) {
        // gemmconv-driver's own run flags (--device, --solver, ...), with their values.
        const std::string bare = word.substr(0, word.find('='));
        if (problem_flags().count(bare)) {
          fail("flag '" + word +
               "' mixes gemmconv-driver's problem flags into MIOpenDriver syntax");
        }
        native.push_back(word);
        static const std::set<std::string> valued = {"--device", "--solver", "--workspace-mb",
                                                     "--seed",   "--reps",   "--warmup"};
        if (valued.count(word) && i + 1 < args.size()) native.push_back(args[++i]);
        continue;
      }
      fail("unsupported MIOpenDriver flag '" + word + "'");
    }
    if (i + 1 >= args.size()) fail("missing value for " + word);
    const std::string value = args[++i];
    const std::string shown = word + " " + value;
    switch (flag->kind) {
      case MiKind::ignored:
        if (value != flag->default_value) {
          o.warnings.push_back("ignoring " + shown + " (no meaning for gemmconv)");
        }
        continue;
      case MiKind::zero:
        if (value != flag->default_value) {
          fail("unsupported MIOpenDriver flag value '" + shown + "' (only " + flag->default_value +
               ")");
        }
        continue;
      case MiKind::value:
        break;
    }
    const std::string name = flag->name;
    if (name == "in_layout" || name == "out_layout" || name == "fil_layout") {
      layouts[name == "in_layout" ? 0 : name == "out_layout" ? 1 : 2].push_back(value);
      p.layout = miopen_layout(word, value);
    } else if (name == "mode") {
      if (value != "conv" && value != "trans") {
        fail("invalid value '" + value + "' for " + word + ": conv or trans");
      }
      v[name] = value;
    } else {
      parse_int(word, value);  // every other flag takes an integer
      v[name] = value;
    }
  }
  std::set<Layout> seen;
  for (const auto& l : layouts) {
    for (const std::string& s : l) seen.insert(miopen_layout("a layout flag", s));
  }
  if (seen.size() > 1) fail("different input, output and filter layouts are not supported");

  auto num = [&](const char* key) { return parse_int(std::string("--") + key, v[key]); };
  const int64_t dims = num("spatial_dim");
  if (dims != 2 && dims != 3) {
    fail("invalid value '" + v["spatial_dim"] +
         "' for --spatial_dim: 2 or 3 (1-D problems: use "
         "gemmconv-driver's --dims 1)");
  }
  p.spatial_dims = static_cast<int>(dims);
  p.batch = num("batchsize");
  p.in_channels = num("in_channels");
  p.out_channels = num("out_channels");
  p.groups = num("group_count");
  p.transposed = v["mode"] == "trans";
  const int first = dims == 3 ? 0 : 1;
  const char* suffix[3] = {"d", "h", "w"};
  for (int j = first; j < 3; ++j) {
    const int k = j - first;
    const std::string s = suffix[j];
    p.input_size[k] = num(("in_" + s).c_str());
    p.filter_size[k] = num(("fil_" + s).c_str());
    p.stride[k] = num(("conv_stride_" + s).c_str());
    p.pad_begin[k] = p.pad_end[k] = num(("pad_" + s).c_str());
    p.dilation[k] = num(("dilation_" + s).c_str());
    p.output_padding[k] = num(("trans_output_pad_" + s).c_str());
    if (p.output_padding[k] != 0 && !p.transposed) {
      fail("--trans_output_pad_" + s + " needs -m trans");
    }
  }

  const int64_t forw = num("forw");
  if (forw < 0 || forw > 7) fail("invalid value '" + v["forw"] + "' for -F: 0 to 7");
  const bool all = forw == 0;
  o.directions.clear();
  if (all || (forw & 1)) o.directions.push_back(Direction::forward);
  if (all || (forw & 2)) o.directions.push_back(Direction::backward_data);
  if (all || (forw & 4)) o.directions.push_back(Direction::backward_weight);
  o.bias = num("bias") != 0;
  if (o.bias && (all || (forw & 4))) o.directions.push_back(Direction::backward_bias);
  o.verify = num("verify") != 0;
  o.time = num("time") != 0;
  o.reps = num("iter");
  if (o.reps < 1) fail("invalid value '" + v["iter"] + "' for -i: at least 1");

  SpatialFlags unused;
  Options run = o;
  parse_native(native, /*run_flags_only=*/true, &run, &unused);
  return run;
}

}  // namespace

std::vector<std::string> split_words(const std::string& line) {
  std::istringstream is(line);
  std::vector<std::string> out;
  std::string w;
  while (is >> w) out.push_back(w);
  return out;
}

Options parse_command_line(const std::vector<std::string>& args) {
  if (!args.empty() && args[0].rfind("conv", 0) == 0) return parse_miopen(args);
  Options o;
  o.problem.batch = 1;
  o.problem.in_channels = 16;
  o.problem.out_channels = 16;
  SpatialFlags sf;
  parse_native(args, /*run_flags_only=*/false, &o, &sf);
  if (!o.help) o.problem = build_problem(sf, o.problem);
  return o;
}

FuzzOptions parse_fuzz_command_line(const std::vector<std::string>& args) {
  FuzzOptions f;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "-h" || flag == "--help") {
      f.help = true;
      continue;
    }
    if (flag == "--verbose") {
      f.verbose = true;
      continue;
    }
    if (flag != "--seed" && flag != "--count" && flag != "--device") {
      fail("unknown flag '" + flag + "' for fuzz");
    }
    if (i + 1 >= args.size()) fail("missing value for " + flag);
    const std::string value = args[++i];
    if (flag == "--seed") {
      f.seed = static_cast<uint64_t>(parse_int(flag, value));
    } else if (flag == "--count") {
      f.count = parse_int(flag, value);
      if (f.count < 1) fail("invalid value '" + value + "' for --count: at least 1");
    } else {
      if (value != "cpu" && value != "gpu") {
        fail("invalid value '" + value + "' for --device: cpu or gpu");
      }
      f.device = value;
    }
  }
  return f;
}

}  // namespace driver
}  // namespace gemmconv
