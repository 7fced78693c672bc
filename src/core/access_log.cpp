// AccessLog: see access_log.hpp.
#include "core/access_log.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

namespace sluice {

void AccessLog::append(std::string_view line) {
  if (fd_ < 0) return;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != cached_second_) {  // format the date once a second, not per line
    cached_second_ = ts.tv_sec;
    tm utc{};
    gmtime_r(&ts.tv_sec, &utc);
    std::snprintf(stamp_, sizeof stamp_, "%04d-%02d-%02dT%02d:%02d:%02d", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
  }
  char ms[24];
  int n = std::snprintf(ms, sizeof ms, ".%03ldZ ", ts.tv_nsec / 1'000'000);
  if (buf_.size() + line.size() + 40 > kFlushBytes) flush();
  buf_.append(stamp_);
  buf_.append(ms, static_cast<std::size_t>(n));
  buf_.append(line);
}

void AccessLog::flush() noexcept {
  if (fd_ < 0 || buf_.empty()) return;
  write_out(buf_.data(), buf_.size());
  buf_.clear();
}

void AccessLog::write_out(const char* p, std::size_t n) noexcept {
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;  // the access log is best effort: never stall or crash the data path over it
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace sluice
