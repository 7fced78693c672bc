// ws_echo: the WebSocket bench's upstream, an RFC 6455 echo server.
//
//   ws_echo --port PORT [--address 127.0.0.1] [--deadline SECONDS]
//
// One thread, one libuv loop. A connection must open with a valid WebSocket
// handshake (GET, HTTP/1.1, Upgrade: websocket, Connection: upgrade,
// Sec-WebSocket-Version: 13, a key of 16 bytes); it gets 101 with the right
// Sec-WebSocket-Accept, anything else gets 400. Then every client frame is
// unmasked and sent back unmasked with the same opcode, FIN and length,
// streamed as its bytes arrive: a frame is never held whole, fragmentation is
// kept. Ping is answered with pong, pong is dropped, close is answered with
// the same close and then the server closes the TCP connection. A protocol
// error (an unmasked client frame, RSV bits, an unknown opcode, a long or
// fragmented control frame, a bad continuation) closes with 1002.
//
// It must never echo a byte it has not unmasked, and never hold more than
// kMaxQueued bytes of unsent echo per connection (it stops reading instead).
// Loopback only; stops by itself after --deadline seconds (default 900), or
// on SIGINT/SIGTERM, and prints its counters to stderr.
#include <uv.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "ws_bench.hpp"

namespace {

using bench::FrameHead;
using bench::HeadStatus;

inline constexpr std::size_t kReadBlock = 256 * 1024;
inline constexpr std::size_t kMaxRequestHead = 8 * 1024;
inline constexpr std::size_t kMaxQueued = 4 * 1024 * 1024;  // stop reading above this
inline constexpr std::size_t kResumeQueued = 512 * 1024;     // and resume below this

struct Counters {
  std::uint64_t accepted = 0;
  std::uint64_t upgraded = 0;
  std::uint64_t refused = 0;  // 400 to a bad handshake
  std::uint64_t frames = 0;
  std::uint64_t payload_bytes = 0;
  std::uint64_t closes = 0;
  std::uint64_t protocol_errors = 0;
};

class Server;
class Conn;

// A write owns its bytes until its callback.
struct WriteReq {
  uv_write_t req{};
  Conn* conn = nullptr;
  std::vector<std::uint8_t> bytes;
};

class Conn {
 public:
  explicit Conn(Server* server) : server_(server) { tcp_.data = this; }
  uv_tcp_t* tcp() { return &tcp_; }
  void start();
  void close();

 private:
  enum class Phase : std::uint8_t {
    Handshake,  // request_ collects the head; nothing written yet
    Open,       // frames flow; out_ collects each read's echo
    Closing,    // close or error sent; no more reads; TCP shut down after the write
  };

  static void on_alloc(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_write(uv_write_t* req, int status) noexcept;
  static void on_shutdown(uv_shutdown_t* req, int status) noexcept;
  static void on_closed(uv_handle_t* h) noexcept;

  void handle_bytes(const std::uint8_t* p, std::size_t n);
  void handle_handshake(const std::uint8_t* p, std::size_t n);
  void handle_frames(const std::uint8_t* p, std::size_t n);
  bool begin_frame();
  void end_control_frame();
  void fail(std::uint16_t code);
  void flush();
  void shutdown_after_writes();

  Server* server_;
  uv_tcp_t tcp_{};
  uv_shutdown_t shutdown_req_{};
  Phase phase_ = Phase::Handshake;
  bool closing_ = false;
  bool reading_ = false;
  std::string request_;
  // Frame parser: the head being collected, then the payload left.
  bench::HeadReader head_reader_;
  bool in_payload_ = false;
  FrameHead frame_{};
  std::uint64_t payload_done_ = 0;
  bool in_message_ = false;  // a fragmented data message is open
  std::uint8_t control_[125] = {};
  std::vector<std::uint8_t> out_;
};

class Server {
 public:
  int run(const char* address, int port, double deadline_s);
  void stop();
  uv_loop_t* loop() { return &loop_; }
  std::uint8_t* read_block() { return read_block_.get(); }
  void forget(Conn* c) { conns_.erase(c); }
  Counters counters;

 private:
  static void on_connection(uv_stream_t* listener, int status) noexcept;
  static void on_signal(uv_signal_t* h, int signum) noexcept;
  static void on_deadline(uv_timer_t* t) noexcept;

  uv_loop_t loop_{};
  uv_tcp_t listener_{};
  uv_signal_t sigint_{};
  uv_signal_t sigterm_{};
  uv_timer_t deadline_{};
  bool stopping_ = false;
  // Reads are handled whole inside on_read, so one block serves every
  // connection: an idle connection holds no read buffer.
  std::unique_ptr<std::uint8_t[]> read_block_{new std::uint8_t[kReadBlock]};
  std::unordered_set<Conn*> conns_;

  friend class Conn;
};

// ---- Conn

void Conn::start() {
  uv_tcp_nodelay(&tcp_, 1);
  reading_ = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc, on_read) == 0;
  if (!reading_) close();
}

void Conn::close() {
  if (closing_) return;
  closing_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
}

void Conn::on_closed(uv_handle_t* h) noexcept {
  auto* c = static_cast<Conn*>(h->data);
  c->server_->forget(c);
  delete c;
}

void Conn::on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) noexcept {
  auto* c = static_cast<Conn*>(h->data);
  *buf = uv_buf_init(reinterpret_cast<char*>(c->server_->read_block()), kReadBlock);
}

void Conn::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* c = static_cast<Conn*>(s->data);
  if (nread == 0) return;
  if (nread < 0) {
    c->close();  // EOF or error: an echo server has nothing left to say
    return;
  }
  c->handle_bytes(reinterpret_cast<const std::uint8_t*>(buf->base), static_cast<std::size_t>(nread));
  c->flush();
}

void Conn::handle_bytes(const std::uint8_t* p, std::size_t n) {
  if (phase_ == Phase::Handshake) {
    handle_handshake(p, n);
  } else if (phase_ == Phase::Open) {
    handle_frames(p, n);
  }
  // Closing: whatever the client still sends is dropped.
}

void Conn::handle_handshake(const std::uint8_t* p, std::size_t n) {
  const std::size_t head_size = bench::append_head(request_, p, n);
  if (head_size == 0) {
    if (request_.size() > kMaxRequestHead) fail(0);
    return;
  }
  const std::string_view head(request_.data(), head_size);
  bool upgrade = false, connection = false, version = false;
  std::string key;
  int keys = 0;
  const bool parsed = bench::for_each_header(head, [&](std::string_view name, std::string_view value) {
    if (bench::iequals(name, "upgrade")) upgrade = bench::has_token(value, "websocket");
    else if (bench::iequals(name, "connection")) connection = connection || bench::has_token(value, "upgrade");
    else if (bench::iequals(name, "sec-websocket-version")) version = value == "13";
    else if (bench::iequals(name, "sec-websocket-key")) { key = std::string(value); ++keys; }
  });
  // A key is base64 of 16 bytes: 22 characters and "==".
  const bool key_ok = keys == 1 && key.size() == 24 && key.compare(22, 2, "==") == 0;
  const std::string_view line = head.substr(0, head.find("\r\n"));
  const bool line_ok = line.starts_with("GET ") && line.ends_with(" HTTP/1.1");
  if (!parsed || !line_ok || !upgrade || !connection || !version || !key_ok) {
    fail(0);
    return;
  }
  const std::string accept = bench::accept_for(key);
  const std::string answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: " + accept + "\r\n\r\n";
  out_.insert(out_.end(), answer.begin(), answer.end());
  ++server_->counters.upgraded;
  phase_ = Phase::Open;
  // Bytes after the head are the first frames.
  const std::string rest = request_.substr(head_size);
  request_.clear();
  request_.shrink_to_fit();
  if (!rest.empty()) handle_frames(reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size());
}

void Conn::handle_frames(const std::uint8_t* p, std::size_t n) {
  while (n > 0 && phase_ == Phase::Open) {
    if (!in_payload_) {
      const HeadStatus head = head_reader_.read(p, n, frame_);
      if (head == HeadStatus::Incomplete) return;
      if (head == HeadStatus::Bad || !begin_frame()) {
        fail(1002);
        return;
      }
      continue;
    }
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(frame_.length - payload_done_, n));
    if (frame_.opcode >= bench::kClose) {
      bench::xor_mask(control_ + payload_done_, p, take, frame_.key, payload_done_);
    } else {
      const std::size_t at = out_.size();
      out_.resize(at + take);
      bench::xor_mask(out_.data() + at, p, take, frame_.key, payload_done_);
    }
    payload_done_ += take;
    p += take;
    n -= take;
    if (payload_done_ == frame_.length) {
      in_payload_ = false;
      if (frame_.opcode >= bench::kClose) end_control_frame();
    }
  }
}

// Checks the head just parsed and, for a data frame, writes its echo's head.
bool Conn::begin_frame() {
  const FrameHead& f = frame_;
  if (!f.masked || f.rsv != 0) return false;
  switch (f.opcode) {
    case bench::kContinuation:
      if (!in_message_) return false;
      break;
    case bench::kText:
    case bench::kBinary:
      if (in_message_) return false;
      break;
    case bench::kClose:
    case bench::kPing:
    case bench::kPong:
      if (!f.fin || f.length > 125 || (f.opcode == bench::kClose && f.length == 1)) return false;
      break;
    default:
      return false;
  }
  ++server_->counters.frames;
  server_->counters.payload_bytes += f.length;
  payload_done_ = 0;
  in_payload_ = f.length > 0;
  if (f.opcode < bench::kClose) {
    in_message_ = !f.fin;
    std::uint8_t head[bench::kMaxHeadBytes];
    const std::size_t size = bench::encode_head(head, f.fin, f.opcode, f.length, nullptr);
    out_.insert(out_.end(), head, head + size);
  } else if (f.length == 0) {
    end_control_frame();
  }
  return true;
}

void Conn::end_control_frame() {
  const std::size_t len = static_cast<std::size_t>(frame_.length);
  if (frame_.opcode == bench::kPong) return;
  std::uint8_t head[bench::kMaxHeadBytes];
  const std::uint8_t opcode = frame_.opcode == bench::kPing ? bench::kPong : bench::kClose;
  const std::size_t size = bench::encode_head(head, true, opcode, len, nullptr);
  out_.insert(out_.end(), head, head + size);
  out_.insert(out_.end(), control_, control_ + len);
  if (opcode == bench::kClose) {
    ++server_->counters.closes;
    phase_ = Phase::Closing;
    shutdown_after_writes();
  }
}

// code 0: a bad handshake (400); otherwise a WebSocket close with that code.
void Conn::fail(std::uint16_t code) {
  if (code == 0) {
    static constexpr std::string_view kBad =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    out_.assign(kBad.begin(), kBad.end());
    ++server_->counters.refused;
  } else {
    const std::uint8_t frame[4] = {0x88, 0x02, static_cast<std::uint8_t>(code >> 8), static_cast<std::uint8_t>(code)};
    out_.insert(out_.end(), frame, frame + 4);
    ++server_->counters.protocol_errors;
  }
  phase_ = Phase::Closing;
  shutdown_after_writes();
}

// Shut the sending side down once every queued write is out, then close.
void Conn::shutdown_after_writes() {
  if (reading_) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    reading_ = false;
  }
  flush();
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), on_shutdown) != 0) close();
}

void Conn::on_shutdown(uv_shutdown_t* req, int status) noexcept {
  if (status == UV_ECANCELED) return;
  static_cast<Conn*>(req->data)->close();
}

void Conn::flush() {
  if (out_.empty() || closing_) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(out_.data()), static_cast<unsigned>(out_.size()));
  const int sent = uv_try_write(stream, &buf, 1);
  std::size_t done = sent > 0 ? static_cast<std::size_t>(sent) : 0;
  if (sent < 0 && sent != UV_EAGAIN) {
    close();
    return;
  }
  if (done == out_.size()) {
    out_.clear();
    return;
  }
  auto* w = new WriteReq;
  w->bytes.assign(out_.begin() + static_cast<std::ptrdiff_t>(done), out_.end());
  w->req.data = w;
  w->conn = this;
  out_.clear();
  buf = uv_buf_init(reinterpret_cast<char*>(w->bytes.data()), static_cast<unsigned>(w->bytes.size()));
  if (uv_write(&w->req, stream, &buf, 1, on_write) != 0) {
    delete w;
    close();
    return;
  }
  if (reading_ && stream->write_queue_size > kMaxQueued) {
    uv_read_stop(stream);
    reading_ = false;
  }
}

void Conn::on_write(uv_write_t* req, int status) noexcept {
  auto* w = static_cast<WriteReq*>(req->data);
  Conn* c = w->conn;
  delete w;
  if (status == UV_ECANCELED) return;  // closing: touch nothing
  if (status < 0) {
    c->close();
    return;
  }
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp_);
  if (!c->reading_ && c->phase_ == Phase::Open && stream->write_queue_size < kResumeQueued)
    c->reading_ = uv_read_start(stream, on_alloc, on_read) == 0;
}

// ---- Server

int Server::run(const char* address, int port, double deadline_s) {
  if (uv_loop_init(&loop_) != 0) return 1;
  sockaddr_in addr{};
  int rc = uv_ip4_addr(address, port, &addr);
  if (rc == 0) rc = uv_tcp_init(&loop_, &listener_);
  if (rc == 0) {
    listener_.data = this;
    rc = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
  }
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 4096, on_connection);
  if (rc != 0) {
    std::fprintf(stderr, "ws_echo: cannot listen on %s:%d: %s\n", address, port, uv_strerror(rc));
    return 1;
  }
  uv_signal_init(&loop_, &sigint_);
  uv_signal_init(&loop_, &sigterm_);
  sigint_.data = sigterm_.data = this;
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_timer_init(&loop_, &deadline_);
  deadline_.data = this;
  uv_timer_start(&deadline_, on_deadline, static_cast<std::uint64_t>(deadline_s * 1000), 0);
  std::fprintf(stderr, "ws_echo: listening on %s:%d for at most %.0f s\n", address, port, deadline_s);
  uv_run(&loop_, UV_RUN_DEFAULT);
  const int closed = uv_loop_close(&loop_);
  const Counters& k = counters;
  std::fprintf(stderr,
               "ws_echo: accepted=%" PRIu64 " upgraded=%" PRIu64 " refused=%" PRIu64 " frames=%" PRIu64
               " payload_bytes=%" PRIu64 " closes=%" PRIu64 " protocol_errors=%" PRIu64 "\n",
               k.accepted, k.upgraded, k.refused, k.frames, k.payload_bytes, k.closes, k.protocol_errors);
  return closed == 0 ? 0 : 1;
}

void Server::stop() {
  if (stopping_) return;
  stopping_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&deadline_), nullptr);
  // close() only schedules: forget() runs later, from the close callbacks.
  for (Conn* c : std::vector<Conn*>(conns_.begin(), conns_.end())) c->close();
}

void Server::on_connection(uv_stream_t* listener, int status) noexcept {
  auto* s = static_cast<Server*>(listener->data);
  if (status < 0 || s->stopping_) return;
  auto* c = new Conn(s);
  uv_tcp_init(&s->loop_, c->tcp());
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(c->tcp())) != 0) {
    s->conns_.insert(c);
    c->close();
    return;
  }
  s->conns_.insert(c);
  ++s->counters.accepted;
  c->start();
}

void Server::on_signal(uv_signal_t* h, int) noexcept { static_cast<Server*>(h->data)->stop(); }

void Server::on_deadline(uv_timer_t* t) noexcept {
  std::fprintf(stderr, "ws_echo: deadline reached, stopping\n");
  static_cast<Server*>(t->data)->stop();
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: ws_echo --port PORT [--address 127.0.0.1] [--deadline SECONDS]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  const char* address = "127.0.0.1";
  int port = 0;
  double deadline = 900;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) usage();
    if (a == "--port") port = std::atoi(argv[++i]);
    else if (a == "--address") address = argv[++i];
    else if (a == "--deadline") deadline = std::atof(argv[++i]);
    else usage();
  }
  if (port <= 0 || port > 65535 || deadline <= 0 || deadline > 86400) usage();
  if (!bench::is_loopback_v4(address)) {
    std::fprintf(stderr, "ws_echo: %s is not a loopback address (127.0.0.0/8 only)\n", address);
    return 2;
  }
  Server server;
  return server.run(address, port, deadline);
}
