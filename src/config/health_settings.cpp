// An upstream's health_check table: see health_settings.hpp.
//
// The probe's path and Origin go onto the wire as written, so anything that
// could end a request line or a header early (spaces, CR, LF, controls) is
// refused here, with file:line:col, rather than sent.
#include "config/health_settings.hpp"

#include <algorithm>

namespace sluice::config {
namespace {

constexpr std::int64_t kMaxThreshold = 100;

bool valid_probe_path(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  return std::all_of(path.begin(), path.end(), [](char c) { return c > 0x20 && c < 0x7f && c != '#'; });
}

bool printable(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

}  // namespace

void read_health_check(Reader& in, const Field& f, HealthCheck& out) {
  const toml::table* t = f.node->as_table();
  if (t == nullptr) {
    in.error(f, "expected a table (health_check = { path = \"/health\", ... } or "
                "[upstream.health_check])");
    return;
  }
  out.enabled = true;
  in.check_keys(*t, f.path,
                {"path", "interval", "timeout", "unhealthy", "healthy", "websocket", "origin"});
  if (const auto p = in.field(*t, f.path, "path")) {
    if (auto path = in.as_string(*p)) {
      if (valid_probe_path(*path))
        out.path = std::move(*path);
      else
        in.error(*p, "must start with \"/\" and contain no spaces, control characters or '#'");
    }
  }
  bool interval_ok = true;
  if (const auto d = in.field(*t, f.path, "interval")) {
    const auto v = in.as_duration(*d);
    if (v) out.interval = *v;
    interval_ok = v.has_value();
  }
  if (const auto d = in.field(*t, f.path, "timeout")) {
    // Compared with the interval only when that one was accepted: otherwise
    // it would restate the interval's error against a default.
    if (const auto v = in.as_duration(*d)) {
      if (interval_ok && *v >= out.interval)
        in.error(*d, "must be shorter than interval (" + std::to_string(out.interval.count()) +
                         "ms): a probe ends before the next one starts");
      else
        out.timeout = *v;
    }
  } else if (interval_ok && out.timeout >= out.interval) {
    in.error(f, "interval must be longer than timeout (default 1s)");
  }
  if (const auto n = in.field(*t, f.path, "unhealthy"))
    if (const auto v = in.as_integer(*n, 1, kMaxThreshold)) out.unhealthy = static_cast<std::uint32_t>(*v);
  if (const auto n = in.field(*t, f.path, "healthy"))
    if (const auto v = in.as_integer(*n, 1, kMaxThreshold)) out.healthy = static_cast<std::uint32_t>(*v);
  if (const auto b = in.field(*t, f.path, "websocket"))
    if (const auto v = in.as_bool(*b)) out.websocket = *v;
  if (const auto o = in.field(*t, f.path, "origin")) {
    if (auto origin = in.as_string(*o)) {
      if (!out.websocket)
        in.error(*o, "is sent only with a WebSocket probe (websocket = true)");
      else if (origin->empty() || !printable(*origin))
        in.error(*o, "must be non-empty printable ASCII, e.g. \"https://app.example.com\"");
      else
        out.origin = std::move(*origin);
    }
  }
}

}  // namespace sluice::config
