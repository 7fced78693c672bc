// Session: see session.hpp. Phases change only through the functions named
// in Phase's comments; finish() is the one exit.
#include "proxy/session.hpp"

#include "proxy/ip_limits.hpp"

#include <netinet/in.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "core/log.hpp"
#include "http/forward.hpp"
#include "http/headers.hpp"
#include "http/responses.hpp"
#include "proxy/session_ws.hpp"
#include "proxy/upgrade.hpp"
#include "proxy/worker.hpp"
#include "ws/handshake.hpp"

namespace sluice::proxy {

namespace {

constexpr std::uint64_t kLingerMs = 2'000;      // discard input this long after our FIN

http::HeadLimits request_limits(const config::Limits& l) {
  return {l.header_bytes, l.header_count, l.uri_bytes};
}
// Upstreams are trusted more than clients, but not unboundedly.
http::HeadLimits response_limits(const config::Limits& l) {
  std::uint32_t bytes = l.header_bytes < 65'536 ? 65'536 : l.header_bytes;
  return {bytes, l.header_count < 1'000 ? 1'000 : l.header_count, bytes};
}

}  // namespace

void Session::append_chunk_size(net::OutBatch& out, std::uint64_t n) {
  char buf[24];
  int len = std::snprintf(buf, sizeof buf, "%" PRIx64 "\r\n", n);
  out.append_copy(std::string_view(buf, static_cast<std::size_t>(len)));
}

const char* to_string(CloseReason r) noexcept {
  switch (r) {
    case CloseReason::None: return "none";
    case CloseReason::ClientClosed: return "client_closed";
    case CloseReason::Done: return "done";
    case CloseReason::IdleTimeout: return "idle_timeout";
    case CloseReason::HeaderTimeout: return "header_timeout";
    case CloseReason::BadRequest: return "bad_request";
    case CloseReason::UpstreamFailed: return "upstream_failed";
    case CloseReason::UpstreamTruncated: return "upstream_truncated";
    case CloseReason::Drained: return "drained";
    case CloseReason::Refused: return "refused";
    case CloseReason::WebSocketClosed: return "websocket_closed";
  }
  return "?";
}

namespace {
// Whether the address written as `ip` (the session's client_ip_) is in `set`.
bool trusted(const char* ip, const net::CidrSet& set) {
  if (set.empty()) return false;
  sockaddr_in6 a6{};
  sockaddr_in a4{};
  if (uv_ip4_addr(ip, 0, &a4) == 0) return set.contains(reinterpret_cast<const sockaddr*>(&a4));
  if (uv_ip6_addr(ip, 0, &a6) == 0) return set.contains(reinterpret_cast<const sockaddr*>(&a6));
  return false;
}
}  // namespace

Session::Session(Worker& worker, std::uint64_t id, ListenerMetrics& listener)
    : w_(worker),
      view_(&worker.acquire()),
      id_(id),
      listener_(listener),
      tcp_(worker.io(), *this),
      client_(&tcp_),
      req_parser_(http::Parser::Kind::Request, req_side_, request_limits(cfg().limits)),
      resp_parser_(http::Parser::Kind::Response, resp_side_, response_limits(cfg().limits)) {
  listener_.active.add(1);
  uv_timer_init(w_.io().loop(), &timer_);
  timer_.data = this;
  pending_closes_ = 2;
  w_.add(this);
}

Session::~Session() {
  listener_.active.add(-1);
  if (ip_counted_) IpCounts::connections().release(client_hash_);
  if (ws_ip_counted_) IpCounts::websocket_sessions().release(ws_ip_key());
  // Before the view: it is what keeps pool_ (and so server_) alive.
  if (server_) pool_->let_go(*server_);
  w_.release(*view_);
  w_.remove(this);
}

bool Session::start(int fd, const sockaddr* peer, const net::TlsServerContext* tls_ctx,
                    bool proxy_protocol) {
  if (tls_ctx) {
    tls_ = std::make_unique<net::TlsTransport>(w_.io(), *this, tcp_);
    client_ = tls_.get();
  }
  if (tcp().adopt(fd) != 0) {
    finish(CloseReason::ClientClosed);
    return false;
  }
  set_client(peer);
  if (net::TlsTransport* t = tls()) {
    SSL* ssl = tls_ctx->new_ssl();
    if (!ssl) {
      finish(CloseReason::ClientClosed);
      return false;
    }
    t->start_server(ssl);
  }
  phase_ = Phase::Idle;
  if (proxy_protocol) {
    proxy_ = std::make_unique<net::ProxyHeaderParser>();
    phase_ = Phase::Preface;
    tcp_.expect_preface();
  } else if (!admit_client()) {
    return true;  // refused: finishing, but started
  }
  // The first request head, and before it the TLS handshake, must arrive
  // within the header timeout.
  arm_timer(static_cast<std::uint64_t>(cfg().timeouts.header.count()));
  client_->read_start();
  return true;
}

bool Session::admit_client() {
  const std::uint32_t limit = cfg().limits.connections_per_ip;
  if (limit == 0) return true;
  if (IpCounts::connections().acquire(client_hash_, limit)) {
    ip_counted_ = true;
    return true;
  }
  ++w_.metrics().refused_per_ip;
  SLUICE_LOG(Info, "conn=%" PRIu64 " msg=\"connection refused\" client=%s reason=\"over "
             "limits.connections_per_ip\" limit=%u", id_, client_ip_, limit);
  refuse(429);
  return false;
}

// A client's WebSocket sessions on route_ (its host and path_prefix, so the
// count carries over a reload that keeps the route).
std::uint64_t Session::ws_ip_key() const noexcept {
  const std::size_t route = std::hash<std::string>{}(route_->host) * 31 +
                            std::hash<std::string>{}(route_->path_prefix);
  return (static_cast<std::uint64_t>(route) << 32) ^ client_hash_;
}

void Session::set_client(const sockaddr* addr) {
  std::uint32_t h = 2166136261u;
  auto mix = [&](const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 16777619u;
  };
  if (addr->sa_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(addr);
    uv_ip6_name(a6, client_ip_, sizeof client_ip_);
    mix(&a6->sin6_addr, sizeof a6->sin6_addr);
  } else {
    const auto* a4 = reinterpret_cast<const sockaddr_in*>(addr);
    uv_ip4_name(a4, client_ip_, sizeof client_ip_);
    mix(&a4->sin_addr, sizeof a4->sin_addr);
  }
  client_hash_ = h;
  trust_xff_ = cfg().server.trusted_proxies.contains(addr);
}

// The PROXY protocol header, fed as it arrives (before TLS on a TLS
// listener). Its client address replaces the balancer's; a LOCAL header (the
// balancer's own health check) keeps the connection's.
std::size_t Session::on_preface(Block* block, std::size_t n, bool& done) {
  done = false;
  std::size_t used = 0;
  const auto status =
      proxy_->feed({reinterpret_cast<const std::uint8_t*>(block->data), n}, used);
  if (status == net::ProxyHeaderParser::Status::NeedMore) return used;
  if (status == net::ProxyHeaderParser::Status::Invalid) {
    ++w_.metrics().proxy_protocol_errors;
    SLUICE_LOG(Info, "conn=%" PRIu64 " msg=\"bad PROXY protocol header\" peer=%s reason=\"%s\"",
               id_, client_ip_, proxy_->error());
    finish(CloseReason::BadRequest);
    return n;
  }
  const net::ProxyInfo& info = proxy_->info();
  if (info.command == net::ProxyInfo::Command::Proxy) {
    set_client(reinterpret_cast<const sockaddr*>(&info.source));
  }
  proxy_.reset();
  phase_ = Phase::Idle;
  done = true;  // the preface is over either way: later reads are the session's
  if (!admit_client()) return n;  // refused and finishing: the rest is not read
  return used;
}

void Session::refuse(int status) {
  if (phase_ == Phase::Finishing || phase_ == Phase::Closing) return;  // refused already
  if (tls()) {
    // Answering would first cost a full handshake, for a client we turn away.
    finish(CloseReason::Refused);
    return;
  }
  to_client_.append_copy(http::error_response(status, true));
  flush_client();
  start_finishing(CloseReason::Refused);
}

void Session::drain(std::uint64_t ws_delay_ms) {
  draining_ = true;
  client_keep_alive_ = false;
  if (phase_ == Phase::WebSocket) {
    ws_retire(1001, "going away", ws_delay_ms);
    return;
  }
  if ((phase_ == Phase::Idle || phase_ == Phase::Preface) && in_len_ == 0) {
    finish(CloseReason::Drained);
  }
}

void Session::abort() { finish(CloseReason::Drained); }

// ---- client transport events

void Session::on_read(Block* block, std::size_t n) {
  if (phase_ == Phase::WebSocket) {
    ws_client_read(block, 0, n);
    return;
  }
  if (phase_ == Phase::Finishing || phase_ == Phase::Closing) return;  // lingering: discard
  if (in_len_ != 0) {
    // Reads are stopped whenever unparsed bytes are held; this cannot happen.
    SLUICE_LOG(Error, "conn=%" PRIu64 " msg=\"read while input pending\"", id_);
    finish(CloseReason::ClientClosed);
    return;
  }
  if (phase_ == Phase::Idle) {
    phase_ = Phase::ReadHead;
    started_ns_ = uv_hrtime();
    if (requests_ > 0) arm_timer(static_cast<std::uint64_t>(cfg().timeouts.header.count()));
  } else if (phase_ == Phase::Proxying) {
    arm_timer(static_cast<std::uint64_t>(cfg().timeouts.idle.count()));
  }
  in_block_ = BlockRef::share(block);
  in_off_ = 0;
  in_len_ = n;
  pump();
}

void Session::on_eof() {
  if (phase_ == Phase::WebSocket) {
    ws_peer_eof(true);
    ws_after_io();
    return;
  }
  if (phase_ == Phase::Finishing) {
    finish(reason_);
    return;
  }
  finish(CloseReason::ClientClosed);
}

void Session::on_error(int) {
  if (phase_ == Phase::WebSocket) {
    ws_peer_gone(true);
    ws_after_io();
    return;
  }
  finish(phase_ == Phase::Finishing ? reason_ : CloseReason::ClientClosed);
}

void Session::on_write_done(int status) {
  if (phase_ == Phase::WebSocket) {
    if (status < 0) {
      ws_peer_gone(true);
    } else if (client_->write_pending() < kLowWater) {
      ws_resume_reads(false);
    }
    ws_after_io();
    return;
  }
  if (status < 0) {
    finish(CloseReason::ClientClosed);
    return;
  }
  if (phase_ == Phase::Finishing) {
    if (client_->write_pending() == 0) linger();
    return;
  }
  if (upstream_paused_ && up_ && client_->write_pending() < kLowWater) {
    upstream_paused_ = false;
    up_->transport().read_start();
  }
}

void Session::on_closed() {
  if (--pending_closes_ == 0) delete this;
}

void Session::on_timer_closed(uv_handle_t* h) noexcept {
  auto* self = static_cast<Session*>(h->data);
  if (--self->pending_closes_ == 0) delete self;
}

void Session::arm_timer(std::uint64_t ms) { uv_timer_start(&timer_, on_timer, ms, 0); }

void Session::on_timer(uv_timer_t* t) noexcept {
  auto* self = static_cast<Session*>(t->data);
  switch (self->phase_) {
    case Phase::Preface:
      ++self->w_.metrics().proxy_protocol_errors;
      self->finish(CloseReason::HeaderTimeout);  // no complete PROXY header in time
      return;
    case Phase::Idle:
      if (!self->client_->ready()) {
        ++self->w_.io().counters.tls_handshake_failures;
        self->finish(CloseReason::HeaderTimeout);  // the TLS handshake never finished
      } else if (self->requests_ == 0) {
        self->respond_local(408, CloseReason::HeaderTimeout);
      } else if (!self->trimmed_) {
        self->trim();
        const std::uint64_t idle = static_cast<std::uint64_t>(self->cfg().timeouts.idle.count());
        self->arm_timer(idle > kTrimAfterMs ? idle - kTrimAfterMs : 1);
      } else {
        self->finish(CloseReason::IdleTimeout);
      }
      return;
    case Phase::ReadHead:
      self->respond_local(408, CloseReason::HeaderTimeout);
      return;
    case Phase::Connecting:
      return;  // the upstream's connect timer decides
    case Phase::Proxying:
      // Waiting for the response head is the upstream response timer's job.
      if (self->req_done_ && !self->resp_started_) return;
      self->finish(CloseReason::IdleTimeout);
      return;
    case Phase::WebSocket:
      self->ws_on_timer();
      return;
    case Phase::Finishing:
      self->finish(self->reason_);
      return;
    case Phase::Closing:
      return;
  }
}

// ---- request side

bool Session::can_parse() const noexcept {
  switch (phase_) {
    case Phase::Idle:
    case Phase::ReadHead:
      return true;
    case Phase::Proxying:
      return !req_done_ && up_ && up_->transport().write_pending() < kHighWater;
    default:
      return false;
  }
}

void Session::update_client_reading() {
  if (phase_ == Phase::Closing) return;
  // Reading stays on while nothing is held, even when no request could be
  // parsed now: toggling it would cost two epoll_ctl calls per request, and
  // a client that goes away while its response is pending is noticed at once.
  // What arrives meanwhile is kept (in_block_) and reads stop until it is parsed.
  const bool upstream_full = phase_ == Phase::Proxying && up_ &&
                             up_->transport().write_pending() >= kHighWater;
  bool want = phase_ == Phase::Finishing || (in_len_ == 0 && !upstream_full);
  if (want) {
    client_->read_start();
  } else {
    client_->read_stop();
  }
}

void Session::pump() {
  if (pumping_) return;  // re-entered from end_exchange(): the loop below goes on
  pumping_ = true;
  while (in_len_ > 0 && can_parse()) {
    if (phase_ == Phase::Idle) {
      phase_ = Phase::ReadHead;
      started_ns_ = uv_hrtime();
    }
    cur_block_ = in_block_.get();
    http::Parser::Result r = req_parser_.feed(cur_block_->data + in_off_, in_len_);
    in_off_ += r.consumed;
    in_len_ -= r.consumed;
    if (up_) flush_upstream();
    if (r.status == http::Parser::Status::Error) {
      on_request_error();
      break;
    }
    if (r.status == http::Parser::Status::Paused) {
      if (phase_ == Phase::ReadHead) {
        // The head is done (and, for a request without body, the message too).
        req_done_ = req_parser_.message_complete();
        after_head();
      } else if (req_parser_.message_complete()) {
        on_request_complete();
      }
    }
    if (phase_ == Phase::Closing) break;
  }
  cur_block_ = nullptr;
  if (in_len_ == 0) in_block_.reset();
  pumping_ = false;
  update_client_reading();
}

void Session::on_request_error() {
  int status = 400;
  switch (req_parser_.error()) {
    case http::ParseError::UriTooLong: status = 414; break;
    case http::ParseError::HeadTooLarge:
    case http::ParseError::TooManyHeaders: status = 431; break;
    case http::ParseError::Rejected: status = body_too_large_ ? 413 : 400; break;
    default: break;
  }
  SLUICE_LOG(Info, "conn=%" PRIu64 " msg=\"request refused\" client=%s status=%d reason=\"%s\"",
             id_, client_ip_, status, req_parser_.reason());
  respond_local(status, CloseReason::BadRequest);
}

http::ParserHandler::Next Session::on_request_head(http::MessageHead& head) {
  using Next = http::ParserHandler::Next;
  if (view_ != &w_.view()) {
    // A reload happened since the last exchange: this one uses the new config.
    w_.release(*view_);
    view_ = &w_.acquire();
    req_parser_.set_limits(request_limits(cfg().limits));
    resp_parser_.set_limits(response_limits(cfg().limits));
    trust_xff_ = trusted(client_ip_, cfg().server.trusted_proxies);
  }
  method_ = head.method;
  client_http10_ = head.version_minor == 0;
  client_keep_alive_ = head.keep_alive && !draining_;
  req_chunked_ = head.chunked;
  req_has_body_ = head.chunked || head.content_length > 0;
  local_status_ = 0;
  path_.assign(head.url());
  const Next next = req_has_body_ ? Next::Pause : Next::Continue;

  // What follows an upgrade request is not HTTP: the connection either
  // switches to WebSocket or ends with the answer.
  const bool upgrade = is_upgrade_request(head);
  if (upgrade) client_keep_alive_ = false;
  std::size_t hosts = head.count("host");
  if (hosts > 1 || (hosts == 0 && !client_http10_)) {
    local_status_ = 400;
    return next;
  }
  std::string_view url = head.url();
  std::string_view authority = head.find("host").value_or(std::string_view{});
  std::string_view path = url;
  if (url.size() > 7 && (http::iequals(url.substr(0, 7), "http://") ||
                         (url.size() > 8 && http::iequals(url.substr(0, 8), "https://")))) {
    std::string_view rest = url.substr(url.find("//") + 2);
    std::size_t slash = rest.find_first_of("/?");
    authority = rest.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  } else if (url == "*" && head.method == HTTP_OPTIONS) {
    path = "*";
  } else if (url.empty() || url.front() != '/') {
    local_status_ = 400;
    return next;
  }
  char host[256];
  std::size_t host_len = 0;
  if (!authority.empty() && !http::normalise_host(authority, host, sizeof host, host_len)) {
    local_status_ = 400;
    return next;
  }
  if (head.has_content_length && head.content_length > cfg().limits.body_bytes) {
    local_status_ = 413;
    return next;
  }
  if (auto expect = head.find("expect")) {
    expect_continue_ = !client_http10_ && req_has_body_ && http::iequals(*expect, "100-continue");
  }
  route_ = view_->router.match(std::string_view(host, host_len), path == "*" ? "/" : path);
  if (!route_) {
    local_status_ = 404;
    return next;
  }
  std::string ws_protocols, ws_extensions;
  http::WebSocketForward ws_forward;
  if (upgrade) {
    // The handshake is checked against the route's policy before anything
    // goes upstream; nothing but a WebSocket upgrade is ever let through.
    const UpgradeCheck c = check_websocket_upgrade(head, route_->websocket);
    if (c.status != 0) {
      SLUICE_LOG(Info, "conn=%" PRIu64 " msg=\"upgrade refused\" client=%s status=%d reason=\"%s\"",
                 id_, client_ip_, c.status, c.reason);
      ++(c.origin ? w_.metrics().ws_refused_origin : w_.metrics().ws_refused_handshake);
      local_status_ = static_cast<std::uint16_t>(c.status);
      return next;
    }
    ws_key_ = ws::new_key();
    if (ws_key_.empty()) {
      SLUICE_LOG(Error, "conn=%" PRIu64 " msg=\"no random bytes for a websocket key\"", id_);
      local_status_ = 500;
      return next;
    }
    if (const std::uint32_t limit = route_->websocket.max_sessions_per_ip; limit > 0) {
      if (!IpCounts::websocket_sessions().acquire(ws_ip_key(), limit)) {
        SLUICE_LOG(Info, "conn=%" PRIu64 " msg=\"upgrade refused\" client=%s status=429 "
                   "reason=\"over websocket.max_sessions_per_ip\" limit=%u", id_, client_ip_, limit);
        ++w_.metrics().refused_per_ip;
        local_status_ = 429;
        return next;
      }
      ws_ip_counted_ = true;
    }
    ws_upgrade_ = true;
    ws_protocols = offered_subprotocols(head, route_->websocket);
    ws_extensions = offered_extensions(head, route_->websocket);
    ws_forward = {ws_key_, ws_protocols, ws_extensions};
  }
  pool_ = view_->pools[route_->upstream_index];
  std::string_view up_path = path;
  if (route_->strip_prefix && path != "*") {
    up_path = path.substr(route_->path_prefix.size());
  }
  http::RequestForward f;
  f.path = up_path;
  f.host = std::string_view(host, host_len);
  f.fallback_host = pool_->conf().servers.front().name;
  f.client_ip = client_ip_;
  f.trust_client_xff = trust_xff_;
  f.client_http10 = client_http10_;
  f.proto = tls() ? "https" : "http";
  if (ws_upgrade_) f.websocket = &ws_forward;
  http::write_upstream_head(head, f, up_head_);
  return next;
}


bool Session::on_request_body(const char* p, std::size_t n) {
  req_body_bytes_ += n;
  if (req_body_bytes_ > cfg().limits.body_bytes) {
    body_too_large_ = true;
    return false;
  }
  to_upstream_.append_block(cur_block_, p, n);
  body_forwarded_ = true;
  return true;
}

void Session::on_request_chunk(std::uint64_t size) {
  if (size > 0) append_chunk_size(to_upstream_, size);
}

void Session::on_request_complete() {
  req_done_ = true;
  if (req_chunked_) to_upstream_.append_copy("0\r\n\r\n");
  flush_upstream();
}

void Session::after_head() {
  if (local_status_ == 0 && !pool_) {
    // The parser paused without a new head (bytes after an upgrade request).
    local_status_ = 400;
    client_keep_alive_ = false;
  }
  if (local_status_ != 0) {
    respond_local(local_status_, local_status_ >= 500 ? CloseReason::UpstreamFailed
                                                      : CloseReason::BadRequest,
                  true);
    return;
  }
  connect_upstream();
}

// ---- endings

void Session::release_upstream(bool reusable) {
  if (!up_) return;
  UpstreamConn* c = up_;
  up_ = nullptr;
  upstream_paused_ = false;
  to_upstream_.clear();
  if (reusable) {
    c->release();
  } else {
    c->abandon();
  }
}

void Session::respond_local(int status, CloseReason reason, bool may_keep_alive) {
  if (phase_ == Phase::Closing || phase_ == Phase::Finishing) return;
  release_upstream(false);
  if (resp_started_) {
    finish(CloseReason::UpstreamTruncated);
    return;
  }
  status_ = static_cast<std::uint16_t>(status);
  const bool keep = may_keep_alive && req_done_ && client_keep_alive_ && !draining_;
  client_keep_alive_ = keep;
  to_client_.append_copy(http::error_response(status, !keep));
  flush_client();
  if (keep) {
    end_exchange();
  } else {
    log_access();
    start_finishing(reason);
  }
}

void Session::end_exchange() {
  log_access();
  ++requests_;
  if (!client_keep_alive_ || draining_) {
    start_finishing(draining_ ? CloseReason::Drained : CloseReason::Done);
    return;
  }
  route_ = nullptr;
  if (server_) pool_->let_go(*server_);
  pool_ = nullptr;
  server_ = nullptr;
  req_body_bytes_ = resp_bytes_ = 0;
  status_ = 0;
  local_status_ = 0;
  req_chunked_ = req_has_body_ = req_done_ = body_forwarded_ = expect_continue_ = false;
  retried_ = reused_conn_ = resp_started_ = resp_chunked_out_ = false;
  resp_close_delimited_ = resp_done_ = body_too_large_ = interim_ = logged_ = false;
  ws_upgrade_ = switching_ = false;
  phase_ = Phase::Idle;
  // First a short wait: a connection still idle after it gives back its
  // per-request buffers (on_timer), so idle connections cost little, while
  // busy keep-alive ones never reallocate.
  trimmed_ = false;
  const std::uint64_t idle = static_cast<std::uint64_t>(cfg().timeouts.idle.count());
  arm_timer(idle > kTrimAfterMs ? kTrimAfterMs : idle);
  req_parser_.resume();
  pump();
}

void Session::trim() {
  trimmed_ = true;
  req_parser_.trim();
  resp_parser_.trim();
  std::string().swap(up_head_);
  std::string().swap(resp_head_);
  std::string().swap(path_);
  to_upstream_.trim();
  to_client_.trim();
  client_->trim();
}

void Session::start_finishing(CloseReason reason) {
  if (phase_ == Phase::Closing || phase_ == Phase::Finishing) return;
  reason_ = reason;
  phase_ = Phase::Finishing;
  // Lingering is needed only when the client may still be sending: a request
  // not read to its end, or bytes already here after it.
  linger_needed_ = force_linger_ || !req_done_ || in_len_ != 0;
  release_upstream(false);
  in_block_.reset();
  in_len_ = 0;
  if (client_->write_pending() == 0) {
    linger();
  } else {
    arm_timer(static_cast<std::uint64_t>(cfg().timeouts.idle.count()));
  }
}

// Lingering close: FIN after the last byte, then read and discard until the
// client closes (or a short deadline), so that unread request bytes do not
// make the kernel answer with a reset that destroys the response. Skipped
// when nothing can be unread.
void Session::linger() {
  if (lingering_) return;
  lingering_ = true;
  if (!linger_needed_) {
    // Everything the client sent was read: closing now cannot make the
    // kernel reset the connection over unread bytes.
    if (tls()) client_->shutdown_write();  // close_notify, then the FIN from close
    finish(reason_);
    return;
  }
  client_->shutdown_write();
  client_->read_start();
  arm_timer(kLingerMs);
}

void Session::finish(CloseReason reason) {
  if (phase_ == Phase::Closing) return;
  if (ws_) log_access();
  if (reason_ == CloseReason::None || phase_ != Phase::Finishing) reason_ = reason;
  phase_ = Phase::Closing;
  release_upstream(false);
  in_block_.reset();
  in_len_ = 0;
  to_client_.clear();
  to_upstream_.clear();
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_timer_closed);
  client_->close();
}

// The exchange's (or WebSocket session's) cells, counted once, as it is logged.
void Session::count_exchange() {
  if (ws_ip_counted_) {
    IpCounts::websocket_sessions().release(ws_ip_key());
    ws_ip_counted_ = false;
  }
  if (status_ >= 100 && status_ < 600) ++view_->metrics_of(route_)->responses[status_ / 100 - 1];
  if (!ws_ || status_ != 101) return;
  ws_->metrics->ws_active.add(-1);
  const std::string_view by = ws_->closed_by;
  const std::size_t side = by == "client" ? 0 : by == "upstream" ? 1 : 2;
  ++w_.metrics().ws_closes[side][WorkerMetrics::code_slot(ws_->close_code)];
}

void Session::log_access() {
  if (logged_) return;
  logged_ = true;
  count_exchange();
  AccessLog& log = w_.access_log();
  if (!log.enabled()) return;
  AccessRecord r(log.json());
  r.num("conn", id_);
  r.str("client", client_ip_);
  r.str("method", llhttp_method_name(static_cast<llhttp_method_t>(method_)));
  r.str("path", path_);
  r.num("status", status_);
  r.str("route", route_ ? std::string_view(route_->path_prefix) : std::string_view());
  r.str("upstream", server_ ? std::string_view(server_->member.addr.text) : std::string_view());
  r.num("req_body", req_body_bytes_);
  r.num("resp_body", resp_bytes_);
  if (ws_ && status_ == 101) ws_log_fields(r);
  r.millis("duration_ms", static_cast<double>(uv_hrtime() - started_ns_) / 1e6);
  log.append(r.finish());
}

}  // namespace sluice::proxy
