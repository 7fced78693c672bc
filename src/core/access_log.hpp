// Access log: one line per request, buffered per worker, written in whole
// lines with write(2) when the buffer fills, once a second, and at exit.
// Each flush writes at most kFlushBytes so that a write to a pipe stays
// atomic (PIPE_BUF) and lines from different workers never interleave.
// Owned by one worker thread; nothing here is shared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

// One access-log record, built field by field on the stack, as `key=value`
// pairs (text) or as the members of a JSON object (json). A string value is
// cut at kMaxValue bytes (before escaping), so that a record, escaped, stays
// below AccessLog::kFlushBytes and reaches a pipe in one atomic write.
class AccessRecord {
 public:
  static constexpr std::size_t kMaxValue = 512;
  explicit AccessRecord(bool json) : json_(json) {}
  void str(const char* key, std::string_view value);
  void num(const char* key, std::uint64_t value);
  void millis(const char* key, double value);  // three decimals
  // The record, ending in '\n' (json: the object's members and its '}').
  std::string_view finish();

 private:
  void key(const char* k);
  void raw(std::string_view s);
  bool json_;
  std::size_t len_ = 0;
  char buf_[3900];
};

class AccessLog {
 public:
  static constexpr std::size_t kFlushBytes = 4000;
  // fd < 0: off. json: records are JSON objects, one per line, "time" first.
  explicit AccessLog(int fd, bool json = false) : fd_(fd), json_(json) {}
  bool json() const noexcept { return json_; }
  ~AccessLog() { flush(); }
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  bool enabled() const noexcept { return fd_ >= 0; }
  // `record` is AccessRecord::finish() of a record in this log's format;
  // the timestamp goes first.
  void append(std::string_view record);
  void flush() noexcept;

 private:
  void write_out(const char* p, std::size_t n) noexcept;
  std::string buf_;
  int fd_;
  bool json_;
  long cached_second_ = -1;
  char stamp_[80] = {};
};

}  // namespace sluice
