// Worker: one thread, one libuv loop, its own listening sockets, sessions,
// upstream pools, buffers and access-log buffer. Shares nothing on the data
// path with other workers; the only cross-thread calls are stop(), reload(),
// update_members() and reopen_access_log(), all through one control socket.
//
// Descriptors: run() gives its thread a descriptor table of its own (see
// net/fd_channel.hpp), so the sockets a worker opens or accepts exist in its
// table alone, and the descriptors other threads hand it (listening sockets,
// the reopened access log) reach it over the control socket. Where the
// kernel refuses a table of its own, the worker runs on the shared one and
// everything else is the same.
//
// Reload: the worker keeps one ConfigView per generation still in use. New
// connections and new requests take the newest; a session holds the view it
// started its current exchange under until that exchange (or its WebSocket
// session) ends, so nothing it points into goes away under it. A pool is
// kept across a reload when its upstream still names the same servers
// (same_servers), so parked connections and health state survive.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "core/access_log.hpp"
#include "net/tls.hpp"
#include "net/transport.hpp"
#include "proxy/generation.hpp"
#include "proxy/metrics.hpp"
#include "proxy/router.hpp"
#include "proxy/upstream.hpp"
#include "ws/mask.hpp"

namespace sluice::proxy {

class Session;

// A generation as one worker uses it. Sessions count as its users.
struct ConfigView {
  explicit ConfigView(std::shared_ptr<const Generation> g)
      : gen(std::move(g)), router(gen->config->routes) {}
  const config::Config& config() const noexcept { return *gen->config; }
  // True when a request this view routed to `route` over `pool` would still
  // go there: a route with the same host and path_prefix exists here and its
  // upstream is served by the same pool.
  bool still_routes(const config::Route& route, const UpstreamPool* pool) const noexcept;

  std::shared_ptr<const Generation> gen;
  Router router;
  std::vector<UpstreamPool*> pools;  // per upstream index, owned by the worker
  std::vector<RouteMetrics*> route_metrics;  // per route index
  RouteMetrics* no_route = nullptr;          // requests that matched no route
  RouteMetrics* metrics_of(const config::Route* r) const noexcept {
    return r ? route_metrics[static_cast<std::size_t>(r - gen->config->routes.data())] : no_route;
  }
  std::size_t users = 0;
};

class Worker {
 public:
  // `listen_fds`: one listening socket per listener of `gen`, owned from now
  // on (handed to the worker's thread, and closed here). `access_fd` stays
  // the caller's: the worker's thread uses the same number.
  Worker(unsigned index, unsigned worker_count, std::shared_ptr<const Generation> gen,
         std::vector<int> listen_fds, int access_fd);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs the loop on the calling thread until the drain completes. The
  // thread gets a descriptor table of its own first (when the kernel allows)
  // and blocks all signals: they are the main thread's.
  void run();
  // Any thread, any time after construction (even before run()): stop
  // accepting, finish in-flight requests, then return from run().
  void stop();
  // Any thread: switch to `gen`. `listen_fds` has one entry per listener of
  // `gen`: a new socket for an address this worker does not listen on yet
  // (owned from now on, as in the constructor), or -1 to keep the socket it
  // has for that address. Sockets for addresses `gen` no longer has are
  // closed. Ignored once draining. False (and the sockets closed) when the
  // worker could not be handed them; the error is logged.
  bool reload(std::shared_ptr<const Generation> gen, std::vector<int> listen_fds);
  // Any thread: from now on the access log goes to `fd` (owned from now on):
  // the worker puts it in place of its access-log descriptor.
  void reopen_access_log(int fd);
  // Any thread (the resolver's, on the main loop): upstream `index` of `gen`
  // has these members now (DNS changed). Every pool that serves it
  // (same_servers) takes them in place: no reload, nothing open is cut.
  // Queued behind any reload() sent before it, so the two apply in order.
  void update_members(std::shared_ptr<const Generation> gen, std::size_t index,
                      std::shared_ptr<const Members> members);
  // After run(): true when the loop closed with no handle left.
  bool clean() const noexcept { return clean_; }
  // The caller's end of the control socket: readable once run() is over
  // (finished() then says so). For the thread that waits for workers.
  int control_fd() const noexcept { return control_[0]; }
  // Reads what the worker said on the control socket; true once run() has
  // returned.
  bool finished() noexcept;

  // For sessions (worker thread only).
  net::IoContext& io() noexcept { return io_; }
  // The newest view; a session takes it with acquire() and gives it back with
  // release() (which frees a view nobody uses once a newer one exists).
  ConfigView& view() noexcept { return *views_.back(); }
  ConfigView& acquire() noexcept {
    ++views_.back()->users;
    return *views_.back();
  }
  void release(ConfigView& v) noexcept;
  // A delay in [0, window_ms) for spreading closes over a window.
  std::uint64_t jitter(std::uint64_t window_ms) noexcept;
  AccessLog& access_log() noexcept { return access_log_; }
  ws::MaskKeySource& mask_keys() noexcept { return mask_keys_; }
  WorkerMetrics& metrics() noexcept { return metrics_; }
  const WorkerMetrics& metrics() const noexcept { return metrics_; }
  void add(Session* s) noexcept;
  void remove(Session* s) noexcept;

 private:
  struct ListenerSlot {
    uv_poll_t handle{};  // on fd: accept4() when readable
    int fd = -1;
    Worker* worker = nullptr;
    config::SocketAddress addr;
    const net::TlsServerContext* tls = nullptr;
    ListenerMetrics* metrics = nullptr;
    bool proxy_protocol = false;
  };
  struct PoolSlot {
    std::unique_ptr<UpstreamPool> pool;
    std::uint32_t views = 0;  // views whose pools[] include it
  };
  // Listening sockets: the first ones (gen null) or a reload's. fds has one
  // entry per listener; those >= 0 arrive over the control socket.
  struct PendingReload {
    std::shared_ptr<const Generation> gen;
    std::vector<int> fds;
  };
  struct PendingMembers {
    std::shared_ptr<const Generation> gen;  // whose upstreams[index] they belong to
    std::size_t index = 0;
    std::shared_ptr<const Members> members;
  };
  struct PendingLog {};  // the new file arrives over the control socket
  struct PendingStop {};
  using Pending = std::variant<PendingReload, PendingMembers, PendingLog, PendingStop>;
  // One item handed to the worker: its number, and how many descriptors
  // the control socket carries for it.
  struct Posted {
    std::uint64_t seq = 0;
    std::size_t fds = 0;
    std::vector<int> got;  // the worker's: the descriptors received for it
    Pending item;
  };
  // What goes over the control socket with the descriptors.
  struct ControlMessage {
    std::uint64_t seq;  // 0 from the worker: run() is over
  };

  static void on_listen_ready(uv_poll_t* h, int status, int events) noexcept;
  static void on_accept_resume(uv_timer_t* t) noexcept;
  static void close_listener(ListenerSlot* slot, bool free) noexcept;
  // Any thread: queues `item` and sends the worker its message, with `fds`
  // (closed here either way). False, logged, when the message could not go.
  bool post(Pending item, const std::vector<int>& fds = {});
  // The constructor's listening sockets (gen null) or a reload's.
  bool post_listeners(std::shared_ptr<const Generation> gen, std::vector<int> listen_fds);
  static void on_control(uv_poll_t* h, int status, int events) noexcept;
  void take_posted();
  void open_listener(std::size_t index, int fd);
  void apply_reload(PendingReload r);
  void apply_members(const PendingMembers& m);
  ConfigView& add_view(std::shared_ptr<const Generation> gen);
  void free_view(ConfigView* v);
  static void on_drain_timeout(uv_timer_t* t) noexcept;
  static void on_flush(uv_timer_t* t) noexcept;
  void begin_drain();
  void maybe_done();

  unsigned index_;
  unsigned worker_count_;
  uv_loop_t loop_{};
  net::IoContext io_;
  std::vector<std::unique_ptr<ConfigView>> views_;  // oldest first; back() is the newest
  std::vector<PoolSlot> pools_;
  std::vector<std::unique_ptr<ListenerSlot>> listeners_;  // per listener of the newest view
  // The only lock, on the control path alone: what other threads hand over
  // is queued here, and a message on the control socket (with the item's
  // descriptors) wakes the worker to take it.
  std::mutex pending_mutex_;
  std::vector<Posted> pending_;
  std::uint64_t next_seq_ = 0;
  std::atomic<bool> stop_requested_{false};
  int control_[2] = {-1, -1};  // [0] the other threads' end, [1] the worker's
  int access_fd_;
  uv_poll_t control_poll_{};
  bool run_over_ = false;  // the caller's side: run() said it is over
  uv_timer_t drain_timer_{};
  uv_timer_t flush_timer_{};
  uv_timer_t accept_timer_{};  // listeners paused for lack of descriptors resume
  AccessLog access_log_;
  ws::MaskKeySource mask_keys_;  // for every frame this worker sends upstream
  WorkerMetrics metrics_;
  Session* sessions_ = nullptr;
  std::size_t session_count_ = 0;
  std::size_t max_sessions_;
  std::uint64_t id_step_;
  std::uint64_t next_id_;
  std::minstd_rand jitter_rng_;
  bool draining_ = false;
  bool done_ = false;
  bool clean_ = false;
};

}  // namespace sluice::proxy
