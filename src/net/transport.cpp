// TcpTransport and the pieces of the write path: OutBatch and pooled WriteReqs.
#include "net/transport.hpp"

#include <cassert>
#include <cstring>
#include <utility>

namespace sluice::net {

struct WriteReq {
  uv_write_t req{};
  OutBatch batch;
  std::vector<uv_buf_t> bufs;
  std::size_t bytes = 0;
  IoContext* io = nullptr;
  TcpTransport* owner = nullptr;
};

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

void OutBatch::append_block(Block* block, const char* p, std::size_t n) {
  if (n == 0) return;
  if (!segs_.empty()) {
    Segment& last = segs_.back();
    if (last.block == block && last.ptr + last.len == p) {  // contiguous in the same block
      last.len += n;
      bytes_ += n;
      return;
    }
  }
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
  out.clear();
  for (const Segment& s : segs_) {
    char* base = s.block ? const_cast<char*>(s.ptr) : const_cast<char*>(owned_.data()) + s.offset;
    out.push_back(uv_buf_init(base, static_cast<unsigned>(s.len)));
  }
}

// ---- IoContext

IoContext::~IoContext() {
  for (WriteReq* w : free_writes_) delete w;
}

WriteReq* IoContext::get_write() {
  if (free_writes_.empty()) {
    auto* w = new WriteReq;
    w->io = this;
    return w;
  }
  WriteReq* w = free_writes_.back();
  free_writes_.pop_back();
  return w;
}

void IoContext::put_write(WriteReq* w) noexcept {
  w->batch.clear();
  w->bufs.clear();
  w->bytes = 0;
  if (free_writes_.size() >= 1024) {
    delete w;
    return;
  }
  free_writes_.push_back(w);
}

// ---- TcpTransport

int TcpTransport::init() {
  int r = uv_tcp_init(io_.loop(), &tcp_);
  if (r == 0) {
    tcp_.data = this;
    initialised_ = true;
  }
  return r;
}

void TcpTransport::read_start() {
  if (closing_ || reading_) return;
  if (uv_read_start(stream(), on_alloc, on_read_cb) == 0) reading_ = true;
}

void TcpTransport::read_stop() {
  if (closing_ || !reading_) return;
  uv_read_stop(stream());
  reading_ = false;
}

int TcpTransport::write(OutBatch& batch) {
  if (batch.empty()) return 0;
  if (closing_) {
    batch.clear();
    return UV_ECANCELED;
  }
  WriteReq* w = io_.get_write();
  w->batch.swap(batch);  // the caller gets back an empty batch with capacity
  w->batch.to_bufs(w->bufs);
  w->bytes = w->batch.bytes();
  w->req.data = w;
  w->owner = this;
  uv_buf_t* bufs = w->bufs.data();
  std::size_t nbufs = w->bufs.size();
  if (pending_ == 0) {
    // Nothing queued: write now. Most writes complete here, with no request
    // queued, no callback and no change to the epoll interest set (uv_write
    // would cost an epoll_ctl per write).
    int n = uv_try_write(stream(), bufs, static_cast<unsigned>(nbufs));
    if (n == static_cast<int>(w->bytes)) {
      io_.put_write(w);  // the bytes are in the kernel: release the blocks now
      return 0;
    }
    if (n < 0 && n != UV_EAGAIN) {
      io_.put_write(w);
      return n;
    }
    std::size_t done = n > 0 ? static_cast<std::size_t>(n) : 0;
    while (done > 0 && done >= bufs->len) {
      done -= bufs->len;
      ++bufs;
      --nbufs;
    }
    bufs->base += done;
    bufs->len -= static_cast<decltype(bufs->len)>(done);
    w->bytes -= (n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  int r = uv_write(&w->req, stream(), bufs, static_cast<unsigned>(nbufs), on_write_cb);
  if (r < 0) {
    io_.put_write(w);
    return r;
  }
  pending_ += w->bytes;
  return 0;
}

void TcpTransport::shutdown_write() {
  if (closing_ || shutdown_sent_) return;
  shutdown_sent_ = true;
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, stream(), on_shutdown_cb) != 0) shutdown_sent_ = false;
}

void TcpTransport::close() {
  if (closing_) return;
  closing_ = true;
  reading_ = false;
  if (!initialised_) {
    handler_->on_closed();
    return;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close_cb);
}

void TcpTransport::on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<TcpTransport*>(h->data);
  Block* b = self->io_.blocks().get();
  *buf = uv_buf_init(b->data, static_cast<unsigned>(Block::kCapacity));
}

void TcpTransport::on_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<TcpTransport*>(s->data);
  Block* b = buf->base ? Block::from_data(buf->base) : nullptr;
  std::size_t n = nread > 0 ? static_cast<std::size_t>(nread) : 0;
  if (nread > 0 && self->preface_ && !self->take_preface(b, n)) {
    b->unref();
    return;
  }
  if (nread > 0) {
    // The block goes straight back unless the handler kept a reference.
    self->handler_->on_read(b, n);
  } else if (nread < 0 && !self->closing_) {
    if (nread == UV_EOF) {
      self->handler_->on_eof();
    } else {
      self->handler_->on_error(static_cast<int>(nread));
    }
  }
  if (b) b->unref();
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

void TcpTransport::on_write_cb(uv_write_t* req, int status) noexcept {
  auto* w = static_cast<WriteReq*>(req->data);
  TcpTransport* self = w->owner;
  self->pending_ -= w->bytes;
  w->io->put_write(w);
  if (status == UV_ECANCELED || self->closing_) return;  // closing: touch nothing else
  self->handler_->on_write_done(status);
}

void TcpTransport::on_shutdown_cb(uv_shutdown_t*, int) noexcept {}

void TcpTransport::on_close_cb(uv_handle_t* h) noexcept {
  auto* self = static_cast<TcpTransport*>(h->data);
  self->handler_->on_closed();
}

}  // namespace sluice::net
