// check_websocket_upgrade: see upgrade.hpp.
#include "proxy/upgrade.hpp"

#include <string>

#include "http/headers.hpp"
#include "ws/handshake.hpp"

namespace sluice::proxy {

namespace {

bool any_field_has_token(const http::MessageHead& head, std::string_view name,
                         std::string_view token) {
  for (std::size_t i = 0; i < head.header_count(); ++i) {
    if (http::iequals(head.name(i), name) && http::has_token(head.value(i), token)) return true;
  }
  return false;
}

bool upgrade_is_websocket(const http::MessageHead& head) {
  return any_field_has_token(head, "upgrade", "websocket");
}

// Appends every value of the fields called `name`, comma-separated.
void join_fields(const http::MessageHead& head, std::string_view name, std::string& out) {
  for (std::size_t i = 0; i < head.header_count(); ++i) {
    if (!http::iequals(head.name(i), name)) continue;
    std::string_view v = http::trim_ows(head.value(i));
    if (v.empty()) continue;
    if (!out.empty()) out += ", ";
    out += v;
  }
}

bool list_contains(std::string_view list, std::string_view item) {
  bool found = false;
  http::for_each_token(list, [&](std::string_view t) {
    found = t == item;  // subprotocol names are case-sensitive
    return !found;
  });
  return found;
}

bool origin_ok(const http::MessageHead& head, const config::RouteWebSocket& ws) {
  const std::size_t n = head.count("origin");
  if (n == 0) return ws.allow_missing_origin;
  if (n > 1) return false;
  if (ws.allowed_origins.empty()) return true;
  return ws::origin_allowed(*head.find("origin"), ws.allowed_origins);
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

bool is_upgrade_request(const http::MessageHead& head) noexcept {
  if (head.method == HTTP_CONNECT) return true;
  return head.upgrade && any_field_has_token(head, "connection", "upgrade");
}

UpgradeCheck check_websocket_upgrade(const http::MessageHead& head,
                                     const config::RouteWebSocket& ws) {
  if (!upgrade_is_websocket(head)) return {501, "upgrade to a protocol other than websocket"};
  if (head.method != HTTP_GET || head.version_major != 1 || head.version_minor != 1) {
    return {400, "websocket upgrade must be GET over HTTP/1.1"};
  }
  if (head.chunked || head.content_length > 0) return {400, "websocket upgrade with a body"};
  if (!ws.enabled) return {403, "websocket disabled on this route"};
  auto version = head.find("sec-websocket-version");
  if (head.count("sec-websocket-version") != 1 || http::trim_ows(*version) != "13") {
    return {426, "Sec-WebSocket-Version is not 13"};
  }
  auto key = head.find("sec-websocket-key");
  if (head.count("sec-websocket-key") != 1 || !ws::valid_key(http::trim_ows(*key))) {
    return {400, "Sec-WebSocket-Key is not 16 bytes of base64"};
  }
  if (!origin_ok(head, ws)) return {403, "origin not allowed", true};
  if (!subprotocol_ok(head, ws)) return {403, "no allowed subprotocol offered"};
  return {0, ""};
}

std::string offered_subprotocols(const http::MessageHead& request,
                                 const config::RouteWebSocket& ws) {
  std::string out;
  for (std::size_t i = 0; i < request.header_count(); ++i) {
    if (!http::iequals(request.name(i), "sec-websocket-protocol")) continue;
    for (std::string_view p : ws::split_protocols(request.value(i))) {
      bool allowed = ws.subprotocols.empty();
      for (const std::string& a : ws.subprotocols) allowed = allowed || p == a;
      if (!allowed || list_contains(out, p)) continue;
      if (!out.empty()) out += ", ";
      out += p;
    }
  }
  return out;
}

std::string offered_extensions(const http::MessageHead& request,
                               const config::RouteWebSocket& ws) {
  std::string out;
  if (ws.extensions == config::RouteWebSocket::Extensions::Passthrough) {
    join_fields(request, "sec-websocket-extensions", out);
  }
  return out;
}

SwitchCheck check_websocket_switch(const http::MessageHead& response, std::string_view key,
                                   std::string_view protocols, std::string_view extensions) {
  if (!upgrade_is_websocket(response) || !any_field_has_token(response, "connection", "upgrade")) {
    return {502, "101 without Upgrade: websocket and Connection: upgrade", false};
  }
  auto accept = response.find("sec-websocket-accept");
  if (response.count("sec-websocket-accept") != 1 ||
      http::trim_ows(*accept) != ws::accept_for(key)) {
    return {502, "Sec-WebSocket-Accept missing or wrong", false};
  }
  if (auto chosen = response.find("sec-websocket-protocol")) {
    std::string_view p = http::trim_ows(*chosen);
    if (response.count("sec-websocket-protocol") != 1 || !http::is_token(p) ||
        !list_contains(protocols, p)) {
      return {502, "upstream chose a subprotocol that was not offered", false};
    }
  }
  bool deflate = false;
  std::string chosen;
  join_fields(response, "sec-websocket-extensions", chosen);
  if (!chosen.empty()) {
    bool offered = false;
    http::for_each_token(extensions, [&](std::string_view item) {
      offered = http::trim_ows(item.substr(0, item.find(';'))) == "permessage-deflate";
      return !offered;
    });
    if (!offered) return {502, "upstream chose an extension that was not offered", false};
    bool ok = true;
    http::for_each_token(chosen, [&](std::string_view item) {
      // "name; param=value ...": only the name decides what the frames mean.
      std::string_view name = http::trim_ows(item.substr(0, item.find(';')));
      ok = name == "permessage-deflate" && !deflate;
      deflate = true;
      return ok;
    });
    if (!ok) return {502, "upstream chose an extension other than one permessage-deflate", false};
  }
  return {0, "", deflate};
}

}  // namespace sluice::proxy
