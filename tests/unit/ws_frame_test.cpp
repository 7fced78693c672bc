// Tests for src/ws/frame: the RFC 6455 frame parser, the header encoder and
// the close-payload check.
//
// Frames are built with encode_header (payload masked by the test), then fed
// whole, split in two at every offset (sampled for the large ones), in three
// pieces for short inputs, and byte by byte; every run must give the same
// headers, the same unmasked payload (unmasked with the offsets the parser
// reports), the same frame ends and the same error at the same offset. Each
// piece is copied into a buffer of its own exact size, so a read past the
// span shows up under the sanitizers, and every payload span is checked to
// lie inside the piece it came from.
#include <catch2/catch.hpp>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "ws/frame.hpp"

namespace {

using sluice::ws::CloseCheck;
using sluice::ws::FrameError;
using sluice::ws::FrameHandler;
using sluice::ws::FrameHeader;
using sluice::ws::FrameParser;
using sluice::ws::Role;
using sluice::ws::Verdict;
namespace ws = sluice::ws;
using Bytes = std::vector<std::uint8_t>;

struct Frame {
  bool fin = true;
  std::uint8_t opcode = ws::kBinary;
  std::string payload;
  bool rsv1 = false;
};

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 251) & 0xFF);
  return s;
}

// The wire bytes of `frames`; masked frames get a key that changes per frame.
Bytes build(const std::vector<Frame>& frames, bool masked) {
  Bytes out;
  std::uint8_t seed = 0x5A;
  for (const Frame& f : frames) {
    const std::uint8_t key[4] = {seed, static_cast<std::uint8_t>(seed ^ 0xFF),
                                 static_cast<std::uint8_t>(seed + 0x37), 0x01};
    seed = static_cast<std::uint8_t>(seed * 7 + 3);
    std::uint8_t hdr[ws::kMaxHeaderBytes];
    const std::size_t hn = ws::encode_header(hdr, f.fin, f.opcode, f.payload.size(), masked ? key : nullptr, f.rsv1);
    REQUIRE(hn == ws::header_size(f.payload.size(), masked));
    out.insert(out.end(), hdr, hdr + hn);
    for (std::size_t i = 0; i < f.payload.size(); ++i) {
      const auto c = static_cast<std::uint8_t>(f.payload[i]);
      out.push_back(masked ? static_cast<std::uint8_t>(c ^ key[i % 4]) : c);
    }
  }
  return out;
}

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string hex(const std::string& s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * s.size());
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xF];
  }
  return out;
}

// Canonical text for one frame as the handler should see it; in_message and
// message_opcode are the parser's state while on_frame_header runs.
std::string frame_text(const Frame& f, bool masked, bool in_message, int message_opcode) {
  std::ostringstream s;
  s << "H fin=" << f.fin << " rsv1=" << f.rsv1 << " op=" << int(f.opcode) << " masked=" << masked
    << " len=" << f.payload.size() << " open=" << in_message << " msg_op=" << message_opcode << "\n";
  s << "P " << hex(f.payload) << "\nE\n";
  return s.str();
}

// Expected log for a well-formed sequence, tracking message state the way
// the RFC describes it (independently of the parser's own code).
std::string expected_log(const std::vector<Frame>& frames, bool masked) {
  std::string out;
  bool open = false;
  int msg_op = 0;
  for (const Frame& f : frames) {
    if (!ws::is_control(f.opcode)) {
      if (f.opcode != ws::kContinuation) msg_op = f.opcode;
      open = !f.fin;
    }
    out += frame_text(f, masked, open, msg_op);
  }
  return out;
}

struct Policy {
  int abort_header = -1;   // Abort from on_frame_header of frame k
  int abort_payload = -1;  // Abort from the first on_payload of frame k
  int abort_end = -1;      // Abort from on_frame_end of frame k
};

class Recorder final : public FrameHandler {
 public:
  explicit Recorder(Policy policy) : policy_(policy) {}

  Verdict on_frame_header(const FrameHeader& h) override {
    CHECK_FALSE(in_frame_);
    CHECK(parser->in_frame() == false);
    cur_ = h;
    in_frame_ = true;
    got_ = 0;
    plain_.clear();
    std::ostringstream s;
    s << "H fin=" << h.fin << " rsv1=" << h.rsv1 << " op=" << int(h.opcode) << " masked=" << h.masked
      << " len=" << h.length << " open=" << parser->in_message() << " msg_op=" << int(parser->message_opcode())
      << "\n";
    log += s.str();
    CHECK_FALSE(h.rsv2);
    CHECK_FALSE(h.rsv3);
    return frames_++ == policy_.abort_header ? Verdict::Abort : Verdict::Continue;
  }
  Verdict on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset) override {
    // Checked by hand and reported only on failure: this runs once per byte
    // in the byte-by-byte sweeps of 70000-byte frames.
    if (!in_frame_ || !parser->in_frame() || n == 0) FAIL("payload outside a frame, or empty");
    // The span lies inside the piece being fed: the relay rewrites it in place.
    if (p < lo || p + n > hi) FAIL("payload span outside the fed piece");
    if (offset != got_) FAIL("offset " << offset << " after " << got_ << " bytes");
    if (got_ + n > cur_.length) FAIL("more payload than the header said");
    if (frames_ - 1 == policy_.abort_payload) return Verdict::Abort;  // before recording: the span depends on the split
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint8_t k = cur_.masked ? cur_.mask[(offset + i) % 4] : 0;
      plain_ += static_cast<char>(p[i] ^ k);
    }
    got_ += n;
    return Verdict::Continue;
  }
  Verdict on_frame_end() override {
    REQUIRE(in_frame_);
    CHECK(got_ == cur_.length);
    CHECK_FALSE(parser->in_frame());
    in_frame_ = false;
    log += "P " + hex(plain_) + "\nE\n";
    return frames_ - 1 == policy_.abort_end ? Verdict::Abort : Verdict::Continue;
  }

  FrameParser* parser = nullptr;
  const std::uint8_t* lo = nullptr;  // the piece being fed
  const std::uint8_t* hi = nullptr;
  std::string log;

 private:
  Policy policy_;
  FrameHeader cur_{};
  bool in_frame_ = false;
  std::uint64_t got_ = 0;
  std::string plain_;
  int frames_ = 0;
};

struct Case {
  Bytes input;
  Role role = Role::FromClient;
  bool allow_rsv1 = false;
  Policy policy{};
};

// The handler's log, then the error and where the stream stopped.
std::string parse(const Case& c, const std::vector<std::size_t>& cuts) {
  Recorder rec(c.policy);
  FrameParser parser(c.role, rec, c.allow_rsv1);
  rec.parser = &parser;
  std::size_t begin = 0;
  std::string tail = "error=none";
  for (std::size_t k = 0; k <= cuts.size(); ++k) {
    const std::size_t end = k < cuts.size() ? cuts[k] : c.input.size();
    Bytes piece(c.input.begin() + static_cast<std::ptrdiff_t>(begin),
                c.input.begin() + static_cast<std::ptrdiff_t>(end));
    rec.lo = piece.data();
    rec.hi = piece.data() + piece.size();
    const FrameParser::Result r = parser.feed(piece.data(), piece.size());
    REQUIRE(r.consumed <= piece.size());
    if (r.status == FrameParser::Status::Error) {
      REQUIRE(parser.error() != FrameError::None);
      const std::string before = rec.log;
      // Sticky: nothing more is taken, nothing more is reported.
      const FrameParser::Result again = parser.feed(piece.data(), piece.size());
      CHECK(again.status == FrameParser::Status::Error);
      CHECK(again.consumed == 0);
      CHECK(rec.log == before);
      CHECK(parser.error() != FrameError::None);
      tail = std::string("error=") + ws::to_string(parser.error()) + " at=" + std::to_string(begin + r.consumed);
      return rec.log + tail;
    }
    REQUIRE(r.consumed == piece.size());
    begin = end;
  }
  return rec.log + tail + " in_frame=" + std::to_string(parser.in_frame()) +
         " in_message=" + std::to_string(parser.in_message());
}

// Whole, every 2-way split (every one up to 4 KiB; beyond that the first and
// last 64 offsets, a stride, and around each 16-bit boundary), every 3-way split of short inputs, and byte
// by byte: all must read as `want`.
void sweep(const Case& c, const std::string& want) {
  const std::size_t n = c.input.size();
  {
    INFO("fed whole");
    REQUIRE(parse(c, {}) == want);
  }
  for (std::size_t i = 0; i <= n; ++i) {
    const bool near_edge = i <= 64 || i + 64 >= n || (i % 65536) <= 16 || (i % 65536) >= 65520;
    if (n > 4096 && !near_edge && i % 1999 != 0) continue;
    INFO("split at " << i);
    REQUIRE(parse(c, {i}) == want);
  }
  if (n <= 64) {
    for (std::size_t i = 0; i <= n; ++i) {
      for (std::size_t j = i; j <= n; ++j) {
        INFO("split at " << i << " and " << j);
        REQUIRE(parse(c, {i, j}) == want);
      }
    }
  }
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < n; ++i) every.push_back(i);
  INFO("byte by byte");
  REQUIRE(parse(c, every) == want);
}

void expect_frames(const std::vector<Frame>& frames, bool masked, Role role, bool allow_rsv1 = false) {
  Case c;
  c.input = build(frames, masked);
  c.role = role;
  c.allow_rsv1 = allow_rsv1;
  bool open = false;
  for (const Frame& f : frames) {
    if (!ws::is_control(f.opcode)) open = !f.fin;
  }
  sweep(c, expected_log(frames, masked) + "error=none in_frame=0 in_message=" + std::to_string(open));
}

// The same error at the same offset wherever the input is split, after the
// same events.
void expect_error(Case c, FrameError want) {
  const std::string whole = parse(c, {});
  INFO("parsed whole:\n" << whole);
  REQUIRE(whole.find(std::string("error=") + ws::to_string(want) + " at=") != std::string::npos);
  sweep(c, whole);
}

Case raw(Bytes b, Role role = Role::FromServer, bool allow_rsv1 = false) {
  Case c;
  c.input = std::move(b);
  c.role = role;
  c.allow_rsv1 = allow_rsv1;
  return c;
}

}  // namespace

// ---- round trips at every split point ----

TEST_CASE("ws frame: masked text decodes the same at every split point", "[ws]") {
  expect_frames({{true, ws::kText, "Hello, WebSocket! \xc3\xa9\xe2\x82\xac"}}, true, Role::FromClient);
}

TEST_CASE("ws frame: every length class round-trips masked and unmasked at every split point", "[ws]") {
  for (std::size_t len : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 70000u}) {
    for (bool masked : {true, false}) {
      INFO("length " << len << " masked " << masked);
      std::vector<Frame> frames{{true, ws::kBinary, pattern(len)}};
      const Bytes wire = build(frames, masked);
      CHECK(wire.size() == ws::header_size(len, masked) + len);
      expect_frames(frames, masked, masked ? Role::FromClient : Role::FromServer);
    }
  }
}

TEST_CASE("ws frame: frames back to back decode the same at every split point", "[ws]") {
  const std::vector<Frame> frames{
      {true, ws::kText, "first"},   {true, ws::kBinary, ""},        {true, ws::kPing, "p"},
      {true, ws::kBinary, pattern(300)}, {true, ws::kPong, pattern(125)}, {true, ws::kText, pattern(126)},
      {true, ws::kClose, std::string("\x03\xe8" "bye", 5)},
  };
  expect_frames(frames, true, Role::FromClient);
  expect_frames(frames, false, Role::FromServer);
}

TEST_CASE("ws frame: fragmented messages with control frames between fragments", "[ws]") {
  const std::vector<Frame> frames{
      {false, ws::kText, "frag"},
      {true, ws::kPing, "are you there"},
      {false, ws::kContinuation, ""},
      {true, ws::kPong, ""},
      {false, ws::kContinuation, pattern(200)},
      {true, ws::kContinuation, "end"},
      {true, ws::kText, "whole"},
      {false, ws::kBinary, pattern(10)},
      {true, ws::kClose, ""},
      {true, ws::kContinuation, pattern(3)},
  };
  expect_frames(frames, true, Role::FromClient);
  expect_frames(frames, false, Role::FromServer);
}

TEST_CASE("ws frame: a message left open is reported open", "[ws]") {
  expect_frames({{false, ws::kBinary, "abc"}, {false, ws::kContinuation, "def"}}, false, Role::FromServer);
}

TEST_CASE("ws frame: a partial frame leaves the parser inside it", "[ws]") {
  Case c = raw(build({{true, ws::kBinary, pattern(1000)}}, false));
  c.input.resize(500);
  Recorder rec({});
  FrameParser parser(Role::FromServer, rec);
  rec.parser = &parser;
  rec.lo = c.input.data();
  rec.hi = c.input.data() + c.input.size();
  const auto r = parser.feed(c.input.data(), c.input.size());
  CHECK(r.status == FrameParser::Status::Ok);
  CHECK(r.consumed == 500);
  CHECK(parser.in_frame());
}

TEST_CASE("ws frame: RSV1 passes on first data frames when an extension allows it", "[ws]") {
  const std::vector<Frame> frames{
      {true, ws::kText, "compressed", true},
      {false, ws::kBinary, "a", true},
      {true, ws::kPing, ""},
      {true, ws::kContinuation, "b"},
  };
  expect_frames(frames, true, Role::FromClient, true);
}

TEST_CASE("ws frame: the largest legal length is accepted", "[ws]") {
  const std::uint64_t len = 0x7FFF'FFFF'FFFF'FFFFull;
  std::uint8_t hdr[ws::kMaxHeaderBytes];
  const std::size_t hn = ws::encode_header(hdr, true, ws::kBinary, len, nullptr);
  REQUIRE(hn == 10);
  Case c = raw(Bytes(hdr, hdr + hn));
  sweep(c, "H fin=1 rsv1=0 op=2 masked=0 len=9223372036854775807 open=0 msg_op=2\n"
           "error=none in_frame=1 in_message=0");
}

// ---- protocol errors: the same error at the same offset at every split point ----

TEST_CASE("ws frame: reserved opcodes are protocol errors", "[ws]") {
  for (std::uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    INFO("opcode " << int(op));
    // A good frame first: the events before the error must survive every split.
    expect_error(raw(cat(build({{true, ws::kText, "ok"}}, false), {static_cast<std::uint8_t>(0x80 | op), 0x00})),
                 FrameError::ReservedOpcode);
  }
}

TEST_CASE("ws frame: control frames longer than 125 bytes are protocol errors", "[ws]") {
  expect_error(raw({0x89, 126, 0x00, 0x7E}), FrameError::ControlTooLong);
  expect_error(raw({0x88, 127, 0, 0, 0, 0, 0, 1, 0, 0}), FrameError::ControlTooLong);
  expect_error(raw({0x8A, 0xFE, 0x00, 0x80, 1, 2, 3, 4}, Role::FromClient), FrameError::ControlTooLong);
  // 125 is fine.
  expect_frames({{true, ws::kPing, pattern(125)}}, true, Role::FromClient);
}

TEST_CASE("ws frame: fragmented control frames are protocol errors", "[ws]") {
  for (std::uint8_t op : {ws::kClose, ws::kPing, ws::kPong}) {
    INFO("opcode " << int(op));
    expect_error(raw({op, 0x00}), FrameError::FragmentedControl);
  }
}

TEST_CASE("ws frame: a 64-bit length with the top bit set is a protocol error", "[ws]") {
  expect_error(raw({0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}), FrameError::LengthMsbSet);
  expect_error(raw({0x82, 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), FrameError::LengthMsbSet);
  expect_error(raw({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 9, 9, 9, 9}, Role::FromClient),
               FrameError::LengthMsbSet);
}

TEST_CASE("ws frame: non-minimal length encodings are protocol errors", "[ws]") {
  expect_error(raw({0x82, 126, 0x00, 0x00}), FrameError::NonMinimalLength);
  expect_error(raw({0x82, 126, 0x00, 125}), FrameError::NonMinimalLength);
  expect_error(raw({0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5}), FrameError::NonMinimalLength);
  expect_error(raw({0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}), FrameError::NonMinimalLength);
  expect_error(raw({0x82, 0xFE, 0x00, 0x7D, 1, 2, 3, 4}, Role::FromClient), FrameError::NonMinimalLength);
  // The smallest lengths of each form are fine.
  expect_frames({{true, ws::kBinary, pattern(126)}, {true, ws::kBinary, pattern(65536)}}, false, Role::FromServer);
}

TEST_CASE("ws frame: masking must follow the sender's role", "[ws]") {
  expect_error(raw({0x81, 0x01, 'x'}, Role::FromClient), FrameError::MaskRequired);
  expect_error(raw({0x81, 0x81, 1, 2, 3, 4, 'x'}, Role::FromServer), FrameError::MaskForbidden);
  expect_error(raw(build({{true, ws::kPing, ""}}, false), Role::FromClient), FrameError::MaskRequired);
  expect_error(raw(cat(build({{true, ws::kText, "a"}}, true), build({{true, ws::kText, "b"}}, false)),
                   Role::FromClient),
               FrameError::MaskRequired);
}

TEST_CASE("ws frame: RSV bits without an extension are protocol errors", "[ws]") {
  expect_error(raw({0xC1, 0x00}), FrameError::ReservedBits);                    // rsv1, no extension
  expect_error(raw({0xA1, 0x00}, Role::FromServer, true), FrameError::ReservedBits);  // rsv2
  expect_error(raw({0x91, 0x00}, Role::FromServer, true), FrameError::ReservedBits);  // rsv3
  // With permessage-deflate, RSV1 stays forbidden on control frames and continuations.
  expect_error(raw({0xC9, 0x00}, Role::FromServer, true), FrameError::ReservedBits);
  expect_error(raw({0x02, 0x00, 0xC0, 0x00}, Role::FromServer, true), FrameError::ReservedBits);
}

TEST_CASE("ws frame: a continuation with no message open is a protocol error", "[ws]") {
  expect_error(raw({0x80, 0x00}), FrameError::UnexpectedContinuation);
  expect_error(raw({0x00, 0x01, 'a'}), FrameError::UnexpectedContinuation);
  // After a message ends, a continuation is again out of place.
  expect_error(raw(cat(build({{false, ws::kText, "a"}, {true, ws::kContinuation, "b"}}, false), {0x80, 0x00})),
               FrameError::UnexpectedContinuation);
}

TEST_CASE("ws frame: a new data frame inside an open message is a protocol error", "[ws]") {
  expect_error(raw(cat(build({{false, ws::kText, "a"}, {true, ws::kPing, "x"}}, false), {0x81, 0x00})),
               FrameError::MessageNotFinished);
  expect_error(raw(cat(build({{false, ws::kBinary, "a"}}, false), {0x02, 0x00})),
               FrameError::MessageNotFinished);
}

TEST_CASE("ws frame: an error anywhere in a header is found wherever the header is split", "[ws]") {
  // Errors in the extended length arrive only with the last length byte; the
  // mask key that follows must not be needed to report them.
  Case c = raw({0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1}, Role::FromClient);
  expect_error(c, FrameError::NonMinimalLength);
  CHECK(parse(c, {}) == "error=non_minimal_length at=10");
}

TEST_CASE("ws frame: the handler can refuse a header, a payload or a frame end", "[ws]") {
  const Bytes wire = build({{true, ws::kText, "one"}, {true, ws::kBinary, pattern(40)}, {true, ws::kText, "x"}}, true);
  Case c = raw(wire, Role::FromClient);
  c.policy.abort_header = 1;
  expect_error(c, FrameError::Rejected);
  c.policy = {};
  c.policy.abort_end = 0;
  expect_error(c, FrameError::Rejected);
  CHECK(parse(c, {}).find("at=9") != std::string::npos);  // 2 + 4 + 3 bytes
  // Refused from on_payload: how far it got depends on the split, the error does not.
  c.policy = {};
  c.policy.abort_payload = 1;
  for (std::size_t i = 0; i <= wire.size(); ++i) {
    INFO("split at " << i);
    const std::string out = parse(c, {i});
    CHECK(out.find("error=rejected") != std::string::npos);
    CHECK(out.find("P " + hex(pattern(40))) == std::string::npos);
  }
  CHECK(ws::close_code(FrameError::Rejected) == 1008);
}

TEST_CASE("ws frame: every protocol error maps to close code 1002", "[ws]") {
  for (FrameError e : {FrameError::ReservedOpcode, FrameError::ReservedBits, FrameError::ControlTooLong,
                       FrameError::FragmentedControl, FrameError::LengthMsbSet, FrameError::NonMinimalLength,
                       FrameError::MaskRequired, FrameError::MaskForbidden, FrameError::UnexpectedContinuation,
                       FrameError::MessageNotFinished}) {
    INFO(ws::to_string(e));
    CHECK(ws::close_code(e) == 1002);
  }
}

TEST_CASE("ws frame: reset revives a dead parser", "[ws]") {
  Recorder rec({});
  FrameParser parser(Role::FromServer, rec);
  rec.parser = &parser;
  Bytes bad{0x83, 0x00};
  rec.lo = bad.data();
  rec.hi = bad.data() + bad.size();
  CHECK(parser.feed(bad.data(), bad.size()).status == FrameParser::Status::Error);
  CHECK(parser.error() == FrameError::ReservedOpcode);
  parser.reset();
  CHECK(parser.error() == FrameError::None);
  Bytes good = build({{true, ws::kText, "hi"}}, false);
  rec.lo = good.data();
  rec.hi = good.data() + good.size();
  const auto r = parser.feed(good.data(), good.size());
  CHECK(r.status == FrameParser::Status::Ok);
  CHECK(r.consumed == good.size());
  CHECK(rec.log.find("P 6869") != std::string::npos);
}

// ---- payload rewritten in place ----

namespace {

// Re-masks in place with another key, as the relay does.
class Remasker final : public FrameHandler {
 public:
  Verdict on_frame_header(const FrameHeader& h) override {
    header = h;
    return Verdict::Continue;
  }
  Verdict on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset) override {
    for (std::size_t i = 0; i < n; ++i) p[i] ^= header.mask[(offset + i) % 4] ^ kNewKey[(offset + i) % 4];
    return Verdict::Continue;
  }
  Verdict on_frame_end() override { return Verdict::Continue; }
  static constexpr std::uint8_t kNewKey[4] = {0xDE, 0xAD, 0xBE, 0xEF};
  FrameHeader header{};
};

}  // namespace

TEST_CASE("ws frame: payload spans point into the fed buffer and can be re-masked in place", "[ws]") {
  const std::string text = pattern(1000);
  Bytes wire = build({{true, ws::kBinary, text}}, true);
  const std::size_t hn = ws::header_size(text.size(), true);
  Remasker h;
  FrameParser parser(Role::FromClient, h);
  // Fed in uneven pieces of the same buffer.
  std::size_t off = 0;
  for (std::size_t step : {3u, 5u, 100u, 1u, 2000u}) {
    const std::size_t n = std::min(step, wire.size() - off);
    REQUIRE(parser.feed(wire.data() + off, n).consumed == n);
    off += n;
  }
  REQUIRE(off == wire.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    INFO("byte " << i);
    REQUIRE((wire[hn + i] ^ Remasker::kNewKey[i % 4]) == static_cast<std::uint8_t>(text[i]));
  }
}

// ---- encoder ----

TEST_CASE("ws frame: the encoder writes the RFC 6455 examples byte for byte", "[ws]") {
  std::uint8_t out[ws::kMaxHeaderBytes];
  // 5.7: a single-frame unmasked text message "Hello".
  REQUIRE(ws::encode_header(out, true, ws::kText, 5, nullptr) == 2);
  CHECK(Bytes(out, out + 2) == Bytes{0x81, 0x05});
  // 5.7: the same, masked with 37 fa 21 3d.
  const std::uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  REQUIRE(ws::encode_header(out, true, ws::kText, 5, key) == 6);
  CHECK(Bytes(out, out + 6) == Bytes{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d});
  // 5.7: fragmented "Hel" + "lo".
  REQUIRE(ws::encode_header(out, false, ws::kText, 3, nullptr) == 2);
  CHECK(Bytes(out, out + 2) == Bytes{0x01, 0x03});
  REQUIRE(ws::encode_header(out, true, ws::kContinuation, 2, nullptr) == 2);
  CHECK(Bytes(out, out + 2) == Bytes{0x80, 0x02});
  // 5.7: 256 bytes and 64 KiB of binary data.
  REQUIRE(ws::encode_header(out, true, ws::kBinary, 256, nullptr) == 4);
  CHECK(Bytes(out, out + 4) == Bytes{0x82, 0x7E, 0x01, 0x00});
  REQUIRE(ws::encode_header(out, true, ws::kBinary, 65536, nullptr) == 10);
  CHECK(Bytes(out, out + 10) == Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0});
  // RSV1 (permessage-deflate) and a masked 64-bit length.
  REQUIRE(ws::encode_header(out, true, ws::kText, 0x0102030405ull, key, true) == 14);
  CHECK(Bytes(out, out + 14) == Bytes{0xC1, 0xFF, 0, 0, 0, 1, 2, 3, 4, 5, 0x37, 0xfa, 0x21, 0x3d});
}

TEST_CASE("ws frame: header sizes follow the minimal length encoding", "[ws]") {
  CHECK(ws::header_size(0, false) == 2);
  CHECK(ws::header_size(125, false) == 2);
  CHECK(ws::header_size(126, false) == 4);
  CHECK(ws::header_size(65535, false) == 4);
  CHECK(ws::header_size(65536, false) == 10);
  CHECK(ws::header_size(0, true) == 6);
  CHECK(ws::header_size(126, true) == 8);
  CHECK(ws::header_size(65536, true) == 14);
  static_assert(ws::header_size(0x7FFF'FFFF'FFFF'FFFFull, true) == ws::kMaxHeaderBytes);
}

TEST_CASE("ws frame: the RFC 6455 masked Hello parses and unmasks", "[ws]") {
  Case c = raw({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}, Role::FromClient);
  sweep(c, "H fin=1 rsv1=0 op=1 masked=1 len=5 open=0 msg_op=1\nP " + hex("Hello") +
               "\nE\nerror=none in_frame=0 in_message=0");
}

// ---- close payloads ----

namespace {

CloseCheck close_of(std::uint16_t code, const std::string& reason = "") {
  Bytes b{static_cast<std::uint8_t>(code >> 8), static_cast<std::uint8_t>(code)};
  b.insert(b.end(), reason.begin(), reason.end());
  return ws::check_close_payload(b.data(), b.size());
}

}  // namespace

TEST_CASE("ws frame: close payloads are checked for length, code and UTF-8", "[ws]") {
  SECTION("empty is fine and carries 1005") {
    const CloseCheck c = ws::check_close_payload(nullptr, 0);
    CHECK(c.ok());
    CHECK(c.code == 1005);
  }
  SECTION("one byte is a protocol error") {
    const std::uint8_t b[1] = {0x03};
    CHECK(ws::check_close_payload(b, 1).error == 1002);
  }
  SECTION("codes that may be sent pass") {
    for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
                               3999, 4000, 4999}) {
      INFO("code " << code);
      const CloseCheck c = close_of(code, "reason");
      CHECK(c.ok());
      CHECK(c.code == code);
    }
  }
  SECTION("codes that may not be sent are protocol errors") {
    for (std::uint16_t code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
      INFO("code " << code);
      const CloseCheck c = close_of(code);
      CHECK(c.error == 1002);
      CHECK(c.code == code);
    }
  }
  SECTION("the reason must be UTF-8") {
    CHECK(close_of(1000, "").ok());
    CHECK(close_of(1000, "plain ascii").ok());
    CHECK(close_of(1000, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xed\x9f\xbf\xf4\x8f\xbf\xbf").ok());
    for (const char* bad : {"\x80", "\xc0\x80", "\xc1\xbf", "\xc3", "\xe0\x80\x80", "\xe0\x9f\xbf",
                            "\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf",
                            "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "ok\xe2\x82", "\xe2\x28\xa1",
                            "\xf0\x9f\x98"}) {
      INFO("reason " << hex(bad));
      const CloseCheck c = close_of(1000, bad);
      CHECK(c.error == 1007);
    }
  }
}
