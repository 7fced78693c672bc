// error_response: a table of prebuilt responses, built once at start.
#include "http/responses.hpp"

#include <array>
#include <string>

namespace sluice::http {

namespace {

constexpr std::array<int, 15> kStatuses = {400, 403, 404, 405, 408, 413, 414, 426,
                                           429, 431, 500, 501, 502, 503, 504};

struct Table {
  std::array<std::string, kStatuses.size()> close;
  std::array<std::string, kStatuses.size()> keep;
  Table() {
    for (std::size_t i = 0; i < kStatuses.size(); ++i) {
      int s = kStatuses[i];
      std::string body = std::to_string(s) + " " + reason_phrase(s) + "\n";
      std::string head = "HTTP/1.1 " + std::to_string(s) + " " + reason_phrase(s) +
                         "\r\nServer: sluice\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: " + std::to_string(body.size()) + "\r\n";
      // 426 is only ever about the WebSocket version (RFC 6455 4.4).
      if (s == 426) head += "Sec-WebSocket-Version: 13\r\n";
      close[i] = head + "Connection: close\r\n\r\n" + body;
      keep[i] = head + "\r\n" + body;
    }
  }
};

const Table& table() {
  static const Table t;
  return t;
}

}  // namespace

const char* reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

std::string_view error_response(int status, bool close) noexcept {
  const Table& t = table();
  for (std::size_t i = 0; i < kStatuses.size(); ++i) {
    if (kStatuses[i] == status) return close ? t.close[i] : t.keep[i];
  }
  return t.close[10];  // 500
}

}  // namespace sluice::http
