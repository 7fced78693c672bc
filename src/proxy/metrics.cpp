// Metrics: see metrics.hpp.
#include "proxy/metrics.hpp"

#include <cinttypes>
#include <cstdio>
#include <initializer_list>
#include <string_view>
#include <type_traits>

namespace sluice::proxy {

namespace {

template <typename T>
T* find_or_add(std::mutex& m, std::map<std::string, std::unique_ptr<T>>& map,
               const std::string& key) {
  std::lock_guard<std::mutex> lock(m);
  auto& slot = map[key];
  if (!slot) slot = std::make_unique<T>();
  return slot.get();
}

// A label value: backslash, double quote and newline escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Out {
 public:
  void family(const char* name, const char* type, const char* help) {
    text_ += "# HELP ";
    text_ += name;
    text_ += ' ';
    text_ += help;
    text_ += "\n# TYPE ";
    text_ += name;
    text_ += ' ';
    text_ += type;
    text_ += '\n';
  }
  void sample(const char* name, const std::string& labels, std::uint64_t v) {
    char num[32];
    std::snprintf(num, sizeof num, "%" PRIu64, v);
    line(name, labels, num);
  }
  void sample_signed(const char* name, const std::string& labels, std::int64_t v) {
    char num[32];
    std::snprintf(num, sizeof num, "%" PRId64, v);
    line(name, labels, num);
  }
  void seconds(const char* name, const std::string& labels, std::uint64_t us) {
    char num[48];
    std::snprintf(num, sizeof num, "%" PRIu64 ".%06" PRIu64, us / 1'000'000, us % 1'000'000);
    line(name, labels, num);
  }
  // A histogram of microsecond observations, in seconds.
  template <typename Get>
  void histogram(const char* name, const std::string& labels, Get get) {
    std::uint64_t cumulative = 0;
    const std::string sep = labels.empty() ? "" : labels + ",";
    for (std::size_t i = 0; i <= Histogram::kBoundsUs.size(); ++i) {
      cumulative += get([i](const Histogram& h) { return h.bucket(i); });
      char le[32];
      if (i == Histogram::kBoundsUs.size()) {
        std::snprintf(le, sizeof le, "+Inf");
      } else {
        std::snprintf(le, sizeof le, "%g", static_cast<double>(Histogram::kBoundsUs[i]) / 1e6);
      }
      sample((std::string(name) + "_bucket").c_str(), sep + "le=\"" + le + "\"", cumulative);
    }
    seconds((std::string(name) + "_sum").c_str(), labels,
            get([](const Histogram& h) { return h.sum_us(); }));
    sample((std::string(name) + "_count").c_str(), labels,
           get([](const Histogram& h) { return h.count(); }));
  }
  std::string take() { return std::move(text_); }

 private:
  void line(const char* name, const std::string& labels, const char* value) {
    text_ += name;
    if (!labels.empty()) {
      text_ += '{';
      text_ += labels;
      text_ += '}';
    }
    text_ += ' ';
    text_ += value;
    text_ += '\n';
  }
  std::string text_;
};

// The union of the label keys every worker has for one family, in order.
template <typename T>
std::vector<std::string> keys_of(const std::vector<const WorkerMetrics*>& workers,
                                 std::map<std::string, std::unique_ptr<T>> WorkerMetrics::*map) {
  std::map<std::string, bool> keys;
  for (const WorkerMetrics* w : workers) {
    for (const auto& [k, _] : w->*map) keys[k] = true;
  }
  std::vector<std::string> out;
  for (const auto& [k, _] : keys) out.push_back(k);
  return out;
}

// Sum of get(cells) over the workers that have `key` in `map`.
template <typename T, typename Get>
auto sum_of(const std::vector<const WorkerMetrics*>& workers,
            std::map<std::string, std::unique_ptr<T>> WorkerMetrics::*map, const std::string& key,
            Get get) {
  decltype(get(std::declval<const T&>())) total = 0;
  for (const WorkerMetrics* w : workers) {
    auto it = (w->*map).find(key);
    if (it != (w->*map).end()) total += get(*it->second);
  }
  return total;
}

template <typename Get>
std::uint64_t sum_workers(const std::vector<const WorkerMetrics*>& workers, Get get) {
  std::uint64_t total = 0;
  for (const WorkerMetrics* w : workers) total += get(*w);
  return total;
}

std::string route_labels(const std::string& key) {
  const std::size_t nl = key.find('\n');
  return "host=\"" + label(key.substr(0, nl)) + "\",path_prefix=\"" + label(key.substr(nl + 1)) +
         "\"";
}

std::string upstream_labels(const std::string& key) { return "upstream=\"" + label(key) + "\""; }
std::string listener_labels(const std::string& key) { return "listener=\"" + label(key) + "\""; }

// One labelled family: a sample per key of `map` and per suffix in
// `variants` (appended to the key's labels: ",code=\"2xx\""), each the sum
// over workers of get(cells, variant index).
template <typename T, typename Get>
void keyed(Out& out, const std::vector<const WorkerMetrics*>& workers,
           std::map<std::string, std::unique_ptr<T>> WorkerMetrics::*map, const char* name,
           const char* type, const char* help, std::string (*labels)(const std::string&),
           std::initializer_list<std::string_view> variants, Get get) {
  out.family(name, type, help);
  for (const std::string& k : keys_of(workers, map)) {
    std::size_t i = 0;
    for (std::string_view v : variants) {
      const auto total = sum_of(workers, map, k, [&](const T& m) { return get(m, i); });
      if constexpr (std::is_signed_v<decltype(total)>) {
        out.sample_signed(name, labels(k) + std::string(v), total);
      } else {
        out.sample(name, labels(k) + std::string(v), total);
      }
      ++i;
    }
  }
}

// One family of a single counter, every worker's summed.
template <typename Get>
void total(Out& out, const std::vector<const WorkerMetrics*>& workers, const char* name,
           const char* help, Get get) {
  out.family(name, "counter", help);
  out.sample(name, "", sum_workers(workers, get));
}

const char* code_label(std::size_t slot) {
  static const char* const kLabels[WorkerMetrics::kCodeSlots] = {
      "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009",
      "1010", "1011", "1012", "1013", "1014", "1015", "3xxx", "4xxx", "none"};
  return kLabels[slot];
}

}  // namespace

RouteMetrics* WorkerMetrics::route(const config::Route* r) {
  return find_or_add(mutex, routes, r ? r->host + "\n" + r->path_prefix : std::string("\n"));
}

UpstreamMetrics* WorkerMetrics::upstream(const std::string& name) {
  return find_or_add(mutex, upstreams, name);
}

ListenerMetrics* WorkerMetrics::listener(const std::string& address) {
  return find_or_add(mutex, listeners, address);
}

std::size_t WorkerMetrics::code_slot(std::uint16_t code) noexcept {
  if (code >= 1000 && code <= 1015) return code - 1000;
  if (code >= 3000 && code <= 3999) return 16;
  if (code >= 4000 && code <= 4999) return 17;
  return 18;
}

std::string render_metrics(const std::vector<const WorkerMetrics*>& workers,
                           const ProcessFacts& process) {
  std::vector<std::unique_lock<std::mutex>> locks;
  for (const WorkerMetrics* w : workers) locks.emplace_back(w->mutex);
  Out out;

  const auto routes = &WorkerMetrics::routes;
  const auto upstreams = &WorkerMetrics::upstreams;
  const auto listeners = &WorkerMetrics::listeners;
  keyed(out, workers, routes, "sluice_http_responses_total", "counter",
        "Responses sent to clients, by route and status class (no route: empty labels).",
        route_labels, {",code=\"1xx\"", ",code=\"2xx\"", ",code=\"3xx\"", ",code=\"4xx\"", ",code=\"5xx\""},
        [](const RouteMetrics& m, std::size_t c) { return m.responses[c].get(); });
  keyed(out, workers, upstreams, "sluice_upstream_connect_errors_total", "counter",
        "Upstream connections that failed (refused, reset, TLS handshake).", upstream_labels, {""},
        [](const UpstreamMetrics& m, std::size_t) { return m.connect_errors.get(); });
  keyed(out, workers, upstreams, "sluice_upstream_connect_timeouts_total", "counter",
        "Upstream connections that did not connect within timeouts.upstream_connect.",
        upstream_labels, {""},
        [](const UpstreamMetrics& m, std::size_t) { return m.connect_timeouts.get(); });
  const auto upstream_keys = keys_of(workers, upstreams);
  out.family("sluice_upstream_response_seconds", "histogram",
             "From the start of a request to the upstream's response head.");
  for (const std::string& k : upstream_keys) {
    out.histogram("sluice_upstream_response_seconds", upstream_labels(k),
                  [&](auto cell) {
                    return sum_of(workers, upstreams, k,
                                  [&](const UpstreamMetrics& m) { return cell(m.response_time); });
                  });
  }

  out.family("sluice_upstream_server_healthy", "gauge",
             "1 while a server is in rotation as far as active health checks go, 0 once they "
             "ejected it (servers without health checks: always 1).");
  for (const ServerHealthFacts& s : process.servers) {
    out.sample("sluice_upstream_server_healthy",
               "upstream=\"" + label(s.upstream) + "\",server=\"" + label(s.server) + "\"",
               s.up ? 1 : 0);
  }
  // Active members are the main thread's (one count per process); draining
  // ones are kept by each worker for what still runs on them, so a member
  // that drains in two workers counts twice.
  out.family("sluice_upstream_members", "gauge",
             "Upstream members: active (current DNS answer or literal) and draining (gone from "
             "DNS, still carrying connections; summed over workers).");
  for (const UpstreamMemberFacts& m : process.members) {
    const std::string labels = "upstream=\"" + label(m.upstream) + "\",state=";
    out.sample("sluice_upstream_members", labels + "\"active\"", m.active);
    const std::int64_t draining = sum_of(workers, upstreams, m.upstream,
                                         [](const UpstreamMetrics& u) { return u.draining_members.get(); });
    out.sample_signed("sluice_upstream_members", labels + "\"draining\"", draining);
  }
  out.family("sluice_health_checks_total", "counter",
             "Active health check probes, by server and result.");
  for (const ServerHealthFacts& s : process.servers) {
    if (!s.checked) continue;
    const std::string labels =
        "upstream=\"" + label(s.upstream) + "\",server=\"" + label(s.server) + "\",result=";
    out.sample("sluice_health_checks_total", labels + "\"success\"", s.successes);
    out.sample("sluice_health_checks_total", labels + "\"failure\"", s.failures);
  }

  keyed(out, workers, listeners, "sluice_connections_accepted_total", "counter",
        "Client connections accepted.", listener_labels, {""},
        [](const ListenerMetrics& m, std::size_t) { return m.accepted.get(); });
  keyed(out, workers, listeners, "sluice_connections_active", "gauge",
        "Client connections open now.", listener_labels, {""},
        [](const ListenerMetrics& m, std::size_t) { return m.active.get(); });

  total(out, workers, "sluice_tls_handshakes_total", "TLS handshakes completed.",
        [](const WorkerMetrics& w) { return w.io->tls_handshakes.get(); });
  total(out, workers, "sluice_tls_handshake_failures_total",
        "TLS handshakes refused, broken off, or timed out.",
        [](const WorkerMetrics& w) { return w.io->tls_handshake_failures.get(); });
  total(out, workers, "sluice_tls_plain_http_total", "Plain HTTP sent to a TLS listener.",
        [](const WorkerMetrics& w) { return w.io->tls_plain_http.get(); });
  total(out, workers, "sluice_proxy_protocol_errors_total",
        "Connections closed for a bad, or no timely, PROXY protocol header.",
        [](const WorkerMetrics& w) { return w.proxy_protocol_errors.get(); });
  total(out, workers, "sluice_per_ip_refusals_total",
        "Connections over limits.connections_per_ip and WebSocket upgrades over "
        "websocket.max_sessions_per_ip.",
        [](const WorkerMetrics& w) { return w.refused_per_ip.get(); });

  keyed(out, workers, routes, "sluice_websocket_sessions_total", "counter",
        "WebSocket upgrades that switched to relaying, by route.", route_labels, {""},
        [](const RouteMetrics& m, std::size_t) { return m.ws_sessions.get(); });
  keyed(out, workers, routes, "sluice_websocket_sessions_active", "gauge",
        "WebSocket sessions open now, by route.", route_labels, {""},
        [](const RouteMetrics& m, std::size_t) { return m.ws_active.get(); });
  const std::initializer_list<std::string_view> directions = {
      ",direction=\"client_to_upstream\"", ",direction=\"upstream_to_client\""};
  keyed(out, workers, routes, "sluice_websocket_messages_total", "counter",
        "WebSocket messages relayed, by route and direction.", route_labels, directions,
        [](const RouteMetrics& m, std::size_t d) { return m.ws_messages[d].get(); });
  keyed(out, workers, routes, "sluice_websocket_message_bytes_total", "counter",
        "WebSocket message payload bytes relayed, by route and direction.", route_labels,
        directions, [](const RouteMetrics& m, std::size_t d) { return m.ws_bytes[d].get(); });
  out.family("sluice_websocket_closes_total", "counter",
             "WebSocket sessions ended, by the first close code and the side that closed.");
  static const char* const kSides[3] = {"client", "upstream", "gateway"};
  for (std::size_t side = 0; side < 3; ++side) {
    for (std::size_t slot = 0; slot < WorkerMetrics::kCodeSlots; ++slot) {
      const std::uint64_t v = sum_workers(
          workers, [&](const WorkerMetrics& w) { return w.ws_closes[side][slot].get(); });
      if (v == 0) continue;  // 57 series, mostly zero: only those that happened
      out.sample("sluice_websocket_closes_total",
                 std::string("code=\"") + code_label(slot) + "\",side=\"" + kSides[side] + "\"", v);
    }
  }
  out.family("sluice_websocket_refusals_total", "counter",
             "WebSocket handshakes refused and sessions failed by policy, by reason.");
  const std::pair<const char*, std::uint64_t> refusals[] = {
      {"origin", sum_workers(workers, [](const WorkerMetrics& w) { return w.ws_refused_origin.get(); })},
      {"handshake", sum_workers(workers, [](const WorkerMetrics& w) { return w.ws_refused_handshake.get(); })},
      {"upstream_switch", sum_workers(workers, [](const WorkerMetrics& w) { return w.ws_bad_upstream_switch.get(); })},
      {"protocol", sum_workers(workers, [](const WorkerMetrics& w) { return w.ws_policy[0].get(); })},
      {"utf8", sum_workers(workers, [](const WorkerMetrics& w) { return w.ws_policy[1].get(); })},
      {"size", sum_workers(workers, [](const WorkerMetrics& w) { return w.ws_policy[2].get(); })},
      {"rate", sum_workers(workers, [](const WorkerMetrics& w) { return w.ws_policy[3].get(); })},
  };
  for (const auto& [reason, v] : refusals) {
    out.sample("sluice_websocket_refusals_total", std::string("reason=\"") + reason + "\"", v);
  }
  out.family("sluice_websocket_ping_rtt_seconds", "histogram",
             "Round trip of the gateway's keep-alive pings to WebSocket clients.");
  out.histogram("sluice_websocket_ping_rtt_seconds", "", [&](auto cell) {
    return sum_workers(workers, [&](const WorkerMetrics& w) { return cell(w.ws_ping_rtt); });
  });

  out.family("sluice_config_reloads_total", "counter", "Configuration reloads that took effect.");
  out.sample("sluice_config_reloads_total", "", process.reloads);
  out.family("sluice_config_reload_failures_total", "counter",
             "Reloads refused (the running configuration was kept).");
  out.sample("sluice_config_reload_failures_total", "", process.reload_failures);
  out.family("sluice_config_generation", "gauge", "The running configuration's generation (1 at start).");
  out.sample("sluice_config_generation", "", process.generation);
  out.family("sluice_draining", "gauge", "1 once SIGTERM started the drain.");
  out.sample("sluice_draining", "", process.draining ? 1 : 0);
  out.family("sluice_workers", "gauge", "Worker threads.");
  out.sample("sluice_workers", "", workers.size());
  return out.take();
}

}  // namespace sluice::proxy
