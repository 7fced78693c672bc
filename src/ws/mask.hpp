// WebSocket masking (RFC 6455 5.3): XOR with a 4-byte key repeating from the
// payload's first byte, in place, eight bytes at a time.
//
// The relay never unmasks and re-masks in two passes: XOR with the client's
// key and then the gateway's is one XOR with both combined (remask). Keys for
// client -> upstream frames come from MaskKeySource: OpenSSL's CSPRNG, drawn
// in batches, never derived from anything the client sent.
// Pure (but for the key source's RAND_bytes): no I/O, touches only the bytes given.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice::ws {

using MaskKey = std::array<std::uint8_t, 4>;

// XORs data[0..n) with `key`, where data[0] is byte `offset` of the payload
// (frames arrive in pieces: the key's phase follows the payload position).
// Masking and unmasking are the same operation.
void apply_mask(std::uint8_t* data, std::size_t n, const MaskKey& key, std::uint64_t offset) noexcept;

// Unmask with `from` and mask with `to` in one pass.
inline void remask(std::uint8_t* data, std::size_t n, const MaskKey& from, const MaskKey& to,
                   std::uint64_t offset) noexcept {
  std::uint32_t a, b;
  std::memcpy(&a, from.data(), 4);
  std::memcpy(&b, to.data(), 4);
  a ^= b;  // byte by byte, as XOR is
  MaskKey both;
  std::memcpy(both.data(), &a, 4);
  apply_mask(data, n, both, offset);
}

// Fresh masking keys for one worker (not thread-safe; one per worker).
// RAND_bytes is called once per kBatch keys, not once per frame: a call
// costs a fixed part plus a part per byte, and at 1024 keys (4 KiB per
// worker) the fixed part is a few instructions a key.
class MaskKeySource {
 public:
  static constexpr std::size_t kBatch = 1024;
  MaskKey next() {
    if (used_ == kBatch) refill();
    MaskKey k;
    std::memcpy(k.data(), pool_.data() + used_ * 4, 4);
    ++used_;
    return k;
  }

 private:
  void refill();
  std::array<std::uint8_t, kBatch * 4> pool_{};
  std::size_t used_ = kBatch;  // empty: the first next() refills
};

}  // namespace sluice::ws
