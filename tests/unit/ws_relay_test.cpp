// FrameRelay (ws/relay): what goes in from one peer and what comes out for
// the other, decoded again with the frame parser.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/buffer.hpp"
#include "net/transport.hpp"
#include "ws/frame.hpp"
#include "ws/mask.hpp"
#include "ws/relay.hpp"

namespace {

using namespace sluice::ws;

std::vector<std::uint8_t> frame(bool fin, std::uint8_t opcode, const std::string& payload,
                                const MaskKey* key) {
  std::vector<std::uint8_t> out(kMaxHeaderBytes + payload.size());
  std::size_t h = encode_header(out.data(), fin, opcode, payload.size(), key ? key->data() : nullptr);
  std::memcpy(out.data() + h, payload.data(), payload.size());
  if (key) apply_mask(out.data() + h, payload.size(), *key, 0);
  out.resize(h + payload.size());
  return out;
}

std::vector<std::uint8_t> cat(std::initializer_list<std::vector<std::uint8_t>> parts) {
  std::vector<std::uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Decoded {
  bool fin;
  std::uint8_t opcode;
  bool masked;
  MaskKey key;
  std::string payload;  // unmasked
};

// Decodes relay output as the receiving peer would.
struct Decoder final : FrameHandler {
  Verdict on_frame_header(const FrameHeader& h) override {
    frames.push_back({h.fin, h.opcode, h.masked, h.mask, {}});
    return Verdict::Continue;
  }
  Verdict on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset) override {
    if (frames.back().masked) apply_mask(p, n, frames.back().key, offset);
    frames.back().payload.append(reinterpret_cast<const char*>(p), n);
    return Verdict::Continue;
  }
  Verdict on_frame_end() override { return Verdict::Continue; }
  std::vector<Decoded> frames;
};

struct Listener final : RelayListener {
  void on_data_frame() override { ++data_frames; }
  void on_message(std::uint64_t bytes) override { messages.push_back(bytes); }
  bool on_pong(const std::uint8_t* p, std::size_t n) override {
    return keep_pong == std::string(reinterpret_cast<const char*>(p), n);
  }
  bool on_close(std::uint16_t code) override {
    close_code = code;
    return true;
  }
  int data_frames = 0;
  std::vector<std::uint64_t> messages;
  std::string keep_pong = "gateway-ping";
  std::uint16_t close_code = 0;
};

struct Run {
  FrameRelay::Result result{true, 0, ""};
  std::vector<Decoded> out;
  bool out_well_formed = false;
  bool mid_frame = false;
};

// Feeds `input` in pieces cut at `cuts`, each piece in its own pool block.
Run relay(const std::vector<std::uint8_t>& input, Role from, const RelayLimits& limits,
          const std::vector<std::size_t>& cuts = {}, Listener* listener_out = nullptr) {
  sluice::BlockPool pool;
  MaskKeySource keys;
  Listener own;
  Listener& listener = listener_out ? *listener_out : own;
  FrameRelay r(from, limits, from == Role::FromClient ? &keys : nullptr, listener);
  sluice::net::OutBatch out;
  Run run;
  std::size_t begin = 0;
  for (std::size_t k = 0; k <= cuts.size() && run.result.ok; ++k) {
    const std::size_t end = k < cuts.size() ? cuts[k] : input.size();
    // As from a socket: no read is larger than a block.
    for (std::size_t at = begin; at < end && run.result.ok;) {
      const std::size_t n = std::min(end - at, sluice::Block::kCapacity);
      sluice::Block* b = pool.get();
      std::memcpy(b->data, input.data() + at, n);
      run.result = r.feed(b, 0, n, out);
      b->unref();
      at += n;
    }
    begin = end;
  }
  run.mid_frame = r.output_mid_frame();
  std::vector<uv_buf_t> bufs;
  out.to_bufs(bufs);
  std::vector<std::uint8_t> bytes;
  for (const uv_buf_t& b : bufs) bytes.insert(bytes.end(), b.base, b.base + b.len);
  out.clear();
  Decoder d;
  // Toward an upstream the relay speaks as a client: its frames must be masked.
  FrameParser check(from, d);
  run.out_well_formed = check.feed(bytes.data(), bytes.size()).status == FrameParser::Status::Ok;
  run.out = d.frames;
  CHECK(pool.in_use() == 0);  // every block reference handed on was released
  return run;
}

const MaskKey kClientKey{0x11, 0x22, 0x33, 0x44};

}  // namespace

TEST_CASE("ws relay: client frames reach the upstream re-masked with fresh keys", "[ws]") {
  const std::string big(70000, 'x');
  auto input = cat({frame(true, kText, "hello", &kClientKey), frame(true, kBinary, big, &kClientKey),
                    frame(true, kText, "", &kClientKey)});
  Run r = relay(input, Role::FromClient, RelayLimits{});
  REQUIRE(r.result.ok);
  REQUIRE(r.out_well_formed);
  REQUIRE(r.out.size() == 3);
  CHECK(r.out[0].payload == "hello");
  CHECK(r.out[1].payload == big);
  CHECK(r.out[2].payload.empty());
  for (const Decoded& d : r.out) {
    CHECK(d.masked);
    CHECK(d.key != kClientKey);
  }
  CHECK(r.out[0].key != r.out[1].key);
}

TEST_CASE("ws relay: the same plain text comes out at every split point", "[ws]") {
  // A fragmented text message whose code points straddle frames and pieces,
  // with a ping between its fragments, then a close.
  const std::string s1 = "caf\xc3", s2 = "\xa9 \xe2\x82", s3 = "\xac!";
  auto input = cat({frame(false, kText, s1, &kClientKey), frame(true, kPing, "p", &kClientKey),
                    frame(false, kContinuation, s2, &kClientKey),
                    frame(true, kContinuation, s3, &kClientKey),
                    frame(true, kClose, std::string("\x03\xe8" "bye", 5), &kClientKey)});
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    INFO("cut at " << cut);
    Listener l;
    Run r = relay(input, Role::FromClient, RelayLimits{}, {cut}, &l);
    REQUIRE(r.result.ok);
    REQUIRE(r.out_well_formed);
    REQUIRE(r.out.size() == 5);
    CHECK(r.out[0].payload + r.out[2].payload + r.out[3].payload == s1 + s2 + s3);
    CHECK(r.out[1].opcode == kPing);
    CHECK(r.out[4].opcode == kClose);
    CHECK(l.close_code == 1000);
    CHECK(l.messages == std::vector<std::uint64_t>{s1.size() + s2.size() + s3.size()});
  }
}

TEST_CASE("ws relay: upstream frames reach the client unmasked and unchanged", "[ws]") {
  auto input = cat({frame(true, kText, "from upstream", nullptr), frame(true, kBinary, "\x00\x01", nullptr)});
  Run r = relay(input, Role::FromServer, RelayLimits{});
  REQUIRE(r.result.ok);
  REQUIRE(r.out.size() == 2);
  CHECK_FALSE(r.out[0].masked);
  CHECK(r.out[0].payload == "from upstream");
}

TEST_CASE("ws relay: invalid UTF-8 is 1007, also when a message ends inside a character", "[ws]") {
  Run bad = relay(frame(true, kText, "ok \xff", &kClientKey), Role::FromClient, RelayLimits{});
  CHECK_FALSE(bad.result.ok);
  CHECK(bad.result.close_code == 1007);
  Run cut_short = relay(frame(true, kText, "\xe2\x82", &kClientKey), Role::FromClient, RelayLimits{});
  CHECK_FALSE(cut_short.result.ok);
  CHECK(cut_short.result.close_code == 1007);
  RelayLimits off;
  off.validate_utf8 = false;
  CHECK(relay(frame(true, kText, "\xff", &kClientKey), Role::FromClient, off).result.ok);
}

TEST_CASE("ws relay: frame and message limits are 1009 before any payload goes out", "[ws]") {
  RelayLimits limits;
  limits.max_frame_bytes = 100;
  limits.max_message_bytes = 150;
  Run frame_over = relay(frame(true, kBinary, std::string(101, 'a'), &kClientKey), Role::FromClient, limits);
  CHECK_FALSE(frame_over.result.ok);
  CHECK(frame_over.result.close_code == 1009);
  CHECK(frame_over.out.empty());
  auto message = cat({frame(false, kBinary, std::string(100, 'a'), &kClientKey),
                      frame(true, kContinuation, std::string(51, 'b'), &kClientKey)});
  Run message_over = relay(message, Role::FromClient, limits);
  CHECK_FALSE(message_over.result.ok);
  CHECK(message_over.result.close_code == 1009);
  REQUIRE(message_over.out.size() == 1);  // the first fragment went; the second never started
  CHECK_FALSE(message_over.mid_frame);
}

TEST_CASE("ws relay: close frames are checked, and nothing may follow one", "[ws]") {
  Run one_byte = relay(frame(true, kClose, "\x03", &kClientKey), Role::FromClient, RelayLimits{});
  CHECK(one_byte.result.close_code == 1002);
  Run reserved = relay(frame(true, kClose, std::string("\x03\xed", 2), &kClientKey), Role::FromClient,
                       RelayLimits{});  // 1005 may not be sent
  CHECK(reserved.result.close_code == 1002);
  auto after = cat({frame(true, kClose, "", &kClientKey), frame(true, kText, "late", &kClientKey)});
  Run late = relay(after, Role::FromClient, RelayLimits{});
  CHECK(late.result.close_code == 1002);
  REQUIRE(late.out.size() == 1);
  CHECK(late.out[0].opcode == kClose);
}

TEST_CASE("ws relay: the pong to the gateway's own ping is kept back, others pass", "[ws]") {
  auto input = cat({frame(true, kPong, "gateway-ping", &kClientKey), frame(true, kPong, "app", &kClientKey)});
  Run r = relay(input, Role::FromClient, RelayLimits{});
  REQUIRE(r.result.ok);
  REQUIRE(r.out.size() == 1);
  CHECK(r.out[0].payload == "app");
}

TEST_CASE("ws relay: protocol errors from the parser are 1002", "[ws]") {
  Run unmasked = relay(frame(true, kText, "x", nullptr), Role::FromClient, RelayLimits{});
  CHECK(unmasked.result.close_code == 1002);
  Run masked_down = relay(frame(true, kText, "x", &kClientKey), Role::FromServer, RelayLimits{});
  CHECK(masked_down.result.close_code == 1002);
}

TEST_CASE("ws relay: a failure mid-frame says the receiver is mid-frame", "[ws]") {
  std::string text(50, 'a');
  text[40] = '\xff';
  Run r = relay(frame(true, kText, text, &kClientKey), Role::FromClient, RelayLimits{}, {20});
  CHECK(r.result.close_code == 1007);
  CHECK(r.mid_frame);
}

TEST_CASE("ws relay: a text frame refused for its UTF-8 in its first read leaves nothing half-sent",
          "[ws]") {
  // Bad bytes, or a message ending inside a character, in a frame that
  // arrives whole: the frames before it go out complete and the receiving
  // peer is not mid-frame, so it can still be sent a close frame.
  const std::vector<std::vector<std::uint8_t>> cases = {
      cat({frame(true, kText, "fine", &kClientKey), frame(true, kText, "caf\xc3\x28", &kClientKey)}),
      cat({frame(false, kText, "price \xe2\x82", &kClientKey),
           frame(true, kContinuation, "\x28", &kClientKey)}),
      cat({frame(false, kText, "\xe2\x82", &kClientKey), frame(true, kContinuation, "", &kClientKey)}),
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << i);
    Run r = relay(cases[i], Role::FromClient, RelayLimits{});
    CHECK_FALSE(r.result.ok);
    CHECK(r.result.close_code == 1007);
    CHECK(r.out_well_formed);
    CHECK_FALSE(r.mid_frame);
    CHECK(r.out.size() == 1);
  }
  // Bad bytes in a later read of a frame that spans reads: the header and
  // the good bytes went out, and the relay says the peer is mid-frame.
  const std::string text = std::string(100, 'a') + "\xff";
  Run late = relay(frame(true, kText, text, &kClientKey), Role::FromClient, RelayLimits{}, {50});
  CHECK_FALSE(late.result.ok);
  CHECK(late.result.close_code == 1007);
  CHECK(late.mid_frame);
}

TEST_CASE("ws relay: frames that arrive whole leave as one slice of the read block, headers rewritten in place",
          "[ws]") {
  // Small frames are the common case: header and payload go out together,
  // no copy and one iovec, however many frames one read holds.
  for (const Role from : {Role::FromClient, Role::FromServer}) {
    const MaskKey* key = from == Role::FromClient ? &kClientKey : nullptr;
    const auto input = cat({frame(true, kBinary, std::string(64, 'a'), key),
                            frame(true, kBinary, std::string(300, 'b'), key),
                            frame(true, kText, "caf\xc3\xa9", key)});
    sluice::BlockPool pool;
    MaskKeySource keys;
    Listener listener;
    FrameRelay r(from, RelayLimits{}, from == Role::FromClient ? &keys : nullptr, listener);
    sluice::net::OutBatch out;
    sluice::Block* b = pool.get();
    std::memcpy(b->data, input.data(), input.size());
    REQUIRE(r.feed(b, 0, input.size(), out).ok);
    std::vector<uv_buf_t> bufs;
    out.to_bufs(bufs);
    CHECK(bufs.size() == 1);
    CHECK(out.bytes() == input.size());  // the same sizes: same length forms, a key for a key
    out.clear();
    b->unref();
    CHECK(pool.in_use() == 0);
  }
}
