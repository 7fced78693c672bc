// The two halves of a WebSocket opening handshake as the gateway sees them.
// The client's request must pass RFC 6455 4.2.1 and the route's policy
// before anything goes upstream: method and version, Sec-WebSocket-Version
// (426), Sec-WebSocket-Key (400), Origin (403), subprotocols (403). The
// upstream's 101 must answer the gateway's own key and choose only what was
// offered (else 502). Upgrades to anything but websocket are never tunnelled.
// Pure: reads parsed heads and the route's settings, nothing else.
#pragma once

#include <string>
#include <string_view>

#include "config/config.hpp"
#include "http/parser.hpp"

namespace sluice::proxy {

struct UpgradeCheck {
  int status;          // 0: a valid WebSocket handshake; otherwise the answer
  const char* reason;  // for the log
  bool origin = false; // refused for its Origin (counted apart)
};

// An upgrade request: CONNECT, or Upgrade with "upgrade" among the
// Connection tokens. An Upgrade field without that token is only a
// hop-by-hop field, dropped like the others.
bool is_upgrade_request(const http::MessageHead& head) noexcept;

UpgradeCheck check_websocket_upgrade(const http::MessageHead& head,
                                     const config::RouteWebSocket& ws);

// What the gateway offers the upstream, from a request that passed the check:
// the client's subprotocols that the route allows (all of them when the
// allowlist is empty), and, with extensions = "passthrough", the client's
// extension offer. Comma-separated; "" when there is nothing to offer.
std::string offered_subprotocols(const http::MessageHead& request,
                                 const config::RouteWebSocket& ws);
std::string offered_extensions(const http::MessageHead& request,
                               const config::RouteWebSocket& ws);

struct SwitchCheck {
  int status;          // 0: a valid 101 for our key; otherwise 502
  const char* reason;  // for the log
  bool deflate;        // permessage-deflate was negotiated (RSV1 legal)
};

// Checks an upstream's 101 against the request the gateway sent: Upgrade
// websocket and Connection upgrade, Sec-WebSocket-Accept for `key`, a
// subprotocol only from `protocols`, an extension only when `extensions`
// offered one and only permessage-deflate (the one whose frames the relay
// understands).
SwitchCheck check_websocket_switch(const http::MessageHead& response, std::string_view key,
                                   std::string_view protocols, std::string_view extensions);

}  // namespace sluice::proxy
