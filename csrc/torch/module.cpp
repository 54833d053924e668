// The pybind11 module gemmconv._C: switches, configuration, statistics and build facts.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <set>
#include <string>
#include <vector>

#include "gemmconv/engine.h"
#include "gemmconv/find.h"
#include "overrides.h"

// setup.py passes the version read from python/gemmconv/_version.py, the one place it is written.
#ifndef GEMMCONV_VERSION
#error "GEMMCONV_VERSION is not defined: build the extension with setup.py"
#endif
// 1 when the gfx1030 code objects were built with gfx1010's workarounds (setup.py, ROCm builds).
#ifndef GEMMCONV_GFX1030_SAFE
#define GEMMCONV_GFX1030_SAFE 0
#endif
#ifndef GEMMCONV_BUILT_ARCHS
#define GEMMCONV_BUILT_ARCHS "cpu"
#endif

namespace py = pybind11;

namespace {

gemmconv_torch::Route route(const std::string& device_type) {
  if (device_type == "cpu") return gemmconv_torch::Route::cpu;
  if (device_type == "cuda" || device_type == "hip") return gemmconv_torch::Route::gpu;
  throw py::value_error("gemmconv: unknown device type '" + device_type +
                        "' (expected 'cuda' or 'cpu')");
}

const char* log_level_name(gemmconv::LogLevel l) {
  switch (l) {
    case gemmconv::LogLevel::debug:
      return "debug";
    case gemmconv::LogLevel::info:
      return "info";
    case gemmconv::LogLevel::warning:
      return "warning";
    case gemmconv::LogLevel::error:
      return "error";
    case gemmconv::LogLevel::off:
      break;
  }
  return "off";
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s + sep) {
    if (c == sep) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  return out;
}

py::dict stats() {
  py::dict out;
  const gemmconv::Direction all[] = {
      gemmconv::Direction::forward, gemmconv::Direction::backward_data,
      gemmconv::Direction::backward_weight, gemmconv::Direction::backward_bias};
  for (gemmconv::Direction d : all) out[gemmconv::to_string(d)] = py::dict();
  for (const gemmconv::StatsEntry& e : gemmconv::stats_snapshot()) {
    py::dict per = out[gemmconv::to_string(e.direction)];
    const py::str key(e.solver);
    const uint64_t before = per.contains(key) ? per[key].cast<uint64_t>() : 0;
    per[key] = before + e.calls;
  }
  return out;
}

void set_config(const std::vector<std::string>& disabled, int64_t workspace_mb,
                const std::string& log_level) {
  if (workspace_mb < 0 ||
      static_cast<unsigned long long>(workspace_mb) > gemmconv::kMaxWorkspaceMb) {
    throw py::value_error("gemmconv: workspace_mb=" + std::to_string(workspace_mb) +
                          " is out of range (0 to " + std::to_string(gemmconv::kMaxWorkspaceMb) +
                          " MiB)");
  }
  gemmconv::Config c = gemmconv::config();  // keeps the find mode and the perf database
  c.disabled.clear();
  // Names are not checked here, as in GEMMCONV_DISABLE: a name no solver has switches nothing off.
  for (const std::string& name : disabled) {
    for (const std::string& part : split(name, ',')) c.disabled.insert(part);
  }
  c.workspace_budget = static_cast<size_t>(workspace_mb) << 20;
  if (!gemmconv::parse_log_level(log_level, &c.log_level)) {
    throw py::value_error("gemmconv: unknown log level '" + log_level +
                          "' (expected debug, info, warning, error or off)");
  }
  gemmconv::set_config(c);
}

py::dict get_config() {
  const gemmconv::Config c = gemmconv::config();
  py::dict out;
  out["disabled"] = std::vector<std::string>(c.disabled.begin(), c.disabled.end());
  out["workspace_mb"] = static_cast<int64_t>(c.workspace_budget >> 20);
  out["log_level"] = log_level_name(c.log_level);
  out["find_mode"] = gemmconv::to_string(c.find_mode);
  out["find_on_cpu"] = c.find_on_cpu;
  out["perfdb_path"] = c.perfdb_path;
  return out;
}

py::dict find_stats() {
  const gemmconv::FindStats s = gemmconv::find_stats();
  py::dict out;
  out["finds"] = s.finds;
  out["trials"] = s.trials;
  out["database_hits"] = s.database_hits;
  out["table_plans"] = s.table_plans;
  return out;
}

std::vector<std::string> solver_names() {
  std::vector<std::string> out;
  for (const gemmconv::Solver* s : gemmconv::solver_registry()) out.push_back(s->name());
  return out;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "gemmconv's PyTorch binding; use the gemmconv package, not this module.";
  m.def(
      "set_enabled",
      [](const std::string& device_type, bool on) {
        gemmconv_torch::set_enabled(route(device_type), on);
      },
      py::arg("device_type"), py::arg("on"));
  m.def(
      "is_enabled",
      [](const std::string& device_type) { return gemmconv_torch::is_enabled(route(device_type)); },
      py::arg("device_type"));
  m.def("stats", &stats);
  m.def("reset_stats", &gemmconv::reset_stats);
  m.def("set_config", &set_config, py::arg("disabled"), py::arg("workspace_mb"),
        py::arg("log_level"));
  m.def("get_config", &get_config);
  m.def("find_stats", &find_stats);
  m.def("reset_find_stats", &gemmconv::reset_find_stats);
  m.def("perfdb_size", []() { return gemmconv::perfdb_size(); });
  m.def("solver_names", &solver_names);
  m.def("built_archs", []() { return split(GEMMCONV_BUILT_ARCHS, ';'); });
  m.def("gfx1030_gfx1010_safe", []() { return GEMMCONV_GFX1030_SAFE != 0; });
  m.def("engine_version", []() { return std::string(GEMMCONV_VERSION); });
  m.def("gpu_kernels_registered", &gemmconv_torch::gpu_kernels_registered);
}
