// Head rewriting: see forward.hpp.
#include "http/forward.hpp"

#include <cstdio>

#include "http/headers.hpp"
#include "http/responses.hpp"

namespace sluice::http {

namespace {

// Names listed in Connection fields: hop-by-hop for this message only.
struct ConnectionTokens {
  std::string_view items[32];
  std::size_t count = 0;
  void collect(const MessageHead& head) {
    for (std::size_t i = 0; i < head.header_count(); ++i) {
      if (!iequals(head.name(i), "connection")) continue;
      for_each_token(head.value(i), [&](std::string_view t) {
        if (count == std::size(items)) return false;  // beyond that, a list is an attack
        items[count++] = t;
        return true;
      });
    }
  }
  bool has(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < count; ++i) {
      if (iequals(items[i], name)) return true;
    }
    return false;
  }
};

// The fields the gateway writes itself on an upgrade, on both legs.
bool is_websocket_handshake_field(std::string_view name) noexcept {
  return iequals(name, "sec-websocket-key") || iequals(name, "sec-websocket-version") ||
         iequals(name, "sec-websocket-protocol") || iequals(name, "sec-websocket-extensions") ||
         iequals(name, "sec-websocket-accept");
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  if (value.empty()) return;
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

}  // namespace

void write_upstream_head(const MessageHead& head, const RequestForward& f, std::string& out) {
  ConnectionTokens named;
  named.collect(head);
  const std::string_view path = f.path;
  const std::string_view host = f.host;
  out.clear();
  out += llhttp_method_name(static_cast<llhttp_method_t>(head.method));
  out += ' ';
  if (path.empty() || (path.front() != '/' && path != "*")) out += '/';
  out += path;
  out += " HTTP/1.1\r\n";
  std::string_view via_prev, host_header;
  bool has_xff = false;
  for (std::size_t i = 0; i < head.header_count(); ++i) {
    std::string_view n = head.name(i), v = head.value(i);
    if (is_hop_by_hop(n) || named.has(n)) continue;
    if (iequals(n, "expect") || iequals(n, "x-forwarded-proto") ||
        iequals(n, "x-forwarded-host")) {
      continue;
    }
    if (f.websocket && is_websocket_handshake_field(n)) continue;
    if (iequals(n, "x-forwarded-for")) {
      has_xff = true;  // joined below, in order, into one field
      continue;
    }
    if (iequals(n, "via")) {
      via_prev = v;
      continue;
    }
    if (iequals(n, "host")) host_header = v;
    out += n;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  if (host_header.empty()) {
    out += "Host: ";
    out += host.empty() ? std::string_view(f.fallback_host) : host;
    out += "\r\n";
  }
  // X-Forwarded-For: the client's list when the client is a trusted proxy,
  // then the address this gateway saw. From anyone else the list is
  // replaced: it could say anything.
  out += "X-Forwarded-For: ";
  if (has_xff && f.trust_client_xff) {
    for (std::size_t i = 0; i < head.header_count(); ++i) {
      if (!iequals(head.name(i), "x-forwarded-for")) continue;
      std::string_view v = trim_ows(head.value(i));
      if (v.empty()) continue;
      out += v;
      out += ", ";
    }
  }
  out += f.client_ip;
  out += "\r\nX-Forwarded-Proto: ";
  out += f.proto;
  out += "\r\n";
  if (!host_header.empty() || !host.empty()) {
    out += "X-Forwarded-Host: ";
    out += host_header.empty() ? host : host_header;
    out += "\r\n";
  }
  out += "Via: ";
  if (!via_prev.empty()) {
    out += via_prev;
    out += ", ";
  }
  out += f.client_http10 ? "1.0 sluice\r\n" : "1.1 sluice\r\n";
  if (head.chunked) out += "Transfer-Encoding: chunked\r\n";
  if (const WebSocketForward* ws = f.websocket) {
    out += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
    out += ws->key;
    out += "\r\nSec-WebSocket-Version: 13\r\n";
    append_field(out, "Sec-WebSocket-Protocol", ws->protocols);
    append_field(out, "Sec-WebSocket-Extensions", ws->extensions);
  }
  out += "\r\n";
}

void write_client_head(const MessageHead& head, const ResponseFraming& f, std::string& out) {
  ConnectionTokens named;
  named.collect(head);
  const bool websocket = !f.websocket_accept.empty();
  out.clear();
  char line[32];
  int len = std::snprintf(line, sizeof line, "HTTP/1.1 %u ", head.status);
  out.append(line, static_cast<std::size_t>(len));
  out += head.reason().empty() || websocket ? std::string_view(reason_phrase(head.status))
                                            : head.reason();
  out += "\r\n";
  if (websocket) {
    out += "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    append_field(out, "Sec-WebSocket-Accept", f.websocket_accept);
  }
  for (std::size_t i = 0; i < head.header_count(); ++i) {
    std::string_view n = head.name(i);
    if (is_hop_by_hop(n) || named.has(n)) continue;
    if (websocket && (iequals(n, "sec-websocket-accept") || iequals(n, "content-length"))) continue;
    out += n;
    out += ": ";
    out += head.value(i);
    out += "\r\n";
  }
  if (!f.hsts.empty() && !head.find("strict-transport-security")) {
    out += "Strict-Transport-Security: ";
    out += f.hsts;
    out += "\r\n";
  }
  if (!websocket) {
    if (f.chunked_out) out += "Transfer-Encoding: chunked\r\n";
    if (!f.keep_alive) {
      out += "Connection: close\r\n";
    } else if (f.client_http10) {
      out += "Connection: keep-alive\r\n";
    }
  }
  out += "\r\n";
}

}  // namespace sluice::http
