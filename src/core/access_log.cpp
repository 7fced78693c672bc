// AccessLog: see access_log.hpp.
#include "core/access_log.hpp"

#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstring>
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
  int n = std::snprintf(ms, sizeof ms, json_ ? ".%03ldZ\"," : ".%03ldZ ", ts.tv_nsec / 1'000'000);
  if (buf_.size() + line.size() + 48 > kFlushBytes) flush();
  if (json_) buf_.append("{\"time\":\"");
  buf_.append(stamp_);
  buf_.append(ms, static_cast<std::size_t>(n));
  buf_.append(line);
}

void AccessRecord::raw(std::string_view s) {
  const std::size_t room = sizeof buf_ - 8 - len_;  // kept: the ending
  const std::size_t n = s.size() < room ? s.size() : room;
  std::memcpy(buf_ + len_, s.data(), n);
  len_ += n;
}

void AccessRecord::key(const char* k) {
  if (json_) {
    raw(len_ == 0 ? "\"" : ",\"");
    raw(k);
    raw("\":");
  } else {
    if (len_ != 0) raw(" ");
    raw(k);
    raw("=");
  }
}

void AccessRecord::str(const char* k, std::string_view value) {
  key(k);
  value = value.substr(0, kMaxValue);
  if (!json_) {
    raw(value.empty() ? std::string_view("-") : value);
    return;
  }
  raw("\"");
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      const char esc[2] = {'\\', c};
      raw(std::string_view(esc, 2));
    } else if (u < 0x20 || u == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", u);
      raw(esc);
    } else {
      raw(std::string_view(&c, 1));
    }
  }
  raw("\"");
}

void AccessRecord::num(const char* k, std::uint64_t value) {
  key(k);
  char digits[24];
  const int n = std::snprintf(digits, sizeof digits, "%" PRIu64, value);
  raw(std::string_view(digits, static_cast<std::size_t>(n)));
}

void AccessRecord::millis(const char* k, double value) {
  key(k);
  char digits[40];
  const int n = std::snprintf(digits, sizeof digits, "%.3f", value);
  raw(std::string_view(digits, static_cast<std::size_t>(n)));
}

std::string_view AccessRecord::finish() {
  // raw() always leaves 8 bytes for this.
  if (json_) buf_[len_++] = '}';
  buf_[len_++] = '\n';
  return {buf_, len_};
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
