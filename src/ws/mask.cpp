// apply_mask and MaskKeySource: see mask.hpp.
#include "ws/mask.hpp"

#include <openssl/rand.h>

#include <bit>
#include <cstdlib>
#include <cstring>

namespace sluice::ws {

namespace {

// The key moved on by `bytes` positions, in memory order: the key as it
// lines up with the byte that many places further on.
std::uint32_t skip(std::uint32_t key, unsigned bytes) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    return std::rotr(key, static_cast<int>(8 * bytes));
  } else {
    return std::rotl(key, static_cast<int>(8 * bytes));
  }
}

// XORs sizeof(W) bytes at p with k, through memcpy: one unaligned load and
// one store on the targets Sluice builds for, and no alignment assumed.
template <typename W>
void xor_at(std::uint8_t* p, W k) noexcept {
  W w;
  std::memcpy(&w, p, sizeof w);
  w ^= k;
  std::memcpy(p, &w, sizeof w);
}

// The first sizeof(W) bytes of the key, in memory order.
template <typename W>
W head(std::uint32_t key) noexcept {
  W w;
  std::memcpy(&w, &key, sizeof w);
  return w;
}

}  // namespace

// Unaligned words from the first byte: payloads are short and rarely
// aligned (a small frame's payload starts 2, 6 or 8 bytes into the read),
// and a byte loop up to the next 8-byte boundary cost more than the words.
// The rest (under 8 bytes) goes as one 4-, one 2- and one 1-byte piece.
void apply_mask(std::uint8_t* data, std::size_t n, const MaskKey& key, std::uint64_t offset) noexcept {
  std::uint32_t k;
  std::memcpy(&k, key.data(), 4);
  k = skip(k, static_cast<unsigned>(offset & 3));  // lined up with data[0]
  // 8 and 4 are multiples of the key's length: after a whole word (or the
  // 4-byte piece) the key lines up as it did before it.
  const std::uint64_t k8 = std::uint64_t{k} * 0x1'0000'0001;  // k, twice
  for (; n >= 8; n -= 8, data += 8) xor_at(data, k8);
  if (n & 4) {
    xor_at(data, k);
    data += 4;
  }
  if (n & 2) {
    xor_at(data, head<std::uint16_t>(k));
    data += 2;
    k = skip(k, 2);
  }
  if (n & 1) *data ^= head<std::uint8_t>(k);
}

void MaskKeySource::refill() {
  // Without the CSPRNG there are no safe masking keys: a predictable key
  // would let a client poison caches between us and the upstream (RFC 6455
  // 10.3). OpenSSL seeds from the OS; failing here means the OS has none.
  if (RAND_bytes(pool_.data(), static_cast<int>(pool_.size())) != 1) std::abort();
  used_ = 0;
}

}  // namespace sluice::ws
