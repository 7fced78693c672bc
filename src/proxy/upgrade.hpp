// The checks a WebSocket upgrade request must pass before anything goes
// upstream (RFC 6455 4.2.1 and the route's policy): method and version,
// Sec-WebSocket-Version (426), Sec-WebSocket-Key (400), Origin (403),
// subprotocols (403). Upgrades to anything but websocket are never tunnelled.
// Pure: reads the parsed head and the route's settings, nothing else.
#pragma once

#include "config/config.hpp"
#include "http/parser.hpp"

namespace sluice::proxy {

struct UpgradeCheck {
  int status;          // 0: a valid WebSocket handshake; otherwise the answer
  const char* reason;  // for the log
};

UpgradeCheck check_websocket_upgrade(const http::MessageHead& head,
                                     const config::RouteWebSocket& ws);

}  // namespace sluice::proxy
