// Session, WebSocket side: the upstream's 101, the switch to frame relaying,
// and everything until the close handshake ends the session. See
// session_ws.hpp for the state; the relay itself (parsing, re-masking,
// limits, UTF-8) is ws::FrameRelay, one per direction.
//
// Read handlers only feed a relay; what follows from it (writes, failures,
// closes, backpressure, the end) is worked out in one place, ws_after_io().
#include "proxy/session_ws.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "core/log.hpp"
#include "http/forward.hpp"
#include "http/headers.hpp"
#include "proxy/upgrade.hpp"
#include "proxy/worker.hpp"
#include "ws/handshake.hpp"

namespace sluice::proxy {

namespace {

constexpr std::uint64_t kDeferMs = 1'000;         // a failed side's close waits at most this
constexpr std::size_t kMaxCloseReason = 123;      // 125 minus the code

// A control frame as the gateway sends it: unmasked to a client, masked with
// a fresh key to an upstream.
void append_control(net::OutBatch& out, std::uint8_t opcode, const std::uint8_t* payload,
                    std::size_t n, const ws::MaskKey* key) {
  std::uint8_t frame[ws::kMaxHeaderBytes + ws::kMaxControlPayload];
  const std::size_t h = ws::encode_header(frame, true, opcode, n, key ? key->data() : nullptr);
  std::memcpy(frame + h, payload, n);
  if (key) ws::apply_mask(frame + h, n, *key, 0);
  out.append_copy(std::string_view(reinterpret_cast<const char*>(frame), h + n));
}

}  // namespace

bool Session::WsState::Direction::on_message_start() {
  WsState& ws = *session.ws_;
  const std::uint64_t rate = ws.conf.max_messages_per_second;
  if (!from_client || rate == 0) return true;
  const std::uint64_t now = uv_now(session.w_.io().loop());
  const std::uint64_t full = rate * 1000;  // a second's worth, the burst allowed
  ws.rate_tokens_milli = std::min(full, ws.rate_tokens_milli + (now - ws.rate_at_ms) * rate);
  ws.rate_at_ms = now;
  if (ws.rate_tokens_milli < 1000) return false;
  ws.rate_tokens_milli -= 1000;
  return true;
}

void Session::WsState::Direction::on_message(std::uint64_t n) {
  ++messages;
  bytes += n;
  RouteMetrics& m = *session.ws_->metrics;
  ++m.ws_messages[from_client ? 0 : 1];
  m.ws_bytes[from_client ? 0 : 1].add(n);
}

void Session::WsState::Direction::on_data_frame() {
  session.ws_->last_data_ms = uv_now(session.w_.io().loop());
}

bool Session::WsState::Direction::on_close(std::uint16_t code) {
  WsState& ws = *session.ws_;
  Side& from = from_client ? ws.client : ws.upstream;
  Side& to = from_client ? ws.upstream : ws.client;
  from.in_closed = true;
  from.close_frame = true;
  if (ws.close_code == 0) {
    ws.close_code = code;
    ws.closed_by = from_client ? "client" : "upstream";
  }
  if (ws.deferred_code != 0 && ws.deferred_to_client == !from_client) {
    // The reply to our 1001: the failed side now gets its own code instead.
    ws.deferred_now = true;
    return false;
  }
  const ws::FrameRelay& relay = from_client ? ws.c2u : ws.u2c;
  if (to.out_closed || to.close_pending || relay.muted()) return false;  // it has its own close
  to.out_closed = true;
  return true;
}

// ---- the handshake's second half

http::ParserHandler::Next Session::on_switch_head(http::MessageHead& head) {
  using Next = http::ParserHandler::Next;
  const config::RouteWebSocket& conf = route_->websocket;
  const http::MessageHead& request = req_parser_.head();  // kept until the exchange ends
  const SwitchCheck c = check_websocket_switch(head, ws_key_, offered_subprotocols(request, conf),
                                               offered_extensions(request, conf));
  if (c.status != 0) {
    SLUICE_LOG(Warn, "conn=%" PRIu64 " msg=\"upstream websocket handshake refused\" server=%s"
               " reason=\"%s\"", id_, server_->member.addr.text.c_str(), c.reason);
    ++w_.metrics().ws_bad_upstream_switch;
    return Next::Abort;  // 502, never retried
  }
  up_->stop_timer();
  status_ = 101;
  const std::string accept = ws::accept_for(http::trim_ows(*request.find("sec-websocket-key")));
  http::ResponseFraming f{false, true, false, {}, accept};
  if (tls()) f.hsts = route_->hsts;
  http::write_client_head(head, f, resp_head_);
  to_client_.append_copy(resp_head_);
  resp_started_ = true;
  ws_ = std::make_unique<WsState>(*this, conf, w_.mask_keys(), c.deflate);
  ws_->metrics = view_->metrics_of(route_);
  ++ws_->metrics->ws_sessions;
  ws_->metrics->ws_active.add(1);
  switching_ = true;
  return Next::Continue;
}

// The 101 is queued for the client; from here on both connections carry
// frames. Bytes that came with the 101, and client bytes held since the
// request head, are the first frames relayed.
void Session::start_websocket(Block* block, std::size_t off, std::size_t end) {
  switching_ = false;
  phase_ = Phase::WebSocket;
  uv_timer_stop(&timer_);
  WsState& ws = *ws_;
  const std::uint64_t now = uv_now(w_.io().loop());
  ws.last_data_ms = now;
  ws.next_ping_ms = now + static_cast<std::uint64_t>(ws.conf.ping_interval.count());
  ws.rate_tokens_milli = std::uint64_t{ws.conf.max_messages_per_second} * 1000;
  ws.rate_at_ms = now;
  if (const auto max = static_cast<std::uint64_t>(ws.conf.max_session.count()); max > 0) {
    // Closed within the last tenth of max_session, so that sessions opened
    // together (after a deploy) do not all end together.
    ws_retire(1001, "session too old", max - w_.jitter(max / 10 + 1));
  }
  // The HTTP exchange is over: its buffers go back now rather than at the end.
  std::string().swap(up_head_);
  std::string().swap(resp_head_);
  std::string().swap(ws_key_);
  req_parser_.trim();
  resp_parser_.trim();
  // Reads start before the early bytes are relayed, so that backpressure
  // they cause (ws_after_io) is not undone here.
  up_->transport().read_start();
  client_->read_start();
  if (end > off) ws_upstream_read(block, off, end);
  if (in_len_ > 0 && phase_ == Phase::WebSocket) {
    BlockRef held = std::move(in_block_);
    const std::size_t held_off = in_off_, held_len = in_len_;
    in_len_ = 0;
    ws_client_read(held.get(), held_off, held_off + held_len);
  }
  if (phase_ != Phase::WebSocket) return;
  if (draining_) {
    ws_gateway_close(1001, "going away");
  } else if (view_ != &w_.view() && !w_.view().still_routes(*route_, pool_)) {
    // Routed before a reload that took this route or its upstream away.
    ws_retire(1012, "service restart",
              w_.jitter(static_cast<std::uint64_t>(w_.view().config().server.reload_grace.count())));
  }
  ws_after_io();
  // What the handshake left in the write batches' storage goes back too:
  // most WebSocket connections are idle most of the time.
  if (to_client_.empty()) to_client_.trim();
  if (to_upstream_.empty()) to_upstream_.trim();
}

// ---- reading

// Both readers relay block->data[off, end).
void Session::ws_client_read(Block* block, std::size_t off, std::size_t end) {
  WsState& ws = *ws_;
  if (ws.client.in_closed) return;  // after its close, or a failure: discarded
  const ws::FrameRelay::Result r = ws.c2u.feed(block, off, end - off, to_upstream_);
  // Bytes after a valid close frame are refused by the relay and ignored here.
  if (!r.ok && !ws.client.in_closed) ws_fail(true, r.close_code, r.reason);
  ws_after_io();
}

void Session::ws_upstream_read(Block* block, std::size_t off, std::size_t end) {
  WsState& ws = *ws_;
  if (ws.upstream.in_closed) return;
  const ws::FrameRelay::Result r = ws.u2c.feed(block, off, end - off, to_client_);
  if (!r.ok && !ws.upstream.in_closed) ws_fail(false, r.close_code, r.reason);
  ws_after_io();
}

bool Session::ws_take_pong(const std::uint8_t* p, std::size_t n) {
  WsState& ws = *ws_;
  if (!ws.ping_outstanding || n != ws.ping_payload.size() ||
      std::memcmp(p, ws.ping_payload.data(), n) != 0) {
    return false;  // not ours: it answers the upstream's ping, or nothing
  }
  ws.ping_outstanding = false;
  w_.metrics().ws_ping_rtt.observe((uv_hrtime() - ws.ping_sent_ns) / 1000);
  return true;
}

// ---- closing

// Queues a close frame toward one side, unless one went already, and mutes
// the relay toward it. A side receiving a frame gets the close after that
// frame while the frame's sender is healthy; when the sender failed or went
// away mid-frame, the side cannot be sent a close at all: its connection just
// closes, and there is no reply to wait for.
void Session::ws_send_close(bool client, std::uint16_t code, const char* reason) {
  WsState& ws = *ws_;
  WsState::Side& side = client ? ws.client : ws.upstream;
  const WsState::Side& sender = client ? ws.upstream : ws.client;
  if (side.out_closed || side.gone) return;
  ws::FrameRelay& feeding = client ? ws.u2c : ws.c2u;
  feeding.mute();  // at once, or after the frame going out
  if (feeding.output_mid_frame()) {
    if (!sender.in_closed && !sender.gone) {
      if (!side.close_pending) {
        side.close_pending = true;
        side.pending_code = code;
        side.pending_reason = reason;
      }
      return;
    }
    side.close_pending = false;
    side.out_closed = side.in_closed = true;
    return;
  }
  side.close_pending = false;
  side.out_closed = true;
  std::uint8_t payload[2 + kMaxCloseReason];
  std::size_t len = std::strlen(reason);
  if (len > kMaxCloseReason) len = kMaxCloseReason;
  payload[0] = static_cast<std::uint8_t>(code >> 8);
  payload[1] = static_cast<std::uint8_t>(code & 0xFF);
  std::memcpy(payload + 2, reason, len);
  if (client) {
    append_control(to_client_, ws::kClose, payload, 2 + len, nullptr);
  } else {
    const ws::MaskKey key = ws.keys.next();
    append_control(to_upstream_, ws::kClose, payload, 2 + len, &key);
  }
}

// One side broke the protocol or a limit: nothing it sends from now on is
// relayed, the other side gets 1001, and the failed side gets the code once
// the other side has answered (what it sent before its close still reaches
// the failed side, as it would without a gateway between them).
void Session::ws_fail(bool client, std::uint16_t code, const char* reason) {
  WsState& ws = *ws_;
  SLUICE_LOG(Info, "conn=%" PRIu64 " msg=\"websocket closed by policy\" side=%s code=%u"
             " reason=\"%s\"", id_, client ? "client" : "upstream", code, reason);
  WsState::Side& failed = client ? ws.client : ws.upstream;
  WsState::Side& other = client ? ws.upstream : ws.client;
  failed.in_closed = true;
  ++w_.metrics().ws_policy[static_cast<std::size_t>(code == 1007   ? WsPolicy::Utf8
                                                   : code == 1009 ? WsPolicy::Size
                                                   : code == 1008 ? WsPolicy::Rate
                                                                  : WsPolicy::Protocol)];
  if (ws.close_code == 0) {
    ws.close_code = code;
    ws.closed_by = "gateway";
  }
  if (ws.deferred_code != 0 && ws.deferred_to_client != client) {
    // The other side failed first and was waiting for this one's reply:
    // this failure ends that wait, and the other side gets its own code.
    ws_send_deferred();
  } else {
    ws_send_close(!client, 1001, "going away");
  }
  if (other.in_closed || other.gone || failed.out_closed) {
    ws_send_close(client, code, reason);
    return;
  }
  ws.deferred_code = code;
  ws.deferred_reason = reason;
  ws.deferred_to_client = client;
  ws.deferred_deadline_ms = uv_now(w_.io().loop()) + kDeferMs;
}

void Session::ws_send_deferred() {
  WsState& ws = *ws_;
  if (ws.deferred_code == 0) return;
  const std::uint16_t code = ws.deferred_code;
  ws.deferred_code = 0;
  ws.deferred_now = false;
  ws_send_close(ws.deferred_to_client, code, ws.deferred_reason);
}

// The gateway ends the session (idle, ping timeout, shutdown): both sides get
// the code and their replies are awaited.
bool Session::reloaded(const ConfigView& now, std::uint64_t grace_ms) {
  if (phase_ != Phase::WebSocket || view_ == &now || now.still_routes(*route_, pool_)) return false;
  ws_retire(1012, "service restart", w_.jitter(grace_ms));
  return true;
}

void Session::ws_retire(std::uint16_t code, const char* reason, std::uint64_t delay_ms) {
  WsState& ws = *ws_;
  const std::uint64_t at = uv_now(w_.io().loop()) + delay_ms;
  if (ws.retire_code != 0 && ws.retire_ms <= at) return;  // an earlier one stands
  ws.retire_code = code;
  ws.retire_reason = reason;
  ws.retire_ms = at;
  ws_arm_timer();
}

void Session::ws_gateway_close(std::uint16_t code, const char* reason) {
  WsState& ws = *ws_;
  if (ws.close_code == 0) {
    ws.close_code = code;
    ws.closed_by = "gateway";
  }
  ws_send_close(true, code, reason);
  ws_send_close(false, code, reason);
}

// EOF (or TLS close_notify) from a side: after its close frame it is only
// the end of its input, and it may still read the reply; without one, it
// went away.
void Session::ws_peer_eof(bool client) {
  WsState& ws = *ws_;
  WsState::Side& side = client ? ws.client : ws.upstream;
  if (side.close_frame) {
    side.in_closed = true;
    return;
  }
  ws_peer_gone(client);
}

void Session::ws_resume_reads(bool client) {
  WsState& ws = *ws_;
  WsState::Side& side = client ? ws.client : ws.upstream;
  if (!side.paused) return;
  side.paused = false;
  if (client) {
    client_->read_start();
    // Its pongs may have waited behind what it sent: the ping's clock restarts.
    if (ws.ping_outstanding) {
      ws.ping_sent_ms = uv_now(w_.io().loop());
      ws.ping_sent_ns = uv_hrtime();
    }
  } else if (up_) {
    up_->transport().read_start();
  }
}

// A side's connection ended (reset, a write that failed, or EOF without a
// close frame). If it never sent a close frame, the other side hears of it:
// 1011 when the upstream vanished, 1001 when the client did.
void Session::ws_peer_gone(bool client) {
  WsState& ws = *ws_;
  WsState::Side& side = client ? ws.client : ws.upstream;
  if (side.gone) return;
  const bool vanished = !side.close_frame;
  side.in_closed = side.out_closed = side.gone = true;
  side.close_pending = false;
  (client ? ws.u2c : ws.c2u).mute();
  (client ? to_client_ : to_upstream_).clear();
  ws_resume_reads(!client);  // nothing more is written to this side: its backlog is moot
  if (ws.deferred_code != 0) {
    // The failed side is gone (nothing to tell it), or the side it waited
    // for is (it gets its code now).
    if (ws.deferred_to_client == client) {
      ws.deferred_code = 0;
    } else {
      ws_send_deferred();
    }
    return;
  }
  if (!vanished) return;
  if (ws.close_code == 0) {
    ws.close_code = 1006;  // what RFC 6455 calls a close without a close frame
    ws.closed_by = client ? "client" : "upstream";
  }
  if (client) {
    ws_send_close(false, 1001, "going away");
  } else {
    ws_send_close(true, 1011, "upstream went away");
  }
}

// ---- after every event

bool Session::ws_write(bool client) {
  WsState& ws = *ws_;
  net::OutBatch& out = client ? to_client_ : to_upstream_;
  if (out.empty()) return true;  // most calls: the event fed the other direction
  if ((client ? ws.client : ws.upstream).gone || (!client && !up_)) {
    out.clear();
    return true;
  }
  net::Transport& t = client ? *client_ : up_->transport();
  if (t.write(out) < 0) {
    out.clear();
    return false;
  }
  return true;
}

void Session::ws_send_ping() {
  WsState& ws = *ws_;
  if (ws.client.out_closed) {
    ws.ping_due = false;
    return;
  }
  if (ws.u2c.output_mid_frame()) return;  // after the frame the client is receiving
  const ws::MaskKey a = ws.keys.next(), b = ws.keys.next();  // unpredictable, so unforgeable
  std::memcpy(ws.ping_payload.data(), a.data(), 4);
  std::memcpy(ws.ping_payload.data() + 4, b.data(), 4);
  append_control(to_client_, ws::kPing, ws.ping_payload.data(), ws.ping_payload.size(), nullptr);
  const std::uint64_t now = uv_now(w_.io().loop());
  ws.ping_due = false;
  ws.ping_outstanding = true;
  ws.ping_sent_ms = now;
  ws.ping_sent_ns = uv_hrtime();
  ws.next_ping_ms = now + static_cast<std::uint64_t>(ws.conf.ping_interval.count());
}

void Session::ws_after_io() {
  if (phase_ != Phase::WebSocket) return;
  WsState& ws = *ws_;
  if (ws.deferred_now) ws_send_deferred();
  // A close waiting for the end of a frame: the frame ended, or its sender
  // can no longer end it. (Rare: the loop is skipped when none waits.)
  if (ws.client.close_pending || ws.upstream.close_pending) {
    for (const bool client : {true, false}) {
      WsState::Side& side = client ? ws.client : ws.upstream;
      const WsState::Side& sender = client ? ws.upstream : ws.client;
      const ws::FrameRelay& feeding = client ? ws.u2c : ws.c2u;
      if (side.close_pending && (!feeding.output_mid_frame() || sender.in_closed || sender.gone)) {
        ws_send_close(client, side.pending_code, side.pending_reason);
      }
    }
  }
  if (ws.ping_due) ws_send_ping();
  // A failed write ends that side, which may queue a close toward the other.
  for (int round = 0; round < 2; ++round) {
    bool again = false;
    if (!ws_write(false)) {
      ws_peer_gone(false);
      again = true;
    }
    if (!ws_write(true)) {
      ws_peer_gone(true);
      again = true;
    }
    if (!again) break;
  }

  if (ws.close_deadline_ms == 0 &&
      (ws.client.out_closed || ws.client.in_closed || ws.upstream.out_closed || ws.upstream.in_closed)) {
    ws.close_deadline_ms = uv_now(w_.io().loop()) + kCloseTimeoutMs;
  }
  if (ws.client.in_closed && ws.client.out_closed && ws.upstream.in_closed &&
      ws.upstream.out_closed) {
    // Over. The upstream goes once what it is owed has left; the client gets
    // a lingering close when it may still be sending.
    if (up_ && !ws.upstream.gone && up_->transport().write_pending() != 0) {
      ws_arm_timer();  // the close deadline bounds the wait
      return;
    }
    release_upstream(false);
    if (ws.client.gone) {
      finish(CloseReason::WebSocketClosed);
      return;
    }
    force_linger_ = !ws.client.close_frame;
    log_access();
    start_finishing(CloseReason::WebSocketClosed);
    return;
  }

  // Backpressure: a side whose pending writes pass the high-water mark stops
  // the other side's reads; its write callbacks resume them below the low.
  if (up_ && !ws.upstream.gone && !ws.client.paused &&
      up_->transport().write_pending() >= kHighWater) {
    ws.client.paused = true;
    client_->read_stop();
  }
  if (up_ && !ws.client.gone && !ws.upstream.paused && client_->write_pending() >= kHighWater) {
    ws.upstream.paused = true;
    up_->transport().read_stop();
  }
  ws_arm_timer();
}

// ---- time

void Session::ws_arm_timer() {
  WsState& ws = *ws_;
  std::uint64_t due = ws.close_deadline_ms;
  if (due == 0) {
    const std::uint64_t interval = static_cast<std::uint64_t>(ws.conf.ping_interval.count());
    due = ws.last_data_ms + static_cast<std::uint64_t>(ws.conf.idle_timeout.count());
    // A ping that is due but waits for the frame the client is receiving
    // goes out from ws_after_io(): no deadline for it here, or the timer
    // would fire at once until that frame ends.
    // While the client's reads are stopped its pong cannot be seen.
    if (ws.ping_outstanding) {
      if (!ws.client.paused) due = std::min(due, ws.ping_sent_ms + interval);
    } else if (!ws.ping_due) {
      due = std::min(due, ws.next_ping_ms);
    }
    if (ws.retire_code != 0) due = std::min(due, ws.retire_ms);
  }
  if (ws.deferred_code != 0 && ws.deferred_deadline_ms < due) due = ws.deferred_deadline_ms;
  // Data frames only push deadlines later: the timer then fires early and is
  // armed again, instead of being moved on every read.
  if (ws.timer_armed && ws.timer_due_ms <= due) return;
  const std::uint64_t now = uv_now(w_.io().loop());
  ws.timer_armed = true;
  ws.timer_due_ms = due;
  uv_timer_start(&timer_, on_timer, due > now ? due - now : 0, 0);
}

void Session::ws_on_timer() {
  WsState& ws = *ws_;
  ws.timer_armed = false;
  const std::uint64_t now = uv_now(w_.io().loop());
  if (ws.deferred_code != 0 && now >= ws.deferred_deadline_ms) ws_send_deferred();
  if (now >= ws.last_data_ms + kTrimAfterMs) {
    // Quiet for a while: the write batches' storage goes back (idle
    // sessions are the many).
    if (to_client_.empty()) to_client_.trim();
    if (to_upstream_.empty()) to_upstream_.trim();
  }
  if (ws.close_deadline_ms != 0) {
    if (now >= ws.close_deadline_ms) {
      SLUICE_LOG(Info, "conn=%" PRIu64 " msg=\"websocket close handshake timed out\"", id_);
      finish(CloseReason::WebSocketClosed);
      return;
    }
  } else if (ws.retire_code != 0 && now >= ws.retire_ms) {
    ws_gateway_close(ws.retire_code, ws.retire_reason);
  } else if (now >= ws.last_data_ms + static_cast<std::uint64_t>(ws.conf.idle_timeout.count())) {
    ws_gateway_close(1001, "idle timeout");
  } else if (ws.ping_outstanding && !ws.client.paused &&
             now >= ws.ping_sent_ms + static_cast<std::uint64_t>(ws.conf.ping_interval.count())) {
    SLUICE_LOG(Info, "conn=%" PRIu64 " msg=\"websocket client did not answer a ping\"", id_);
    ws_gateway_close(1001, "ping timeout");
  } else if (!ws.ping_outstanding && now >= ws.next_ping_ms) {
    ws.ping_due = true;
  }
  ws_after_io();
}

// ---- the access log

void Session::ws_log_fields(AccessRecord& r) {
  const WsState& ws = *ws_;
  r.num("msgs_c2u", ws.c2u_events.messages);
  r.num("msgs_u2c", ws.u2c_events.messages);
  r.num("bytes_c2u", ws.c2u_events.bytes);
  r.num("bytes_u2c", ws.u2c_events.bytes);
  r.num("close_code", ws.close_code);
  r.str("closed_by", ws.closed_by);
}

}  // namespace sluice::proxy
