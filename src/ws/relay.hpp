// FrameRelay: one direction of a WebSocket connection, after the upgrade.
//
// Bytes read from one peer go in; what to send the other peer comes out,
// appended to an OutBatch: frame headers re-encoded (with a fresh masking
// key toward an upstream, unmasked toward a client) and payload handed on as
// slices of the read block, re-masked in place. A data frame's new header is
// as long as the one it replaces (the same length form, a key in and a key
// out, or none either way), so when the old one lies whole in the read
// block the new one is written over it and header and payload leave as one
// slice: small frames cost no copy and no extra iovec. Data frames stream through
// as their bytes arrive; control frames (at most 125 bytes) are held whole
// so that a close payload is checked before it is forwarded and a pong that
// answers the gateway's own ping can be kept back.
// Policy lives here: frame and message size limits (1009), UTF-8 of text
// messages across fragments (1007), every protocol error the parser finds
// (1002), and a message the listener refuses to start (1008). A text frame's header goes out with its first bytes that
// pass the UTF-8 check, so bad text in the first read of a frame is refused
// with nothing of the frame sent; bad text further into a frame that spans
// reads leaves the receiving peer mid-frame (see output_mid_frame). One class serves both directions; the constructor says which.
// Pure: no I/O; never touches bytes outside the span it is given.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "core/buffer.hpp"
#include "net/transport.hpp"
#include "ws/frame.hpp"
#include "ws/mask.hpp"
#include "ws/utf8.hpp"

namespace sluice::ws {

struct RelayLimits {
  std::uint64_t max_frame_bytes = 1 << 20;
  std::uint64_t max_message_bytes = 4 << 20;
  bool validate_utf8 = true;
  bool allow_rsv1 = false;  // permessage-deflate passed through
  // The listener is asked before each data message (on_message_start);
  // false when it would always say yes, which saves a call per message.
  bool ask_message_start = true;
};

class RelayListener {
 public:
  // Data frame bytes arrived (idle timers count data, not pings): once per
  // feed that brought any, after its frames.
  virtual void on_data_frame() {}
  // A new data message starts (its first frame's header arrived, nothing of
  // it went out yet); return false to refuse it: the sender is failed with
  // 1008 (policy: a message rate limit).
  virtual bool on_message_start() { return true; }
  // A complete message went through (for counters).
  virtual void on_message(std::uint64_t bytes) { (void)bytes; }
  // A pong arrived; return true to keep it back (it answers the gateway's
  // own ping), false to forward it.
  virtual bool on_pong(const std::uint8_t* payload, std::size_t n) {
    (void)payload;
    (void)n;
    return false;
  }
  // A valid close frame arrived (code 1005 when it carried none); return
  // true to forward it, false to keep it back (the gateway then sends the
  // receiving peer a close of its own).
  virtual bool on_close(std::uint16_t code) {
    (void)code;
    return true;
  }

 protected:
  ~RelayListener() = default;
};

class FrameRelay final : private FrameHandler {
 public:
  // keys: non-null when frames go to an upstream (every frame is then masked
  // with a fresh key from it); null when they go to a client (unmasked).
  FrameRelay(Role from, const RelayLimits& limits, MaskKeySource* keys, RelayListener& listener);
  FrameRelay(const FrameRelay&) = delete;
  FrameRelay& operator=(const FrameRelay&) = delete;

  struct Result {
    bool ok;
    std::uint16_t close_code;  // when !ok: the code to close the sending peer with
    const char* reason;        // when !ok: for logs
  };
  // Relays block->data[off, off+n). Takes block references for what it hands
  // on in `out`. After a failure nothing more is relayed.
  Result feed(Block* block, std::size_t off, std::size_t n, net::OutBatch& out);
  // From now on (or, with a data frame going out, from its end) nothing
  // more is sent: frames are still parsed and checked, and a close still
  // reaches the listener. For a receiver the gateway closes itself.
  void mute() noexcept { muted_ = !out_frame_open_; mute_after_frame_ = out_frame_open_; }
  bool muted() const noexcept { return muted_; }
  // A data frame's header went out and not all of its payload: after a
  // failure, the receiving peer cannot be sent a close frame (its framing is
  // mid-frame); only closing the connection is left.
  bool output_mid_frame() const noexcept { return out_frame_open_; }

 private:
  Verdict on_frame_header(const FrameHeader& h) override;
  Verdict on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset) override;
  Verdict on_frame_end() override;
  Verdict refuse(std::uint16_t code, const char* reason) noexcept;
  void emit_header(bool fin, std::uint8_t opcode, std::uint64_t length, bool rsv1);
  void emit_data_header();

  FrameParser parser_;
  RelayLimits limits_;
  MaskKeySource* keys_;
  RelayListener& listener_;
  Utf8Validator utf8_;
  // the frame being relayed
  FrameHeader in_{};
  MaskKey out_key_{};
  bool text_ = false;         // its payload is part of a text message
  std::uint64_t message_bytes_ = 0;
  // a control frame, held whole (unmasked)
  std::array<std::uint8_t, kMaxControlPayload> control_{};
  std::size_t control_len_ = 0;
  // the feed in progress
  Block* block_ = nullptr;
  net::OutBatch* out_ = nullptr;
  std::uint16_t fail_code_ = 0;
  const char* fail_reason_ = "";
  bool close_seen_ = false;
  bool out_frame_open_ = false;
  bool header_pending_ = false;  // a text frame's header waits for its first checked bytes
  bool muted_ = false;           // nothing more goes out
  bool mute_after_frame_ = false;
  bool data_seen_ = false;       // this feed brought data frame bytes
  // the data frame's new header: in the read block over the old one (raw,
  // valid during the feed that brought it), else out_hdr_ to be copied
  std::array<std::uint8_t, kMaxHeaderBytes> out_hdr_{};
  std::uint8_t out_hdr_len_ = 0;
  std::uint8_t* out_hdr_raw_ = nullptr;
};

}  // namespace sluice::ws
