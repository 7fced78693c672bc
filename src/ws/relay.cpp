// FrameRelay: see relay.hpp.
#include "ws/relay.hpp"

#include <cstring>

namespace sluice::ws {

FrameRelay::FrameRelay(Role from, const RelayLimits& limits, MaskKeySource* keys,
                       RelayListener& listener)
    : parser_(from, *this, limits.allow_rsv1), limits_(limits), keys_(keys), listener_(listener) {}

FrameRelay::Result FrameRelay::feed(Block* block, std::size_t off, std::size_t n,
                                    net::OutBatch& out) {
  if (fail_code_ != 0) return {false, fail_code_, fail_reason_};
  block_ = block;
  out_ = &out;
  data_seen_ = false;
  FrameParser::Result r = parser_.feed(reinterpret_cast<std::uint8_t*>(block->data) + off, n);
  block_ = nullptr;
  out_ = nullptr;
  // The block may be reused once this feed returns: a text frame's header
  // that still waits for its first checked bytes is kept in out_hdr_.
  if (header_pending_ && out_hdr_raw_ != nullptr) std::memcpy(out_hdr_.data(), out_hdr_raw_, out_hdr_len_);
  out_hdr_raw_ = nullptr;
  if (data_seen_) listener_.on_data_frame();
  if (r.status == FrameParser::Status::Ok) return {true, 0, ""};
  if (fail_code_ == 0) {  // the parser's own finding, not a policy refusal
    fail_code_ = close_code(parser_.error());
    fail_reason_ = to_string(parser_.error());
  }
  return {false, fail_code_, fail_reason_};
}

Verdict FrameRelay::refuse(std::uint16_t code, const char* reason) noexcept {
  fail_code_ = code;
  fail_reason_ = reason;
  return Verdict::Abort;
}

void FrameRelay::emit_header(bool fin, std::uint8_t opcode, std::uint64_t length, bool rsv1) {
  if (muted_) return;
  std::uint8_t header[kMaxHeaderBytes];
  std::size_t n = encode_header(header, fin, opcode, length, keys_ ? out_key_.data() : nullptr, rsv1);
  out_->append_copy(std::string_view(reinterpret_cast<const char*>(header), n));
}

Verdict FrameRelay::on_frame_header(const FrameHeader& h) {
  in_ = h;
  header_pending_ = false;
  if (close_seen_) return refuse(1002, "frame after close");
  if (keys_) out_key_ = keys_->next();  // never reused, never derived from the peer's key
  if (is_control(h.opcode)) {
    control_len_ = 0;
    return Verdict::Continue;  // held whole; forwarded at its end
  }
  if (h.length > limits_.max_frame_bytes) return refuse(1009, "frame over max_frame_bytes");
  if (h.opcode != kContinuation) {  // first frame of a message
    if (limits_.ask_message_start && !listener_.on_message_start()) {
      return refuse(1008, "message rate over the limit");
    }
    message_bytes_ = 0;
    text_ = h.opcode == kText && limits_.validate_utf8 && !h.rsv1;  // compressed: not checkable
    utf8_.reset();
  }
  message_bytes_ += h.length;
  if (message_bytes_ > limits_.max_message_bytes) return refuse(1009, "message over max_message_bytes");
  data_seen_ = true;
  // The new header differs from the old one in the key alone (masked in,
  // masked out) or not at all (unmasked either way): the parser took only
  // minimal lengths and no RSV2/RSV3. When the old one lies whole in the
  // read block, the new key goes over the old one and nothing else moves.
  if (h.raw != nullptr && h.masked == (keys_ != nullptr)) {
    if (keys_) std::memcpy(h.raw + h.raw_size - 4, out_key_.data(), 4);
    out_hdr_raw_ = h.raw;
    out_hdr_len_ = h.raw_size;
  } else {
    out_hdr_raw_ = nullptr;
    out_hdr_len_ = static_cast<std::uint8_t>(encode_header(
        out_hdr_.data(), h.fin, h.opcode, h.length, keys_ ? out_key_.data() : nullptr, h.rsv1));
  }
  // A text frame's header is sent with its first payload bytes that pass
  // the UTF-8 check: a frame whose first bytes are already bad is refused
  // with nothing sent, and the peer can still be sent a close frame.
  header_pending_ = true;
  if (!text_) emit_data_header();
  return Verdict::Continue;
}

void FrameRelay::emit_data_header() {
  if (!header_pending_) return;
  header_pending_ = false;
  if (muted_) return;
  if (out_hdr_raw_ != nullptr) {
    out_->append_block(block_, reinterpret_cast<const char*>(out_hdr_raw_), out_hdr_len_);
  } else {
    out_->append_copy(std::string_view(reinterpret_cast<const char*>(out_hdr_.data()), out_hdr_len_));
  }
  out_frame_open_ = in_.length > 0;
}

Verdict FrameRelay::on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset) {
  if (is_control(in_.opcode)) {
    std::memcpy(control_.data() + control_len_, p, n);  // the parser bounds control frames to 125
    if (in_.masked) apply_mask(control_.data() + control_len_, n, in_.mask, offset);
    control_len_ += n;
    return Verdict::Continue;
  }
  if (text_) {
    // UTF-8 is checked on the plain text: unmask, check, then mask afresh.
    if (in_.masked) apply_mask(p, n, in_.mask, offset);
    if (!utf8_.feed(p, n)) return refuse(1007, "invalid UTF-8 in a text message");
    if (in_.fin && offset + n == in_.length && !utf8_.complete()) {
      return refuse(1007, "text message ends inside a character");
    }
    emit_data_header();
    if (keys_) apply_mask(p, n, out_key_, offset);
  } else if (in_.masked && keys_) {
    remask(p, n, in_.mask, out_key_, offset);  // one pass: the client's key off, ours on
  } else if (in_.masked) {
    apply_mask(p, n, in_.mask, offset);
  } else if (keys_) {
    apply_mask(p, n, out_key_, offset);
  }
  data_seen_ = true;  // a frame that trickles in is not idle
  if (!muted_) out_->append_block(block_, reinterpret_cast<const char*>(p), n);
  return Verdict::Continue;
}

Verdict FrameRelay::on_frame_end() {
  if (!is_control(in_.opcode)) {
    out_frame_open_ = false;
    if (in_.fin && text_ && !utf8_.complete()) {
      return refuse(1007, "text message ends inside a character");
    }
    emit_data_header();  // an empty text frame
    if (in_.fin && !muted_) listener_.on_message(message_bytes_);
    if (mute_after_frame_) muted_ = true;
    return Verdict::Continue;
  }
  if (in_.opcode == kClose) {
    CloseCheck c = check_close_payload(control_.data(), control_len_);
    if (c.error != 0) return refuse(c.error, "invalid close frame");
    close_seen_ = true;
    if (!listener_.on_close(c.code)) return Verdict::Continue;
  } else if (in_.opcode == kPong && listener_.on_pong(control_.data(), control_len_)) {
    return Verdict::Continue;  // the answer to the gateway's own ping: not forwarded
  }
  if (muted_) return Verdict::Continue;
  emit_header(true, in_.opcode, control_len_, false);
  if (control_len_ > 0) {
    if (keys_) apply_mask(control_.data(), control_len_, out_key_, 0);
    out_->append_copy(std::string_view(reinterpret_cast<const char*>(control_.data()), control_len_));
  }
  return Verdict::Continue;
}

}  // namespace sluice::ws
