// The perf database: one text file per user, shared by the processes of that user, written
// atomically (a temporary file renamed over it, under an advisory lock), with a copy per process.
#pragma once

#include <functional>
#include <map>
#include <string>

namespace gemmconv {
namespace perfdb {

struct Entry {
  std::string winner;                           // candidate name; empty while nothing has won
  double ms = 0.0;                              // the winner's median time
  std::map<std::string, std::string> unusable;  // candidate -> why
  std::map<std::string, std::string> in_trial;  // candidate -> "host pid" of the process trying it
};
using Table = std::map<std::string, Entry>;

// The file format, version 1 (tab-separated, one record a line, after the header line):
//   gemmconv-perfdb  1
//   win    KEY  CANDIDATE  MS
//   bad    KEY  CANDIDATE  REASON
//   trial  KEY  CANDIDATE  HOST  PID
// parse() keeps every well-formed record and says what it skipped (a bad header skips all).
bool parse(const std::string& text, Table* out, std::string* problem);
std::string serialize(const Table& t);

// The key's entry in this process's copy of the database at `path` (read from the file on first
// use; path "" keeps the database in this process only). False when the key is unknown.
bool lookup(const std::string& path, const std::string& key, Entry* out);

// Applies `change` to the key's entry: under the lock file (path + ".lock") it reads the file
// again, so that other processes' records are kept, changes the entry, writes path + ".tmp.PID"
// and renames it over the file; this process's copy becomes the merged table. False when the file
// cannot be written (reported once); the change is then kept in this process only.
bool update(const std::string& path, const std::string& key,
            const std::function<void(Entry&)>& change);

// Drops this process's copies (the next lookup reads the file again).
void forget();

// Characters that cannot appear in a field (tab, newline) replaced by spaces.
std::string field(const std::string& s);

}  // namespace perfdb
}  // namespace gemmconv
