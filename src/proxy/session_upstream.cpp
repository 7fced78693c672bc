// Session, upstream side: choosing and connecting an upstream, forwarding the
// request to it, and relaying its response to the client. The client side,
// the request parser and the endings are in session.cpp.
#include <cinttypes>

#include "core/log.hpp"
#include "http/forward.hpp"
#include "http/headers.hpp"
#include "http/responses.hpp"
#include "proxy/session.hpp"
#include "proxy/session_ws.hpp"
#include "proxy/worker.hpp"

namespace sluice::proxy {

namespace {

bool is_idempotent(std::uint8_t method) noexcept {
  switch (method) {
    case HTTP_GET: case HTTP_HEAD: case HTTP_OPTIONS: case HTTP_PUT: case HTTP_DELETE:
    case HTTP_TRACE:
      return true;
    default:
      return false;
  }
}

}  // namespace

void Session::connect_upstream() {
  phase_ = Phase::Connecting;
  uv_timer_stop(&timer_);
  // The state picked is held for the rest of the exchange (a draining one
  // is freed only once no session names it); the one a retry moves away
  // from is let go after the pick, which it must still be able to avoid.
  ServerState* previous = server_;
  server_ = pool_->pick(client_hash_, retried_ ? previous : nullptr);
  if (server_) pool_->hold(*server_);
  if (previous) pool_->let_go(*previous);
  if (!server_) {
    SLUICE_LOG(Warn, "conn=%" PRIu64 " msg=\"no healthy upstream server\" upstream=%s", id_,
               pool_->conf().name.c_str());
    respond_local(503, CloseReason::UpstreamFailed, true);
    return;
  }
  bool reused = false;
  UpstreamConn* conn = pool_->acquire(*server_, *this, reused);
  up_ = conn;
  reused_conn_ = reused;
  if (reused) start_forwarding(*conn);
}

void Session::on_upstream_connected(UpstreamConn& conn) {
  if (&conn != up_) return;
  start_forwarding(conn);
}

void Session::start_forwarding(UpstreamConn& conn) {
  phase_ = Phase::Proxying;
  net::OutBatch head;
  head.append_copy(up_head_);
  if (int r = conn.transport().write(head); r < 0) {
    retry_or_fail(502);
    return;
  }
  if (expect_continue_ && !req_done_) {
    to_client_.append_copy(http::kContinue100);
    flush_client();
  }
  conn.arm_timer(static_cast<std::uint64_t>(cfg().timeouts.upstream_response.count()));
  resp_parser_.reset();
  conn.transport().read_start();
  if (!req_done_) {
    req_parser_.resume();
    arm_timer(static_cast<std::uint64_t>(cfg().timeouts.idle.count()));
  }
  pump();
}

void Session::on_upstream_failed(UpstreamConn& conn, ConnectFailure why) {
  if (&conn != up_) return;
  up_ = nullptr;  // the connection closes itself
  retry_or_fail(why == ConnectFailure::Timeout ? 504 : 502);
}

void Session::retry_or_fail(int status) {
  if (up_) {
    up_->abandon();
    up_ = nullptr;
  }
  if (!retried_ && is_idempotent(method_) && !body_forwarded_ && !resp_started_) {
    retried_ = true;
    // Bytes already queued for the dead connection died with it. No body
    // byte was forwarded, so any body is still in the pending input.
    to_upstream_.clear();
    connect_upstream();
    return;
  }
  respond_local(status, CloseReason::UpstreamFailed, true);
}

void Session::flush_upstream() {
  if (!up_ || to_upstream_.empty()) return;
  if (up_->transport().write(to_upstream_) < 0) {
    to_upstream_.clear();
    upstream_broken(true);  // the connection cannot take writes: it is dead
  }
}

// ---- response side

void Session::on_upstream_read(Block* block, std::size_t n) {
  if (phase_ == Phase::WebSocket) {
    ws_upstream_read(block, 0, n);
    return;
  }
  if (phase_ != Phase::Proxying) return;
  cur_resp_block_ = block;
  std::size_t off = 0;
  while (off < n && up_) {
    http::Parser::Result r = resp_parser_.feed(block->data + off, n - off);
    off += r.consumed;
    if (r.status == http::Parser::Status::Error) {
      SLUICE_LOG(Warn, "conn=%" PRIu64 " msg=\"bad upstream response\" server=%s reason=\"%s\"",
                 id_, server_->member.addr.text.c_str(), resp_parser_.reason());
      flush_client();
      upstream_broken(false);
      cur_resp_block_ = nullptr;
      return;
    }
    if (r.status == http::Parser::Status::Paused && resp_parser_.message_complete()) {
      if (switching_) {
        cur_resp_block_ = nullptr;
        start_websocket(block, off, n);
        return;
      }
      if (interim_) {
        interim_ = false;
        resp_parser_.resume();
        continue;
      }
      flush_client();
      on_response_complete(off == n);
      cur_resp_block_ = nullptr;
      return;
    }
  }
  cur_resp_block_ = nullptr;
  flush_client();
  if (phase_ == Phase::Proxying) arm_timer(static_cast<std::uint64_t>(cfg().timeouts.idle.count()));
}

http::ParserHandler::Next Session::on_response_head(http::MessageHead& head) {
  using Next = http::ParserHandler::Next;
  if ((head.status >= 200 || head.status == 101) && pool_->metrics()) {
    pool_->metrics()->response_time.observe((uv_hrtime() - started_ns_) / 1000);
  }
  if (head.status < 200) {
    if (head.status == 101) {
      if (ws_upgrade_) return on_switch_head(head);
      return Next::Abort;  // we never asked for an upgrade
    }
    interim_ = true;
    // 100 answers an Expect we already answered; other 1xx go to 1.1 clients.
    if (head.status != 100 && !client_http10_) {
      http::write_client_head(head, {false, true, false, {}}, resp_head_);
      to_client_.append_copy(resp_head_);
    }
    return Next::Continue;
  }
  if (!head.chunked && head.find("transfer-encoding")) {
    // A body framed by a coding we would have to guess the end of: refuse it
    // like the same shape in a request (RFC 9112 6.3 allows reading to EOF,
    // but a desync is worse than a 502).
    return Next::Abort;
  }
  up_->stop_timer();
  status_ = head.status;
  build_client_head(head);
  resp_started_ = true;
  return Next::Continue;  // a HEAD response has no body: skip_body() said so
}

void Session::build_client_head(const http::MessageHead& head) {
  const bool no_body = method_ == HTTP_HEAD || head.status == 204 || head.status == 304;
  resp_chunked_out_ = false;
  resp_close_delimited_ = false;
  if (!no_body) {
    if (head.chunked) {
      resp_chunked_out_ = !client_http10_;
      resp_close_delimited_ = client_http10_;  // 1.0 clients get the body de-chunked, then EOF
    } else if (!head.has_content_length) {
      resp_close_delimited_ = true;
    }
  }
  client_keep_alive_ = client_keep_alive_ && req_done_ && !resp_close_delimited_ && !draining_;
  http::ResponseFraming f{resp_chunked_out_, client_keep_alive_, client_http10_, {}};
  if (tls() && route_ && !route_->hsts.empty()) f.hsts = route_->hsts;
  http::write_client_head(head, f, resp_head_);
  to_client_.append_copy(resp_head_);
}

bool Session::on_response_body(const char* p, std::size_t n) {
  to_client_.append_block(cur_resp_block_, p, n);
  resp_bytes_ += n;
  return true;
}

void Session::on_response_chunk(std::uint64_t size) {
  if (resp_chunked_out_ && size > 0) append_chunk_size(to_client_, size);
}

void Session::on_response_complete(bool upstream_clean) {
  resp_done_ = true;
  if (resp_chunked_out_) to_client_.append_copy("0\r\n\r\n");
  flush_client();
  const bool reusable = upstream_clean && req_done_ && resp_parser_.head().keep_alive &&
                        !resp_parser_.needs_eof();
  release_upstream(reusable);
  end_exchange();
}

void Session::on_upstream_eof() {
  if (phase_ == Phase::WebSocket) {
    ws_peer_eof(false);
    ws_after_io();
    return;
  }
  if (resp_started_) {
    http::Parser::Result r = resp_parser_.finish();
    if (r.status == http::Parser::Status::Paused && resp_parser_.message_complete()) {
      // A close-delimited response ends here, complete.
      release_upstream(false);
      on_response_complete(false);
      return;
    }
  }
  upstream_broken(true);
}

void Session::on_upstream_error(int) {
  if (phase_ == Phase::WebSocket) {
    ws_peer_gone(false);
    ws_after_io();
    return;
  }
  upstream_broken(true);
}

// The upstream connection failed after it was connected: before the response
// head we may retry or answer 502; after it, the client must not be led to
// believe the response is complete, so its connection is cut.
void Session::upstream_broken(bool may_retry) {
  if (!resp_started_) {
    if (!may_retry) body_forwarded_ = true;  // never retry a request whose answer was garbage
    retry_or_fail(502);
    return;
  }
  SLUICE_LOG(Warn, "conn=%" PRIu64 " msg=\"upstream response truncated\" server=%s", id_,
             server_ ? server_->member.addr.text.c_str() : "-");
  status_ = status_ ? status_ : 502;
  log_access();
  finish(CloseReason::UpstreamTruncated);
}

void Session::on_upstream_write_done() {
  if (phase_ == Phase::WebSocket) {
    if (up_ && up_->transport().write_pending() < kLowWater) ws_resume_reads(true);
    ws_after_io();
    return;
  }
  if (phase_ == Phase::Proxying && !req_done_ && up_ &&
      up_->transport().write_pending() < kLowWater) {
    pump();
  }
}

void Session::on_upstream_timeout() {
  if (phase_ == Phase::WebSocket) return;  // the session's own timer keeps WebSocket time
  SLUICE_LOG(Warn, "conn=%" PRIu64 " msg=\"upstream response timed out\" server=%s", id_,
             server_ ? server_->member.addr.text.c_str() : "-");
  if (resp_started_) {
    upstream_broken(false);
    return;
  }
  release_upstream(false);
  respond_local(504, CloseReason::UpstreamFailed, true);
}

void Session::flush_client() {
  if (to_client_.empty() || phase_ == Phase::Closing) return;
  if (client_->write(to_client_) < 0) {
    finish(CloseReason::ClientClosed);
    return;
  }
  if (up_ && !upstream_paused_ && client_->write_pending() > kHighWater) {
    upstream_paused_ = true;
    up_->transport().read_stop();
  }
}

}  // namespace sluice::proxy
