// Error log implementation: format into a stack buffer, one write(2) per line.
#include "core/log.hpp"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace sluice::log {

std::atomic<std::uint8_t> g_level{static_cast<std::uint8_t>(Level::Info)};

void set_level(Level level) noexcept {
  g_level.store(static_cast<std::uint8_t>(level), std::memory_order_relaxed);
}

const char* to_string(Level level) noexcept {
  switch (level) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
  }
  return "?";
}

void emit(Level level, const char* fmt, ...) noexcept {
  char line[2048];
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  gmtime_r(&ts.tv_sec, &utc);
  int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
                        utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                        utc.tm_sec, ts.tv_nsec / 1'000'000, to_string(level));
  if (n < 0) return;
  std::va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(line + n, sizeof line - static_cast<std::size_t>(n) - 1, fmt, ap);
  va_end(ap);
  if (m < 0) return;
  std::size_t len = static_cast<std::size_t>(n) + static_cast<std::size_t>(m);
  if (len > sizeof line - 2) len = sizeof line - 2;  // truncated: still one line
  line[len++] = '\n';
  // A short or failed write of the error log has nowhere better to be reported.
  [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, line, len);
}

}  // namespace sluice::log
