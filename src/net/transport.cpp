// TcpTransport, the edge-triggered poller that drives it, and the pieces of
// the write path: OutBatch and pooled WriteReqs.
#include "net/transport.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cassert>
#include <climits>
#include <cerrno>
#include <cstring>
#include <utility>

namespace sluice::net {

struct WriteReq {
  OutBatch batch;
  std::vector<uv_buf_t> bufs;  // what is left to send: bufs[first..]
  std::size_t first = 0;
  WriteReq* next = nullptr;
};

namespace {

// The socket calls of the data path, made directly: glibc's read() and
// write() are cancellation points, and in a threaded process each one pays
// for switching asynchronous cancellation on and off around the call.
// Sluice never cancels a thread, so the plain system call is the same call
// without that cost. Both return -1 with errno set on failure, as syscall() does.
inline long sys_recv(int fd, void* buf, std::size_t len) noexcept {
  return syscall(SYS_recvfrom, fd, buf, len, 0, nullptr, nullptr);
}

inline long sys_send(int fd, const uv_buf_t* bufs, std::size_t n) noexcept {
  if (n == 1) return syscall(SYS_sendto, fd, bufs->base, bufs->len, MSG_NOSIGNAL, nullptr, 0);
  msghdr msg{};
  // uv_buf_t is laid out as struct iovec on Unix (libuv documents it).
  msg.msg_iov = reinterpret_cast<iovec*>(const_cast<uv_buf_t*>(bufs));
  msg.msg_iovlen = n > IOV_MAX ? IOV_MAX : n;
  return syscall(SYS_sendmsg, fd, &msg, MSG_NOSIGNAL);
}

// syscall() reports failure as -1 with errno set: as -errno, like libuv.
inline int last_error() noexcept { return -errno; }

// Moves `bufs` on by `done` bytes; returns the index of the first buffer
// with bytes left (n when none is).
std::size_t advance(uv_buf_t* bufs, std::size_t n, std::size_t done) noexcept {
  std::size_t i = 0;
  while (i < n && done >= bufs[i].len) {
    done -= bufs[i].len;
    ++i;
  }
  if (i < n) {
    bufs[i].base += done;
    bufs[i].len -= static_cast<decltype(bufs[i].len)>(done);
  }
  return i;
}

struct Sent {
  std::size_t bytes;  // taken by the kernel
  int error;          // < 0: the send failed (a libuv error code); 0 otherwise
};

// Sends bufs[first..n) until all of it is sent or the socket is full,
// moving `first` (and the first buffer left) on by what the kernel took.
// One sendmsg takes at most IOV_MAX pieces, so while the kernel takes all it
// is offered, the rest is offered at once: no writable edge would ask for it.
Sent send_bufs(int fd, uv_buf_t* bufs, std::size_t n, std::size_t& first) noexcept {
  Sent s{0, 0};
  while (first < n) {
    const long got = sys_send(fd, bufs + first, n - first);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) s.error = last_error();
      break;
    }
    s.bytes += static_cast<std::size_t>(got);
    first += advance(bufs + first, n - first, static_cast<std::size_t>(got));
  }
  return s;
}

void set_nodelay(int fd) noexcept {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

// ---- OutBatch

void OutBatch::append_copy(std::string_view bytes) {
  if (bytes.empty()) return;
  if (!segs_.empty() && segs_.back().block == nullptr) {
    segs_.back().len += bytes.size();  // adjacent owned bytes share one iovec
  } else {
    segs_.push_back(Segment{nullptr, nullptr, owned_.size(), bytes.size()});
  }
  owned_.append(bytes);
  bytes_ += bytes.size();
}

void OutBatch::add_block(Block* block, const char* p, std::size_t n) {
  block->ref();
  segs_.push_back(Segment{block, p, 0, n});
  bytes_ += n;
}

void OutBatch::clear() noexcept {
  for (Segment& s : segs_) {
    if (s.block) s.block->unref();
  }
  segs_.clear();
  owned_.clear();
  bytes_ = 0;
}

void OutBatch::trim() noexcept {
  clear();
  std::vector<Segment>().swap(segs_);
  std::string().swap(owned_);
}

void OutBatch::swap(OutBatch& other) noexcept {
  segs_.swap(other.segs_);
  owned_.swap(other.owned_);
  std::swap(bytes_, other.bytes_);
}

void OutBatch::to_bufs(std::vector<uv_buf_t>& out) const {
  out.resize(segs_.size());
  for (std::size_t i = 0; i < segs_.size(); ++i) out[i] = buf_of(segs_[i]);
}

// ---- IoContext

IoContext::~IoContext() {
  for (WriteReq* w : free_writes_) delete w;
}

WriteReq* IoContext::get_write() {
  if (free_writes_.empty()) return new WriteReq;
  WriteReq* w = free_writes_.back();
  free_writes_.pop_back();
  return w;
}

void IoContext::put_write(WriteReq* w) noexcept {
  w->batch.clear();
  w->bufs.clear();
  w->first = 0;
  w->next = nullptr;
  if (free_writes_.size() >= 1024) {
    delete w;
    return;
  }
  free_writes_.push_back(w);
}

// ---- Poller

Poller::~Poller() {
  // The loop is gone or never ran the close callbacks: only the descriptor
  // is still ours.
  if (epfd_ >= 0) ::close(epfd_);
}

int Poller::start() noexcept {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return last_error();
  if (driving_) {
    started_ = true;
    return 0;
  }
  int r = uv_poll_init(loop_, &poll_, epfd_);
  if (r != 0) {
    ::close(epfd_);
    epfd_ = -1;
    return r;
  }
  poll_.data = this;
  uv_idle_init(loop_, &idle_);
  idle_.data = this;
  uv_poll_start(&poll_, UV_READABLE, on_epoll);
  started_ = true;
  return 0;
}

int Poller::add(int fd, TcpTransport* t) noexcept {
  if (!started_) {
    if (closing_) return UV_ECANCELED;
    int r = start();
    if (r != 0) return r;
  }
  epoll_event ev{};
  // Registered once, for both directions, edge-triggered: nothing is ever
  // modified afterwards (no epoll_ctl per read_stop or per queued write).
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = t;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return last_error();
  ++live_;
  return 0;
}

void Poller::forget(TcpTransport* t) noexcept {
  // The descriptor's close takes it out of the epoll set; events fetched
  // before that must not reach it.
  for (int i = batch_next_; i < batch_end_; ++i) {
    if (batch_[i].data.ptr == t) batch_[i].data.ptr = nullptr;
  }
}

void Poller::defer(TcpTransport* t) noexcept {
  if (t->deferred_) return;
  if (!started_ && (closing_ || start() != 0)) {
    // No epoll instance and no idle handle to be had: what was asked cannot
    // be delivered later, so it is delivered now.
    t->on_deferred();
    return;
  }
  t->deferred_ = true;
  t->next_deferred_ = nullptr;
  if (deferred_tail_) {
    deferred_tail_->next_deferred_ = t;
  } else {
    deferred_ = t;
  }
  deferred_tail_ = t;
  if (!idle_on_ && !driving_) {
    idle_on_ = true;
    uv_idle_start(&idle_, on_idle);
  }
}

void Poller::transport_gone() noexcept {
  --live_;
  maybe_close();
}

void Poller::close() noexcept {
  closing_ = true;
  maybe_close();
}

void Poller::maybe_close() noexcept {
  if (!closing_ || live_ != 0 || !started_ || deferred_ || in_deferred_ || driving_) return;
  started_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), [](uv_handle_t* h) {
    auto* self = static_cast<Poller*>(h->data);
    ::close(self->epfd_);
    self->epfd_ = -1;
  });
  idle_on_ = false;
}

void Poller::dispatch(epoll_event* events, int n) noexcept {
  batch_ = events;
  batch_end_ = n;
  for (int i = 0; i < n; ++i) {
    batch_next_ = i + 1;
    auto* t = static_cast<TcpTransport*>(events[i].data.ptr);
    if (t) t->on_events(events[i].events);
  }
  batch_ = nullptr;
  batch_next_ = batch_end_ = 0;
}

void Poller::on_epoll(uv_poll_t* h, int, int) noexcept {
  auto* self = static_cast<Poller*>(h->data);
  epoll_event events[kBatch];
  const int n = ::epoll_wait(self->epfd_, events, kBatch, 0);
  if (n > 0) self->dispatch(events, n);
}

void Poller::run_deferred() noexcept {
  // What is deferred while this runs waits for the next turn.
  TcpTransport* t = deferred_;
  deferred_ = deferred_tail_ = nullptr;
  in_deferred_ = true;
  while (t) {
    TcpTransport* next = t->next_deferred_;
    t->deferred_ = false;
    t->on_deferred();  // may free t (on_closed)
    t = next;
  }
  in_deferred_ = false;
}

void Poller::run() noexcept {
  if (!started_) {
    driving_ = true;
    if (start() != 0) driving_ = false;
  }
  epoll_event libuv{};
  libuv.events = EPOLLIN;  // level-triggered: readable until libuv has run
  libuv.data.ptr = nullptr;
  if (!driving_ || ::epoll_ctl(epfd_, EPOLL_CTL_ADD, uv_backend_fd(loop_), &libuv) != 0) {
    // Not ours to drive (already nested in the loop, or no epoll): libuv
    // runs it, and this poller sits in it as usual.
    if (driving_) {
      driving_ = false;
      ::close(epfd_);
      epfd_ = -1;
      started_ = false;
    }
    uv_run(loop_, UV_RUN_DEFAULT);
    return;
  }
  epoll_event events[kBatch];
  bool libuv_due = true;
  for (;;) {
    if (libuv_due) uv_run(loop_, UV_RUN_NOWAIT);
    run_deferred();
    const bool alive = uv_loop_alive(loop_) != 0;
    if (!alive && live_ == 0 && !deferred_) break;
    int timeout = -1;
    if (deferred_) {
      timeout = 0;
    } else if (alive) {
      uv_update_time(loop_);  // the next timer counts from now, not from before the dispatch
      timeout = uv_backend_timeout(loop_);
    }
    const int n = ::epoll_wait(epfd_, events, kBatch, timeout);
    uv_update_time(loop_);
    libuv_due = false;
    int sockets = n;
    for (int i = 0; i < sockets; ++i) {
      if (events[i].data.ptr == nullptr) {
        libuv_due = true;  // its own descriptors are ready: libuv's turn
        events[i] = events[--sockets];
        break;  // it is in the set once
      }
    }
    if (sockets > 0) dispatch(events, sockets);
    // A timer due, or callbacks and closes pending.
    if (!libuv_due && uv_loop_alive(loop_)) libuv_due = uv_backend_timeout(loop_) == 0;
  }
}

void Poller::on_idle(uv_idle_t* h) noexcept {
  auto* self = static_cast<Poller*>(h->data);
  self->run_deferred();
  if (!self->deferred_) {
    self->idle_on_ = false;
    uv_idle_stop(&self->idle_);
    self->maybe_close();
  }
}

// ---- TcpTransport

TcpTransport::~TcpTransport() {
  // Only an owner that never opened this, or one torn down with its loop,
  // gets here with a descriptor: it is not left open.
  if (fd_ >= 0) ::close(fd_);
  drop_writes();
}

void TcpTransport::drop_writes() noexcept {
  while (queue_) {
    WriteReq* w = queue_;
    queue_ = w->next;
    io_.put_write(w);
  }
  queue_tail_ = nullptr;
  pending_ = 0;
}

int TcpTransport::adopt(int fd) noexcept {
  fd_ = fd;
  set_nodelay(fd);
  int r = io_.poller().add(fd, this);
  if (r != 0) return r;
  registered_ = true;
  return 0;
}

int TcpTransport::connect(const sockaddr* addr, ConnectCallback cb, void* data) noexcept {
  const socklen_t len = addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return last_error();
  connect_cb_ = cb;
  connect_data_ = data;
  connecting_ = true;
  connect_status_ = 0;
  int r;
  do {
    r = ::connect(fd, addr, len);
  } while (r != 0 && errno == EINTR);
  const bool in_progress = r != 0 && errno == EINPROGRESS;
  if (r != 0 && !in_progress) connect_status_ = last_error();
  // Registered after connect(): the edge of a connect that completes in
  // between is seen at registration.
  r = adopt(fd);
  if (r != 0 && connect_status_ == 0) connect_status_ = r;
  // A result known now (done, refused at once, or not registered) is
  // reported from the loop, like one that comes later.
  if (!in_progress || r != 0) io_.poller().defer(this);
  return 0;
}

void TcpTransport::finish_connect(int status) noexcept {
  connecting_ = false;
  connect_cb_(connect_data_, status);
  if (closing_ || status != 0) return;
  // What was written or shut while connecting goes now.
  if (queue_) {
    flush();
  } else if (shutdown_wanted_ && !shutdown_done_) {
    do_shutdown();
  }
}

void TcpTransport::on_events(std::uint32_t ev) noexcept {
  if (closing_) return;
  if (connecting_) {
    if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    // A failure connect() returned at once stands (the socket then reads as
    // ready with no pending error); otherwise the socket says how it went.
    int status = connect_status_;
    if (status == 0) {
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      status = -err;
    }
    finish_connect(status);
    if (closing_) return;
  }
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) readable_ = true;
  // The peer's FIN (or an error) is waiting behind whatever bytes came with
  // it: a short read then does not mean the socket has nothing more, and no
  // further edge would tell.
  if (ev & (EPOLLRDHUP | EPOLLERR | EPOLLHUP)) end_pending_ = true;
  if (queue_ && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    flush();
    if (closing_) return;
  }
  if (reading_ && readable_) do_read();
}

void TcpTransport::on_deferred() noexcept {
  if (closing_) {
    // The last call: the owner may free this from on_closed.
    const bool registered = registered_;
    registered_ = false;
    Poller& poller = io_.poller();
    handler_->on_closed();
    if (registered) poller.transport_gone();
    return;
  }
  if (connecting_) {
    finish_connect(connect_status_);
    if (closing_) return;
  }
  if (reading_ && readable_) do_read();
}

void TcpTransport::read_start() {
  if (closing_ || reading_) return;
  reading_ = true;
  // Edge-triggered: bytes that came while not reading bring no new event.
  if (readable_ && !connecting_) io_.poller().defer(this);
}

void TcpTransport::read_stop() {
  if (closing_) return;
  reading_ = false;
}

void TcpTransport::do_read() noexcept {
  // As libuv does: up to 32 reads while they fill the block; a short read
  // means the socket had no more, and bytes that come later raise a new edge.
  for (int i = 0; i < 32; ++i) {
    Block* b = io_.blocks().get();
    const long got = sys_recv(fd_, b->data, Block::kCapacity);
    if (got > 0) {
      std::size_t n = static_cast<std::size_t>(got);
      if (!preface_ || take_preface(b, n)) handler_->on_read(b, n);
      b->unref();
      if (closing_ || !reading_) return;
      if (static_cast<std::size_t>(got) < Block::kCapacity && !end_pending_) {
        readable_ = false;
        return;
      }
      continue;
    }
    const int err = got < 0 ? errno : 0;  // before the block goes back (free may set it)
    b->unref();
    if (got < 0 && err == EINTR) continue;
    if (got < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
      readable_ = false;
      return;
    }
    // EOF or an error stays readable: reading again reports it again, as
    // libuv's streams do. Reading stops, as libuv's streams do.
    reading_ = false;
    if (got == 0) {
      handler_->on_eof();
    } else {
      handler_->on_error(-err);
    }
    return;
  }
  // Still more: the rest on the next turn, after the other sockets.
  io_.poller().defer(this);
}

int TcpTransport::write(OutBatch& batch) {
  if (batch.empty()) return 0;
  if (closing_ || fd_ < 0) {
    batch.clear();
    return UV_ECANCELED;
  }
  std::size_t done = 0;
  if (!queue_ && !connecting_) {
    // Nothing queued: send now. Most writes end here, with nothing queued
    // and no system call but the send; most are one segment, sent from a
    // uv_buf_t on the stack.
    uv_buf_t one;
    uv_buf_t* bufs = &one;
    std::size_t count = 1;
    if (!batch.one_buf(one)) {
      std::vector<uv_buf_t>& scratch = io_.scratch_bufs();
      batch.to_bufs(scratch);
      bufs = scratch.data();
      count = scratch.size();
    }
    std::size_t first = 0;
    const Sent sent = send_bufs(fd_, bufs, count, first);
    if (sent.error < 0) {
      batch.clear();
      return sent.error;
    }
    done = sent.bytes;
    if (done == batch.bytes()) {
      batch.clear();  // the bytes are in the kernel: the blocks go back now
      return 0;
    }
  }
  WriteReq* w = io_.get_write();
  w->batch.swap(batch);  // the caller gets back an empty batch with capacity
  w->batch.to_bufs(w->bufs);
  w->first = advance(w->bufs.data(), w->bufs.size(), done);
  pending_ += w->batch.bytes() - done;
  if (queue_tail_) {
    queue_tail_->next = w;
  } else {
    queue_ = w;
  }
  queue_tail_ = w;
  return 0;
}

void TcpTransport::flush() noexcept {
  while (queue_) {
    WriteReq* w = queue_;
    const Sent sent = send_bufs(fd_, w->bufs.data(), w->bufs.size(), w->first);
    pending_ -= sent.bytes;
    if (sent.error < 0) {
      fail_writes(sent.error);
      return;
    }
    if (w->first < w->bufs.size()) return;  // the socket is full: the next edge resumes
    queue_ = w->next;
    if (!queue_) queue_tail_ = nullptr;
    io_.put_write(w);
    handler_->on_write_done(0);  // may write more, or close
    if (closing_) return;
  }
  if (shutdown_wanted_ && !shutdown_done_) do_shutdown();
}

void TcpTransport::fail_writes(int status) noexcept {
  while (queue_ && !closing_) {
    WriteReq* w = queue_;
    queue_ = w->next;
    if (!queue_) queue_tail_ = nullptr;
    for (std::size_t i = w->first; i < w->bufs.size(); ++i) pending_ -= w->bufs[i].len;
    io_.put_write(w);
    handler_->on_write_done(status);
  }
}

void TcpTransport::shutdown_write() {
  if (closing_ || shutdown_wanted_) return;
  shutdown_wanted_ = true;
  if (!queue_ && !connecting_ && fd_ >= 0) do_shutdown();
}

void TcpTransport::do_shutdown() noexcept {
  shutdown_done_ = true;
  ::shutdown(fd_, SHUT_WR);
}

void TcpTransport::close() {
  if (closing_) return;
  closing_ = true;
  reading_ = false;
  connecting_ = false;
  if (fd_ < 0) {
    handler_->on_closed();
    return;
  }
  io_.poller().forget(this);
  ::close(fd_);  // also takes it out of the epoll set
  fd_ = -1;
  drop_writes();  // unsent, and never reported
  // on_closed comes from the loop, never from inside close().
  io_.poller().defer(this);
}

bool TcpTransport::take_preface(Block* b, std::size_t& n) {
  bool done = false;
  const std::size_t used = handler_->on_preface(b, n, done);
  if (closing_ || !done) return false;
  preface_ = false;
  if (used == n) return false;
  // What came with it moves to the block's start, where a read begins
  // (once per connection).
  std::memmove(b->data, b->data + used, n - used);
  n -= used;
  return true;
}

}  // namespace sluice::net
