// Loop tests for src/proxy/worker: a real Worker runs its libuv loop on a
// thread of its own, over loopback, against plain blocking sockets driven
// from the test thread (and a one-connection upstream on another thread).
// Every scenario ends with stop(), a join, and clean(): the loop closed with
// no handle and no read block left.
//
// No sleeps: the test thread blocks on sockets with timeouts, and a thread
// that never finishes aborts the run instead of hanging it.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "core/log.hpp"
#include "http/responses.hpp"
#include "net/listener.hpp"
#include "proxy/worker.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::config::Config;

constexpr int kIoTimeoutMs = 5'000;

// Owns one fd.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

std::uint16_t local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  return ntohs(a.sin_port);
}

bool set_timeouts(int fd) {
  timeval tv{kIoTimeoutMs / 1000, 0};
  return ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
         ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0;
}

// A port that refuses connections for as long as the returned socket lives:
// bound, never listening.
Fd refusing_port(std::uint16_t& port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.get() >= 0);
  const sockaddr_in a = loopback(0);
  REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
  port = local_port(fd.get());
  return fd;
}

// Returns a connected blocking socket with I/O timeouts, or -1 with errno
// set. Never throws: the worker's probe uses it while the loop thread runs.
int try_connect(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const sockaddr_in a = loopback(port);
  if (!set_timeouts(fd) || ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

Fd connect_to(std::uint16_t port) {
  Fd fd(try_connect(port));
  INFO("connect: " << std::strerror(errno));
  REQUIRE(fd.get() >= 0);
  return fd;
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Reads one HTTP message framed by Content-Length (or by the head alone when
// it has none). Returns what arrived, complete or not.
std::string read_message(int fd) {
  std::string in;
  char buf[4096];
  std::size_t want = std::string::npos;
  while (want == std::string::npos || in.size() < want) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;  // EOF, error or timeout: the caller's comparison fails
    in.append(buf, static_cast<std::size_t>(n));
    if (want == std::string::npos) {
      const std::size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      std::string head = in.substr(0, end + 2);
      for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::size_t body = 0;
      const std::size_t cl = head.find("\r\ncontent-length:");
      if (cl != std::string::npos) body = std::strtoull(head.c_str() + cl + 17, nullptr, 10);
      want = end + 4 + body;
    }
  }
  return in;
}

// True when the peer closed cleanly (recv returns 0) before the timeout, with
// no further bytes before it.
bool sees_eof(int fd) {
  char c;
  const ssize_t n = ::recv(fd, &c, 1, 0);
  return n == 0;
}

std::string config_text(std::uint16_t listen_port, std::uint16_t live_port,
                        std::uint16_t dead_port, const char* drain_timeout) {
  const std::string lp = std::to_string(listen_port);
  return std::string("[server]\ndrain_timeout = \"") + drain_timeout +
         "\"\n"
         "[log]\naccess = \"off\"\n"
         "[[listener]]\naddress = \"127.0.0.1:" + lp + "\"\n"
         "[[route]]\npath_prefix = \"/\"\nupstream = \"live\"\n"
         "[[route]]\npath_prefix = \"/dead/\"\nupstream = \"dead\"\n"
         "[[upstream]]\nname = \"live\"\nservers = [\"127.0.0.1:" + std::to_string(live_port) + "\"]\n"
         "[[upstream]]\nname = \"dead\"\nservers = [\"127.0.0.1:" + std::to_string(dead_port) + "\"]\n";
}

// Keeps the error log quiet for the duration of a test, and SIGPIPE off.
class QuietLog {
 public:
  QuietLog() : saved_(sluice::log::g_level.load()) {
    sluice::log::set_level(sluice::log::Level::Error);
    std::signal(SIGPIPE, SIG_IGN);
  }
  ~QuietLog() { sluice::log::g_level.store(saved_); }
  QuietLog(const QuietLog&) = delete;
  QuietLog& operator=(const QuietLog&) = delete;

 private:
  std::uint8_t saved_;
};

// A Worker on its own thread, listening on an ephemeral loopback port.
class RunningWorker {
 public:
  // `make_config(listen_port)` returns the config text.
  template <typename MakeConfig>
  explicit RunningWorker(MakeConfig make_config) {
    const sockaddr_in any = loopback(0);
    std::string error;
    Fd listen_fd(sluice::net::open_listen_socket(reinterpret_cast<const sockaddr*>(&any),
                                                 sizeof any, "127.0.0.1:0", error));
    INFO(error);
    REQUIRE(listen_fd.get() >= 0);
    port_ = local_port(listen_fd.get());
    auto loaded = sluice::config::parse_config(make_config(port_), "loop_test.toml");
    if (auto* errors = std::get_if<std::vector<sluice::config::ConfigError>>(&loaded)) {
      for (const auto& e : *errors) UNSCOPED_INFO(e.to_string());
      FAIL("the test config must load");
    }
    config_ = std::get<std::shared_ptr<const Config>>(loaded);
    std::vector<int> fds{listen_fd.release()};
    auto gen = std::make_shared<sluice::proxy::Generation>();
    gen->config = config_;
    gen->members = sluice::proxy::Generation::members_of(*config_, nullptr);
    worker_ = std::make_unique<sluice::proxy::Worker>(0, 1, gen, std::move(fds), -1);
    ran_ = done_.get_future();
    thread_ = std::thread([this] {
      worker_->run();
      done_.set_value();
    });
    // A request answered locally proves the loop runs and listens: no Host
    // in HTTP/1.1 is a 400. Nothing here may throw now that the thread
    // runs: tests REQUIRE(ready()).
    Fd probe(try_connect(port_));
    if (probe.get() < 0) {
      probe_ = std::string("connect: ") + std::strerror(errno);
    } else if (!send_all(probe.get(), "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")) {
      probe_ = "send failed";
    } else {
      probe_ = read_message(probe.get());
      if (probe_ == sluice::http::error_response(400, true) && sees_eof(probe.get())) probe_ = "ready";
    }
  }

  // True when the loop answered the probe (a 400, then a close); otherwise
  // what the probe got instead is in probe().
  bool ready() const noexcept { return probe_ == "ready"; }
  const std::string& probe() const noexcept { return probe_; }

  ~RunningWorker() {
    if (!thread_.joinable()) return;
    // A test failed before stopping: stop now (drains end within the
    // configured drain_timeout), but never hang the run.
    worker_->stop();
    if (ran_.wait_for(30s) != std::future_status::ready) {
      std::cerr << "loop_test: worker did not stop within 30 s; aborting" << std::endl;
      std::abort();
    }
    thread_.join();
  }
  RunningWorker(const RunningWorker&) = delete;
  RunningWorker& operator=(const RunningWorker&) = delete;

  std::uint16_t port() const noexcept { return port_; }

  // stop() from this thread; true when run() returned within the deadline.
  bool stop_and_join(std::chrono::seconds deadline = 10s) {
    worker_->stop();
    if (ran_.wait_for(deadline) != std::future_status::ready) return false;
    thread_.join();
    return true;
  }
  bool clean() const { return worker_->clean(); }

 private:
  std::shared_ptr<const Config> config_;
  std::unique_ptr<sluice::proxy::Worker> worker_;
  std::promise<void> done_;
  std::future<void> ran_;
  std::thread thread_;
  std::uint16_t port_ = 0;
  std::string probe_;
};

// Fails the test (and so stops the worker from the destructor) unless the
// loop answered the probe.
#define REQUIRE_READY(w)                       \
  do {                                         \
    INFO("probe got: " << (w).probe());        \
    REQUIRE((w).ready());                      \
  } while (0)

// A one-connection HTTP/1.1 upstream on a blocking socket and a thread: it
// accepts, reads one request head, reports it, sends whatever the test hands
// it (possibly nothing), then waits for the proxy to close the connection.
class TinyUpstream {
 public:
  TinyUpstream() {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd.get() >= 0);
    const sockaddr_in a = loopback(0);
    REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd.get(), 8) == 0);
    port_ = local_port(fd.get());
    listen_ = std::move(fd);
    got_head_ = head_promise_.get_future();
    thread_ = std::thread([this] { serve(); });
  }
  ~TinyUpstream() {
    respond(std::string{});  // no-op when already set
    if (thread_.joinable()) thread_.join();
  }
  TinyUpstream(const TinyUpstream&) = delete;
  TinyUpstream& operator=(const TinyUpstream&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  // The request head, once it arrived ("" if none came within the timeout).
  std::string request_head() {
    if (got_head_.wait_for(10s) != std::future_status::ready) return {};
    return got_head_.get();
  }
  // The bytes to answer with; "" sends nothing. Only the first call counts.
  void respond(std::string bytes) {
    if (!responded_) {
      responded_ = true;
      response_.set_value(std::move(bytes));
    }
  }
  // After the thread ends: whether the proxy closed the connection (EOF).
  bool saw_eof() {
    if (thread_.joinable()) thread_.join();
    return saw_eof_;
  }

 private:
  void serve() {
    std::string head;
    pollfd p{listen_.get(), POLLIN, 0};
    Fd conn;
    if (::poll(&p, 1, kIoTimeoutMs) == 1) conn = Fd(::accept(listen_.get(), nullptr, nullptr));
    if (conn.get() >= 0 && set_timeouts(conn.get())) {
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(conn.get(), buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
    }
    head_promise_.set_value(head);
    auto answer = response_.get_future();
    if (answer.wait_for(10s) != std::future_status::ready || conn.get() < 0) return;
    const std::string bytes = answer.get();
    if (!bytes.empty() && !send_all(conn.get(), bytes)) return;
    // Any further byte is unexpected: only EOF counts.
    char c;
    saw_eof_ = ::recv(conn.get(), &c, 1, 0) == 0;
  }

  Fd listen_;
  std::uint16_t port_ = 0;
  std::promise<std::string> head_promise_;
  std::future<std::string> got_head_;
  std::promise<std::string> response_;
  bool responded_ = false;
  bool saw_eof_ = false;
  std::thread thread_;
};

// Blocks until the worker's listener refuses connections, which it does once
// the loop has begun draining. Every attempt is a real connect; none sleeps.
// Returns the errno of the first failed connect, or 0 when the deadline
// passed. ECONNREFUSED, or ECONNRESET when the listener closed mid-handshake.
int listener_closed(std::uint16_t port) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    const int fd = try_connect(port);
    if (fd < 0) return errno;
    ::close(fd);
  }
  return 0;
}

// Runs `scenario` in a forked child so that a crash in the loop fails one
// assertion instead of ending the whole run. The child reports through a
// pipe; the result is its report and how it ended. Must be called while the
// test process has no other thread running.
struct Isolated {
  bool exited = false;  // ended by _exit, not by a signal
  int signal = 0;
  std::string report;
};
Isolated run_isolated(const std::function<std::string()>& scenario) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Die of the signal itself: the parent reports it, not Catch's handler here.
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) std::signal(sig, SIG_DFL);
    ::close(fds[0]);
    std::string report;
    try {
      report = scenario();
    } catch (...) {
      report = "exception in the scenario";
    }
    std::string_view rest = report;
    while (!rest.empty()) {
      const ssize_t w = ::write(fds[1], rest.data(), rest.size());
      if (w <= 0) break;
      rest.remove_prefix(static_cast<std::size_t>(w));
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  Isolated out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.report.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  out.exited = WIFEXITED(status);
  out.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return out;
}
}  // namespace

TEST_CASE("worker loop: a 502 for a refused upstream, then stop() closes the loop clean", "[loop]") {
  QuietLog quiet;
  std::uint16_t dead = 0;
  Fd dead_fd = refusing_port(dead);
  RunningWorker w([&](std::uint16_t p) { return config_text(p, dead, dead, "5s"); });
  REQUIRE_READY(w);

  Fd client = connect_to(w.port());
  REQUIRE(send_all(client.get(), "GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"));
  CHECK(read_message(client.get()) == sluice::http::error_response(502, true));
  CHECK(sees_eof(client.get()));
  client.reset();

  REQUIRE(w.stop_and_join());
  REQUIRE(w.clean());
}

TEST_CASE("worker loop: stop() with an idle keep-alive client and a pooled upstream closes both, clean", "[loop]") {
  QuietLog quiet;
  std::uint16_t dead = 0;
  Fd dead_fd = refusing_port(dead);
  TinyUpstream up;
  up.respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Up: 1\r\n\r\nok");
  RunningWorker w([&](std::uint16_t p) { return config_text(p, up.port(), dead, "5s"); });
  REQUIRE_READY(w);

  Fd client = connect_to(w.port());
  REQUIRE(send_all(client.get(), "GET /hello HTTP/1.1\r\nHost: app.test\r\n\r\n"));
  const std::string first = read_message(client.get());
  CHECK(first.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(first.find("\r\nX-Up: 1\r\n") != std::string::npos);
  CHECK(first.find("Connection: close") == std::string::npos);
  CHECK(first.ends_with("\r\n\r\nok"));
  const std::string head = up.request_head();
  CHECK(head.rfind("GET /hello HTTP/1.1\r\n", 0) == 0);
  CHECK(head.find("\r\nHost: app.test\r\n") != std::string::npos);

  // The same connection goes on: a second request, answered 502 but kept alive.
  REQUIRE(send_all(client.get(), "GET /dead/y HTTP/1.1\r\nHost: app.test\r\n\r\n"));
  CHECK(read_message(client.get()) == sluice::http::error_response(502, false));

  // Now both connections are idle: the client's and the pooled upstream one.
  REQUIRE(w.stop_and_join());
  CHECK(sees_eof(client.get()));
  CHECK(up.saw_eof());
  REQUIRE(w.clean());
}

TEST_CASE("worker loop: stop() during a request lets the response finish, then closes clean", "[loop]") {
  QuietLog quiet;
  std::uint16_t dead = 0;
  Fd dead_fd = refusing_port(dead);
  TinyUpstream up;
  RunningWorker w([&](std::uint16_t p) { return config_text(p, up.port(), dead, "10s"); });
  REQUIRE_READY(w);

  Fd client = connect_to(w.port());
  REQUIRE(send_all(client.get(), "GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n"));
  REQUIRE(up.request_head().rfind("GET /slow HTTP/1.1\r\n", 0) == 0);  // the request is in flight

  // stop() from another thread, which waits for the loop to end; this thread
  // answers the request once the drain has visibly begun. No assertion runs
  // off the test thread (Catch2 assertions are not thread-safe).
  bool stopped = false;
  std::thread stopper([&] { stopped = w.stop_and_join(20s); });
  const int refused = listener_closed(w.port());
  up.respond("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone");
  const std::string resp = read_message(client.get());
  const bool eof = sees_eof(client.get());
  client.reset();  // ends the proxy's lingering close
  stopper.join();
  CHECK(stopped);
  INFO("probe connect: " << std::strerror(refused));
  CHECK((refused == ECONNREFUSED || refused == ECONNRESET));
  CHECK(eof);
  CHECK(resp.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(resp.find("\r\nConnection: close\r\n") != std::string::npos);  // draining: no keep-alive
  CHECK(resp.ends_with("\r\n\r\ndone"));
  CHECK(up.saw_eof());  // not parked for reuse while draining
  REQUIRE(w.clean());
}

TEST_CASE("worker loop: the drain deadline closes a request still waiting upstream, clean", "[loop]") {
  QuietLog quiet;
  std::uint16_t dead = 0;
  Fd dead_fd = refusing_port(dead);
  TinyUpstream up;
  up.respond(std::string{});  // never answers; waits for the proxy to close
  RunningWorker w([&](std::uint16_t p) { return config_text(p, up.port(), dead, "200ms"); });
  REQUIRE_READY(w);

  Fd client = connect_to(w.port());
  REQUIRE(send_all(client.get(), "GET /never HTTP/1.1\r\nHost: app.test\r\n\r\n"));
  REQUIRE(up.request_head().rfind("GET /never HTTP/1.1\r\n", 0) == 0);

  REQUIRE(w.stop_and_join());
  CHECK(up.saw_eof());
  // The client gets no response: its connection is closed (EOF or reset), never left open.
  char c;
  const ssize_t n = ::recv(client.get(), &c, 1, 0);
  const int err = n < 0 ? errno : 0;
  CHECK(n <= 0);
  CHECK(err != EAGAIN);  // a timeout would mean the connection was left open
  REQUIRE(w.clean());
}

namespace {

// Sends `request` (an upgrade the worker cannot complete), expects `status`,
// then tries another request on the same connection, in a child process.
std::string upgrade_then_more(const std::string& request, const std::string& status) {
  const Isolated child = run_isolated([&]() -> std::string {
    QuietLog quiet;
    std::uint16_t dead = 0;
    Fd dead_fd = refusing_port(dead);
    RunningWorker w([&](std::uint16_t p) { return config_text(p, dead, dead, "5s"); });
    if (!w.ready()) return "probe got: " + w.probe();
    Fd client = connect_to(w.port());
    std::string report;
    send_all(client.get(), request);
    const std::string first = read_message(client.get());
    report += first.rfind("HTTP/1.1 " + status + " ", 0) == 0 ? status + ";" : "first=" + first + ";";
    send_all(client.get(), "GET /next HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
    const std::string second = read_message(client.get());
    if (second.empty()) {
      report += "second: closed;";
    } else if (second.rfind("HTTP/1.1 ", 0) == 0) {
      report += "second: " + second.substr(0, 12) + ";";
    } else {
      report += "second: garbage " + second + ";";
    }
    client.reset();
    report += w.stop_and_join() ? "stopped;" : "stop timed out;";
    report += w.clean() ? "clean" : "not clean";
    return report;
  });
  if (child.signal != 0 || !child.exited) return "child died: " + child.report;
  return child.report;
}

}  // namespace

TEST_CASE("worker loop: a refused upgrade request leaves the connection usable or closed, never a crash", "[loop]") {
  // What the client sends after an upgrade it did not get must get a
  // response or a close, and the worker must still stop clean. The parser
  // stops a second time after an upgrade request without a new head (see
  // parser_test), which once sent the session into connect_upstream() with
  // no pool: hence the child process.
  SECTION("h2c is never tunnelled: 501") {
    const std::string report = upgrade_then_more(
        "GET /chat HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
        "501");
    INFO("child report: " << report);
    CHECK((report == "501;second: HTTP/1.1 502;stopped;clean" ||
           report == "501;second: closed;stopped;clean"));
  }
  SECTION("a websocket handshake to an upstream that refuses connections: 502") {
    const std::string report = upgrade_then_more(
        "GET /chat HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Origin: http://app.test\r\n\r\n",
        "502");
    INFO("child report: " << report);
    CHECK(report == "502;second: closed;stopped;clean");
  }
}
