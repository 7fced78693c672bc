// libFuzzer target for the WebSocket relay (ws/relay): arbitrary bytes from
// either role, under limits taken from the input, cut into pieces whose
// sizes come from the input, each piece in a pool block as the socket would
// leave it. The relay rewrites headers and payload in place and hands on
// slices of those blocks.
// It checks: what comes out is a well-formed frame stream (or the start of
// one) for the receiving side, masked toward an upstream and unmasked toward
// a client; no data frame over the frame limit leaves;
// failures are sticky with a close code the relay may use (1002, 1007,
// 1009); and every block reference handed on is released.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/buffer.hpp"
#include "net/transport.hpp"
#include "ws/frame.hpp"
#include "ws/relay.hpp"

namespace {

namespace ws = sluice::ws;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Events final : ws::RelayListener {};

// Parses the relay's output as the receiving peer would.
struct Receiver final : ws::FrameHandler {
  ws::Verdict on_frame_header(const ws::FrameHeader& h) override {
    if (!ws::is_control(h.opcode)) check(h.length <= max_frame);
    return ws::Verdict::Continue;
  }
  ws::Verdict on_payload(std::uint8_t*, std::size_t, std::uint64_t) override {
    return ws::Verdict::Continue;
  }
  ws::Verdict on_frame_end() override { return ws::Verdict::Continue; }
  std::uint64_t max_frame = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 6) return 0;
  const std::uint8_t mode = data[0];
  const std::uint8_t steps[3] = {data[1], data[2], data[3]};
  ws::RelayLimits limits;
  limits.max_frame_bytes = 1 + data[4] * 8u;
  limits.max_message_bytes = limits.max_frame_bytes * (1 + (data[5] & 7));
  limits.validate_utf8 = (mode & 2) == 0;
  limits.allow_rsv1 = (mode & 4) != 0;
  data += 6;
  size -= 6;
  const ws::Role from = (mode & 1) ? ws::Role::FromServer : ws::Role::FromClient;

  sluice::BlockPool pool;
  ws::MaskKeySource keys;
  Events events;
  ws::FrameRelay relay(from, limits, from == ws::Role::FromClient ? &keys : nullptr, events);
  sluice::net::OutBatch out;
  bool failed = false;
  std::uint16_t code = 0;
  std::size_t k = 0;
  for (std::size_t begin = 0; begin < size; ++k) {
    const std::size_t len = std::min<std::size_t>(
        std::min<std::size_t>(1 + steps[k % 3] % 200, size - begin), sluice::Block::kCapacity);
    sluice::Block* b = pool.get();
    // Not at the block's start: slices must be taken from where the bytes are.
    const std::size_t at = steps[(k + 1) % 3] % 16;
    const std::size_t n = std::min(len, sluice::Block::kCapacity - at);
    std::memcpy(b->data + at, data + begin, n);
    const ws::FrameRelay::Result r = relay.feed(b, at, n, out);
    b->unref();
    begin += n;
    if (!r.ok) {
      check(r.close_code == 1002 || r.close_code == 1007 || r.close_code == 1009);
      check(!failed || r.close_code == code);
      failed = true;
      code = r.close_code;
    }
  }
  if (failed) {
    sluice::Block* b = pool.get();
    const ws::FrameRelay::Result again = relay.feed(b, 0, 1, out);
    b->unref();
    check(!again.ok && again.close_code == code);
  }

  // The output, copied out of its slices, parsed by the receiving side.
  std::vector<uv_buf_t> bufs;
  out.to_bufs(bufs);
  std::vector<std::uint8_t> bytes;
  for (const uv_buf_t& b : bufs) bytes.insert(bytes.end(), b.base, b.base + b.len);
  out.clear();
  check(pool.in_use() == 0);
  Receiver rx;
  rx.max_frame = limits.max_frame_bytes;
  // Toward an upstream the relay speaks as a client, toward a client as a server.
  ws::FrameParser parser(from, rx, limits.allow_rsv1);
  const ws::FrameParser::Result r = parser.feed(bytes.data(), bytes.size());
  check(r.status == ws::FrameParser::Status::Ok && r.consumed == bytes.size());
  return 0;
}
