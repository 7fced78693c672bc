// Worker: one thread, one libuv loop, its own listening sockets, sessions,
// upstream pools, buffers and access-log buffer. Shares nothing on the data
// path with other workers; the only cross-thread call is stop() (uv_async).
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "config/config.hpp"
#include "core/access_log.hpp"
#include "net/tls.hpp"
#include "net/transport.hpp"
#include "proxy/router.hpp"
#include "proxy/upstream.hpp"
#include "ws/mask.hpp"

namespace sluice::proxy {

class Session;

// Per-worker WebSocket counters (for the metrics to come; logged at exit
// until then). Never shared: each worker counts its own.
struct WsCounters {
  std::uint64_t sessions = 0;            // upgrades that switched to relaying
  std::uint64_t refused_origin = 0;      // handshakes refused (403) for their Origin
  std::uint64_t refused_handshake = 0;   // refused for anything else (400, 403, 426, 501)
  std::uint64_t bad_upstream_switch = 0; // the upstream's 101 did not check out (502)
  std::uint64_t policy_closes = 0;       // sessions the gateway failed (1002, 1007, 1009)
};

// TLS contexts built once at start and shared read-only by every worker.
struct TlsContexts {
  std::vector<const net::TlsServerContext*> listeners;  // per listener; nullptr: plain TCP
  std::vector<const net::TlsClientContext*> upstreams;  // per upstream; nullptr: plain TCP
};

class Worker {
 public:
  // `listen_fds`: one listening socket per configured listener, owned from now on.
  Worker(unsigned index, unsigned worker_count, std::shared_ptr<const config::Config> config,
         std::vector<int> listen_fds, TlsContexts tls, int access_fd);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs the loop on the calling thread until the drain completes.
  void run();
  // Any thread, any time after construction (even before run()): stop
  // accepting, finish in-flight requests, then return from run().
  void stop();
  // After run(): true when the loop closed with no handle left.
  bool clean() const noexcept { return clean_; }

  // For sessions (worker thread only).
  net::IoContext& io() noexcept { return io_; }
  const config::Config& config() const noexcept { return *config_; }
  const Router& router() const noexcept { return router_; }
  UpstreamPool& pool(std::size_t i) noexcept { return *pools_[i]; }
  AccessLog& access_log() noexcept { return access_log_; }
  ws::MaskKeySource& mask_keys() noexcept { return mask_keys_; }
  WsCounters& ws_counters() noexcept { return ws_counters_; }
  void add(Session* s) noexcept;
  void remove(Session* s) noexcept;

 private:
  static void on_connection(uv_stream_t* server, int status) noexcept;
  static void on_async(uv_async_t* a) noexcept;
  static void on_drain_timeout(uv_timer_t* t) noexcept;
  static void on_flush(uv_timer_t* t) noexcept;
  void begin_drain();
  void maybe_done();

  unsigned index_;
  uv_loop_t loop_{};
  net::IoContext io_;
  std::shared_ptr<const config::Config> config_;
  Router router_;
  std::vector<std::unique_ptr<UpstreamPool>> pools_;
  struct ListenerSlot {
    uv_tcp_t handle{};
    Worker* worker = nullptr;
    const net::TlsServerContext* tls = nullptr;
  };
  std::vector<int> listen_fds_;
  TlsContexts tls_;
  std::unique_ptr<ListenerSlot[]> listeners_;
  uv_async_t stop_async_{};
  uv_timer_t drain_timer_{};
  uv_timer_t flush_timer_{};
  AccessLog access_log_;
  ws::MaskKeySource mask_keys_;  // for every frame this worker sends upstream
  WsCounters ws_counters_;
  Session* sessions_ = nullptr;
  std::size_t session_count_ = 0;
  std::size_t max_sessions_;
  std::uint64_t id_step_;
  std::uint64_t next_id_;
  bool draining_ = false;
  bool done_ = false;
  bool clean_ = false;
};

}  // namespace sluice::proxy
