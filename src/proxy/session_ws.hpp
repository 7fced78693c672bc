// Session::WsState: what a session holds once it relays WebSocket frames.
// Private to the session's own files (session.cpp, session_ws.cpp).
//
// Each side (client, upstream) has an input and an output that close on
// their own: `in_closed` once its close frame arrived (or it failed, or went
// away), `out_closed` once a close frame was queued toward it (or it cannot
// take one). Once a side's output is closed, the relay toward it is muted.
// A close the gateway starts toward a side that is mid-frame waits for that
// frame to end when its sender is healthy (close_pending). The session ends
// when all four are closed and the bytes queued toward the upstream are
// flushed, or when the close deadline passes.
#pragma once

#include <array>
#include <cstdint>

#include "config/config.hpp"
#include "proxy/session.hpp"
#include "ws/relay.hpp"

namespace sluice::proxy {

struct Session::WsState {
  // The relay's events for one direction; counters for the access log.
  struct Direction final : ws::RelayListener {
    Direction(Session& s, bool from_client) : session(s), from_client(from_client) {}
    void on_data_frame() override;
    void on_message(std::uint64_t bytes) override;
    bool on_message_start() override;
    bool on_pong(const std::uint8_t* p, std::size_t n) override {
      return from_client && session.ws_take_pong(p, n);
    }
    bool on_close(std::uint16_t code) override;

    Session& session;
    bool from_client;
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
  };
  struct Side {
    bool in_closed = false;    // its close frame arrived, or its input is refused or over
    bool out_closed = false;   // a close frame went toward it, or none can
    bool close_frame = false;  // it sent a valid close frame
    bool gone = false;         // its connection ended: nothing more is written to it
    bool close_pending = false;  // a close for it waits for the frame it is receiving to end
    std::uint16_t pending_code = 0;
    const char* pending_reason = "";
    bool paused = false;  // its reads stopped: the other side's writes are over the high-water mark
  };

  WsState(Session& s, const config::RouteWebSocket& conf, ws::MaskKeySource& keys, bool deflate)
      : conf(conf),
        c2u_events(s, true),
        u2c_events(s, false),
        c2u(ws::Role::FromClient, limits_of(conf, deflate, true), &keys, c2u_events),
        u2c(ws::Role::FromServer, limits_of(conf, deflate, false), nullptr, u2c_events),
        keys(keys) {}
  // Only client messages are rate-limited (Direction::on_message_start).
  static ws::RelayLimits limits_of(const config::RouteWebSocket& conf, bool deflate, bool from_client) {
    return {conf.max_frame_bytes, conf.max_message_bytes, conf.validate_utf8, deflate,
            from_client && conf.max_messages_per_second > 0};
  }

  const config::RouteWebSocket& conf;
  RouteMetrics* metrics = nullptr;  // the route's cells (sessions, messages, bytes)
  Direction c2u_events;
  Direction u2c_events;
  ws::FrameRelay c2u;  // client -> upstream: re-masked with fresh keys
  ws::FrameRelay u2c;  // upstream -> client: unmasked
  ws::MaskKeySource& keys;
  Side client;
  Side upstream;

  std::uint64_t last_data_ms = 0;   // uv_now() of the latest data frame either way
  std::uint64_t next_ping_ms = 0;   // when the gateway pings the client next
  std::uint64_t ping_sent_ms = 0;
  std::uint64_t ping_sent_ns = 0;   // uv_hrtime(), for the round-trip histogram
  std::uint64_t close_deadline_ms = 0;  // 0: no close under way
  std::uint64_t timer_due_ms = 0;       // when the session's timer fires, if armed
  bool timer_armed = false;
  std::array<std::uint8_t, 8> ping_payload{};
  bool ping_outstanding = false;    // sent, its pong not yet back
  bool ping_due = false;            // due, but the client's output was mid-frame
  // A failed side's own close waits for the other side's close reply (or a
  // short deadline), so that what the other side was still sending toward
  // it (answers to its earlier, valid messages) reaches it first.
  std::uint16_t deferred_code = 0;  // 0: none waiting
  bool deferred_to_client = false;
  bool deferred_now = false;        // the reply came: send it
  const char* deferred_reason = "";
  std::uint64_t deferred_deadline_ms = 0;
  // A close the gateway has scheduled (reload 1012, drain or max_session 1001).
  std::uint16_t retire_code = 0;    // 0: none
  const char* retire_reason = "";
  std::uint64_t retire_ms = 0;
  // max_messages_per_second: a token bucket of client messages, refilled at
  // the rate up to one second's worth, in thousandths of a message.
  std::uint64_t rate_tokens_milli = 0;
  std::uint64_t rate_at_ms = 0;
  std::uint16_t close_code = 0;     // the first close code seen or sent
  const char* closed_by = "-";      // "client", "upstream" or "gateway"
};

}  // namespace sluice::proxy
