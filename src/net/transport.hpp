// The transport seam: a byte stream that HTTP and WebSocket code read from and
// write to without knowing whether TCP or TLS is underneath.
//
// Ownership (libuv's contract, taken literally): a Transport is a member of the
// object that owns it; that owner may be freed only after on_closed() ran.
// A write owns its bytes until its callback: OutBatch holds references on the
// read blocks it points into, and owned copies of everything else.
// This unit never parses anything and never allocates per byte.
#pragma once

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
  void append_block(Block* block, const char* p, std::size_t n);
  std::size_t bytes() const noexcept { return bytes_; }
  bool empty() const noexcept { return bytes_ == 0; }
  void clear() noexcept;
  // Clears and gives back the storage kept for the next batch.
  void trim() noexcept;
  void swap(OutBatch& other) noexcept;
  // Fills `out` with one uv_buf_t per segment. The batch must not change
  // until the write that uses them completes.
  void to_bufs(std::vector<uv_buf_t>& out) const;

 private:
  struct Segment {
    Block* block;        // nullptr: bytes live in owned_ at `offset`
    const char* ptr;     // valid when block != nullptr
    std::size_t offset;  // valid when block == nullptr
    std::size_t len;
  };
  std::vector<Segment> segs_;
  std::string owned_;
  std::size_t bytes_ = 0;
};

struct WriteReq;

// Per-worker counters of the transport layer (summed over workers when
// /metrics is scraped; only their worker writes them).
struct IoCounters {
  Counter tls_handshakes;          // completed, server and client side
  Counter tls_handshake_failures;  // refused, broken, or bad certificates
  Counter tls_plain_http;          // plain HTTP sent to a TLS listener
};

// Per-worker I/O resources shared by every transport of that worker.
class IoContext {
 public:
  IoCounters counters;

  explicit IoContext(uv_loop_t* loop) : loop_(loop) {}
  ~IoContext();
  IoContext(const IoContext&) = delete;
  IoContext& operator=(const IoContext&) = delete;

  uv_loop_t* loop() const noexcept { return loop_; }
  BlockPool& blocks() noexcept { return blocks_; }
  WriteReq* get_write();
  void put_write(WriteReq* w) noexcept;

 private:
  uv_loop_t* loop_;
  BlockPool blocks_;
  std::vector<WriteReq*> free_writes_;
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
  TcpTransport(IoContext& io, TransportHandler& handler) : io_(io), handler_(&handler) {}
  // Events go to `handler` from now on (a TLS transport layered over this one).
  void set_handler(TransportHandler& handler) noexcept { handler_ = &handler; }
  // uv_tcp_init on the context's loop; the handle is then this transport's.
  int init();
  uv_tcp_t* tcp() noexcept { return &tcp_; }
  uv_stream_t* stream() noexcept { return reinterpret_cast<uv_stream_t*>(&tcp_); }

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
  static void on_alloc(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_write_cb(uv_write_t* req, int status) noexcept;
  static void on_shutdown_cb(uv_shutdown_t* req, int status) noexcept;
  static void on_close_cb(uv_handle_t* h) noexcept;
  // Offers a read to the handler's preface; false when nothing of it is
  // left for on_read (n is then what is).
  bool take_preface(Block* b, std::size_t& n);

  IoContext& io_;
  TransportHandler* handler_;
  uv_tcp_t tcp_{};
  uv_shutdown_t shutdown_req_{};
  std::size_t pending_ = 0;
  bool initialised_ = false;
  bool reading_ = false;
  bool closing_ = false;
  bool shutdown_sent_ = false;
  bool preface_ = false;  // the handler still reads its preface (expect_preface)
};

}  // namespace sluice::net
