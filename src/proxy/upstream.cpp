// UpstreamPool and UpstreamConn: see upstream.hpp.
#include "proxy/upstream.hpp"

#include <algorithm>
#include <cstring>

#include "core/log.hpp"

namespace sluice::proxy {

namespace {
// Rendezvous hashing: a client keeps its server while that server stays
// healthy, and only the clients of a server that goes away move.
std::uint32_t mix(std::uint32_t a, std::uint32_t b) noexcept {
  std::uint64_t x = (static_cast<std::uint64_t>(a) << 32) | b;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return static_cast<std::uint32_t>(x);
}

// FNV-1a over the address bytes: a member's place in rendezvous hashing
// depends on its address alone, not on its index, so clients of the members
// that stay keep their server when others come or go.
std::uint32_t seed_of(const config::SocketAddress& a) noexcept {
  std::uint32_t h = 2166136261u;
  const auto* p = reinterpret_cast<const unsigned char*>(&a.storage);
  for (socklen_t i = 0; i < a.length; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}
}  // namespace

// ---- UpstreamPool

UpstreamPool::UpstreamPool(net::IoContext& io, std::shared_ptr<const Generation> gen,
                           std::size_t index)
    : io_(io) {
  rebind(std::move(gen), index);
}

void UpstreamPool::rebind(std::shared_ptr<const Generation> gen, std::size_t index) {
  gen_ = std::move(gen);
  conf_ = &gen_->config->upstreams[index];
  timeouts_ = &gen_->config->timeouts;
  tls_ = gen_->upstream_context(index);
  set_members(*gen_->members[index]);
}

// The worker frees a pool only once no view routes to it, so no session
// names one of its states any more; connections still closing never touch
// their state again.
UpstreamPool::~UpstreamPool() {
  if (metrics_ && draining_reported_ != 0) metrics_->draining_members.add(-draining_reported_);
}

void UpstreamPool::set_metrics(UpstreamMetrics* m) noexcept {
  if (metrics_) metrics_->draining_members.add(-draining_reported_);
  metrics_ = m;
  draining_reported_ = 0;
  report_draining();
}

void UpstreamPool::report_draining() noexcept {
  const auto now = static_cast<std::int64_t>(draining_count());
  if (metrics_) metrics_->draining_members.add(now - draining_reported_);
  draining_reported_ = now;
}

void UpstreamPool::set_members(const Members& next) {
  // Every state is presumed gone until a member claims it; a state is
  // claimed once (two servers may resolve to one address: two members).
  for (auto& s : states_) s->draining = true;
  std::vector<ServerState*> now;
  now.reserve(next.size());
  for (const Member& m : next) {
    ServerState* s = nullptr;
    for (auto& candidate : states_) {
      if (candidate->draining && candidate->member.name == m.name &&
          config::same_address(candidate->member.addr, m.addr)) {
        s = candidate.get();
        break;
      }
    }
    if (!s) {
      states_.push_back(std::make_unique<ServerState>());
      s = states_.back().get();
      s->seed = seed_of(m.addr);
    }
    s->draining = false;
    s->member = m;  // `next`'s health cell, should it be a fresh one
    now.push_back(s);
  }
  members_ = std::move(now);
  if (rr_next_ >= members_.size()) rr_next_ = 0;
  // What no member claimed drains: its parked connections close now, active
  // ones (WebSocket sessions too) go on until they end.
  for (std::size_t i = 0; i < states_.size();) {
    ServerState& s = *states_[i];
    if (!s.draining) {
      ++i;
      continue;
    }
    while (UpstreamConn* c = s.idle_head) {
      c->unlink_idle();
      c->close();
    }
    if (s.sessions == 0 && s.active == 0 && s.idle_count == 0) {
      states_.erase(states_.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    ++i;
  }
  report_draining();
}

void UpstreamPool::reap(ServerState& s) {
  if (!s.draining || s.sessions != 0 || s.active != 0 || s.idle_count != 0) return;
  auto it = std::find_if(states_.begin(), states_.end(),
                         [&](const std::unique_ptr<ServerState>& p) { return p.get() == &s; });
  if (it != states_.end()) states_.erase(it);
  report_draining();
}

ServerState* UpstreamPool::pick(std::uint32_t client_hash, const ServerState* avoid) {
  const std::uint64_t now = uv_now(io_.loop());
  auto usable = [&](const ServerState& s) {
    return s.ejected_until <= now && s.member.health->usable();
  };
  std::size_t healthy = 0;
  for (const ServerState* s : members_) healthy += usable(*s) ? 1 : 0;
  if (healthy == 0) return nullptr;
  auto eligible = [&](const ServerState& s) {
    return usable(s) && (healthy == 1 || &s != avoid);
  };
  const std::size_t n = members_.size();
  ServerState* best = nullptr;
  switch (conf_->balance) {
    case config::Balance::RoundRobin:
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t at = (rr_next_ + i) % n;
        ServerState& s = *members_[at];
        if (eligible(s)) {
          rr_next_ = static_cast<std::uint32_t>((at + 1) % n);
          return &s;
        }
      }
      break;
    case config::Balance::LeastConn:
      for (std::size_t i = 0; i < n; ++i) {
        // Start at a rotating index so ties spread instead of piling on server 0.
        ServerState& s = *members_[(rr_next_ + i) % n];
        if (eligible(s) && (!best || s.active < best->active)) best = &s;
      }
      rr_next_ = static_cast<std::uint32_t>((rr_next_ + 1) % n);
      return best;
    case config::Balance::HashClientIp: {
      std::uint32_t best_score = 0;
      for (ServerState* s : members_) {
        if (!eligible(*s)) continue;
        std::uint32_t score = mix(client_hash, s->seed);
        if (!best || score > best_score) {
          best = s;
          best_score = score;
        }
      }
      return best;
    }
  }
  return best;
}

UpstreamConn* UpstreamPool::acquire(ServerState& server, UpstreamUser& user, bool& reused) {
  while (UpstreamConn* c = server.idle_head) {
    c->unlink_idle();
    c->stop_timer();
    c->state_ = UpstreamConn::State::Active;
    c->user_ = &user;
    ++server.active;
    reused = true;
    return c;
  }
  reused = false;
  auto* c = new UpstreamConn(*this, server);
  ++server.active;
  if (c->start_connect(user) != 0) {
    // Could not even start (out of fds, bad address): the conn reports the
    // failure asynchronously through its timer so the caller's stack unwinds first.
  }
  return c;
}

void UpstreamPool::record_success(ServerState& s) noexcept {
  s.fails = 0;
  s.ejected_until = 0;
}

void UpstreamPool::record_failure(ServerState& s) noexcept {
  ++s.fails;
  if (s.fails >= conf_->max_fails) {
    std::uint64_t now = uv_now(io_.loop());
    if (s.ejected_until <= now) {
      SLUICE_LOG(Warn, "msg=\"upstream server ejected\" upstream=%s server=%s fails=%u for_ms=%lld",
                 conf_->name.c_str(), s.member.addr.text.c_str(), s.fails,
                 static_cast<long long>(conf_->fail_timeout.count()));
    }
    s.ejected_until = now + static_cast<std::uint64_t>(conf_->fail_timeout.count());
  }
}

void UpstreamPool::close_idle() {
  for (auto& state : states_) {
    ServerState& s = *state;
    while (UpstreamConn* c = s.idle_head) {
      c->unlink_idle();
      c->close();
    }
  }
}

// ---- UpstreamConn

UpstreamConn::UpstreamConn(UpstreamPool& pool, ServerState& server)
    : pool_(pool), server_(server), tcp_(pool.io_, *this), transport_(&tcp_) {
  if (pool.tls_) {
    tls_ = std::make_unique<net::TlsTransport>(pool.io_, *this, tcp_);
    transport_ = tls_.get();
  }
}

int UpstreamConn::start_connect(UpstreamUser& user) {
  user_ = &user;
  state_ = State::Connecting;
  uv_timer_init(pool_.io_.loop(), &timer_);
  timer_.data = this;
  pending_closes_ = 2;
  int r = tcp().connect(reinterpret_cast<const sockaddr*>(&server_.member.addr.storage),
                        on_connect, this);
  if (r != 0) {
    // Report on the next loop turn (timer 0) rather than re-entering the caller.
    connect_timed_out_ = false;
    uv_timer_start(&timer_, on_timer, 0, 0);
    failed_early_ = true;
    return r;
  }
  uv_timer_start(&timer_, on_timer,
                 static_cast<std::uint64_t>(pool_.timeouts_->upstream_connect.count()), 0);
  return 0;
}

void UpstreamConn::on_connect(void* data, int status) noexcept {
  auto* self = static_cast<UpstreamConn*>(data);
  if (self->state_ != State::Connecting) return;
  if (status != 0) {
    self->connect_failed("upstream connect failed", status);
    return;
  }
  if (net::TlsTransport* tls = self->tls()) {
    // The TLS handshake is part of connecting: the connect timer still runs.
    SSL* ssl = self->pool_.tls_->new_ssl(host_of(self->server_.member.name));
    if (!ssl) {
      self->connect_failed("upstream TLS setup failed", UV_ENOMEM);
      return;
    }
    tls->start_client(ssl);
    return;
  }
  self->connected();
}

void UpstreamConn::connected() {
  uv_timer_stop(&timer_);
  pool_.record_success(server_);
  state_ = State::Active;
  user_->on_upstream_connected(*this);
}

void UpstreamConn::on_handshake_done() {
  if (state_ == State::Connecting && user_) connected();
}

void UpstreamConn::connect_failed(const char* what, int status) {
  uv_timer_stop(&timer_);
  UpstreamUser* user = user_;
  pool_.record_failure(server_);
  if (pool_.metrics_) ++pool_.metrics_->connect_errors;
  SLUICE_LOG(Warn, "msg=\"%s\" server=%s error=%s", what, server_.member.addr.text.c_str(),
             uv_err_name(status));
  user_ = nullptr;
  close();
  if (user) user->on_upstream_failed(*this, ConnectFailure::Refused);
}

void UpstreamConn::on_timer(uv_timer_t* t) noexcept {
  auto* self = static_cast<UpstreamConn*>(t->data);
  switch (self->state_) {
    case State::Connecting: {
      UpstreamUser* user = self->user_;
      ConnectFailure why = self->failed_early_ ? ConnectFailure::Refused : ConnectFailure::Timeout;
      self->pool_.record_failure(self->server_);
      if (UpstreamMetrics* m = self->pool_.metrics_) {
        ++(self->failed_early_ ? m->connect_errors : m->connect_timeouts);
      }
      if (!self->failed_early_) {
        SLUICE_LOG(Warn, "msg=\"upstream connect timed out\" server=%s",
                   self->server_.member.addr.text.c_str());
      }
      self->user_ = nullptr;
      self->close();
      if (user) user->on_upstream_failed(*self, why);
      return;
    }
    case State::Active:
      if (self->user_) self->user_->on_upstream_timeout();
      return;
    case State::Idle:
      self->unlink_idle();
      self->close();
      return;
    case State::Closing:
      return;
  }
}

void UpstreamConn::arm_timer(std::uint64_t ms) { uv_timer_start(&timer_, on_timer, ms, 0); }

void UpstreamConn::stop_timer() { uv_timer_stop(&timer_); }

void UpstreamConn::release() {
  if (state_ != State::Active) return;
  --server_.active;
  user_ = nullptr;
  uv_timer_stop(&timer_);
  if (pool_.draining_ || server_.draining || server_.idle_count >= pool_.conf_->keepalive ||
      transport_->write_pending() != 0) {
    state_ = State::Active;  // close() below moves it to Closing
    close();
    return;
  }
  state_ = State::Idle;
  idle_next_ = server_.idle_head;
  idle_prev_ = nullptr;
  if (idle_next_) idle_next_->idle_prev_ = this;
  server_.idle_head = this;
  ++server_.idle_count;
  transport_->read_start();  // to see the server close it, or send junk
  uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(pool_.timeouts_->idle.count()), 0);
}

void UpstreamConn::abandon() {
  if (state_ == State::Active) --server_.active;
  user_ = nullptr;
  close();
}

void UpstreamConn::unlink_idle() noexcept {
  if (state_ != State::Idle) return;
  if (idle_prev_) {
    idle_prev_->idle_next_ = idle_next_;
  } else {
    server_.idle_head = idle_next_;
  }
  if (idle_next_) idle_next_->idle_prev_ = idle_prev_;
  idle_prev_ = idle_next_ = nullptr;
  --server_.idle_count;
  state_ = State::Active;  // transitional: caller sets the real state
}

void UpstreamConn::close() {
  if (state_ == State::Closing) return;
  if (state_ == State::Connecting) --server_.active;
  state_ = State::Closing;
  user_ = nullptr;
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_timer_closed);
  transport_->close();
}

void UpstreamConn::on_timer_closed(uv_handle_t* h) noexcept {
  auto* self = static_cast<UpstreamConn*>(h->data);
  if (--self->pending_closes_ == 0) delete self;
}

void UpstreamConn::on_closed() {
  if (--pending_closes_ == 0) delete this;
}

void UpstreamConn::on_read(Block* block, std::size_t n) {
  if (state_ == State::Idle) {
    // A parked connection has nothing to say; anything it sends is junk.
    unlink_idle();
    close();
    return;
  }
  if (user_) user_->on_upstream_read(block, n);
}

void UpstreamConn::on_eof() {
  if (state_ == State::Connecting) {
    connect_failed("upstream closed during the TLS handshake", UV_EOF);
    return;
  }
  if (state_ == State::Idle) {
    unlink_idle();
    close();
    return;
  }
  if (user_) user_->on_upstream_eof();
}

void UpstreamConn::on_error(int uv_status) {
  if (state_ == State::Connecting) {  // the TLS handshake failed (or verification)
    connect_failed("upstream TLS handshake failed", uv_status);
    return;
  }
  if (state_ == State::Idle) {
    unlink_idle();
    close();
    return;
  }
  if (user_) user_->on_upstream_error(uv_status);
}

void UpstreamConn::on_write_done(int status) {
  if (!user_) return;
  if (status < 0) {
    user_->on_upstream_error(status);
  } else {
    user_->on_upstream_write_done();
  }
}

}  // namespace sluice::proxy
