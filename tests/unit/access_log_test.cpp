// Unit tests for src/core/access_log: records in text and JSON, written
// through a pipe.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <string>

#include "core/access_log.hpp"

using sluice::AccessLog;
using sluice::AccessRecord;

namespace {
// What `log` wrote, read back from the pipe behind it.
std::string written(int read_fd) {
  char buf[8192];
  const ssize_t n = ::read(read_fd, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}
}  // namespace

TEST_CASE("access log: text records are key=value pairs after the time", "[access_log]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  {
    AccessLog log(fds[1]);
    AccessRecord r(false);
    r.num("conn", 7);
    r.str("path", "/a b");
    r.str("route", "");
    r.millis("duration_ms", 1.5);
    log.append(r.finish());
  }
  const std::string line = written(fds[0]);
  ::close(fds[0]);
  ::close(fds[1]);
  REQUIRE(line.size() > 25);
  CHECK(line[4] == '-');
  CHECK(line.substr(23) == "Z conn=7 path=/a b route=- duration_ms=1.500\n");
}

TEST_CASE("access log: JSON records escape what JSON requires", "[access_log]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  {
    AccessLog log(fds[1], true);
    AccessRecord r(true);
    r.num("status", 200);
    r.str("path", std::string("/q\"x\\y\x01\x7f", 8));
    r.str("route", "");
    log.append(r.finish());
  }
  const std::string line = written(fds[0]);
  ::close(fds[0]);
  ::close(fds[1]);
  REQUIRE(line.rfind("{\"time\":\"", 0) == 0);
  const std::size_t rest = line.find("Z\",");
  REQUIRE(rest != std::string::npos);
  CHECK(line.substr(rest + 3) ==
        "\"status\":200,\"path\":\"/q\\\"x\\\\y\\u0001\\u007f\",\"route\":\"\"}\n");
}

TEST_CASE("access log: an over-long value is cut and the record stays whole", "[access_log]") {
  AccessRecord r(true);
  r.str("path", std::string(5000, '\x01'));  // escaped, six times longer
  r.num("status", 200);
  const std::string out(r.finish());
  CHECK(out.size() < AccessLog::kFlushBytes);
  CHECK(out.find(std::string(512, 'a')) == std::string::npos);
  CHECK(out.size() > 512 * 6);
  CHECK(out.substr(out.size() - 16) == "\",\"status\":200}\n");
}
