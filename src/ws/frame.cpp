// RFC 6455 frame codec; see frame.hpp. Pure: no I/O, no allocation, never
// touches a byte outside the span it is given.
#include "ws/frame.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::ws {

namespace {

// Whole-buffer UTF-8 check for close reasons (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF). Kept local on purpose: close reasons
// are at most 123 bytes and always complete, so the incremental validator
// used for text messages is not needed here.
bool valid_utf8(const std::uint8_t* p, std::size_t n) noexcept {
  std::size_t i = 0;
  while (i < n) {
    const std::uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3, lo = 0xA0;  // no overlong 3-byte forms
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      len = 3;
    } else if (c == 0xED) {
      len = 3, hi = 0x9F;  // no surrogates
    } else if (c == 0xF0) {
      len = 4, lo = 0x90;  // no overlong 4-byte forms
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4, hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return false;  // continuation byte first, C0, C1, F5-FF
    }
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

bool reserved_opcode(std::uint8_t op) noexcept { return (op >= 0x3 && op <= 0x7) || op >= 0xB; }

// Bytes of extended length that follow the 7-bit length field.
std::size_t extended_length_bytes(std::uint8_t len7) noexcept {
  return len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
}

// Codes an endpoint may put on the wire (RFC 6455 7.4.1, 7.4.2 and the IANA
// registry): 1004-1006 and 1015 are reserved or local-only, 1016-2999 are
// for future RFCs, 5000 and up are undefined.
bool sendable_close_code(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

}  // namespace

const char* to_string(FrameError e) noexcept {
  switch (e) {
    case FrameError::None: return "none";
    case FrameError::ReservedOpcode: return "reserved_opcode";
    case FrameError::ReservedBits: return "reserved_bits";
    case FrameError::ControlTooLong: return "control_too_long";
    case FrameError::FragmentedControl: return "fragmented_control";
    case FrameError::LengthMsbSet: return "length_msb_set";
    case FrameError::NonMinimalLength: return "non_minimal_length";
    case FrameError::MaskRequired: return "mask_required";
    case FrameError::MaskForbidden: return "mask_forbidden";
    case FrameError::UnexpectedContinuation: return "unexpected_continuation";
    case FrameError::MessageNotFinished: return "message_not_finished";
    case FrameError::Rejected: return "rejected";
  }
  return "unknown";
}

std::uint16_t close_code(FrameError e) noexcept {
  switch (e) {
    case FrameError::None: return 1000;
    case FrameError::Rejected: return 1008;
    default: return 1002;
  }
}

void FrameParser::reset() noexcept {
  state_ = State::Start;
  error_ = FrameError::None;
  hdr_len_ = 0;
  need_ = 2;
  header_ = FrameHeader{};
  remaining_ = 0;
  offset_ = 0;
  message_open_ = false;
  message_opcode_ = 0;
}

FrameParser::Result FrameParser::fail(FrameError e, std::size_t consumed) noexcept {
  error_ = e;
  state_ = State::Dead;
  return {Status::Error, consumed};
}

// The first byte against the opcode and RSV rules and the message state.
FrameError FrameParser::check_first_byte(std::uint8_t b0, std::uint8_t len7) const noexcept {
  const bool fin = (b0 & 0x80) != 0;
  const bool rsv1 = (b0 & 0x40) != 0;
  const std::uint8_t opcode = b0 & 0x0F;
  if (reserved_opcode(opcode)) return FrameError::ReservedOpcode;
  if ((b0 & 0x30) != 0) return FrameError::ReservedBits;  // RSV2, RSV3
  // RFC 7692 6.1: the compressed bit goes on the first frame of a data
  // message only, never on continuations or control frames.
  if (rsv1 && !(allow_rsv1_ && (opcode == kText || opcode == kBinary))) {
    return FrameError::ReservedBits;
  }
  if (is_control(opcode)) {
    if (!fin) return FrameError::FragmentedControl;
    if (len7 > kMaxControlPayload) return FrameError::ControlTooLong;
  } else if (opcode == kContinuation) {
    if (!message_open_) return FrameError::UnexpectedContinuation;
  } else if (message_open_) {
    return FrameError::MessageNotFinished;
  }
  return FrameError::None;
}

// The first two bytes settle everything but the extended length and the key.
// On success header_ holds all but those (rsv2 and rsv3 stay false: a frame
// with either set never gets past here) and need_ is 2 plus the extended
// length bytes.
FrameError FrameParser::check_first_bytes(std::uint8_t b0, std::uint8_t b1) noexcept {
  const bool masked = (b1 & 0x80) != 0;
  const std::uint8_t len7 = b1 & 0x7F;
  // Most frames are a whole text or binary message, no RSV bit, no message
  // open: every check of the first byte passes for them, so it is skipped.
  const bool plain = (b0 == (0x80 | kText) || b0 == (0x80 | kBinary)) && !message_open_;
  if (!plain) {
    if (FrameError e = check_first_byte(b0, len7); e != FrameError::None) return e;
  }
  if (masked != must_mask_) return must_mask_ ? FrameError::MaskRequired : FrameError::MaskForbidden;

  // Written field by field: building a FrameHeader and copying it over
  // header_ cost more than all the checks.
  header_.fin = (b0 & 0x80) != 0;
  header_.rsv1 = (b0 & 0x40) != 0;
  header_.opcode = b0 & 0x0F;
  header_.masked = masked;
  header_.length = len7;
  need_ = static_cast<std::uint8_t>(2 + extended_length_bytes(len7));
  return FrameError::None;
}

// With the extended length in (need_ - 2 bytes at ext, big-endian): its
// value, minimal and < 2^63.
FrameError FrameParser::check_length(const std::uint8_t* ext) noexcept {
  if (need_ == 4) {
    const std::uint64_t v = (std::uint64_t{ext[0]} << 8) | ext[1];
    if (v < 126) return FrameError::NonMinimalLength;
    header_.length = v;
  } else if (need_ == 10) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | ext[i];
    if ((v >> 63) != 0) return FrameError::LengthMsbSet;
    if (v <= 0xFFFF) return FrameError::NonMinimalLength;
    header_.length = v;
  }
  return FrameError::None;
}

bool FrameParser::end_frame() noexcept {
  state_ = State::Start;
  offset_ = 0;
  remaining_ = 0;
  return handler_.on_frame_end() == Verdict::Continue;
}

// header_ is complete and checked: the message state moves on, the handler
// sees the header, and the payload (if any) is due next. False when the
// handler refused the header or the end of an empty frame.
bool FrameParser::begin_frame() noexcept {
  if (!is_control(header_.opcode)) {
    if (header_.opcode != kContinuation) message_opcode_ = header_.opcode;
    message_open_ = !header_.fin;
  }
  state_ = State::Start;
  if (handler_.on_frame_header(header_) != Verdict::Continue) return false;
  if (header_.length == 0) return end_frame();
  state_ = State::Payload;
  remaining_ = header_.length;
  offset_ = 0;
  return true;
}

FrameParser::Result FrameParser::feed(std::uint8_t* p, std::size_t n) noexcept {
  if (state_ == State::Dead) return {Status::Error, 0};
  std::size_t off = 0;
  while (off < n) {
    if (state_ == State::Payload) {
      const std::size_t take =
          remaining_ < n - off ? static_cast<std::size_t>(remaining_) : n - off;
      const Verdict v = handler_.on_payload(p + off, take, offset_);
      off += take;
      offset_ += take;
      remaining_ -= take;
      if (v != Verdict::Continue) return fail(FrameError::Rejected, off);
      if (remaining_ == 0 && !end_frame()) return fail(FrameError::Rejected, off);
      continue;
    }
    if (hdr_len_ == 0 && n - off >= 2) {
      // A header that starts here and lies whole in the span (the usual
      // case) is read where it is, with the checks in the staged order and
      // each error at the offset the staged path would give it.
      std::uint8_t* h = p + off;
      const std::size_t size = 2 + extended_length_bytes(h[1] & 0x7F) + ((h[1] & 0x80) ? 4 : 0);
      if (n - off >= size) {
        if (FrameError e = check_first_bytes(h[0], h[1]); e != FrameError::None) return fail(e, off + 2);
        if (FrameError e = check_length(h + 2); e != FrameError::None) return fail(e, off + need_);
        if (header_.masked) std::memcpy(header_.mask.data(), h + size - 4, 4);
        header_.raw = h;
        header_.raw_size = static_cast<std::uint8_t>(size);
        need_ = 2;
        off += size;
        if (!begin_frame()) return fail(FrameError::Rejected, off);
        continue;
      }
    }
    // A header split across feeds: its bytes gather in hdr_, each stage
    // checked as soon as its bytes are in. Stages with no bytes of their
    // own (no extended length, no key) pass straight through.
    const std::size_t take = std::min<std::size_t>(need_ - hdr_len_, n - off);
    std::memcpy(hdr_.data() + hdr_len_, p + off, take);
    hdr_len_ = static_cast<std::uint8_t>(hdr_len_ + take);
    off += take;
    if (hdr_len_ < need_) break;  // the span is used up
    if (state_ == State::Start) {
      if (FrameError e = check_first_bytes(hdr_[0], hdr_[1]); e != FrameError::None) return fail(e, off);
      state_ = State::Length;
      if (hdr_len_ < need_) continue;
    }
    if (state_ == State::Length) {
      if (FrameError e = check_length(hdr_.data() + 2); e != FrameError::None) return fail(e, off);
      state_ = State::MaskKey;
      need_ = static_cast<std::uint8_t>(need_ + (header_.masked ? 4 : 0));
      if (hdr_len_ < need_) continue;
    }
    // State::MaskKey, complete. A header that lay whole in this span took
    // the path above, so this one began in an earlier feed: no raw bytes.
    if (header_.masked) std::memcpy(header_.mask.data(), hdr_.data() + hdr_len_ - 4, 4);
    header_.raw = nullptr;
    header_.raw_size = 0;
    hdr_len_ = 0;
    need_ = 2;
    if (!begin_frame()) return fail(FrameError::Rejected, off);
  }
  return {Status::Ok, off};
}

std::size_t encode_header(std::uint8_t* out, bool fin, std::uint8_t opcode, std::uint64_t length,
                          const std::uint8_t* mask, bool rsv1) noexcept {
  out[0] = static_cast<std::uint8_t>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
  const std::uint8_t mask_bit = mask != nullptr ? 0x80 : 0;
  std::size_t at = 2;
  if (length < 126) {
    out[1] = static_cast<std::uint8_t>(mask_bit | length);
  } else if (length <= 0xFFFF) {
    out[1] = static_cast<std::uint8_t>(mask_bit | 126);
    out[2] = static_cast<std::uint8_t>(length >> 8);
    out[3] = static_cast<std::uint8_t>(length);
    at = 4;
  } else {
    out[1] = static_cast<std::uint8_t>(mask_bit | 127);
    for (std::size_t i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(length >> (56 - 8 * i));
    at = 10;
  }
  if (mask != nullptr) {
    std::memcpy(out + at, mask, 4);
    at += 4;
  }
  return at;
}

CloseCheck check_close_payload(const std::uint8_t* p, std::size_t n) noexcept {
  CloseCheck c;
  if (n == 0) return c;
  if (n == 1) {
    c.error = 1002;  // half a code
    c.code = 0;
    return c;
  }
  c.code = static_cast<std::uint16_t>((p[0] << 8) | p[1]);
  if (!sendable_close_code(c.code)) {
    c.error = 1002;
  } else if (!valid_utf8(p + 2, n - 2)) {
    c.error = 1007;
  }
  return c;
}

}  // namespace sluice::ws
