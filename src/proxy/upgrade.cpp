// check_websocket_upgrade: see upgrade.hpp.
#include "proxy/upgrade.hpp"

#include <string>

#include "http/headers.hpp"
#include "ws/handshake.hpp"

namespace sluice::proxy {

namespace {

bool upgrade_is_websocket(const http::MessageHead& head) {
  for (std::size_t i = 0; i < head.header_count(); ++i) {
    if (http::iequals(head.name(i), "upgrade") && http::has_token(head.value(i), "websocket")) {
      return true;
    }
  }
  return false;
}

bool origin_ok(const http::MessageHead& head, const config::RouteWebSocket& ws) {
  const std::size_t n = head.count("origin");
  if (n == 0) return ws.allow_missing_origin;
  if (n > 1) return false;
  if (ws.allowed_origins.empty()) return true;
  std::vector<ws::OriginPattern> allow;
  allow.reserve(ws.allowed_origins.size());
  for (const std::string& text : ws.allowed_origins) {
    if (auto p = ws::parse_origin_pattern(text)) allow.push_back(*p);  // checked at load
  }
  return ws::origin_allowed(*head.find("origin"), allow);
}

bool subprotocol_ok(const http::MessageHead& head, const config::RouteWebSocket& ws) {
  if (ws.subprotocols.empty()) return true;  // whatever the upstream picks
  bool offered = false;
  for (std::size_t i = 0; i < head.header_count(); ++i) {
    if (!http::iequals(head.name(i), "sec-websocket-protocol")) continue;
    for (std::string_view p : ws::split_protocols(head.value(i))) {
      offered = true;
      for (const std::string& allowed : ws.subprotocols) {
        if (p == allowed) return true;  // subprotocol names are case-sensitive
      }
    }
  }
  return !offered;  // offering none is fine; offering only refused ones is not
}

}  // namespace

UpgradeCheck check_websocket_upgrade(const http::MessageHead& head,
                                     const config::RouteWebSocket& ws) {
  if (!upgrade_is_websocket(head)) return {501, "upgrade to a protocol other than websocket"};
  if (head.method != HTTP_GET || head.version_major != 1 || head.version_minor != 1) {
    return {400, "websocket upgrade must be GET over HTTP/1.1"};
  }
  if (!ws.enabled) return {403, "websocket disabled on this route"};
  auto version = head.find("sec-websocket-version");
  if (head.count("sec-websocket-version") != 1 || http::trim_ows(*version) != "13") {
    return {426, "Sec-WebSocket-Version is not 13"};
  }
  auto key = head.find("sec-websocket-key");
  if (head.count("sec-websocket-key") != 1 || !ws::valid_key(http::trim_ows(*key))) {
    return {400, "Sec-WebSocket-Key is not 16 bytes of base64"};
  }
  if (!origin_ok(head, ws)) return {403, "origin not allowed"};
  if (!subprotocol_ok(head, ws)) return {403, "no allowed subprotocol offered"};
  return {0, ""};
}

}  // namespace sluice::proxy
