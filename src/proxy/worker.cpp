// Worker: see worker.hpp.
#include "proxy/worker.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <utility>

#include "core/log.hpp"
#include "net/fd_channel.hpp"
#include "proxy/session.hpp"

namespace sluice::proxy {

namespace {
template <typename T>
uv_handle_t* as_handle(T* h) noexcept {
  return reinterpret_cast<uv_handle_t*>(h);
}
}  // namespace

bool ConfigView::still_routes(const config::Route& route, const UpstreamPool* pool) const noexcept {
  for (const config::Route& r : gen->config->routes) {
    if (r.host == route.host && r.path_prefix == route.path_prefix) {
      return pools[r.upstream_index] == pool;
    }
  }
  return false;
}

Worker::Worker(unsigned index, unsigned worker_count, std::shared_ptr<const Generation> gen,
               std::vector<int> listen_fds, int access_fd)
    : index_(index),
      worker_count_(worker_count),
      io_(&loop_),
      access_fd_(access_fd),
      access_log_(access_fd, gen->config->log.access_json),
      id_step_(worker_count),
      next_id_(index),
      jitter_rng_(static_cast<unsigned>(uv_hrtime()) ^ (index * 2654435761u)) {
  metrics_.io = &io_.counters;
  add_view(std::move(gen));
  // SEQPACKET: each message keeps its bounds and its descriptors. Neither
  // end ever waits: a worker whose loop is stuck makes post() fail, which
  // is logged, instead of holding up the main thread.
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, control_) != 0) {
    SLUICE_LOG(Error, "worker=%u msg=\"cannot make the control socket\" error=\"%s\"", index_,
               std::strerror(errno));
    control_[0] = control_[1] = -1;
  }
  // The loop itself is made in run(), on the worker's thread, once that has
  // its own descriptor table: what libuv opens for it then lives there
  // alone. Until then, what is posted waits on the control socket.
  post_listeners(nullptr, std::move(listen_fds));
}

Worker::~Worker() {
  // Pools first: they give back what they counted in metrics_, which is
  // declared after them and so would otherwise be gone already.
  pools_.clear();
  // Descriptors posted and never taken are in flight inside the socket:
  // they close with it.
  for (int fd : control_) {
    if (fd >= 0) ::close(fd);
  }
}

ConfigView& Worker::add_view(std::shared_ptr<const Generation> gen) {
  const config::Config& c = *gen->config;
  auto view = std::make_unique<ConfigView>(gen);
  for (std::size_t i = 0; i < c.upstreams.size(); ++i) {
    UpstreamPool* pool = nullptr;
    for (PoolSlot& p : pools_) {
      if (same_servers(p.pool->conf(), c.upstreams[i])) {
        pool = p.pool.get();
        pool->rebind(gen, i);
        ++p.views;
        break;
      }
    }
    if (!pool) {
      pools_.push_back(PoolSlot{std::make_unique<UpstreamPool>(io_, gen, i), 1});
      pool = pools_.back().pool.get();
      pool->set_metrics(metrics_.upstream(c.upstreams[i].name));
    }
    view->pools.push_back(pool);
  }
  for (const config::Route& r : c.routes) view->route_metrics.push_back(metrics_.route(&r));
  view->no_route = metrics_.route(nullptr);
  std::uint64_t share = (c.limits.max_connections + worker_count_ - 1) / worker_count_;
  max_sessions_ = share == 0 ? 1 : share;
  views_.push_back(std::move(view));
  return *views_.back();
}

void Worker::release(ConfigView& v) noexcept {
  if (--v.users == 0 && &v != views_.back().get()) free_view(&v);
}

void Worker::free_view(ConfigView* v) {
  for (UpstreamPool* pool : v->pools) {
    for (auto it = pools_.begin(); it != pools_.end(); ++it) {
      if (it->pool.get() != pool || --it->views != 0) continue;
      // No view routes to it any more, so no session holds one of its
      // connections: parked ones close, and connections already closing
      // do not touch their pool again.
      it->pool->close_idle();
      pools_.erase(it);
      break;
    }
  }
  for (auto it = views_.begin(); it != views_.end(); ++it) {
    if (it->get() == v) {
      views_.erase(it);
      break;
    }
  }
}

std::uint64_t Worker::jitter(std::uint64_t window_ms) noexcept {
  if (window_ms == 0) return 0;
  return std::uniform_int_distribution<std::uint64_t>(0, window_ms - 1)(jitter_rng_);
}

void Worker::run() {
  // Signals sent to the process are the main thread's: its loop has their
  // handlers, which write to descriptors of the main thread's table. Faults
  // stay with the thread that causes them.
  sigset_t async;
  sigfillset(&async);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS}) sigdelset(&async, sig);
  pthread_sigmask(SIG_BLOCK, &async, nullptr);
  std::vector<int> keep{control_[1]};
  if (access_fd_ >= 0) keep.push_back(access_fd_);
  if (!net::own_descriptor_table(keep)) {
    SLUICE_LOG(Info, "worker=%u msg=\"descriptor table shared with the process\" error=\"%s\"",
               index_, std::strerror(errno));
  }
  uv_loop_init(&loop_);
  uv_poll_init(&loop_, &control_poll_, control_[1]);
  control_poll_.data = this;
  uv_poll_start(&control_poll_, UV_READABLE, on_control);
  uv_timer_init(&loop_, &drain_timer_);
  drain_timer_.data = this;
  uv_timer_init(&loop_, &flush_timer_);
  flush_timer_.data = this;
  uv_timer_init(&loop_, &accept_timer_);
  accept_timer_.data = this;
  if (access_log_.enabled()) uv_timer_start(&flush_timer_, on_flush, 1000, 1000);
  take_posted();  // the first listening sockets, and whatever came since

  io_.run();  // the loop, driven by the sockets' edge-triggered poller

  access_log_.flush();
  const net::IoCounters& c = io_.counters;
  const WorkerMetrics& w = metrics_;
  std::uint64_t ws_sessions = 0;
  {
    std::lock_guard<std::mutex> lock(w.mutex);
    for (const auto& [_, r] : w.routes) ws_sessions += r->ws_sessions.get();
  }
  std::uint64_t policy = 0;
  for (const Counter& p : w.ws_policy) policy += p.get();
  SLUICE_LOG(Info,
             "worker=%u msg=stopped tls_handshakes=%llu tls_handshake_failures=%llu "
             "tls_plain_http=%llu ws_sessions=%llu ws_refused_origin=%llu "
             "ws_refused_handshake=%llu ws_bad_upstream_switch=%llu ws_policy_closes=%llu",
             index_, static_cast<unsigned long long>(c.tls_handshakes.get()),
             static_cast<unsigned long long>(c.tls_handshake_failures.get()),
             static_cast<unsigned long long>(c.tls_plain_http.get()),
             static_cast<unsigned long long>(ws_sessions),
             static_cast<unsigned long long>(w.ws_refused_origin.get()),
             static_cast<unsigned long long>(w.ws_refused_handshake.get()),
             static_cast<unsigned long long>(w.ws_bad_upstream_switch.get()),
             static_cast<unsigned long long>(policy));
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
  // Whoever waits for the workers hears it on the control socket.
  const ControlMessage over{0};
  if (control_[1] >= 0) net::send_with_fds(control_[1], &over, sizeof over, nullptr, 0);
}

bool Worker::finished() noexcept {
  for (;;) {
    ControlMessage m{};
    std::vector<int> fds;
    bool lost = false;
    const long r = control_[0] < 0 ? -EBADF : net::recv_with_fds(control_[0], &m, sizeof m, fds, lost);
    for (int fd : fds) ::close(fd);  // the worker sends none
    if (r <= 0) break;
    if (r == sizeof m && m.seq == 0) run_over_ = true;
  }
  return run_over_;
}

void Worker::open_listener(std::size_t index, int fd) {
  auto slot = std::make_unique<ListenerSlot>();
  slot->worker = this;
  slot->addr = view().config().listeners[index].addr;
  slot->tls = view().gen->listener_context(index);
  slot->metrics = metrics_.listener(slot->addr.text);
  slot->proxy_protocol = view().config().listeners[index].proxy_protocol;
  slot->fd = fd;
  int r = 0;
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 || ::listen(fd, 4096) != 0) {
    r = -errno;
  } else {
    r = uv_poll_init(&loop_, &slot->handle, fd);
  }
  if (r == 0) {
    slot->handle.data = slot.get();
    uv_poll_start(&slot->handle, UV_READABLE, on_listen_ready);
  } else {
    ::close(fd);
    slot->fd = -1;
  }
  if (r != 0) {
    SLUICE_LOG(Error, "worker=%u msg=\"listen failed\" listener=%s error=%s", index_,
               slot->addr.text.c_str(), uv_strerror(r));
  }
  if (listeners_.size() <= index) listeners_.resize(index + 1);
  listeners_[index] = std::move(slot);
}

void Worker::stop() {
  stop_requested_.store(true);
  post(PendingStop{});
}

bool Worker::reload(std::shared_ptr<const Generation> gen, std::vector<int> listen_fds) {
  return post_listeners(std::move(gen), std::move(listen_fds));
}

bool Worker::post_listeners(std::shared_ptr<const Generation> gen, std::vector<int> listen_fds) {
  std::vector<int> fds;
  for (int fd : listen_fds) {
    if (fd >= 0) fds.push_back(fd);
  }
  return post(PendingReload{std::move(gen), std::move(listen_fds)}, fds);
}

void Worker::update_members(std::shared_ptr<const Generation> gen, std::size_t index,
                            std::shared_ptr<const Members> members) {
  post(PendingMembers{std::move(gen), index, std::move(members)});
}

void Worker::reopen_access_log(int fd) {
  post(PendingLog{}, {fd});
}

// Any thread. The item is queued and its message sent under one lock, so
// that the worker, taking items under the same lock, finds every message
// waiting in the socket belongs to an item it holds (or to one whose
// sending failed part way, which it drops). The caller's descriptors close
// here whatever happens: once sent, the worker has its own.
bool Worker::post(Pending item, const std::vector<int>& fds) {
  bool ok = true;
  {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    const ControlMessage m{++next_seq_};
    std::size_t sent = 0;
    do {  // at least one message, even with no descriptors: it wakes the worker
      const std::size_t n = std::min(fds.size() - sent, net::kMaxFdsPerMessage);
      const int r = control_[0] < 0 ? -EBADF
                                    : net::send_with_fds(control_[0], &m, sizeof m, fds.data() + sent, n);
      if (r < 0) {
        SLUICE_LOG(Error, "worker=%u msg=\"cannot hand the worker its work\" error=\"%s\"", index_,
                   std::strerror(-r));
        ok = false;
        break;
      }
      sent += n;
    } while (sent < fds.size());
    if (ok) pending_.push_back(Posted{m.seq, fds.size(), {}, std::move(item)});
  }
  for (int fd : fds) ::close(fd);
  return ok;
}

void Worker::on_control(uv_poll_t* h, int status, int) noexcept {
  auto* self = static_cast<Worker*>(h->data);
  if (status < 0) {
    SLUICE_LOG(Error, "worker=%u msg=\"control socket failed\" error=%s", self->index_,
               uv_strerror(status));
    uv_poll_stop(h);
    return;
  }
  self->take_posted();
}

void Worker::take_posted() {
  std::vector<Posted> items;
  {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    items.swap(pending_);
    // Messages come in the order of their items; at is the item the next
    // one may belong to.
    std::size_t at = 0;
    for (;;) {
      ControlMessage m{};
      std::vector<int> fds;
      bool lost = false;
      const long r = net::recv_with_fds(control_[1], &m, sizeof m, fds, lost);
      if (r <= 0) break;  // -EAGAIN: nothing more waiting
      while (at < items.size() && items[at].seq < m.seq) ++at;
      if (r != sizeof m || at == items.size() || items[at].seq != m.seq) {
        for (int fd : fds) ::close(fd);  // an item whose sending failed
        continue;
      }
      if (lost) {
        SLUICE_LOG(Error, "worker=%u msg=\"descriptors lost: out of descriptors\"", index_);
      }
      items[at].got.insert(items[at].got.end(), fds.begin(), fds.end());
    }
  }
  for (Posted& p : items) {
    const bool stopping = draining_ || stop_requested_.load();
    if (auto* m = std::get_if<PendingMembers>(&p.item)) {
      // Members still matter while draining: requests in flight pick too.
      apply_members(*m);
    } else if (std::holds_alternative<PendingLog>(p.item)) {
      // In place of the old file under the same number, which the access
      // log writes to.
      if (!p.got.empty() && ::dup3(p.got.front(), access_fd_, O_CLOEXEC) < 0) {
        SLUICE_LOG(Error, "worker=%u msg=\"cannot reopen the access log\" error=\"%s\"", index_,
                   std::strerror(errno));
      }
    } else if (auto* r = std::get_if<PendingReload>(&p.item)) {
      // The descriptors in the order of the entries they are for.
      std::size_t k = 0;
      for (int& fd : r->fds) {
        if (fd < 0) continue;
        fd = k < p.got.size() ? std::exchange(p.got[k], -1) : -1;  // owned by the entry now
        ++k;
      }
      if (!r->gen) {
        for (std::size_t i = 0; i < r->fds.size(); ++i) {
          if (r->fds[i] >= 0) open_listener(i, r->fds[i]);
        }
      } else if (stopping) {
        for (int fd : r->fds) {
          if (fd >= 0) ::close(fd);
        }
      } else {
        apply_reload(std::move(*r));
      }
    }
    if (p.got.size() < p.fds) {
      SLUICE_LOG(Error, "worker=%u msg=\"descriptors missing\" expected=%zu got=%zu", index_,
                 p.fds, p.got.size());
    }
    for (int fd : p.got) {
      if (fd >= 0) ::close(fd);
    }
  }
  if (stop_requested_.load()) begin_drain();
}

void Worker::apply_reload(PendingReload r) {
  ConfigView* old = views_.back().get();
  ConfigView& now = add_view(std::move(r.gen));
  const config::Config& c = now.config();
  // Listeners: kept by address (no accept gap), new ones opened, the rest closed.
  std::vector<std::unique_ptr<ListenerSlot>> previous = std::move(listeners_);
  listeners_.clear();
  for (std::size_t i = 0; i < c.listeners.size(); ++i) {
    const config::SocketAddress& a = c.listeners[i].addr;
    if (r.fds[i] >= 0) {
      open_listener(i, r.fds[i]);
      continue;
    }
    for (auto& slot : previous) {
      if (slot && config::same_address(slot->addr, a)) {
        slot->tls = now.gen->listener_context(i);
        slot->proxy_protocol = c.listeners[i].proxy_protocol;
        if (listeners_.size() <= i) listeners_.resize(i + 1);
        listeners_[i] = std::move(slot);
        break;
      }
    }
  }
  for (auto& slot : previous) {
    if (!slot) continue;
    close_listener(slot.release(), true);
  }
  // WebSocket sessions whose route or upstream went away are told to
  // reconnect (1012), spread over reload_grace so their clients do not all
  // come back at once.
  const std::uint64_t grace = static_cast<std::uint64_t>(c.server.reload_grace.count());
  std::size_t retired = 0;
  for (Session* s = sessions_; s; s = s->next_) {
    if (s->reloaded(now, grace)) ++retired;
  }
  SLUICE_LOG(Info, "worker=%u msg=\"config applied\" generation=%llu sessions=%zu websocket_retiring=%zu",
             index_, static_cast<unsigned long long>(now.gen->number), session_count_, retired);
  if (old->users == 0) free_view(old);
}

void Worker::apply_members(const PendingMembers& m) {
  const config::Upstream& u = m.gen->config->upstreams[m.index];
  for (PoolSlot& p : pools_) {
    if (!same_servers(p.pool->conf(), u)) continue;
    p.pool->set_members(*m.members);
    SLUICE_LOG(Debug, "worker=%u msg=\"upstream members updated\" upstream=%s members=%zu "
               "draining=%zu", index_, u.name.c_str(), p.pool->member_count(),
               p.pool->draining_count());
  }
}

void Worker::on_listen_ready(uv_poll_t* h, int status, int) noexcept {
  auto* slot = static_cast<ListenerSlot*>(h->data);
  Worker* self = slot->worker;
  if (status < 0) {
    // libuv stopped watching the socket: it is tried again shortly.
    SLUICE_LOG(Warn, "worker=%u msg=\"accept failed\" listener=%s error=%s", self->index_,
               slot->addr.text.c_str(), uv_strerror(status));
    uv_timer_start(&self->accept_timer_, on_accept_resume, 100, 0);
    return;
  }
  // A bounded batch per turn; what is left is still readable next turn.
  for (int i = 0; i < 128 && !self->draining_; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int fd = ::accept4(slot->fd, reinterpret_cast<sockaddr*>(&peer), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      SLUICE_LOG(Warn, "worker=%u msg=\"accept failed\" listener=%s error=%s", self->index_,
                 slot->addr.text.c_str(), uv_err_name(-err));
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Out of descriptors or memory: the listeners rest for a moment
        // (the kernel's backlog keeps the clients waiting) instead of
        // spinning on a socket that stays readable.
        for (auto& l : self->listeners_) {
          if (l && l->fd >= 0) uv_poll_stop(&l->handle);
        }
        uv_timer_start(&self->accept_timer_, on_accept_resume, 100, 0);
      }
      return;
    }
    self->next_id_ += self->id_step_;  // ids interleave across workers: unique, small
    ++slot->metrics->accepted;
    auto* s = new Session(*self, self->next_id_, *slot->metrics);
    if (!s->start(fd, reinterpret_cast<const sockaddr*>(&peer), slot->tls, slot->proxy_protocol)) {
      continue;
    }
    if (self->session_count_ > self->max_sessions_) s->refuse(503);
  }
}

void Worker::on_accept_resume(uv_timer_t* t) noexcept {
  auto* self = static_cast<Worker*>(t->data);
  if (self->draining_) return;
  for (auto& l : self->listeners_) {
    if (l && l->fd >= 0) uv_poll_start(&l->handle, UV_READABLE, on_listen_ready);
  }
}

void Worker::close_listener(ListenerSlot* slot, bool free) noexcept {
  if (slot->fd < 0) {
    if (free) delete slot;
    return;
  }
  // uv_close takes the descriptor out of the loop's epoll set at once, so
  // it can be closed right after.
  uv_close(as_handle(&slot->handle),
           free ? +[](uv_handle_t* h) { delete static_cast<ListenerSlot*>(h->data); } : nullptr);
  ::close(slot->fd);
  slot->fd = -1;
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
  for (auto& slot : listeners_) {
    if (slot) close_listener(slot.get(), false);
  }
  for (PoolSlot& p : pools_) p.pool->start_draining();
  // WebSocket sessions get their 1001 spread over the drain, so that their
  // clients do not all reconnect elsewhere at once; the last part of the
  // drain is left for their close handshakes.
  const std::uint64_t timeout = static_cast<std::uint64_t>(view().config().server.drain_timeout.count());
  const std::uint64_t window = timeout > 2 * Session::kCloseTimeoutMs
                                   ? timeout - Session::kCloseTimeoutMs
                                   : timeout / 2;
  for (Session* s = sessions_; s;) {
    Session* next = s->next_;  // drain() may finish s, but it is freed only later
    s->drain(jitter(window));
    s = next;
  }
  uv_timer_start(&drain_timer_, on_drain_timeout, timeout, 0);
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
  for (PoolSlot& p : pools_) p.pool->close_idle();
  uv_close(as_handle(&control_poll_), nullptr);
  uv_close(as_handle(&drain_timer_), nullptr);
  uv_close(as_handle(&flush_timer_), nullptr);
  uv_close(as_handle(&accept_timer_), nullptr);
  io_.close();  // once the connections still closing have closed
}

}  // namespace sluice::proxy
