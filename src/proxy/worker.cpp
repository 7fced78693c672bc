// Worker: see worker.hpp.
#include "proxy/worker.hpp"

#include <unistd.h>

#include <cinttypes>

#include "core/log.hpp"
#include "proxy/session.hpp"

namespace sluice::proxy {

namespace {
template <typename T>
uv_handle_t* as_handle(T* h) noexcept {
  return reinterpret_cast<uv_handle_t*>(h);
}
}  // namespace

Worker::Worker(unsigned index, unsigned worker_count, std::shared_ptr<const config::Config> config,
               std::vector<int> listen_fds, TlsContexts tls, int access_fd)
    : index_(index),
      io_(&loop_),
      config_(std::move(config)),
      router_(config_->routes),
      listen_fds_(std::move(listen_fds)),
      tls_(std::move(tls)),
      access_log_(access_fd),
      id_step_(worker_count),
      next_id_(index) {
  uv_loop_init(&loop_);
  // Initialised here, not in run(): stop() may be called (a signal right
  // after start) before this worker's thread has begun. A stop that early is
  // simply pending until the loop runs.
  uv_async_init(&loop_, &stop_async_, on_async);
  stop_async_.data = this;
  for (std::size_t i = 0; i < config_->upstreams.size(); ++i) {
    const net::TlsClientContext* tls = i < tls_.upstreams.size() ? tls_.upstreams[i] : nullptr;
    pools_.push_back(
        std::make_unique<UpstreamPool>(io_, config_->upstreams[i], config_->timeouts, tls));
  }
  std::uint64_t share = (config_->limits.max_connections + worker_count - 1) / worker_count;
  max_sessions_ = share == 0 ? 1 : share;
}

Worker::~Worker() {
  for (int fd : listen_fds_) {
    if (fd >= 0) ::close(fd);
  }
}

void Worker::run() {
  listeners_ = std::make_unique<ListenerSlot[]>(listen_fds_.size());
  for (std::size_t i = 0; i < listen_fds_.size(); ++i) {
    ListenerSlot& slot = listeners_[i];
    slot.worker = this;
    slot.tls = i < tls_.listeners.size() ? tls_.listeners[i] : nullptr;
    uv_tcp_t* l = &slot.handle;
    uv_tcp_init(&loop_, l);
    l->data = &slot;
    int r = uv_tcp_open(l, listen_fds_[i]);
    if (r == 0) {
      listen_fds_[i] = -1;  // the handle owns it now
      r = uv_listen(reinterpret_cast<uv_stream_t*>(l), 4096, on_connection);
    }
    if (r != 0) {
      SLUICE_LOG(Error, "worker=%u msg=\"listen failed\" error=%s", index_, uv_strerror(r));
    }
  }
  uv_timer_init(&loop_, &drain_timer_);
  drain_timer_.data = this;
  uv_timer_init(&loop_, &flush_timer_);
  flush_timer_.data = this;
  if (access_log_.enabled()) uv_timer_start(&flush_timer_, on_flush, 1000, 1000);

  uv_run(&loop_, UV_RUN_DEFAULT);

  access_log_.flush();
  const net::IoCounters& c = io_.counters;
  const WsCounters& w = ws_counters_;
  SLUICE_LOG(Info,
             "worker=%u msg=stopped tls_handshakes=%llu tls_handshake_failures=%llu "
             "tls_plain_http=%llu ws_sessions=%llu ws_refused_origin=%llu "
             "ws_refused_handshake=%llu ws_bad_upstream_switch=%llu ws_policy_closes=%llu",
             index_, static_cast<unsigned long long>(c.tls_handshakes),
             static_cast<unsigned long long>(c.tls_handshake_failures),
             static_cast<unsigned long long>(c.tls_plain_http),
             static_cast<unsigned long long>(w.sessions),
             static_cast<unsigned long long>(w.refused_origin),
             static_cast<unsigned long long>(w.refused_handshake),
             static_cast<unsigned long long>(w.bad_upstream_switch),
             static_cast<unsigned long long>(w.policy_closes));
  int r = uv_loop_close(&loop_);
  if (r == UV_EBUSY) {
    uv_walk(&loop_, [](uv_handle_t* h, void*) {
      SLUICE_LOG(Error, "msg=\"handle leak\" type=%s", uv_handle_type_name(h->type));
    }, nullptr);
    clean_ = false;
  } else {
    clean_ = (r == 0) && io_.blocks().in_use() == 0;
    if (io_.blocks().in_use() != 0) {
      SLUICE_LOG(Error, "worker=%u msg=\"handle leak\" blocks_in_use=%zu", index_,
                 io_.blocks().in_use());
    }
  }
}

void Worker::stop() { uv_async_send(&stop_async_); }

void Worker::on_async(uv_async_t* a) noexcept { static_cast<Worker*>(a->data)->begin_drain(); }

void Worker::on_connection(uv_stream_t* server, int status) noexcept {
  auto* slot = static_cast<ListenerSlot*>(server->data);
  Worker* self = slot->worker;
  if (status < 0) {
    SLUICE_LOG(Warn, "worker=%u msg=\"accept failed\" error=%s", self->index_, uv_strerror(status));
    return;
  }
  if (self->draining_) return;
  self->next_id_ += self->id_step_;  // ids interleave across workers: unique, small
  auto* s = new Session(*self, self->next_id_, slot->tls);
  if (!s->start(server)) return;
  if (self->session_count_ > self->max_sessions_) s->refuse();
}

void Worker::add(Session* s) noexcept {
  s->next_ = sessions_;
  s->prev_ = nullptr;
  if (sessions_) sessions_->prev_ = s;
  sessions_ = s;
  ++session_count_;
}

void Worker::remove(Session* s) noexcept {
  if (s->prev_) {
    s->prev_->next_ = s->next_;
  } else {
    sessions_ = s->next_;
  }
  if (s->next_) s->next_->prev_ = s->prev_;
  --session_count_;
  if (draining_) maybe_done();
}

void Worker::begin_drain() {
  if (draining_) return;
  draining_ = true;
  SLUICE_LOG(Info, "worker=%u msg=draining sessions=%zu", index_, session_count_);
  for (std::size_t i = 0; i < listen_fds_.size(); ++i) {
    uv_tcp_t* l = &listeners_[i].handle;
    if (!uv_is_closing(as_handle(l))) uv_close(as_handle(l), nullptr);
  }
  for (auto& p : pools_) p->start_draining();
  for (Session* s = sessions_; s;) {
    Session* next = s->next_;  // drain() may finish s, but it is freed only later
    s->drain();
    s = next;
  }
  uv_timer_start(&drain_timer_, on_drain_timeout,
                 static_cast<std::uint64_t>(config_->server.drain_timeout.count()), 0);
  maybe_done();
}

void Worker::on_drain_timeout(uv_timer_t* t) noexcept {
  auto* self = static_cast<Worker*>(t->data);
  SLUICE_LOG(Warn, "worker=%u msg=\"drain timeout, closing what is left\" sessions=%zu",
             self->index_, self->session_count_);
  for (Session* s = self->sessions_; s;) {
    Session* next = s->next_;
    s->abort();
    s = next;
  }
}

void Worker::on_flush(uv_timer_t* t) noexcept { static_cast<Worker*>(t->data)->access_log_.flush(); }

void Worker::maybe_done() {
  if (done_ || session_count_ != 0) return;
  done_ = true;
  for (auto& p : pools_) p->close_idle();
  uv_close(as_handle(&stop_async_), nullptr);
  uv_close(as_handle(&drain_timer_), nullptr);
  uv_close(as_handle(&flush_timer_), nullptr);
}

}  // namespace sluice::proxy
