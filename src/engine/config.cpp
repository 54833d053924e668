// The engine's configuration (from the environment, or set by the caller) and its logging.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <utility>

#include "gemmconv/engine.h"

namespace gemmconv {
namespace {

std::mutex& config_mutex() {
  static std::mutex m;
  return m;
}

Config& config_storage() {
  static Config c = config_from_environment();
  return c;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

}  // namespace

bool parse_log_level(const std::string& s, LogLevel* out) {
  static const std::pair<const char*, LogLevel> kLevels[] = {
      {"debug", LogLevel::debug},  {"info", LogLevel::info},   {"warning", LogLevel::warning},
      {"warn", LogLevel::warning}, {"error", LogLevel::error}, {"off", LogLevel::off}};
  for (const auto& l : kLevels) {
    if (s == l.first) {
      *out = l.second;
      return true;
    }
  }
  return false;
}

Config config_from_environment() {
  Config c;
  if (const char* v = std::getenv("GEMMCONV_DISABLE")) {
    std::stringstream ss(v);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item = trim(item);
      if (!item.empty()) c.disabled.insert(item);
    }
  }
  if (const char* v = std::getenv("GEMMCONV_WORKSPACE_MB")) {
    char* end = nullptr;
    errno = 0;
    const long long mb = std::strtoll(v, &end, 10);
    if (end == v || *end != '\0' || mb < 0) {
      std::fprintf(stderr, "gemmconv: ignoring GEMMCONV_WORKSPACE_MB=%s (not a size in MiB)\n", v);
    } else if (errno == ERANGE || static_cast<unsigned long long>(mb) > kMaxWorkspaceMb) {
      std::fprintf(stderr,
                   "gemmconv: ignoring GEMMCONV_WORKSPACE_MB=%s (more than the largest budget, "
                   "%llu MiB)\n",
                   v, static_cast<unsigned long long>(kMaxWorkspaceMb));
    } else {
      c.workspace_budget = static_cast<size_t>(mb) << 20;
    }
  }
  if (const char* v = std::getenv("GEMMCONV_LOG_LEVEL")) {
    if (!parse_log_level(trim(v), &c.log_level)) {
      std::fprintf(stderr,
                   "gemmconv: ignoring GEMMCONV_LOG_LEVEL=%s (use debug, info, warning, error or "
                   "off)\n",
                   v);
    }
  }
  return c;
}

Config config() {
  std::lock_guard<std::mutex> lock(config_mutex());
  return config_storage();
}

void set_config(const Config& c) {
  std::lock_guard<std::mutex> lock(config_mutex());
  config_storage() = c;
}

void log_message(LogLevel level, const std::string& message) {
  static const char* kNames[] = {"debug", "info", "warning", "error", "off"};
  if (level == LogLevel::off || level < config().log_level) return;
  std::fprintf(stderr, "gemmconv [%s] %s\n", kNames[static_cast<int>(level)], message.c_str());
}

}  // namespace gemmconv
