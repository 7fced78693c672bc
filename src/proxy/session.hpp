// Session: one client connection, from accept to close, and the requests on it.
//
// It composes the pieces in the order the bytes travel: client transport ->
// request parser -> router -> upstream connection -> response parser ->
// client transport. Requests on one connection are handled one at a time
// (pipelined ones wait, parsed but unanswered bytes kept by reference).
// Bodies stream both ways as block slices, never buffered whole; each side's
// reads stop while the other side's pending writes are over the high-water
// mark. Every failure path ends in finish(), which is idempotent.
// A WebSocket upgrade that both sides accept turns the session into a
// frame-aware relay (Phase::WebSocket) until the close handshake ends it.
// session.cpp holds the client side, session_upstream.cpp the upstream side,
// session_ws.cpp the WebSocket relay.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <variant>

#include "config/config.hpp"
#include "core/buffer.hpp"
#include "http/parser.hpp"
#include "net/proxy_protocol.hpp"
#include "net/tls.hpp"
#include "net/transport.hpp"
#include "proxy/upstream.hpp"
#include "proxy/worker.hpp"

namespace sluice::proxy {

enum class CloseReason : std::uint8_t {
  None,
  ClientClosed,     // EOF or reset from the client
  Done,             // response complete, connection not kept alive
  IdleTimeout,
  HeaderTimeout,
  BadRequest,       // parse error or policy refusal answered with 4xx
  UpstreamFailed,   // answered with 5xx
  UpstreamTruncated,// upstream ended mid-response; client cut off
  Drained,          // shutdown
  Refused,          // over max_connections
  WebSocketClosed,  // a WebSocket session ended (its log line says how)
};
const char* to_string(CloseReason r) noexcept;

class Session final : public net::TransportHandler, public UpstreamUser {
 public:
  // `listener`: where the connection came in, counted as active while it lasts.
  Session(Worker& worker, std::uint64_t id, ListenerMetrics& listener);
  // Takes the accepted connection (TLS with the listener's context `tls`, or
  // plain TCP when nullptr; first a PROXY protocol header when
  // `proxy_protocol`); returns false (session already finished) on failure.
  // Takes the accepted socket `fd` (closed with the session, whatever
  // happens), whose peer accept4() gave as `peer`.
  bool start(int fd, const sockaddr* peer, const net::TlsServerContext* tls, bool proxy_protocol);
  // Over a connection limit: answer `status` (plain HTTP) and close.
  void refuse(int status);
  // Shutdown: idle connections close now; busy ones after their current
  // response; a WebSocket session is closed 1001 after `ws_delay_ms`.
  void drain(std::uint64_t ws_delay_ms);
  // A reload made `now` the newest view. A WebSocket session whose route or
  // upstream is gone from it is closed 1012 within `grace_ms` (returns true);
  // anything else moves to `now` at its next request.
  bool reloaded(const ConfigView& now, std::uint64_t grace_ms);
  // Shutdown deadline passed: close whatever is left.
  void abort();

  Session* prev_ = nullptr;  // worker's list of live sessions
  Session* next_ = nullptr;

  static constexpr std::uint64_t kCloseTimeoutMs = 5'000;  // for a WebSocket close handshake

 private:
  enum class Phase : std::uint8_t {
    Preface,     // a PROXY protocol header is due first (header timer armed)
    Idle,        // between requests: no request bytes yet, idle timer armed
    ReadHead,    // request head arriving, header timer armed
    Connecting,  // head parsed and routed; upstream connecting; client reads stopped
    Proxying,    // up_ set: request body and response stream through
    WebSocket,   // both sides switched: frames relay until the close handshake ends
    Finishing,   // final bytes flushing; then FIN, discard input, close (lingering close)
    Closing,     // finish() ran; waiting for the close callbacks
  };

  struct RequestSide final : http::ParserHandler {
    explicit RequestSide(Session& s) : s_(s) {}
    Next on_head(http::MessageHead& head) override { return s_.on_request_head(head); }
    bool on_body(const char* p, std::size_t n) override { return s_.on_request_body(p, n); }
    void on_chunk(std::uint64_t size) override { s_.on_request_chunk(size); }
    void on_chunk_end() override { s_.to_upstream_.append_copy("\r\n"); }
    Session& s_;
  };
  struct ResponseSide final : http::ParserHandler {
    explicit ResponseSide(Session& s) : s_(s) {}
    Next on_head(http::MessageHead& head) override { return s_.on_response_head(head); }
    bool skip_body(const http::MessageHead&) override { return s_.method_ == HTTP_HEAD; }
    bool on_body(const char* p, std::size_t n) override { return s_.on_response_body(p, n); }
    void on_chunk(std::uint64_t size) override { s_.on_response_chunk(size); }
    void on_chunk_end() override {
      if (s_.resp_chunked_out_) s_.to_client_.append_copy("\r\n");
    }
    Session& s_;
  };

  struct WsState;  // session_ws.hpp
  ~Session();

  static constexpr std::size_t kHighWater = 256 * 1024;  // pending writes that stop the other side's reads
  static constexpr std::size_t kLowWater = 64 * 1024;    // ... and that resume them
  static constexpr std::uint64_t kTrimAfterMs = 1'000;   // idle this long: give back buffers
  static void append_chunk_size(net::OutBatch& out, std::uint64_t n);

  // client transport
  void on_read(Block* block, std::size_t n) override;
  void on_eof() override;
  void on_error(int uv_status) override;
  void on_write_done(int status) override;
  void on_closed() override;
  std::size_t on_preface(Block* block, std::size_t n, bool& done) override;
  // The client is `addr` (accepted, or carried by a PROXY header): its text,
  // its hash for balancing, and whether its X-Forwarded-For is trusted.
  void set_client(const sockaddr* addr);
  // The client's address is final: count it against limits.connections_per_ip
  // (false: refused, and the session is finishing).
  bool admit_client();
  std::uint64_t ws_ip_key() const noexcept;
  // upstream
  void on_upstream_connected(UpstreamConn& conn) override;
  void on_upstream_failed(UpstreamConn& conn, ConnectFailure why) override;
  void on_upstream_read(Block* block, std::size_t n) override;
  void on_upstream_eof() override;
  void on_upstream_error(int uv_status) override;
  void on_upstream_write_done() override;
  void on_upstream_timeout() override;

  // request side
  bool can_parse() const noexcept;
  void pump();
  void on_request_error();
  http::ParserHandler::Next on_request_head(http::MessageHead& head);
  bool on_request_body(const char* p, std::size_t n);
  void on_request_chunk(std::uint64_t size);
  void on_request_complete();
  void after_head();
  void connect_upstream();
  void start_forwarding(UpstreamConn& conn);
  void retry_or_fail(int status);
  // response side
  http::ParserHandler::Next on_response_head(http::MessageHead& head);
  void build_client_head(const http::MessageHead& head);
  bool on_response_body(const char* p, std::size_t n);
  void on_response_chunk(std::uint64_t size);
  void on_response_complete(bool upstream_clean);
  void upstream_broken(bool may_retry);
  // WebSocket (session_ws.cpp)
  http::ParserHandler::Next on_switch_head(http::MessageHead& head);
  void start_websocket(Block* block, std::size_t off, std::size_t end);
  void ws_client_read(Block* block, std::size_t off, std::size_t end);
  void ws_upstream_read(Block* block, std::size_t off, std::size_t end);
  void ws_peer_eof(bool client);
  void ws_peer_gone(bool client);
  void ws_resume_reads(bool client);
  void ws_fail(bool client, std::uint16_t code, const char* reason);
  void ws_gateway_close(std::uint16_t code, const char* reason);
  void ws_retire(std::uint16_t code, const char* reason, std::uint64_t delay_ms);
  void ws_send_close(bool client, std::uint16_t code, const char* reason);
  void ws_send_deferred();
  bool ws_write(bool client);
  void ws_send_ping();
  void ws_after_io();
  void ws_on_timer();
  void ws_arm_timer();
  bool ws_take_pong(const std::uint8_t* p, std::size_t n);
  void ws_log_fields(AccessRecord& r);

  void flush_upstream();
  void flush_client();
  void update_client_reading();
  void respond_local(int status, CloseReason reason, bool may_keep_alive = false);
  void end_exchange();
  void release_upstream(bool reusable);
  void start_finishing(CloseReason reason);
  void linger();
  void finish(CloseReason reason);
  void arm_timer(std::uint64_t ms);
  void log_access();
  void count_exchange();
  static void on_timer(uv_timer_t* t) noexcept;
  static void on_timer_closed(uv_handle_t* h) noexcept;

  Worker& w_;
  ConfigView* view_;  // acquired from the worker; the current exchange's config
  const config::Config& cfg() const noexcept { return view_->config(); }
  std::uint64_t id_;
  net::TcpTransport& tcp() noexcept { return tcp_; }
  net::TlsTransport* tls() noexcept { return tls_.get(); }  // nullptr on a plain connection
  void trim();

  ListenerMetrics& listener_;
  // The connection: TCP always; TLS, on a TLS listener, layered over it and
  // on the heap, so that a plain connection carries none of its room.
  net::TcpTransport tcp_;
  std::unique_ptr<net::TlsTransport> tls_;  // destroyed before tcp_
  net::Transport* client_ = nullptr;        // tls_ or tcp_
  uv_timer_t timer_{};
  RequestSide req_side_{*this};
  ResponseSide resp_side_{*this};
  http::Parser req_parser_;
  http::Parser resp_parser_;
  net::OutBatch to_upstream_;
  net::OutBatch to_client_;

  // Unparsed client bytes (after a pause), held by reference.
  BlockRef in_block_;
  std::size_t in_off_ = 0;
  std::size_t in_len_ = 0;
  Block* cur_block_ = nullptr;       // the request block being parsed (zero-copy body slices)
  Block* cur_resp_block_ = nullptr;  // the response block being parsed

  // the exchange in progress
  const config::Route* route_ = nullptr;
  UpstreamPool* pool_ = nullptr;
  UpstreamConn* up_ = nullptr;
  // Held (UpstreamPool::hold) while set, so that a member DNS removed stays
  // alive for this exchange's log line and retry even after up_ is released.
  ServerState* server_ = nullptr;
  std::string up_head_;      // request head as sent upstream (kept for a retry)
  std::string resp_head_;    // response head as sent to the client
  std::string path_;         // for the access log
  std::uint64_t req_body_bytes_ = 0;
  std::uint64_t resp_bytes_ = 0;
  std::uint64_t started_ns_ = 0;
  std::uint64_t requests_ = 0;   // exchanges completed on this connection
  std::uint8_t method_ = 0;
  std::uint16_t status_ = 0;
  std::uint16_t local_status_ = 0;  // set by on_request_head: answer locally instead
  bool req_chunked_ = false;
  bool req_has_body_ = false;
  bool req_done_ = false;
  bool body_forwarded_ = false;  // a body byte went upstream: no retry
  bool expect_continue_ = false;
  bool retried_ = false;
  bool reused_conn_ = false;
  bool resp_started_ = false;    // response head sent to the client
  bool resp_chunked_out_ = false;
  bool resp_close_delimited_ = false;
  bool resp_done_ = false;
  bool client_keep_alive_ = false;
  bool client_http10_ = false;
  bool upstream_paused_ = false;
  bool body_too_large_ = false;
  bool interim_ = false;         // the response being parsed is a 1xx
  bool pumping_ = false;
  bool lingering_ = false;
  bool linger_needed_ = true;
  bool logged_ = false;
  bool trimmed_ = false;  // idle, and the per-request buffers are given back
  bool ws_upgrade_ = false;  // the exchange is a WebSocket handshake sent upstream
  bool switching_ = false;   // the upstream's 101 passed: relaying starts after its head
  bool force_linger_ = false;  // the client may still be sending when we close
  bool trust_xff_ = false;     // the client is in server.trusted_proxies
  bool ip_counted_ = false;    // counted in IpCounts::connections()
  bool ws_ip_counted_ = false; // counted in IpCounts::websocket_sessions() for route_
  std::string ws_key_;       // the Sec-WebSocket-Key the gateway sent upstream
  std::unique_ptr<WsState> ws_;  // from the 101 on
  std::unique_ptr<net::ProxyHeaderParser> proxy_;  // in Phase::Preface only

  Phase phase_ = Phase::Idle;
  CloseReason reason_ = CloseReason::None;
  bool draining_ = false;
  std::uint8_t pending_closes_ = 0;
  std::uint32_t client_hash_ = 0;
  char client_ip_[64] = {};
};

}  // namespace sluice::proxy
