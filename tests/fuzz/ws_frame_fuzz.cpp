// libFuzzer target for the WebSocket frame parser (ws/frame): arbitrary bytes
// fed from either role, with or without RSV1 allowed, cut into pieces whose
// sizes come from the input. Each piece is its own heap allocation of exactly
// its size, and the handler rewrites every payload byte in place as the relay
// does, so ASan sees any read or write outside the span.
// It checks the contract callers rely on: feed() never claims more than it
// was given and takes everything when it succeeds, errors are sticky and
// silent, every header it reports obeys RFC 6455 section 5 for its role,
// payload spans lie inside the piece with contiguous offsets, a header's raw
// bytes (when it came whole) lie inside the piece, and a frame ends exactly
// when its header's length has been delivered.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "ws/frame.hpp"

namespace {

namespace ws = sluice::ws;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Handler final : ws::FrameHandler {
  ws::Verdict on_frame_header(const ws::FrameHeader& h) override {
    check(!dead && !in_frame);
    check(h.opcode <= ws::kBinary || (h.opcode >= ws::kClose && h.opcode <= ws::kPong));
    check(!h.rsv2 && !h.rsv3);
    check(!h.rsv1 || (allow_rsv1 && (h.opcode == ws::kText || h.opcode == ws::kBinary)));
    check(h.masked == (role == ws::Role::FromClient));
    check((h.length >> 63) == 0);
    if (ws::is_control(h.opcode)) check(h.fin && h.length <= 125);
    // A header that came whole in this piece says where; its bytes are the
    // header's own, of the minimal size for its length.
    if (h.raw != nullptr) {
      check(h.raw >= lo && h.raw_size <= static_cast<std::size_t>(hi - h.raw));
      check(h.raw_size == ws::header_size(h.length, h.masked));
      check(((h.raw[0] & 0x0F) == h.opcode) && ((h.raw[1] & 0x80) != 0) == h.masked);
    }
    check(parser->in_message() == (!ws::is_control(h.opcode) ? !h.fin : open_before));
    if (!ws::is_control(h.opcode)) {
      check(h.opcode == ws::kContinuation ? open_before : !open_before);
      open_before = !h.fin;
    }
    cur = h;
    in_frame = true;
    got = 0;
    return ++frames == abort_at ? ws::Verdict::Abort : ws::Verdict::Continue;
  }
  ws::Verdict on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset) override {
    check(!dead && in_frame && parser->in_frame() && n > 0);
    check(p >= lo && n <= static_cast<std::size_t>(hi - p));
    check(offset == got && n <= cur.length - got);
    for (std::size_t i = 0; i < n; ++i) p[i] ^= cur.mask[(offset + i) % 4];  // in place, like the relay
    got += n;
    return ws::Verdict::Continue;
  }
  ws::Verdict on_frame_end() override {
    check(!dead && in_frame && !parser->in_frame());
    check(got == cur.length);
    in_frame = false;
    return ws::Verdict::Continue;
  }

  ws::FrameParser* parser = nullptr;
  ws::Role role = ws::Role::FromClient;
  bool allow_rsv1 = false;
  int abort_at = -1;  // Abort from the header of frame abort_at (1-based)
  const std::uint8_t* lo = nullptr;
  const std::uint8_t* hi = nullptr;
  bool dead = false;
  bool in_frame = false;
  bool open_before = false;  // a data message is open (tracked here independently)
  ws::FrameHeader cur{};
  std::uint64_t got = 0;
  int frames = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 5) return 0;
  const std::uint8_t mode = data[0];
  const std::uint8_t steps[3] = {data[1], data[2], data[3]};  // piece sizes, cycled
  data += 4;
  size -= 4;
  Handler h;
  h.role = (mode & 1) ? ws::Role::FromServer : ws::Role::FromClient;
  h.allow_rsv1 = (mode & 2) != 0;
  h.abort_at = (mode & 4) ? (mode >> 3) : -1;
  ws::FrameParser parser(h.role, h, h.allow_rsv1);
  h.parser = &parser;
  std::size_t k = 0;
  for (std::size_t begin = 0; begin < size; ++k) {
    // 0 gives an empty piece, which must be harmless.
    const std::size_t len = std::min<std::size_t>(steps[k % 3] % 80, size - begin);
    std::vector<std::uint8_t> piece(data + begin, data + begin + len);
    h.lo = piece.data();
    h.hi = piece.data() + len;
    const ws::FrameParser::Result r = parser.feed(piece.data(), len);
    check(r.consumed <= len);
    if (r.status == ws::FrameParser::Status::Error) {
      check(parser.error() != ws::FrameError::None);
      check(ws::close_code(parser.error()) == 1002 || parser.error() == ws::FrameError::Rejected);
      check(parser.error() != ws::FrameError::Rejected || h.frames == h.abort_at);
      h.dead = true;  // any callback from now on aborts
      const ws::FrameError e = parser.error();
      const ws::FrameParser::Result again = parser.feed(piece.data(), len);
      check(again.status == ws::FrameParser::Status::Error && again.consumed == 0 && parser.error() == e);
      return 0;
    }
    check(r.consumed == len);
    check(parser.in_message() == h.open_before);
    begin += len;
    if (len == 0 && k > 4 * size + 16) break;  // every step 0: nothing would ever move
  }
  // The close-payload check on the same bytes: pure, total, one of three answers.
  const ws::CloseCheck c = ws::check_close_payload(data, std::min<std::size_t>(size, 125));
  check(c.error == 0 || c.error == 1002 || c.error == 1007);
  // And the encoder against the parser: a header for the input's first bytes
  // as a length must parse back to that length.
  std::uint64_t length = 0;
  for (std::size_t i = 0; i < std::min<std::size_t>(size, 8); ++i) length = (length << 8) | data[i];
  length >>= 1;  // < 2^63
  const std::uint8_t key[4] = {1, 2, 3, 4};
  const bool masked = (mode & 1) == 0;
  std::vector<std::uint8_t> hdr(ws::kMaxHeaderBytes);
  const std::size_t hn = ws::encode_header(hdr.data(), true, ws::kBinary, length, masked ? key : nullptr);
  check(hn == ws::header_size(length, masked));
  hdr.resize(hn);
  Handler h2;
  h2.role = h.role;
  ws::FrameParser p2(h2.role, h2);
  h2.parser = &p2;
  h2.lo = hdr.data();
  h2.hi = hdr.data() + hn;
  const ws::FrameParser::Result r2 = p2.feed(hdr.data(), hn);
  check(r2.status == ws::FrameParser::Status::Ok && r2.consumed == hn);
  check(h2.frames == 1 && h2.cur.length == length && (length == 0 || p2.in_frame()));
  return 0;
}
