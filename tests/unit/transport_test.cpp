// Tests for src/net/transport: TcpTransport on the edge-triggered Poller,
// over real loopback TCP sockets, with the loop run on the test thread.
//
// Edge-triggered polling reports a socket once per arrival, so every place
// where bytes can wait without a new edge is exercised here: bytes that came
// while reading was stopped, reads that stop at the per-turn cap, writes the
// kernel could not take at once, and a connect whose result is known at
// once. Each test ends with io.close() and a loop that then closes clean:
// no handle, no read block and no descriptor left behind.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "net/transport.hpp"

namespace {

using sluice::Block;
using sluice::net::IoContext;
using sluice::net::OutBatch;
using sluice::net::TcpTransport;
using sluice::net::TransportHandler;

// A handler that records everything the transport tells it.
struct Recorder final : TransportHandler {
  std::string bytes;
  int eofs = 0;
  int errors = 0;
  int last_error = 0;
  std::vector<int> writes_done;
  int closed = 0;
  std::function<void()> after_read;

  void on_read(Block* b, std::size_t n) override {
    bytes.append(b->data, n);
    if (after_read) after_read();
  }
  void on_eof() override { ++eofs; }
  void on_error(int status) override {
    ++errors;
    last_error = status;
  }
  void on_write_done(int status) override { writes_done.push_back(status); }
  void on_closed() override { ++closed; }
};

// A loopback listener on a free port (blocking accept).
struct Listener {
  int fd = -1;
  sockaddr_in addr{};
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    REQUIRE(::listen(fd, 16) == 0);
  }
  ~Listener() { ::close(fd); }
  int accept() const { return ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC); }
};

// One connected pair: `ours` (non-blocking, for a transport) and `peer`
// (blocking, driven by the test).
struct Pair {
  int ours = -1;
  int peer = -1;
};

Pair connected_pair(const Listener& l) {
  Pair p;
  p.peer = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(::connect(p.peer, reinterpret_cast<const sockaddr*>(&l.addr), sizeof l.addr) == 0);
  // A blocking read that finds nothing fails after 5 s instead of hanging.
  timeval limit{5, 0};
  REQUIRE(::setsockopt(p.peer, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) == 0);
  p.ours = l.accept();
  REQUIRE(p.ours >= 0);
  REQUIRE(::fcntl(p.ours, F_SETFL, ::fcntl(p.ours, F_GETFL) | O_NONBLOCK) == 0);
  return p;
}

void set_buffers(int fd, int bytes) {
  REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) == 0);
  REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) == 0);
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    REQUIRE(n > 0);
    off += static_cast<std::size_t>(n);
  }
}

// Runs the loop one turn at a time until `done` holds; fails after 10 s
// instead of hanging. (Not a wait for time to pass: the kernel's own timers,
// such as a zero-window probe between two small socket buffers, decide when
// some of these conditions come true.)
void run_until(uv_loop_t* loop, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < deadline) uv_run(loop, UV_RUN_NOWAIT);
  REQUIRE(done());
}

// Closes the context and checks that the loop then ends with nothing left.
void finish(uv_loop_t* loop, IoContext& io) {
  io.close();
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(io.blocks().in_use() == 0);
  CHECK(uv_loop_close(loop) == 0);
}

// A loop, its IoContext, and a transport adopted on one end of a loopback
// connection whose other end (p.peer) the test drives. `buffers` > 0 shrinks
// both ends' socket buffers to that many bytes.
struct Rig {
  uv_loop_t loop{};
  IoContext io{&loop};
  Listener l;
  Pair p;
  Recorder r;
  TcpTransport t{io, r};

  explicit Rig(int buffers = 0) {
    uv_loop_init(&loop);
    p = connected_pair(l);
    if (buffers > 0) {
      set_buffers(p.ours, buffers);
      set_buffers(p.peer, buffers);
    }
    REQUIRE(t.adopt(p.ours) == 0);
  }
  void spin_until(const std::function<bool()>& done) { run_until(&loop, done); }
  // Closes the transport (if the test did not), waits for on_closed, closes
  // the peer, and checks that the loop then ends clean.
  void end() {
    t.close();
    spin_until([&] { return r.closed == 1; });
    if (p.peer >= 0) ::close(p.peer);
    p.peer = -1;
    finish(&loop, io);
  }
};

// The same with 16 KiB socket buffers at both ends, so that writes queue.
struct SmallBuffers : Rig {
  SmallBuffers() : Rig(16 * 1024) {}
};

}  // namespace

TEST_CASE_METHOD(Rig,
                 "transport: bytes that arrived while reading was stopped are read after read_start",
                 "[transport]") {

  // Read a first piece, then stop reading from inside on_read.
  r.after_read = [&] { t.read_stop(); };
  t.read_start();
  write_all(p.peer, "first");
  run_until(&loop, [&] { return r.bytes == "first"; });
  r.after_read = nullptr;

  // Everything sent now raises its edge while nobody reads: more than 32
  // blocks' worth, so that reading also hits the per-turn cap.
  const std::string more = pattern(40 * Block::kCapacity + 123);
  write_all(p.peer, more);
  ::shutdown(p.peer, SHUT_WR);
  for (int i = 0; i < 50; ++i) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(r.bytes == "first");  // nothing read while stopped

  t.read_start();
  run_until(&loop, [&] { return r.eofs == 1; });
  CHECK(r.bytes == "first" + more);
  CHECK(r.errors == 0);

  t.close();
  CHECK(r.closed == 0);  // on_closed comes from the loop, never from close()
  run_until(&loop, [&] { return r.closed == 1; });
  ::close(p.peer);
  finish(&loop, io);
}

TEST_CASE_METHOD(Rig,
                 "transport: a FIN that comes with the last bytes is read as EOF after them",
                 "[transport]") {
  t.read_start();
  // Both are in the socket before the loop looks: one edge, a short read
  // of the bytes, and the EOF behind them.
  write_all(p.peer, "HTTP/1.1 200 OK\r\nContent-Len");
  ::shutdown(p.peer, SHUT_WR);
  run_until(&loop, [&] { return r.eofs == 1; });
  CHECK(r.bytes == "HTTP/1.1 200 OK\r\nContent-Len");
  end();
}

TEST_CASE_METHOD(SmallBuffers,
                 "transport: a write the kernel cannot take at once is queued, completed and shut in order",
                 "[transport]") {

  const std::string a = pattern(4 * 1024 * 1024);
  const std::string b = "and the tail";
  OutBatch batch;
  batch.append_copy(a);
  REQUIRE(t.write(batch) == 0);
  CHECK(batch.empty());
  REQUIRE(t.write_pending() > 0);  // more than both socket buffers hold
  batch.append_copy(b);
  REQUIRE(t.write(batch) == 0);  // queued behind the first, never before it
  t.shutdown_write();            // after both

  // The peer reads everything up to the FIN while the loop runs.
  std::string got;
  REQUIRE(::fcntl(p.peer, F_SETFL, ::fcntl(p.peer, F_GETFL) | O_NONBLOCK) == 0);
  bool fin = false;
  run_until(&loop, [&] {
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(p.peer, buf, sizeof buf, 0);
      if (n > 0) {
        got.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) fin = true;
      break;
    }
    return fin;
  });
  CHECK(got.size() == a.size() + b.size());
  CHECK(got == a + b);
  CHECK(t.write_pending() == 0);
  CHECK(r.writes_done == std::vector<int>{0, 0});

  end();
}

TEST_CASE_METHOD(SmallBuffers,
                 "transport: close() with writes queued drops them, reports nothing more, closes once",
                 "[transport]") {
  t.read_start();

  OutBatch batch;
  batch.append_copy(pattern(2 * 1024 * 1024));
  REQUIRE(t.write(batch) == 0);
  REQUIRE(t.write_pending() > 0);
  t.close();
  t.close();  // idempotent
  CHECK(t.write_pending() == 0);
  OutBatch late;
  late.append_copy("late");
  CHECK(t.write(late) == UV_ECANCELED);
  CHECK(late.empty());

  run_until(&loop, [&] { return r.closed == 1; });
  for (int i = 0; i < 20; ++i) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(r.closed == 1);
  CHECK(r.writes_done.empty());
  // The peer sees the connection end.
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(p.peer, buf, sizeof buf, 0)) > 0) {
  }
  CHECK(n <= 0);
  ::close(p.peer);
  finish(&loop, io);
}

TEST_CASE_METHOD(SmallBuffers,
                 "transport: a peer that resets is an error for the reader and for queued writes",
                 "[transport]") {

  OutBatch batch;
  batch.append_copy(pattern(2 * 1024 * 1024));
  REQUIRE(t.write(batch) == 0);
  REQUIRE(t.write_pending() > 0);
  // An abortive close: RST instead of FIN.
  linger lg{1, 0};
  REQUIRE(::setsockopt(p.peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
  ::close(p.peer);
  p.peer = -1;

  run_until(&loop, [&] { return !r.writes_done.empty(); });
  CHECK(r.writes_done.front() < 0);
  CHECK(t.write_pending() == 0);
  // The reset was reported to the write; reading then ends too (the kernel
  // reports a reset once: to whichever call comes first).
  t.read_start();
  run_until(&loop, [&] { return r.errors + r.eofs > 0; });
  CHECK(r.errors + r.eofs == 1);
  end();
}

TEST_CASE("transport: connect reports from the loop, for a listening port and a refused one",
          "[transport]") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  IoContext io(&loop);

  struct Result {
    int calls = 0;
    int status = 1;
  };
  auto record = [](void* data, int status) {
    auto* res = static_cast<Result*>(data);
    ++res->calls;
    res->status = status;
  };

  // A listening port: connected, and bytes flow both ways.
  Listener l;
  Recorder r;
  TcpTransport t(io, r);
  Result ok;
  REQUIRE(t.connect(reinterpret_cast<const sockaddr*>(&l.addr), record, &ok) == 0);
  CHECK(ok.calls == 0);  // never from inside connect()
  run_until(&loop, [&] { return ok.calls == 1; });
  CHECK(ok.status == 0);
  int peer = l.accept();
  REQUIRE(peer >= 0);
  OutBatch batch;
  batch.append_copy("ping");
  REQUIRE(t.write(batch) == 0);
  char buf[8];
  REQUIRE(::recv(peer, buf, 4, MSG_WAITALL) == 4);
  CHECK(std::string(buf, 4) == "ping");
  t.read_start();
  write_all(peer, "pong");
  run_until(&loop, [&] { return r.bytes == "pong"; });

  // A port nobody listens on: refused, once.
  sockaddr_in closed = l.addr;
  {
    Listener gone;
    closed = gone.addr;
  }
  Recorder r2;
  TcpTransport t2(io, r2);
  Result refused;
  REQUIRE(t2.connect(reinterpret_cast<const sockaddr*>(&closed), record, &refused) == 0);
  CHECK(refused.calls == 0);
  run_until(&loop, [&] { return refused.calls == 1; });
  CHECK(refused.status == UV_ECONNREFUSED);

  // Closed while connecting: no result at all.
  Recorder r3;
  TcpTransport t3(io, r3);
  Result never;
  REQUIRE(t3.connect(reinterpret_cast<const sockaddr*>(&l.addr), record, &never) == 0);
  t3.close();
  run_until(&loop, [&] { return r3.closed == 1; });
  CHECK(never.calls == 0);

  t.close();
  t2.close();
  run_until(&loop, [&] { return r.closed == 1 && r2.closed == 1; });
  ::close(peer);
  finish(&loop, io);
}

TEST_CASE_METHOD(Rig,
                 "transport: a write of more pieces than one sendmsg takes is sent whole at once",
                 "[transport]") {

  // 3000 one-byte pieces of a read block, none adjacent to the next: 3000
  // iovecs, three times IOV_MAX, and only 3000 bytes, which the socket
  // buffer takes at once. Nothing may stay queued waiting for an edge that
  // a socket with room never raises.
  Block* b = io.blocks().get();
  std::string want;
  OutBatch batch;
  for (std::size_t i = 0; i < 3000; ++i) {
    b->data[2 * i] = static_cast<char>('A' + i % 26);
    want.push_back(b->data[2 * i]);
    batch.append_block(b, b->data + 2 * i, 1);
  }
  b->unref();
  REQUIRE(t.write(batch) == 0);
  CHECK(t.write_pending() == 0);
  std::string got(want.size(), '\0');
  REQUIRE(::recv(p.peer, got.data(), got.size(), MSG_WAITALL) == static_cast<ssize_t>(got.size()));
  CHECK(got == want);
  CHECK(r.writes_done.empty());  // done inside write(): nothing to report

  end();
}

TEST_CASE("transport: a connect refused at once stays refused when started from the loop",
          "[transport]") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  IoContext io(&loop);
  Recorder r;
  TcpTransport t(io, r);
  struct Result {
    int calls = 0;
    int status = 1;
  } res;

  // 127.255.255.255 is the loopback network's broadcast address: the
  // kernel refuses a TCP connect to it at once (ENETUNREACH), and no packet
  // is sent. The connect is made from inside the loop (an idle callback),
  // where the socket's first event can come before the deferred result.
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(9);
  to.sin_addr.s_addr = htonl(0x7fffffff);
  struct Ctx {
    TcpTransport* t;
    sockaddr_in* to;
    Result* res;
    int started = 1;
  } ctx{&t, &to, &res};
  uv_idle_t idle;
  uv_idle_init(&loop, &idle);
  idle.data = &ctx;
  uv_idle_start(&idle, [](uv_idle_t* h) {
    auto* c = static_cast<Ctx*>(h->data);
    uv_idle_stop(h);
    c->started = c->t->connect(reinterpret_cast<const sockaddr*>(c->to),
                               [](void* data, int status) {
                                 auto* res = static_cast<Result*>(data);
                                 ++res->calls;
                                 res->status = status;
                               },
                               c->res);
  });
  run_until(&loop, [&] { return res.calls == 1; });
  CHECK(ctx.started == 0);
  CHECK(res.status == UV_ENETUNREACH);
  for (int i = 0; i < 20; ++i) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(res.calls == 1);

  t.close();
  uv_close(reinterpret_cast<uv_handle_t*>(&idle), nullptr);
  run_until(&loop, [&] { return r.closed == 1; });
  finish(&loop, io);
}
