// The perf database file (see perfdb.h).
#include "engine/perfdb.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>

#include "gemmconv/engine.h"

namespace gemmconv {
namespace perfdb {
namespace {

constexpr const char* kHeader = "gemmconv-perfdb\t1";

std::mutex& db_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, Table>& copies() {
  static std::map<std::string, Table> c;
  return c;
}

// Reports a problem with a file once per process and path.
void report_once(const std::string& path, const std::string& what) {
  static std::set<std::string> seen;
  if (!seen.insert(path).second) return;
  log_message(LogLevel::warning, what);
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return out;
    start = tab + 1;
  }
}

bool parse_double(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size() || !(v >= 0.0)) return false;
  *out = v;
  return true;
}

bool parse_pid(const std::string& s, long long* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size() || v <= 0) return false;
  *out = v;
  return true;
}

// Reads the file at `path` into `out`; a missing file is an empty table. Problems are reported
// once.
void read_file(const std::string& path, Table* out) {
  out->clear();
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string problem;
  if (!parse(ss.str(), out, &problem)) {
    report_once(path, "the perf database " + path + " is damaged (" + problem +
                          "); the damaged part is ignored and the file is rewritten on the next "
                          "find");
  }
}

// Creates the directories above `path` (mkdir -p), mode 0700 for new ones (a per-user cache).
void make_parents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string dir = path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return;
  }
}

bool write_atomically(const std::string& path, const std::string& text) {
  static unsigned counter = 0;
  const std::string tmp =
      path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return false;
  const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

std::string field(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

bool parse(const std::string& text, Table* out, std::string* problem) {
  out->clear();
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != kHeader) {
    if (problem) *problem = "no 'gemmconv-perfdb 1' header";
    return text.empty();
  }
  int number = 1;
  int bad = 0, first_bad = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    const std::vector<std::string> f = split_tabs(line);
    bool ok = f.size() >= 4 && !f[1].empty() && !f[2].empty();
    double ms = 0.0;
    if (ok && f[0] == "win" && f.size() == 4) {
      ok = parse_double(f[3], &ms);
      if (ok) {
        (*out)[f[1]].winner = f[2];
        (*out)[f[1]].ms = ms;
      }
    } else if (ok && f[0] == "bad" && f.size() == 4) {
      (*out)[f[1]].unusable[f[2]] = f[3];
    } else if (ok && f[0] == "trial" && f.size() == 5) {
      long long pid = 0;
      ok = !f[3].empty() && parse_pid(f[4], &pid);
      if (ok) (*out)[f[1]].in_trial[f[2]] = f[3] + " " + f[4];
    } else {
      ok = false;
    }
    if (!ok && bad++ == 0) first_bad = number;
  }
  if (bad && problem) {
    *problem =
        std::to_string(bad) + " unreadable line(s), the first is line " + std::to_string(first_bad);
  }
  return bad == 0;
}

std::string serialize(const Table& t) {
  std::ostringstream out;
  out << kHeader << "\n";
  for (const auto& kv : t) {
    const std::string key = field(kv.first);
    const Entry& e = kv.second;
    if (!e.winner.empty()) {
      char ms[32];
      std::snprintf(ms, sizeof ms, "%.6g", e.ms);
      out << "win\t" << key << "\t" << field(e.winner) << "\t" << ms << "\n";
    }
    for (const auto& u : e.unusable) {
      out << "bad\t" << key << "\t" << field(u.first) << "\t" << field(u.second) << "\n";
    }
    for (const auto& r : e.in_trial) {
      const size_t space = r.second.rfind(' ');
      out << "trial\t" << key << "\t" << field(r.first) << "\t" << field(r.second.substr(0, space))
          << "\t" << (space == std::string::npos ? "0" : r.second.substr(space + 1)) << "\n";
    }
  }
  return out.str();
}

bool lookup(const std::string& path, const std::string& key, Entry* out) {
  std::lock_guard<std::mutex> lock(db_mutex());
  auto it = copies().find(path);
  if (it == copies().end()) {
    Table t;
    if (!path.empty()) read_file(path, &t);
    it = copies().emplace(path, std::move(t)).first;
  }
  const auto e = it->second.find(key);
  if (e == it->second.end()) return false;
  *out = e->second;
  return true;
}

bool update(const std::string& path, const std::string& key,
            const std::function<void(Entry&)>& change) {
  std::lock_guard<std::mutex> lock(db_mutex());
  Table& mine = copies()[path];
  if (path.empty()) {
    change(mine[key]);
    return true;
  }
  make_parents(path);
  const std::string lock_path = path + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  // Without the lock (a file system without flock) the rename still keeps the file whole; only
  // a concurrent writer's record may be lost.
  const bool locked = fd >= 0 && ::flock(fd, LOCK_EX) == 0;
  Table merged;
  read_file(path, &merged);
  change(merged[key]);
  const bool written = write_atomically(path, serialize(merged));
  if (locked) ::flock(fd, LOCK_UN);
  if (fd >= 0) ::close(fd);
  if (!written) {
    report_once(path + " (write)", "cannot write the perf database " + path + " (" +
                                       std::strerror(errno) +
                                       "); find results are kept in this process only "
                                       "(GEMMCONV_PERFDB moves the file)");
    change(mine[key]);
    return false;
  }
  mine = std::move(merged);
  return true;
}

void forget() {
  std::lock_guard<std::mutex> lock(db_mutex());
  copies().clear();
}

}  // namespace perfdb
}  // namespace gemmconv
