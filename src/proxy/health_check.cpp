// HealthChecker, its Probers and their Probes: see health_check.hpp.
#include "proxy/health_check.hpp"

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <optional>
#include <string>

#include "core/log.hpp"
#include "http/parser.hpp"
#include "net/tls.hpp"
#include "ws/frame.hpp"
#include "ws/handshake.hpp"
#include "ws/mask.hpp"

namespace sluice::proxy {

namespace {
// A response head larger than this fails the probe: a health endpoint has no
// reason to send one, and the peer's sizes are never trusted.
constexpr std::uint32_t kMaxHeadBytes = 16 * 1024;
constexpr http::HeadLimits kHeadLimits{kMaxHeadBytes, 100, 8 * 1024};

template <typename T>
uv_handle_t* as_handle(T* h) noexcept {
  return reinterpret_cast<uv_handle_t*>(h);
}

bool contains_token(std::string_view value, std::string_view token) noexcept {
  if (value.size() < token.size()) return false;
  for (std::size_t i = 0; i + token.size() <= value.size(); ++i) {
    bool same = true;
    for (std::size_t j = 0; j < token.size() && same; ++j) {
      char c = value[i + j];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      same = c == token[j];
    }
    if (same) return true;
  }
  return false;
}
}  // namespace

// ---- Prober: one (upstream, member), main thread only

class HealthChecker::Prober {
 public:
  Prober(HealthChecker& hc, std::shared_ptr<const Generation> gen, std::size_t upstream,
         const Member& member);
  // New settings from a reload that kept this member.
  void update(std::shared_ptr<const Generation> gen, std::size_t upstream);
  // Stops the timer and any probe in flight; frees itself from the close callback.
  void stop();
  const ServerHealth* health() const noexcept { return member_.health.get(); }
  // A probe's one report (the probe is closing itself).
  void on_result(bool ok, const char* why);

  HealthChecker& hc_;
  std::shared_ptr<const Generation> gen_;  // what up_ and the TLS context point into
  const config::Upstream* up_ = nullptr;
  const net::TlsClientContext* tls_ = nullptr;
  Member member_;

 private:
  static void on_tick(uv_timer_t* t) noexcept;

  uv_timer_t timer_{};
  Probe* probe_ = nullptr;    // in flight, or null
  std::uint32_t oks_ = 0;     // consecutive successes
  std::uint32_t fails_ = 0;   // consecutive failures
  std::int64_t interval_ms_ = 0;
};

// ---- Probe: one connection, one request, one response head

class HealthChecker::Probe final : public net::TransportHandler, private http::ParserHandler {
 public:
  explicit Probe(Prober& owner);
  void start();
  // The prober stops: no report, just close.
  void abort() {
    owner_ = nullptr;
    close();
  }

 private:
  enum class Phase : std::uint8_t {
    Connecting,  // TCP connect (then the TLS handshake) in flight
    Waiting,     // request written, reading the response head
    Done,        // reported; closing (maybe after the WebSocket close frame is written)
  };

  ~Probe() = default;
  void send_request();
  void judge();
  void finish(bool ok, const char* why);
  // The connection broke: a failed probe, or (once reported) just the end.
  void fail(const char* why) {
    if (phase_ == Phase::Done)
      close();
    else
      finish(false, why);
  }
  void close();

  // net::TransportHandler
  void on_read(Block* block, std::size_t n) override;
  void on_eof() override { fail(phase_ == Phase::Connecting ? "TLS handshake failed" : "closed before a response head"); }
  void on_error(int) override { fail(phase_ == Phase::Connecting ? "TLS handshake failed" : "read error"); }
  void on_write_done(int status) override;
  void on_closed() override;
  void on_handshake_done() override {
    if (phase_ == Phase::Connecting) send_request();
  }
  // http::ParserHandler
  Next on_head(http::MessageHead&) override {
    head_seen_ = true;
    return Next::Pause;
  }
  bool on_body(const char*, std::size_t) override { return true; }

  static void on_connect(void* data, int status) noexcept;
  static void on_timer(uv_timer_t* t) noexcept;
  static void on_timer_closed(uv_handle_t* h) noexcept;

  Prober* owner_;
  std::shared_ptr<const Generation> gen_;  // keeps the TLS context alive for the probe
  const net::TlsClientContext* tls_ctx_;
  net::TcpTransport tcp_;
  std::unique_ptr<net::TlsTransport> tls_;  // layered over tcp_; destroyed first
  net::Transport* transport_;               // tls_ or tcp_
  uv_timer_t timer_{};
  http::Parser parser_;
  std::string key_;  // Sec-WebSocket-Key sent (WebSocket probes)
  Phase phase_ = Phase::Connecting;
  std::uint8_t pending_closes_ = 0;
  bool head_seen_ = false;
  bool closing_ = false;
  bool close_after_write_ = false;
};

HealthChecker::Probe::Probe(Prober& owner)
    : owner_(&owner),
      gen_(owner.gen_),
      tls_ctx_(owner.tls_),
      tcp_(owner.hc_.io_, *this),
      transport_(&tcp_),
      parser_(http::Parser::Kind::Response, *this, kHeadLimits) {
  if (tls_ctx_) {
    tls_ = std::make_unique<net::TlsTransport>(owner.hc_.io_, *this, tcp_);
    transport_ = tls_.get();
  }
}

void HealthChecker::Probe::start() {
  const config::HealthCheck& hc = owner_->up_->health_check;
  uv_timer_init(owner_->hc_.loop_, &timer_);
  timer_.data = this;
  pending_closes_ = 2;  // the timer and the transport
  uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(hc.timeout.count()), 0);
  int r = tcp_.connect(reinterpret_cast<const sockaddr*>(&owner_->member_.addr.storage),
                       on_connect, this);
  if (r != 0) finish(false, uv_err_name(r));
}

void HealthChecker::Probe::on_connect(void* data, int status) noexcept {
  auto* self = static_cast<Probe*>(data);
  if (self->phase_ != Phase::Connecting) return;
  if (status != 0) {
    self->finish(false, uv_err_name(status));
    return;
  }
  if (self->tls_) {
    // The handshake is part of the probe: a failed one is a failed probe.
    SSL* ssl = self->tls_ctx_->new_ssl(host_of(self->owner_->member_.name));
    if (!ssl) {
      self->finish(false, "TLS setup failed");
      return;
    }
    self->tls_->start_client(ssl);
    return;
  }
  self->send_request();
}

void HealthChecker::Probe::send_request() {
  const config::Upstream& up = *owner_->up_;
  const config::HealthCheck& hc = up.health_check;
  std::string req = "GET " + hc.path + " HTTP/1.1\r\nHost: ";
  req += up.tls.enabled && !up.tls.server_name.empty() ? up.tls.server_name : owner_->member_.name;
  req += "\r\nUser-Agent: sluice-health/" SLUICE_VERSION "\r\n";
  if (hc.websocket) {
    key_ = ws::new_key();
    if (key_.empty()) {
      finish(false, "no random key for the upgrade");
      return;
    }
    req += "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: " + key_ + "\r\n";
    if (!hc.origin.empty()) req += "Origin: " + hc.origin + "\r\n";
  } else {
    req += "Connection: close\r\n";
  }
  req += "\r\n";
  phase_ = Phase::Waiting;
  net::OutBatch batch;
  batch.append_copy(req);
  if (transport_->write(batch) < 0) {
    finish(false, "write failed");
    return;
  }
  transport_->read_start();
}

void HealthChecker::Probe::on_read(Block* block, std::size_t n) {
  if (phase_ != Phase::Waiting) return;
  const http::Parser::Result r = parser_.feed(block->data, n);
  if (r.status == http::Parser::Status::Error) {
    finish(false, parser_.reason());
    return;
  }
  if (head_seen_) judge();
}

// The response head is in: 2xx or 3xx passes an HTTP probe (as nginx and
// HAProxy count it); a WebSocket probe needs 101 with the accept value for
// the key sent.
void HealthChecker::Probe::judge() {
  const http::MessageHead& head = parser_.head();
  if (!owner_ || !owner_->up_->health_check.websocket) {
    const bool ok = head.status >= 200 && head.status < 400;
    finish(ok, ok ? "" : "status not 2xx or 3xx");
    return;
  }
  if (head.status != 101) {
    finish(false, "status not 101");
    return;
  }
  const auto upgrade = head.find("upgrade");
  const auto accept = head.find("sec-websocket-accept");
  if (!upgrade || !contains_token(*upgrade, "websocket") || !accept ||
      *accept != ws::accept_for(key_)) {
    finish(false, "bad WebSocket handshake");
    return;
  }
  // A polite end to the session: close 1000, masked as a client's must be.
  std::uint8_t frame[ws::kMaxHeaderBytes + 2];
  ws::MaskKey mask{};
  RAND_bytes(mask.data(), static_cast<int>(mask.size()));
  const std::size_t h = ws::encode_header(frame, true, ws::kClose, 2, mask.data());
  frame[h] = 1000 >> 8;
  frame[h + 1] = 1000 & 0xff;
  ws::apply_mask(frame + h, 2, mask, 0);
  net::OutBatch batch;
  batch.append_copy(std::string_view(reinterpret_cast<const char*>(frame), h + 2));
  const bool queued = transport_->write(batch) >= 0 && transport_->write_pending() != 0;
  close_after_write_ = queued;
  finish(true, "");
}

void HealthChecker::Probe::finish(bool ok, const char* why) {
  if (phase_ == Phase::Done) return;
  phase_ = Phase::Done;
  Prober* owner = owner_;
  owner_ = nullptr;
  // A close frame still queued goes out first; the timer bounds the wait.
  if (!close_after_write_) close();
  if (owner) owner->on_result(ok, why);
}

void HealthChecker::Probe::on_write_done(int status) {
  if (status < 0) {
    finish(false, "write failed");
    close();
    return;
  }
  if (close_after_write_ && transport_->write_pending() == 0) close();
}

void HealthChecker::Probe::on_timer(uv_timer_t* t) noexcept {
  auto* self = static_cast<Probe*>(t->data);
  if (self->phase_ == Phase::Done) {
    self->close();
    return;
  }
  self->finish(false, self->phase_ == Phase::Connecting ? "connect timed out"
                                                        : "no response head within timeout");
}

void HealthChecker::Probe::close() {
  if (closing_) return;
  closing_ = true;
  phase_ = Phase::Done;
  // The timer first: its close callback always comes later, so the count
  // cannot reach zero inside transport_->close() (which reports at once for
  // a TCP handle that was never initialised).
  uv_timer_stop(&timer_);
  uv_close(as_handle(&timer_), on_timer_closed);
  transport_->close();
}

void HealthChecker::Probe::on_timer_closed(uv_handle_t* h) noexcept {
  static_cast<Probe*>(h->data)->on_closed();
}

void HealthChecker::Probe::on_closed() {
  if (--pending_closes_ == 0) delete this;
}

// ---- Prober

HealthChecker::Prober::Prober(HealthChecker& hc, std::shared_ptr<const Generation> gen,
                              std::size_t upstream, const Member& member)
    : hc_(hc), member_(member) {
  uv_timer_init(hc.loop_, &timer_);
  timer_.data = this;
  update(std::move(gen), upstream);
}

void HealthChecker::Prober::update(std::shared_ptr<const Generation> gen, std::size_t upstream) {
  gen_ = std::move(gen);
  up_ = &gen_->config->upstreams[upstream];
  tls_ = gen_->upstream_context(upstream);
  const std::int64_t interval = up_->health_check.interval.count();
  if (interval != interval_ms_) {
    // A new prober probes at once; a changed interval starts over from now.
    const bool fresh = interval_ms_ == 0;
    interval_ms_ = interval;
    const auto every = static_cast<std::uint64_t>(interval);
    uv_timer_start(&timer_, on_tick, fresh ? 0 : every, every);
  }
}

void HealthChecker::Prober::stop() {
  if (probe_) {
    probe_->abort();
    probe_ = nullptr;
  }
  uv_timer_stop(&timer_);
  uv_close(as_handle(&timer_), [](uv_handle_t* h) { delete static_cast<Prober*>(h->data); });
}

void HealthChecker::Prober::on_tick(uv_timer_t* t) noexcept {
  auto* self = static_cast<Prober*>(t->data);
  if (self->probe_) return;  // cannot happen while timeout < interval; never two at once
  self->probe_ = new Probe(*self);
  self->probe_->start();  // may report (and clear probe_) before it returns
}

void HealthChecker::Prober::on_result(bool ok, const char* why) {
  probe_ = nullptr;
  ServerHealth& h = *member_.health;
  const config::HealthCheck& hc = up_->health_check;
  if (ok) {
    ++h.successes;
    fails_ = 0;
    if (oks_ < hc.healthy) ++oks_;
    if (!h.usable() && oks_ >= hc.healthy) {
      h.up.store(true, std::memory_order_relaxed);
      SLUICE_LOG(Info,
                 "msg=\"upstream server passed health checks, back in rotation\" upstream=%s "
                 "server=%s successes=%u",
                 up_->name.c_str(), member_.addr.text.c_str(), oks_);
    }
    return;
  }
  ++h.failures;
  oks_ = 0;
  if (fails_ < hc.unhealthy) ++fails_;
  SLUICE_LOG(Debug, "msg=\"health check failed\" upstream=%s server=%s reason=\"%s\"",
             up_->name.c_str(), member_.addr.text.c_str(), why);
  if (h.usable() && fails_ >= hc.unhealthy) {
    h.up.store(false, std::memory_order_relaxed);
    SLUICE_LOG(Warn,
               "msg=\"upstream server failed health checks, ejected\" upstream=%s server=%s "
               "failures=%u reason=\"%s\"",
               up_->name.c_str(), member_.addr.text.c_str(), fails_, why);
  }
}

// ---- HealthChecker

HealthChecker::~HealthChecker() = default;

void HealthChecker::apply(const std::shared_ptr<const Generation>& gen,
                          const MemberLists& members) {
  if (closed_) return;
  std::vector<Prober*> kept;
  const config::Config& c = *gen->config;
  for (std::size_t i = 0; i < c.upstreams.size(); ++i) {
    const config::Upstream& u = c.upstreams[i];
    for (const Member& m : *members[i]) {
      if (!u.health_check.enabled) {
        if (!m.health->usable()) {
          m.health->up.store(true, std::memory_order_relaxed);
          SLUICE_LOG(Info,
                     "msg=\"health checks removed, server back in rotation\" upstream=%s "
                     "server=%s",
                     u.name.c_str(), m.addr.text.c_str());
        }
        continue;
      }
      Prober* p = nullptr;
      for (Prober*& old : probers_) {
        if (old && old->health() == m.health.get()) {
          p = old;
          old = nullptr;
          break;
        }
      }
      if (p) {
        p->update(gen, i);
      } else {
        p = new Prober(*this, gen, i, m);
      }
      kept.push_back(p);
    }
  }
  for (Prober* gone : probers_) {
    if (gone) gone->stop();
  }
  probers_ = std::move(kept);
}

void HealthChecker::close() {
  if (closed_) return;
  closed_ = true;
  for (Prober* p : probers_) p->stop();
  probers_.clear();
  io_.close();  // once the probes' sockets are closed
}

}  // namespace sluice::proxy
