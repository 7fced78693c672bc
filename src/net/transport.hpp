// The transport seam: a byte stream that HTTP and WebSocket code read from and
// write to without knowing whether TCP or TLS is underneath.
//
// Ownership (libuv's handle contract, kept for sockets too): a Transport is a
// member of the object that owns it; that owner may be freed only after
// on_closed() ran, which always comes from the loop, never from close().
// A queued write owns its bytes until the kernel has them: OutBatch holds
// references on the read blocks it points into, and owned copies of
// everything else. TCP sockets are driven by the loop's Poller (below).
// This unit never parses anything and never allocates per byte.
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/buffer.hpp"
#include "core/metrics.hpp"

namespace sluice::net {

// Bytes gathered for one uv_write: slices of read blocks (by reference, no
// copy) interleaved with small owned strings (heads, chunk framing).
class OutBatch {
 public:
  OutBatch() = default;
  OutBatch(const OutBatch&) = delete;
  OutBatch& operator=(const OutBatch&) = delete;
  ~OutBatch() { clear(); }

  void append_copy(std::string_view bytes);
  // Takes a reference on `block`; [p, p+n) must lie inside block->data.
  // Inline for the case of every relayed frame: bytes right after the last
  // slice of the same block (a payload after its header) extend that slice.
  void append_block(Block* block, const char* p, std::size_t n) {
    if (n == 0) return;
    if (!segs_.empty()) {
      Segment& last = segs_.back();
      if (last.block == block && last.ptr + last.len == p) {
        last.len += n;
        bytes_ += n;
        return;
      }
    }
    add_block(block, p, n);
  }
  std::size_t bytes() const noexcept { return bytes_; }
  bool empty() const noexcept { return bytes_ == 0; }
  void clear() noexcept;
  // Clears and gives back the storage kept for the next batch.
  void trim() noexcept;
  void swap(OutBatch& other) noexcept;
  // Fills `out` with one uv_buf_t per segment. The batch must not change
  // until the write that uses them completes.
  void to_bufs(std::vector<uv_buf_t>& out) const;
  // True when the batch is one segment (a small frame, or the frames of one
  // read, in one slice of its block), given as `out`: a write needs no iovec
  // array for it. The same lifetime rule as to_bufs.
  bool one_buf(uv_buf_t& out) const noexcept {
    if (segs_.size() != 1) return false;
    out = buf_of(segs_.front());
    return true;
  }

 private:
  struct Segment {
    Block* block;        // nullptr: bytes live in owned_ at `offset`
    const char* ptr;     // valid when block != nullptr
    std::size_t offset;  // valid when block == nullptr
    std::size_t len;
  };
  void add_block(Block* block, const char* p, std::size_t n);
  uv_buf_t buf_of(const Segment& s) const noexcept {
    uv_buf_t b;  // set field by field: libuv orders them differently per platform
    b.base = s.block ? const_cast<char*>(s.ptr) : const_cast<char*>(owned_.data()) + s.offset;
    b.len = s.len;
    return b;
  }
  std::vector<Segment> segs_;
  std::string owned_;
  std::size_t bytes_ = 0;
};

struct WriteReq;
class TcpTransport;

// Per-worker counters of the transport layer (summed over workers when
// /metrics is scraped; only their worker writes them).
struct IoCounters {
  Counter tls_handshakes;          // completed, server and client side
  Counter tls_handshake_failures;  // refused, broken, or bad certificates
  Counter tls_plain_http;          // plain HTTP sent to a TLS listener
};

// The sockets of one loop, watched edge-triggered: one epoll instance of our
// own, registered once per socket (in, out, edge) and never modified, which
// the libuv loop watches through a single uv_poll_t. libuv keeps timers,
// signals, async wake-ups and the thread pool; socket reads and writes are
// plain recv/sendmsg system calls made here. Work that must not run inside
// the caller (a read after read_start, a connect's result, on_closed) is
// queued and runs from a uv_idle_t on the next loop turn.
class Poller {
 public:
  explicit Poller(uv_loop_t* loop) : loop_(loop) {}
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  // Registers `fd` for `t`; starts the poller on first use.
  int add(int fd, TcpTransport* t) noexcept;
  // `t` is going away: events already fetched for it are dropped.
  void forget(TcpTransport* t) noexcept;
  // Runs t->on_deferred() on the next loop turn (once, however often asked).
  void defer(TcpTransport* t) noexcept;
  void transport_gone() noexcept;
  // Closes the libuv handles once no transport is left (now, if none is).
  void close() noexcept;
  // Runs the loop until neither libuv nor any transport has anything left,
  // blocking in this poller's epoll_wait rather than in libuv's: libuv's
  // own epoll descriptor (uv_backend_fd) is one more member of this set, and
  // uv_run(UV_RUN_NOWAIT) runs only when libuv has something to do (its
  // descriptor is readable, a timer is due, callbacks or closes are pending).
  // A turn of socket events then costs one epoll_wait, and no uv_poll_t or
  // uv_idle_t is involved. Without run(), the poller nests in the loop.
  void run() noexcept;

 private:
  static void on_epoll(uv_poll_t* h, int status, int events) noexcept;
  static void on_idle(uv_idle_t* h) noexcept;
  int start() noexcept;
  void run_deferred() noexcept;
  void dispatch(epoll_event* events, int n) noexcept;
  void maybe_close() noexcept;

  static constexpr int kBatch = 256;
  uv_loop_t* loop_;
  int epfd_ = -1;
  uv_poll_t poll_{};
  uv_idle_t idle_{};
  bool started_ = false;
  bool driving_ = false;  // run() drives the loop: no uv_poll_t, no uv_idle_t
  bool closing_ = false;
  bool idle_on_ = false;
  bool in_deferred_ = false;
  std::size_t live_ = 0;  // transports registered and not yet told on_closed
  TcpTransport* deferred_ = nullptr;
  TcpTransport* deferred_tail_ = nullptr;
  epoll_event* batch_ = nullptr;  // the events being dispatched (on_epoll)
  int batch_next_ = 0;
  int batch_end_ = 0;
};

// Per-worker I/O resources shared by every transport of that worker.
class IoContext {
 public:
  IoCounters counters;

  explicit IoContext(uv_loop_t* loop) : loop_(loop), poller_(loop) {}
  ~IoContext();
  IoContext(const IoContext&) = delete;
  IoContext& operator=(const IoContext&) = delete;

  uv_loop_t* loop() const noexcept { return loop_; }
  BlockPool& blocks() noexcept { return blocks_; }
  Poller& poller() noexcept { return poller_; }
  WriteReq* get_write();
  void put_write(WriteReq* w) noexcept;
  // Scratch iovecs for a write made at once (one thread per context).
  std::vector<uv_buf_t>& scratch_bufs() noexcept { return scratch_; }
  // The loop is winding down: the poller's handles close once every
  // transport has closed.
  void close() noexcept { poller_.close(); }
  // Runs the loop (Poller::run).
  void run() noexcept { poller_.run(); }

 private:
  uv_loop_t* loop_;
  BlockPool blocks_;
  Poller poller_;
  std::vector<WriteReq*> free_writes_;
  std::vector<uv_buf_t> scratch_;
};

class TransportHandler {
 public:
  // n > 0 bytes arrived at block->data. The block is borrowed for the call:
  // take a reference (BlockRef::share) to keep any of it.
  virtual void on_read(Block* block, std::size_t n) = 0;
  virtual void on_eof() = 0;
  virtual void on_error(int uv_status) = 0;
  // A queued write completed (status < 0: it failed; never called once
  // closing). Writes that complete at once, inside write(), report nothing:
  // check write_pending() after write() instead.
  virtual void on_write_done(int status) = 0;
  // The transport's handle is closed: the last call this transport makes.
  virtual void on_closed() = 0;
  // A security handshake this side started (TLS client) has completed.
  virtual void on_handshake_done() {}
  // The connection's first bytes, before TLS, on a TCP transport told to
  // expect a preface (a PROXY protocol header): returns how many of
  // block->data[0, n) belong to it and sets `done` once it is complete. The
  // rest, if any, is then read as usual (on_read). A bad preface: the
  // handler closes the transport.
  virtual std::size_t on_preface(Block*, std::size_t, bool& done) {
    done = true;
    return 0;
  }

 protected:
  ~TransportHandler() = default;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual void read_start() = 0;
  virtual void read_stop() = 0;
  // Queues the batch (leaves it empty). Returns a libuv error code < 0 when
  // the bytes could not be queued; the caller then ends the connection.
  virtual int write(OutBatch& batch) = 0;
  // Sends FIN after the queued writes.
  virtual void shutdown_write() = 0;
  // Idempotent. on_closed() follows from the close callback.
  virtual void close() = 0;
  virtual std::size_t write_pending() const = 0;
  virtual bool is_closing() const = 0;
  // False while a security handshake is still under way (TLS); TCP is always ready.
  virtual bool ready() const { return true; }
  // The connection is idle: give back memory kept only to avoid reallocating.
  virtual void trim() {}
};

class TcpTransport final : public Transport {
 public:
  using ConnectCallback = void (*)(void* data, int status);

  TcpTransport(IoContext& io, TransportHandler& handler) : io_(io), handler_(&handler) {}
  ~TcpTransport() override;
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;
  // Events go to `handler` from now on (a TLS transport layered over this one).
  void set_handler(TransportHandler& handler) noexcept { handler_ = &handler; }
  // Takes an accepted, non-blocking socket (and owns it from now on, even
  // when this fails: close() then ends it as usual). Sets TCP_NODELAY.
  int adopt(int fd) noexcept;
  // Starts a non-blocking connect to `addr` (TCP_NODELAY set); `cb` reports
  // its result on a later loop turn, never from inside this call, and never
  // once close() was called. Returns < 0 when no socket could be made.
  int connect(const sockaddr* addr, ConnectCallback cb, void* data) noexcept;
  int fd() const noexcept { return fd_; }

  // The connection starts with a preface for the handler (on_preface),
  // before anything else is read from it, TLS included.
  void expect_preface() noexcept { preface_ = true; }
  void read_start() override;
  void read_stop() override;
  int write(OutBatch& batch) override;
  void shutdown_write() override;
  void close() override;
  std::size_t write_pending() const override { return pending_; }
  bool is_closing() const override { return closing_; }

 private:
  friend class Poller;
  // From the poller: epoll events, and the work queued by defer().
  void on_events(std::uint32_t events) noexcept;
  void on_deferred() noexcept;
  void do_read() noexcept;
  void flush() noexcept;
  void finish_connect(int status) noexcept;
  void fail_writes(int status) noexcept;
  // Gives back every queued write, with no callback.
  void drop_writes() noexcept;
  void do_shutdown() noexcept;
  // Offers a read to the handler's preface; false when nothing of it is
  // left for on_read (n is then what is).
  bool take_preface(Block* b, std::size_t& n);

  IoContext& io_;
  TransportHandler* handler_;
  WriteReq* queue_ = nullptr;  // writes the kernel has not taken yet, oldest first
  WriteReq* queue_tail_ = nullptr;
  TcpTransport* next_deferred_ = nullptr;
  ConnectCallback connect_cb_ = nullptr;
  void* connect_data_ = nullptr;
  std::size_t pending_ = 0;  // bytes in queue_
  int fd_ = -1;
  int connect_status_ = 0;   // a connect's result, until reported
  bool registered_ = false;  // counted in the poller's live transports
  bool deferred_ = false;    // on the poller's deferred list
  bool reading_ = false;
  bool readable_ = false;    // the socket may have bytes (or EOF, or an error) to read
  bool end_pending_ = false;  // EOF or an error is known to follow the bytes
  bool connecting_ = false;
  bool closing_ = false;
  bool shutdown_wanted_ = false;
  bool shutdown_done_ = false;
  bool preface_ = false;  // the handler still reads its preface (expect_preface)
};

}  // namespace sluice::net
