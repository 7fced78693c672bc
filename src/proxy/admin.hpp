// The admin endpoint: a small HTTP/1.1 server on the main thread's loop,
// apart from the workers and their data path.
//
//   GET /metrics  Prometheus text format, every worker's counters summed
//   GET /healthz  200 while the process runs
//   GET /readyz   200 while listening and not draining, then 503
//   GET /config   the running configuration's source path, SHA-256 and
//                 generation, as JSON (never its contents: no secrets)
//
// One request per connection (answered with Connection: close), a request
// head of at most 8 KiB within 5 s, GET or HEAD only. Nothing it does can
// reach a client or upstream connection.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "config/config.hpp"

namespace sluice::proxy {

class AdminServer {
 public:
  struct Handlers {
    std::function<std::string()> metrics;  // the /metrics body
    std::function<bool()> ready;           // /readyz
    std::function<std::string()> config;   // the /config body (JSON)
  };

  AdminServer(uv_loop_t* loop, Handlers handlers) : loop_(loop), handlers_(std::move(handlers)) {}
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Listens on `addr`, then closes any earlier socket; false with `error`
  // set (and the earlier socket kept) when it cannot bind.
  bool listen(const config::SocketAddress& addr, std::string& error);
  // Stops listening and closes open admin connections; done once their close
  // callbacks ran (the loop then has nothing of this server left).
  void close();
  bool listening() const noexcept { return server_ != nullptr; }
  const std::string& address() const noexcept { return address_; }

 private:
  struct Conn;
  static void on_connection(uv_stream_t* server, int status);

  uv_loop_t* loop_;
  Handlers handlers_;
  uv_tcp_t* server_ = nullptr;
  std::string address_;
  Conn* conns_ = nullptr;  // open admin connections
};

}  // namespace sluice::proxy
