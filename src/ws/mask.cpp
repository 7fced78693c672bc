// apply_mask and MaskKeySource: see mask.hpp.
#include "ws/mask.hpp"

#include <openssl/rand.h>

#include <bit>
#include <cstdlib>
#include <cstring>

namespace sluice::ws {

void apply_mask(std::uint8_t* data, std::size_t n, const MaskKey& key, std::uint64_t offset) noexcept {
  std::size_t phase = static_cast<std::size_t>(offset & 3);
  // Bytes until the pointer is 8-aligned, one at a time.
  while (n > 0 && (reinterpret_cast<std::uintptr_t>(data) & 7) != 0) {
    *data++ ^= key[phase];
    phase = (phase + 1) & 3;
    --n;
  }
  if (n >= 8) {
    // The key as it lines up with the next 8 bytes in memory order.
    std::uint8_t lined[8];
    for (std::size_t i = 0; i < 8; ++i) lined[i] = key[(phase + i) & 3];
    std::uint64_t k;
    std::memcpy(&k, lined, 8);
    // 8 is a multiple of 4: the phase is the same after every word.
    for (; n >= 8; n -= 8, data += 8) {
      std::uint64_t w;
      std::memcpy(&w, data, 8);
      w ^= k;
      std::memcpy(data, &w, 8);
    }
  }
  for (; n > 0; --n) {
    *data++ ^= key[phase];
    phase = (phase + 1) & 3;
  }
}

void MaskKeySource::refill() {
  // Without the CSPRNG there are no safe masking keys: a predictable key
  // would let a client poison caches between us and the upstream (RFC 6455
  // 10.3). OpenSSL seeds from the OS; failing here means the OS has none.
  if (RAND_bytes(pool_.data(), static_cast<int>(pool_.size())) != 1) std::abort();
  used_ = 0;
}

}  // namespace sluice::ws
