// A route's [route.websocket] table: see websocket_settings.hpp.
//
// Every check that can be made without a client is made here, at load, so an
// allowlist entry that could never match ("htps://...", a trailing "/") or a
// subprotocol no client can send is a config error with file:line:col, not a
// route that silently refuses every upgrade in production.
#include "config/websocket_settings.hpp"


#include "http/headers.hpp"
#include "ws/handshake.hpp"

namespace sluice::config {
namespace {

constexpr std::uint64_t kMaxFrameBytes = std::uint64_t{1} << 31;
constexpr std::uint64_t kMaxMessageBytes = std::uint64_t{1} << 30;

std::string bytes_text(std::uint64_t n) { return std::to_string(n) + " bytes"; }

// Parsed here, once: a handshake only compares.
void read_origins(Reader& in, const Field& f, std::vector<ws::OriginPattern>& out) {
  std::vector<ws::OriginPattern> parsed;
  std::vector<std::string> texts;
  read_string_list(in, f, "\"https://chat.example.com\"", texts,
                   [&](const Field& entry, const std::string& origin) {
                     if (auto p = ws::parse_origin_pattern(origin)) {
                       parsed.push_back(std::move(*p));
                       return true;
                     }
                     in.error(entry, "invalid origin " + quoted(origin) +
                                         ": expected \"scheme://host[:port]\" or "
                                         "\"scheme://*.domain[:port]\", scheme http or https, "
                                         "with no path (not even a trailing \"/\")");
                     return false;
                   });
  if (texts.size() == parsed.size()) out = std::move(parsed);  // all or nothing, like the list
}

void read_subprotocols(Reader& in, const Field& f, std::vector<std::string>& out) {
  read_string_list(in, f, "\"chat.v1\"", out, [&](const Field& entry, const std::string& name) {
    if (http::is_token(name)) return true;  // RFC 6455 4.1: each is a token
    in.error(entry, name.empty()
                        ? std::string("must not be empty: a subprotocol is an RFC 7230 token")
                        : "invalid subprotocol " + quoted(name) +
                              ": expected an RFC 7230 token (letters, digits and "
                              "!#$%&'*+-.^_`|~; no spaces, commas, quotes or slashes)");
    return false;
  });
}

// Both sizes, and that a message can hold at least one whole frame. When one
// of the two was refused the comparison is skipped: it would only restate
// that error against a default the operator did not write.
void read_sizes(Reader& in, const toml::table& t, const std::string& prefix,
                RouteWebSocket& out) {
  bool frame_ok = true;
  const auto frame_f = in.field(t, prefix, "max_frame_bytes");
  if (frame_f) {
    const auto v = in.as_size(*frame_f, 1, kMaxFrameBytes, "1..2GiB (1..2147483648 bytes)");
    if (v) out.max_frame_bytes = *v;
    frame_ok = v.has_value();
  }
  bool message_ok = true;
  const auto message_f = in.field(t, prefix, "max_message_bytes");
  if (message_f) {
    const auto v = in.as_size(*message_f, 1, kMaxMessageBytes, "1..1GiB (1..1073741824 bytes)");
    if (v) out.max_message_bytes = *v;
    message_ok = v.has_value();
  }
  if (!frame_ok || !message_ok || out.max_message_bytes >= out.max_frame_bytes) return;
  if (message_f) {
    in.error(*message_f, "max_message_bytes (" + bytes_text(out.max_message_bytes) +
                             ") must be at least max_frame_bytes (" +
                             bytes_text(out.max_frame_bytes) + ")");
  } else {
    // Only the frame size was written: the default message size is what it
    // outgrew, and the place to point at is the key that was written.
    in.error(*frame_f, "max_frame_bytes (" + bytes_text(out.max_frame_bytes) +
                           ") is larger than max_message_bytes (" +
                           bytes_text(out.max_message_bytes) +
                           ", the default): raise max_message_bytes too");
  }
}

void read_bool(Reader& in, const toml::table& t, const std::string& prefix, std::string_view key,
               bool& out) {
  if (const auto f = in.field(t, prefix, key))
    if (const auto v = in.as_bool(*f)) out = *v;
}

void read_duration(Reader& in, const toml::table& t, const std::string& prefix,
                   std::string_view key, Millis& out) {
  if (const auto f = in.field(t, prefix, key))
    if (const auto v = in.as_duration(*f)) out = *v;
}

}  // namespace

void read_route_websocket(Reader& in, const Field& f, RouteWebSocket& out) {
  const toml::table* t = f.node->as_table();
  if (t == nullptr) {
    in.error(f, "expected a table ([route.websocket] or websocket = { ... })");
    return;
  }
  const std::string& prefix = f.path;
  in.check_keys(*t, prefix,
                {"enabled", "allowed_origins", "allow_missing_origin", "subprotocols",
                 "max_frame_bytes", "max_message_bytes", "validate_utf8", "idle_timeout",
                 "ping_interval", "extensions", "max_session", "max_sessions_per_ip",
                 "max_messages_per_second"});
  read_bool(in, *t, prefix, "enabled", out.enabled);
  if (const auto o = in.field(*t, prefix, "allowed_origins"))
    read_origins(in, *o, out.allowed_origins);
  read_bool(in, *t, prefix, "allow_missing_origin", out.allow_missing_origin);
  if (const auto s = in.field(*t, prefix, "subprotocols"))
    read_subprotocols(in, *s, out.subprotocols);
  read_sizes(in, *t, prefix, out);
  read_bool(in, *t, prefix, "validate_utf8", out.validate_utf8);
  read_duration(in, *t, prefix, "idle_timeout", out.idle_timeout);
  read_duration(in, *t, prefix, "ping_interval", out.ping_interval);
  read_duration(in, *t, prefix, "max_session", out.max_session);
  if (const auto v = in.field(*t, prefix, "max_sessions_per_ip"))
    if (const auto n = in.as_integer(*v, 0, 1'000'000)) out.max_sessions_per_ip = static_cast<std::uint32_t>(*n);
  if (const auto v = in.field(*t, prefix, "max_messages_per_second"))
    if (const auto n = in.as_integer(*v, 0, 1'000'000)) out.max_messages_per_second = static_cast<std::uint32_t>(*n);
  if (const auto e = in.field(*t, prefix, "extensions"))
    if (const auto i = in.as_choice(*e, {"strip", "passthrough"}))
      out.extensions = static_cast<RouteWebSocket::Extensions>(*i);
}

}  // namespace sluice::config
