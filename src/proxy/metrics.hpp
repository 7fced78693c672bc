// The gateway's metrics: one WorkerMetrics per worker, counted by that
// worker alone, summed over every worker when /metrics is scraped.
//
// Labelled families (by route, upstream, listener) live in maps keyed by
// their label text. The worker adds entries when it starts and on reload
// (a route, upstream or listener it has not seen) and never removes one, so
// the pointers its views, pools, sessions and listeners hold stay valid and
// counting takes no lock. The mutex covers only the maps' shape: taken while
// an entry is added and while a scrape walks them, never per request.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/metrics.hpp"
#include "net/transport.hpp"

namespace sluice::proxy {

struct RouteMetrics {
  std::array<Counter, 5> responses{};  // by status class: 1xx .. 5xx
  Counter ws_sessions;                 // upgrades that switched to relaying
  Gauge ws_active;
  std::array<Counter, 2> ws_messages{};  // [0] client to upstream, [1] upstream to client
  std::array<Counter, 2> ws_bytes{};     // payload bytes, same order
};

struct UpstreamMetrics {
  Counter connect_errors;    // refused, reset, unreachable, TLS handshake failed
  Counter connect_timeouts;
  Histogram response_time;   // request start to the response head
  // Members gone from DNS whose state this worker keeps for connections and
  // sessions still on them (sluice_upstream_members{state="draining"}).
  Gauge draining_members;
};

struct ListenerMetrics {
  Counter accepted;
  Gauge active;
};

// Who ended a WebSocket session, as the access log's closed_by says.
enum class CloseSide : std::uint8_t { Client, Upstream, Gateway };
// Why the gateway failed a WebSocket session.
enum class WsPolicy : std::uint8_t { Protocol, Utf8, Size, Rate };

struct WorkerMetrics {
  // The cells for a label set, made on first use (worker thread).
  RouteMetrics* route(const config::Route* r);  // nullptr: requests that matched no route
  UpstreamMetrics* upstream(const std::string& name);
  ListenerMetrics* listener(const std::string& address);

  const net::IoCounters* io = nullptr;  // the worker's transport counters (TLS)
  Counter ws_refused_origin;     // 403 for the Origin
  Counter ws_refused_handshake;  // 400, 403, 426, 501 for anything else
  Counter ws_bad_upstream_switch;
  std::array<Counter, 4> ws_policy{};  // by WsPolicy
  // Close codes by side: 1000..1015 each, then 3000-3999, 4000-4999, and
  // sessions that ended without a close frame.
  static constexpr std::size_t kCodeSlots = 19;
  std::array<std::array<Counter, kCodeSlots>, 3> ws_closes{};
  static std::size_t code_slot(std::uint16_t code) noexcept;
  Histogram ws_ping_rtt;
  Counter proxy_protocol_errors;  // connections closed for a bad or missing PROXY header
  Counter refused_per_ip;         // connections (429 or closed) and upgrades (429) over a per-IP limit

  mutable std::mutex mutex;
  std::map<std::string, std::unique_ptr<RouteMetrics>> routes;  // "host\npath_prefix"
  std::map<std::string, std::unique_ptr<UpstreamMetrics>> upstreams;
  std::map<std::string, std::unique_ptr<ListenerMetrics>> listeners;
};

// One upstream member as the main thread sees it, for the health families.
struct ServerHealthFacts {
  std::string upstream;
  std::string server;      // its address, "127.0.0.1:9000"
  bool up = true;          // not ejected by active health checks
  bool checked = false;    // its upstream has a health_check
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;
};

// An upstream's current member count (the resolver's, main thread).
struct UpstreamMemberFacts {
  std::string upstream;
  std::size_t active = 0;
};

// Facts of the process as a whole, kept by the main thread.
struct ProcessFacts {
  std::uint64_t reloads = 0;
  std::uint64_t reload_failures = 0;
  std::uint64_t generation = 1;
  bool draining = false;
  std::vector<ServerHealthFacts> servers;  // every member of every upstream
  std::vector<UpstreamMemberFacts> members;  // per upstream of the running configuration
};

// Prometheus text format (version 0.0.4), every worker's cells summed.
std::string render_metrics(const std::vector<const WorkerMetrics*>& workers,
                           const ProcessFacts& process);

}  // namespace sluice::proxy
