// RFC 6455 frame codec: an incremental frame parser, the header encoder, and
// the check of a close frame's payload.
//
// FrameParser turns a byte stream into frame headers and payload spans. It
// checks everything RFC 6455 section 5 lets a parser check on its own
// (opcodes, RSV bits, control-frame rules, minimal lengths, masking by role,
// fragmentation order) and leaves policy (size limits, UTF-8, what to do with
// a close) to the handler. Payload is handed on as it arrives, still masked:
// a frame is never held whole, and unmasking or re-masking is the caller's
// business (in place: the spans point into the caller's own buffer).
// Pure: no I/O, no allocation, never reads or writes outside the span it is
// given; header bytes split across feeds wait in a 14-byte array.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace sluice::ws {

inline constexpr std::uint8_t kContinuation = 0x0;
inline constexpr std::uint8_t kText = 0x1;
inline constexpr std::uint8_t kBinary = 0x2;
inline constexpr std::uint8_t kClose = 0x8;
inline constexpr std::uint8_t kPing = 0x9;
inline constexpr std::uint8_t kPong = 0xA;

inline constexpr std::size_t kMaxHeaderBytes = 14;     // 2 + 8 (length) + 4 (mask)
inline constexpr std::uint64_t kMaxControlPayload = 125;

// Control frames are the opcodes with the high bit set (close, ping, pong and
// the reserved 0xB-0xF).
constexpr bool is_control(std::uint8_t opcode) noexcept { return (opcode & 0x8) != 0; }

struct FrameHeader {
  bool fin = false;
  bool rsv1 = false, rsv2 = false, rsv3 = false;
  std::uint8_t opcode = 0;
  bool masked = false;
  std::array<std::uint8_t, 4> mask{};  // meaningful only when masked
  std::uint64_t length = 0;            // payload bytes
  // Where the header's own bytes lie in the span given to feed(), when all
  // of them came in that span (nullptr when it was split across feeds). Set
  // for on_frame_header only: a handler may rewrite them in place.
  std::uint8_t* raw = nullptr;
  std::uint8_t raw_size = 0;
};

// Which peer the bytes come from, which fixes the masking rule (RFC 6455 5.1).
enum class Role : std::uint8_t {
  FromClient,  // every frame MUST be masked
  FromServer,  // no frame may be masked
};

enum class Verdict : std::uint8_t {
  Continue,
  Abort,  // stop: feed() returns Error with FrameError::Rejected
};

class FrameHandler {
 public:
  // A complete, checked header. The frame's payload follows; a frame of
  // length 0 ends (on_frame_end) right after this returns.
  virtual Verdict on_frame_header(const FrameHeader& h) = 0;
  // n > 0 payload bytes, still masked, inside the span given to feed(); the
  // handler may rewrite them in place (the relay re-masks). offset_in_frame
  // counts payload bytes of this frame before p (for the mask phase).
  virtual Verdict on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset_in_frame) = 0;
  // All of the frame's payload has been delivered.
  virtual Verdict on_frame_end() = 0;

 protected:
  ~FrameHandler() = default;
};

enum class FrameError : std::uint8_t {
  None,
  ReservedOpcode,          // 3-7, 0xB-0xF
  ReservedBits,            // RSV2/RSV3, or RSV1 with no extension (or where the extension forbids it)
  ControlTooLong,          // control frame payload > 125
  FragmentedControl,       // control frame with FIN clear
  LengthMsbSet,            // 64-bit length with the top bit set
  NonMinimalLength,        // 126 form for < 126, 127 form for <= 0xFFFF
  MaskRequired,            // unmasked frame from a client
  MaskForbidden,           // masked frame from a server
  UnexpectedContinuation,  // continuation with no message open
  MessageNotFinished,      // text/binary frame while a fragmented message is open
  Rejected,                // the handler returned Abort
};
const char* to_string(FrameError e) noexcept;
// The close code to fail the connection with: 1002 for every protocol error;
// 1008 for Rejected, though the handler that aborted usually knows better
// (1009 for a size limit, 1007 for bad UTF-8).
std::uint16_t close_code(FrameError e) noexcept;

class FrameParser {
 public:
  enum class Status : std::uint8_t {
    Ok,     // everything given was consumed
    Error,  // see error(); the parser is dead until reset()
  };
  struct Result {
    Status status;
    std::size_t consumed;  // on Error: bytes taken up to and including the offending ones
  };

  // allow_rsv1: an extension that uses RSV1 was negotiated (permessage-deflate,
  // RFC 7692): RSV1 may then be set on the first frame of a data message, and
  // nowhere else.
  FrameParser(Role role, FrameHandler& handler, bool allow_rsv1 = false) noexcept
      : handler_(handler), must_mask_(role == Role::FromClient), allow_rsv1_(allow_rsv1) {}
  FrameParser(const FrameParser&) = delete;
  FrameParser& operator=(const FrameParser&) = delete;

  // Not const: the payload spans handed to the handler point into p and may
  // be rewritten there.
  Result feed(std::uint8_t* p, std::size_t n) noexcept;
  void reset() noexcept;

  FrameError error() const noexcept { return error_; }
  // Between the first frame of a fragmented data message and its final
  // continuation. Already updated when on_frame_header runs.
  bool in_message() const noexcept { return message_open_; }
  // Opcode (kText or kBinary) of the data message the latest data frame
  // belongs to, continuations included; 0 before any data frame.
  std::uint8_t message_opcode() const noexcept { return message_opcode_; }
  // Inside a frame: its header has been parsed and some payload is still due.
  bool in_frame() const noexcept { return state_ == State::Payload; }

 private:
  // A header that lies whole in the span given to feed() is read in place.
  // One split across feeds gathers in hdr_ (hdr_len_ of them) until need_
  // are there; each stage is checked as soon as its bytes are in, so an
  // error is reported at the same offset whatever the split.
  enum class State : std::uint8_t {
    Start,    // need_ == 2: opcode, flags, 7-bit length, mask bit
    Length,   // header_ has all but length and mask; need_ = 2 + extended length bytes
    MaskKey,  // header_.length set and checked; need_ = whole header
    Payload,  // header_ delivered; remaining_ payload bytes still due
    Dead,     // error_ set; feed() refuses everything
  };

  FrameError check_first_byte(std::uint8_t b0, std::uint8_t len7) const noexcept;
  FrameError check_first_bytes(std::uint8_t b0, std::uint8_t b1) noexcept;
  FrameError check_length(const std::uint8_t* ext) noexcept;
  Result fail(FrameError e, std::size_t consumed) noexcept;
  bool begin_frame() noexcept;
  bool end_frame() noexcept;

  FrameHandler& handler_;
  bool must_mask_;  // the role's rule: a client masks every frame, a server none
  bool allow_rsv1_;
  State state_ = State::Start;
  FrameError error_ = FrameError::None;
  std::array<std::uint8_t, kMaxHeaderBytes> hdr_{};
  std::uint8_t hdr_len_ = 0;
  std::uint8_t need_ = 2;  // header bytes the current stage needs in hdr_
  FrameHeader header_{};
  std::uint64_t remaining_ = 0;
  std::uint64_t offset_ = 0;  // payload bytes of the current frame delivered so far
  bool message_open_ = false;
  std::uint8_t message_opcode_ = 0;
};

// Header bytes for a payload of `length`: 2, 4 or 10, plus 4 when masked.
constexpr std::size_t header_size(std::uint64_t length, bool masked) noexcept {
  return (length < 126 ? 2 : length <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0);
}

// Writes a frame header (minimal length encoding) to out, which must hold at
// least kMaxHeaderBytes; mask == nullptr means unmasked, otherwise 4 key
// bytes. Returns the header size. The payload (masked by the caller) follows.
// The caller keeps length < 2^63.
std::size_t encode_header(std::uint8_t* out, bool fin, std::uint8_t opcode, std::uint64_t length,
                          const std::uint8_t* mask, bool rsv1 = false) noexcept;

struct CloseCheck {
  std::uint16_t error = 0;    // 0: valid; otherwise the code to fail with (1002 or 1007)
  std::uint16_t code = 1005;  // the status code carried; 1005 when the payload is empty
  bool ok() const noexcept { return error == 0; }
};

// Checks an unmasked close payload (RFC 6455 5.5.1, 7.4): empty, or a 2-byte
// code that may be sent on the wire followed by a UTF-8 reason.
CloseCheck check_close_payload(const std::uint8_t* p, std::size_t n) noexcept;

}  // namespace sluice::ws
