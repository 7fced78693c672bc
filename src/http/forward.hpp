// Rewriting message heads as they cross the proxy: what the upstream sees of
// a client's request, and what the client sees of an upstream's response.
//
// Hop-by-hop fields (the fixed set and whatever Connection names) never pass;
// the forwarding fields (X-Forwarded-*, Via) are set here; framing fields
// are written for the framing the proxy chose. Pure: writes into the string
// it is given (whose capacity the caller reuses), no I/O.
#pragma once

#include <string>
#include <string_view>

#include "http/parser.hpp"

namespace sluice::http {

// The WebSocket fields of an upgrade request as the gateway sends it: its
// own key, the subprotocols it offers, and the extension offer it passes on.
struct WebSocketForward {
  std::string_view key;         // the gateway's fresh Sec-WebSocket-Key
  std::string_view protocols;   // comma-separated offer ("" = none)
  std::string_view extensions;  // the client's offer when passed through ("" = none)
};

struct RequestForward {
  std::string_view path;           // what to send as the target ("/x?y", or "*")
  std::string_view host;           // the host the request named, lower case ("" if none)
  std::string_view fallback_host;  // Host to send when the client sent none (HTTP/1.0)
  std::string_view client_ip;      // appended to X-Forwarded-For
  bool trust_client_xff = false;   // keep the client's X-Forwarded-For (a trusted proxy) or replace it
  std::string_view proto = "http"; // X-Forwarded-Proto
  bool client_http10 = false;      // Via says "1.0 sluice"
  const WebSocketForward* websocket = nullptr;  // set: an upgrade to websocket
};

// The request head for the upstream, always HTTP/1.1 and keep-alive.
// Chunked bodies stay chunked (the proxy re-frames them); Expect is dropped
// because the proxy answers 100-continue itself. With f.websocket the head
// asks for the upgrade with the gateway's own Sec-WebSocket-* fields instead
// of the client's.
void write_upstream_head(const MessageHead& head, const RequestForward& f, std::string& out);

struct ResponseFraming {
  bool chunked_out;    // the body goes to the client re-framed as chunked
  bool keep_alive;     // false: Connection: close
  bool client_http10;  // keep-alive must then be said explicitly
  std::string_view hsts;  // Strict-Transport-Security to add unless the upstream set one
  // Set: the head is the upstream's checked 101 for a WebSocket upgrade, and
  // the client gets it with the accept value for its own key (no framing).
  std::string_view websocket_accept = {};
};

// The response head for the client (also used for interim 1xx heads, and
// for the 101 of a WebSocket upgrade: the upstream's end-to-end fields,
// Sec-WebSocket-Protocol and -Extensions included, with f.websocket_accept).
void write_client_head(const MessageHead& head, const ResponseFraming& f, std::string& out);

}  // namespace sluice::http
