// Upstream connections and per-worker pools.
//
// UpstreamConn is one TCP connection to one upstream server. It is either
// Connecting, Active (bound to exactly one session, which gets its events
// through UpstreamUser), Idle (parked in its server's keep-alive list, reading
// only to notice the server closing it), or Closing. It owns its two handles
// (tcp, timer) and frees itself from the last close callback.
// ServerState keeps the passive-health facts of one server for one worker;
// UpstreamPool balances over them. Nothing here is shared between workers.
//
// Membership changes in place (DNS, see resolver.hpp; or a reload that keeps
// the pool): a new member gets a new ServerState, a vanished one is marked
// draining. A ServerState never moves (each is its own heap object), because
// an UpstreamConn holds a ServerState& and a Session keeps a ServerState*
// until its exchange or WebSocket session ends. A draining state is freed as
// soon as nothing names it any more (no session, no connection): so memory
// follows what is in use, however often members come and go, and a member
// that comes back while its old state still drains gets that state again.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "net/tls.hpp"
#include "proxy/generation.hpp"
#include "proxy/metrics.hpp"
#include "net/transport.hpp"

namespace sluice::proxy {

class UpstreamConn;

enum class ConnectFailure : std::uint8_t { Refused, Timeout };

class UpstreamUser {
 public:
  virtual void on_upstream_connected(UpstreamConn& conn) = 0;
  // The connect failed; the connection is closing itself and is gone after this.
  virtual void on_upstream_failed(UpstreamConn& conn, ConnectFailure why) = 0;
  virtual void on_upstream_read(Block* block, std::size_t n) = 0;
  virtual void on_upstream_eof() = 0;
  virtual void on_upstream_error(int uv_status) = 0;
  virtual void on_upstream_write_done() = 0;
  virtual void on_upstream_timeout() = 0;

 protected:
  ~UpstreamUser() = default;
};

struct ServerState {
  Member member;                      // its address and the shared active-health verdict
  UpstreamConn* idle_head = nullptr;  // most recently parked first
  std::uint32_t idle_count = 0;
  std::uint32_t active = 0;           // connections bound to sessions (least_conn)
  std::uint32_t fails = 0;            // consecutive connect failures
  std::uint64_t ejected_until = 0;    // uv_now() milliseconds
  // Sessions that name it (UpstreamPool::hold .. let_go): from pick() to the
  // end of their exchange or WebSocket session, past the release of their
  // connection (the access log and a retry's `avoid` still read it).
  std::uint32_t sessions = 0;
  std::uint32_t seed = 0;  // from the address: rendezvous hashing survives membership changes
  // No longer a member: pick() skips it, nothing is parked on it, and it is
  // freed once sessions, active and idle_count are all 0.
  bool draining = false;
};

class UpstreamPool {
 public:
  // The pool for `gen`'s upstream number `index`; it keeps `gen` alive.
  UpstreamPool(net::IoContext& io, std::shared_ptr<const Generation> gen, std::size_t index);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // A server to use, or nullptr when every server is ejected (passively by
  // this worker, or actively by the health checks). `avoid` is skipped when
  // another healthy server exists (retries go elsewhere). Never a draining
  // one. The caller hold()s what it keeps.
  ServerState* pick(std::uint32_t client_hash, const ServerState* avoid);
  // A session names `s` from now on / no longer: what keeps a draining state
  // alive after its connection was released. let_go() may free `s`.
  void hold(ServerState& s) noexcept { ++s.sessions; }
  void let_go(ServerState& s) noexcept {
    --s.sessions;
    if (s.draining) reap(s);
  }
  // The members from now on, in this order (never empty): states are kept
  // by (server as written, address), new ones made, vanished ones drained
  // (their parked connections close; active ones go on). Control path only.
  void set_members(const Members& members);
  std::size_t member_count() const noexcept { return members_.size(); }
  std::size_t draining_count() const noexcept { return states_.size() - members_.size(); }
  // A connection to `server`: a parked idle one (already connected; `reused`
  // is set) or a new one that is connecting. Events go to `user`.
  UpstreamConn* acquire(ServerState& server, UpstreamUser& user, bool& reused);

  void record_success(ServerState& s) noexcept;
  void record_failure(ServerState& s) noexcept;
  // Drain: closes every parked connection.
  void close_idle();
  // From now on, released connections are closed instead of parked.
  void start_draining() { draining_ = true; close_idle(); }
  const config::Upstream& conf() const noexcept { return *conf_; }
  // A reload kept this pool (same_servers() holds): connections made from
  // now on use `gen`'s settings and TLS context; parked ones stay. The
  // members become `gen`'s (the reload's own lookup of every name: the
  // newest answer), through set_members().
  void rebind(std::shared_ptr<const Generation> gen, std::size_t index);
  // Where connect failures, response times and draining members are counted
  // (nullptr: nowhere).
  void set_metrics(UpstreamMetrics* m) noexcept;
  UpstreamMetrics* metrics() const noexcept { return metrics_; }

 private:
  friend class UpstreamConn;
  // Frees `s` if it drains and nothing names it.
  void reap(ServerState& s);
  void report_draining() noexcept;

  net::IoContext& io_;
  std::shared_ptr<const Generation> gen_;  // what conf_, timeouts_ and tls_ point into
  const config::Upstream* conf_ = nullptr;
  const config::Timeouts* timeouts_ = nullptr;
  const net::TlsClientContext* tls_ = nullptr;
  UpstreamMetrics* metrics_ = nullptr;
  // Every state: the members and the draining ones still in use. Owned one
  // by one so that none ever moves.
  std::vector<std::unique_ptr<ServerState>> states_;
  std::vector<ServerState*> members_;  // the current members, in order: what pick() walks
  std::int64_t draining_reported_ = 0;  // what metrics_->draining_members holds of ours
  std::uint32_t rr_next_ = 0;
  bool draining_ = false;
};

class UpstreamConn final : public net::TransportHandler {
 public:
  net::Transport& transport() noexcept { return *transport_; }
  ServerState& server() noexcept { return server_; }
  // Response timeout (or any deadline the user wants); fires on_upstream_timeout.
  void arm_timer(std::uint64_t ms);
  void stop_timer();
  // The user is done and the connection is clean: park it for reuse (or close
  // it if the pool is full or draining).
  void release();
  // The user is done and the connection is not reusable.
  void abandon();

 private:
  friend class UpstreamPool;
  enum class State : std::uint8_t {
    Connecting,  // TCP connect (then the TLS handshake) in flight, connect timer armed, user_ set
    Active,      // bound to user_; timer is the user's
    Idle,        // in server_'s idle list, user_ null, idle timer armed
    Closing,     // close() ran; waiting for 2 close callbacks
  };

  UpstreamConn(UpstreamPool& pool, ServerState& server);
  ~UpstreamConn() = default;
  int start_connect(UpstreamUser& user);
  void close();
  void unlink_idle() noexcept;

  void on_read(Block* block, std::size_t n) override;
  void on_eof() override;
  void on_error(int uv_status) override;
  void on_write_done(int status) override;
  void on_closed() override;
  void on_handshake_done() override;
  void connected();
  void connect_failed(const char* what, int status);
  net::TcpTransport& tcp() noexcept { return tcp_; }
  net::TlsTransport* tls() noexcept { return tls_.get(); }
  static void on_connect(void* data, int status) noexcept;
  static void on_timer(uv_timer_t* t) noexcept;
  static void on_timer_closed(uv_handle_t* h) noexcept;

  UpstreamPool& pool_;
  ServerState& server_;
  // TCP always; TLS layered over it on the heap, so that plain connections
  // (idle WebSocket sessions are many) carry none of its room.
  net::TcpTransport tcp_;
  std::unique_ptr<net::TlsTransport> tls_;  // layered over tcp_; destroyed first
  net::Transport* transport_;               // tls_ or tcp_
  uv_timer_t timer_{};
  UpstreamUser* user_ = nullptr;
  UpstreamConn* idle_prev_ = nullptr;
  UpstreamConn* idle_next_ = nullptr;
  State state_ = State::Connecting;
  std::uint8_t pending_closes_ = 0;
  bool connect_timed_out_ = false;
  bool failed_early_ = false;
};

}  // namespace sluice::proxy
