// Access log: one line per request, buffered per worker, written in whole
// lines with write(2) when the buffer fills, once a second, and at exit.
// Each flush writes at most kFlushBytes so that a write to a pipe stays
// atomic (PIPE_BUF) and lines from different workers never interleave.
// Owned by one worker thread; nothing here is shared.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice {

class AccessLog {
 public:
  static constexpr std::size_t kFlushBytes = 4000;

  explicit AccessLog(int fd) : fd_(fd) {}  // fd < 0: off
  ~AccessLog() { flush(); }
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  bool enabled() const noexcept { return fd_ >= 0; }
  // `line` ends in '\n'. A timestamp is prepended.
  void append(std::string_view line);
  void flush() noexcept;

 private:
  void write_out(const char* p, std::size_t n) noexcept;
  std::string buf_;
  int fd_;
  long cached_second_ = -1;
  char stamp_[80] = {};
};

}  // namespace sluice
