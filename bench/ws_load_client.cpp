// ws_load's Client: one WebSocket connection, from connect to close.
// Never reads past a span it is given; never touches send_buf_ while a
// write owns it.
#include <netinet/in.h>
#include <openssl/rand.h>

#include <cstring>

#include "ws_load.hpp"

namespace bench::load {

// ---- Client: connect and handshake

void Client::connect() {
  const Options& o = loader_->options();
  started_ = true;
  if (uv_tcp_init_ex(loader_->loop(), &tcp_, AF_INET) != 0) {
    started_ = false;
    fail(&Counters::connect_errors, "socket");
    return;
  }
  ++loader_->live_handles_;
  int rc = 0;
  if (o.sources > 1) {
    // Spread the source over 127.0.0.1..K; the port is picked at connect
    // time (IP_BIND_ADDRESS_NO_PORT), so K addresses give K times the ports.
    uv_os_fd_t fd;
    uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd);
    const int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{};
    const std::string from = "127.0.0." + std::to_string(1 + id_ % static_cast<std::uint32_t>(o.sources));
    uv_ip4_addr(from.c_str(), 0, &src);
    rc = uv_tcp_bind(&tcp_, reinterpret_cast<const sockaddr*>(&src), 0);
  }
  sockaddr_in dst{};
  if (rc == 0) rc = uv_ip4_addr(o.address.c_str(), o.port, &dst);
  connect_req_.data = this;
  if (rc == 0) rc = uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&dst), on_connect);
  if (rc != 0) fail(&Counters::connect_errors, uv_strerror(rc));
}

void Client::on_connect(uv_connect_t* req, int status) noexcept {
  auto* c = static_cast<Client*>(req->data);
  if (status == UV_ECANCELED) return;
  if (status < 0) {
    c->fail(&Counters::connect_errors, uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(&c->tcp_, 1);
  std::uint8_t raw[16];
  RAND_bytes(raw, sizeof raw);
  c->key_ = bench::base64(raw, sizeof raw);
  const Options& o = c->loader_->options();
  std::string request = "GET " + o.path + " HTTP/1.1\r\nHost: " + o.address + ":" + std::to_string(o.port) +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + c->key_ +
                        "\r\nSec-WebSocket-Version: 13\r\n";
  if (!o.origin.empty()) request += "Origin: " + o.origin + "\r\n";
  request += "\r\n";
  c->phase_ = Phase::Handshake;
  if (uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp_), on_alloc, on_read) != 0) {
    c->fail(&Counters::connect_errors, "read_start");
    return;
  }
  auto* w = new WriteReq;
  w->bytes.assign(request.begin(), request.end());
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(w->bytes.data()), static_cast<unsigned>(w->bytes.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->tcp_), &buf, 1, on_control_written) != 0) {
    delete w;
    c->fail(&Counters::connect_errors, "write");
  }
}

void Client::on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) noexcept {
  auto* c = static_cast<Client*>(h->data);
  *buf = uv_buf_init(reinterpret_cast<char*>(c->loader_->read_block()), kReadBlock);
}

void Client::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* c = static_cast<Client*>(s->data);
  if (nread == 0 || c->phase_ == Phase::Done) return;
  if (nread < 0) {
    if (c->phase_ == Phase::Closing) c->fail(&Counters::close_errors, "EOF before the close reply");
    else if (c->phase_ == Phase::Open) c->fail(&Counters::unexpected_closes, "EOF while open");
    else c->fail(&Counters::handshake_errors, "EOF during the handshake");
    return;
  }
  const auto* p = reinterpret_cast<const std::uint8_t*>(buf->base);
  if (c->phase_ == Phase::Handshake) c->handle_response(p, static_cast<std::size_t>(nread));
  else c->handle_frames(p, static_cast<std::size_t>(nread));
}

void Client::handle_response(const std::uint8_t* p, std::size_t n) {
  const std::size_t head_size = bench::append_head(response_, p, n);
  if (head_size == 0) {
    if (response_.size() > kMaxResponseHead) fail(&Counters::handshake_errors, "response head too long");
    return;
  }
  const std::string_view head(response_.data(), head_size);
  const std::string_view line = head.substr(0, head.find("\r\n"));
  if (!line.starts_with("HTTP/1.1 101")) {
    const std::string what = "status line \"" + std::string(line) + "\", expected 101";
    fail(&Counters::handshake_errors, what.c_str());
    return;
  }
  bool upgrade = false, connection = false;
  std::string accept;
  bench::for_each_header(head, [&](std::string_view name, std::string_view value) {
    if (bench::iequals(name, "upgrade")) upgrade = bench::iequals(value, "websocket");
    else if (bench::iequals(name, "connection")) connection = connection || bench::has_token(value, "upgrade");
    else if (bench::iequals(name, "sec-websocket-accept")) accept = std::string(value);
  });
  if (!upgrade || !connection) {
    fail(&Counters::handshake_errors, "101 without Upgrade: websocket and Connection: upgrade");
    return;
  }
  if (accept != bench::accept_for(key_)) {
    fail(&Counters::handshake_errors, "wrong Sec-WebSocket-Accept");
    return;
  }
  phase_ = Phase::Open;
  const std::string rest = response_.substr(head_size);
  response_.clear();
  response_.shrink_to_fit();
  loader_->on_opened();
  if (!rest.empty() && phase_ != Phase::Done)
    handle_frames(reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size());
}

// ---- Client: frames

void Client::send_message() {
  if (phase_ != Phase::Open || awaiting_) return;
  if (write_pending_) {
    send_after_write_ = true;
    return;
  }
  const std::size_t size = loader_->options().size;
  if (send_buf_.empty()) send_buf_.resize(bench::kMaxHeadBytes + size);
  const std::uint32_t k = static_cast<std::uint32_t>(loader_->rng().next());
  std::uint8_t key[4];
  std::memcpy(key, &k, 4);
  const std::size_t head = bench::encode_head(send_buf_.data(), true, loader_->opcode(), size, key);
  bench::xor_mask(send_buf_.data() + head, loader_->expected(id_, seq_), size, key, 0);
  awaiting_ = true;
  msg_bad_ = false;
  msg_len_ = 0;
  sent_at_ = uv_hrtime();
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(send_buf_.data()), static_cast<unsigned>(head + size));
  const int sent = uv_try_write(stream, &buf, 1);
  if (sent == static_cast<int>(head + size)) return;
  if (sent < 0 && sent != UV_EAGAIN) {
    fail(&Counters::unexpected_closes, "write failed");
    return;
  }
  if (sent > 0) buf = uv_buf_init(buf.base + sent, buf.len - static_cast<unsigned>(sent));
  message_req_.data = this;
  write_pending_ = true;
  if (uv_write(&message_req_, stream, &buf, 1, on_message_written) != 0) {
    write_pending_ = false;
    fail(&Counters::unexpected_closes, "write failed");
  }
}

void Client::on_message_written(uv_write_t* req, int status) noexcept {
  auto* c = static_cast<Client*>(req->data);
  c->write_pending_ = false;
  if (status == UV_ECANCELED) return;
  if (status < 0) {
    c->fail(&Counters::unexpected_closes, "write failed");
    return;
  }
  if (c->send_after_write_) {
    c->send_after_write_ = false;
    if (c->loader_->stage() == Loader::Stage::Drain) c->start_close();
    else c->send_message();
  }
}

void Client::send_control(std::uint8_t opcode, const std::uint8_t* payload, std::size_t n) {
  auto* w = new WriteReq;
  w->bytes.resize(bench::kMaxHeadBytes + n);
  const std::uint32_t k = static_cast<std::uint32_t>(loader_->rng().next());
  std::uint8_t key[4];
  std::memcpy(key, &k, 4);
  const std::size_t head = bench::encode_head(w->bytes.data(), true, opcode, n, key);
  bench::xor_mask(w->bytes.data() + head, payload, n, key, 0);
  w->bytes.resize(head + n);
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(w->bytes.data()), static_cast<unsigned>(w->bytes.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1, on_control_written) != 0) delete w;
}

void Client::on_control_written(uv_write_t* req, int) noexcept { delete static_cast<WriteReq*>(req->data); }

void Client::handle_frames(const std::uint8_t* p, std::size_t n) {
  while (n > 0 && (phase_ == Phase::Open || phase_ == Phase::Closing)) {
    if (!in_payload_) {
      if (head_reader_.read(p, n, frame_) != HeadStatus::Ok || !begin_frame()) return;
      continue;
    }
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(frame_.length - payload_done_, n));
    if (frame_.opcode >= bench::kClose) {
      std::memcpy(control_ + payload_done_, p, take);
    } else if (!msg_bad_) {
      if (msg_len_ + take > loader_->options().size ||
          std::memcmp(loader_->expected(id_, seq_) + msg_len_, p, take) != 0)
        msg_bad_ = true;
    }
    msg_len_ += frame_.opcode >= bench::kClose ? 0 : take;
    payload_done_ += take;
    p += take;
    n -= take;
    if (payload_done_ == frame_.length) end_frame();
  }
}

// Checks a server frame's head; false (and the connection failed) if it is bad.
bool Client::begin_frame() {
  const FrameHead& f = frame_;
  const char* bad = nullptr;
  if (f.masked) bad = "masked frame from the server";
  else if (f.rsv != 0) bad = "RSV bits set";
  else if (f.opcode >= bench::kClose && (!f.fin || f.length > 125)) bad = "long or fragmented control frame";
  else if (f.opcode == bench::kContinuation && !in_message_) bad = "continuation without a message";
  else if ((f.opcode == bench::kText || f.opcode == bench::kBinary) && in_message_) bad = "new message inside a message";
  else if (f.opcode > bench::kBinary && f.opcode < bench::kClose) bad = "reserved opcode";
  else if (f.opcode > bench::kPong) bad = "reserved opcode";
  if (bad) {
    fail(&Counters::protocol_errors, bad);
    return false;
  }
  if (f.opcode == bench::kText || f.opcode == bench::kBinary) {
    if (!awaiting_) {
      fail(&Counters::payload_errors, "a message nobody asked for");
      return false;
    }
    if (f.opcode != loader_->opcode()) msg_bad_ = true;
    in_message_ = true;
  }
  payload_done_ = 0;
  in_payload_ = f.length > 0;
  if (!in_payload_) end_frame();
  return true;
}

void Client::end_frame() {
  in_payload_ = false;
  const std::size_t len = static_cast<std::size_t>(frame_.length);
  switch (frame_.opcode) {
    case bench::kPing:
      send_control(bench::kPong, control_, len);
      return;
    case bench::kPong:
      return;
    case bench::kClose: {
      const bool asked = phase_ == Phase::Closing;
      const unsigned code = len >= 2 ? (control_[0] << 8 | control_[1]) : 0;
      if (!asked) {
        const std::string what = "close " + std::to_string(code) + " from the server while open";
        fail(&Counters::unexpected_closes, what.c_str());
      } else if (code != 1000) {
        const std::string what = "close reply " + std::to_string(code) + ", expected 1000";
        fail(&Counters::close_errors, what.c_str());
      } else {
        abort();  // the close handshake is complete
      }
      return;
    }
    default:
      if (frame_.fin) message_done();
  }
}

void Client::message_done() {
  in_message_ = false;
  awaiting_ = false;
  const bool ok = !msg_bad_ && msg_len_ == loader_->options().size;
  if (!ok) loader_->report("echo differs from the message sent (length, opcode or content)");
  ++seq_;
  loader_->on_echo(ok, uv_hrtime() - sent_at_);
  switch (loader_->stage()) {
    case Loader::Stage::Warmup:
    case Loader::Stage::Measure:
      send_message();
      break;
    case Loader::Stage::Drain:
      start_close();
      break;
    default:
      break;
  }
}

void Client::start_close() {
  if (phase_ != Phase::Open) return;
  phase_ = Phase::Closing;
  const std::uint8_t code[2] = {0x03, 0xE8};  // 1000
  send_control(bench::kClose, code, 2);
}

void Client::fail(std::uint64_t Counters::*kind, const char* what) {
  ++(loader_->counters().*kind);
  loader_->report(what);
  const bool was_attempt = phase_ == Phase::Connecting || phase_ == Phase::Handshake;
  abort();
  if (was_attempt) loader_->on_failed();
}

void Client::abort() {
  phase_ = Phase::Done;
  if (started_ && !closed_) {
    closed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
  }
  if (awaiting_) {
    awaiting_ = false;
    loader_->on_lost();
  }
}

void Client::on_closed(uv_handle_t* h) noexcept { static_cast<Client*>(h->data)->loader_->on_handle_closed(); }

}  // namespace bench::load
