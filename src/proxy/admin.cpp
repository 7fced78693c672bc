// AdminServer: see admin.hpp.
#include "proxy/admin.hpp"

#include <string_view>

#include "core/log.hpp"

namespace sluice::proxy {

namespace {
constexpr std::size_t kMaxHead = 8192;
constexpr std::uint64_t kTimeoutMs = 5'000;

template <typename T>
uv_handle_t* as_handle(T* h) noexcept {
  return reinterpret_cast<uv_handle_t*>(h);
}
}  // namespace

struct AdminServer::Conn {
  AdminServer* owner = nullptr;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_write_t write{};
  std::string in;
  std::string out;
  Conn* prev = nullptr;
  Conn* next = nullptr;
  int pending_closes = 0;
  bool answered = false;

  void close() {
    if (pending_closes != 0) return;
    pending_closes = 2;
    // Unlinked now: the server may be closing and walking the list.
    if (prev) prev->next = next; else owner->conns_ = next;
    if (next) next->prev = prev;
    auto done = [](uv_handle_t* h) {
      auto* c = static_cast<Conn*>(h->data);
      if (--c->pending_closes == 0) delete c;
    };
    uv_close(as_handle(&timer), done);
    uv_close(as_handle(&tcp), done);
  }

  void respond(int status, const char* reason, const char* type, std::string body, bool head) {
    answered = true;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp));
    out = "HTTP/1.1 " + std::to_string(status) + " " + reason +
          "\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    if (!head) out += body;
    uv_buf_t buf = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
    write.data = this;
    if (uv_write(&write, reinterpret_cast<uv_stream_t*>(&tcp), &buf, 1,
                 [](uv_write_t* w, int) { static_cast<Conn*>(w->data)->close(); }) != 0) {
      close();
    }
  }

  void handle() {
    const std::size_t end = in.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (in.size() >= kMaxHead) respond(431, "Request Header Fields Too Large", "text/plain", "too large\n", false);
      return;
    }
    const std::string_view line = std::string_view(in).substr(0, in.find("\r\n"));
    const std::size_t sp1 = line.find(' ');
    const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.substr(sp2 + 1).substr(0, 7) != "HTTP/1.") {
      respond(400, "Bad Request", "text/plain", "bad request\n", false);
      return;
    }
    const std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find('?'));
    const bool head = method == "HEAD";
    if (method != "GET" && !head) {
      respond(405, "Method Not Allowed", "text/plain", "GET or HEAD only\n", false);
      return;
    }
    const Handlers& h = owner->handlers_;
    if (target == "/metrics") {
      respond(200, "OK", "text/plain; version=0.0.4; charset=utf-8", h.metrics(), head);
    } else if (target == "/healthz") {
      respond(200, "OK", "text/plain", "ok\n", head);
    } else if (target == "/readyz") {
      if (h.ready()) {
        respond(200, "OK", "text/plain", "ready\n", head);
      } else {
        respond(503, "Service Unavailable", "text/plain", "draining\n", head);
      }
    } else if (target == "/config") {
      respond(200, "OK", "application/json", h.config(), head);
    } else {
      respond(404, "Not Found", "text/plain", "not found\n", head);
    }
  }
};

bool AdminServer::listen(const config::SocketAddress& addr, std::string& error) {
  auto* server = new uv_tcp_t;
  uv_tcp_init(loop_, server);
  server->data = this;
  int r = uv_tcp_bind(server, reinterpret_cast<const sockaddr*>(&addr.storage), 0);
  if (r == 0) r = uv_listen(reinterpret_cast<uv_stream_t*>(server), 128, on_connection);
  if (r != 0) {
    error = "admin: listen " + addr.text + ": " + uv_strerror(r);
    uv_close(as_handle(server), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    return false;
  }
  close();  // the earlier socket, once the new one is bound
  server_ = server;
  address_ = addr.text;
  return true;
}

void AdminServer::close() {
  if (server_) {
    uv_close(as_handle(server_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    server_ = nullptr;
    address_.clear();
  }
  while (conns_) conns_->close();
}

void AdminServer::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<AdminServer*>(server->data);
  if (status < 0) return;
  auto* c = new Conn;
  c->owner = self;
  uv_tcp_init(self->loop_, &c->tcp);
  uv_timer_init(self->loop_, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->next = self->conns_;
  if (c->next) c->next->prev = c;
  self->conns_ = c;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    c->close();
    return;
  }
  uv_timer_start(&c->timer, [](uv_timer_t* t) { static_cast<Conn*>(t->data)->close(); }, kTimeoutMs, 0);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
        static thread_local char scratch[4096];
        (void)h;
        *buf = uv_buf_init(scratch, sizeof scratch);
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* c = static_cast<Conn*>(s->data);
        if (n < 0) {
          c->close();
          return;
        }
        if (c->answered) return;
        c->in.append(buf->base, static_cast<std::size_t>(n));
        c->handle();
      });
}

}  // namespace sluice::proxy
