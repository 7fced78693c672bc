// WebSocket masking (ws/mask): the word-at-a-time XOR against a byte-by-byte
// reference, for every length 0..257, buffer alignment and payload phase.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "ws/mask.hpp"

namespace {

using sluice::ws::MaskKey;

void reference_mask(std::uint8_t* p, std::size_t n, const MaskKey& key, std::uint64_t offset) {
  for (std::size_t i = 0; i < n; ++i) p[i] ^= key[(offset + i) % 4];
}

}  // namespace

TEST_CASE("ws mask: matches the byte-by-byte reference for every length, alignment and phase",
          "[ws]") {
  std::mt19937 rng(6455);
  const MaskKey key{0x37, 0xfa, 0x21, 0x3d};
  std::vector<std::uint8_t> base(257 + 16);
  for (auto& b : base) b = static_cast<std::uint8_t>(rng());
  std::size_t mismatches = 0;
  for (std::size_t len = 0; len <= 257; ++len) {
    for (std::size_t align = 0; align < 8; ++align) {
      for (std::uint64_t offset : {0ull, 1ull, 2ull, 3ull, 5ull, 4096ull + 3}) {
        std::vector<std::uint8_t> fast(base), ref(base);
        sluice::ws::apply_mask(fast.data() + align, len, key, offset);
        reference_mask(ref.data() + align, len, key, offset);
        if (fast != ref) ++mismatches;  // bytes outside the span must be untouched too
      }
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("ws mask: a payload masked in pieces equals one masked whole", "[ws]") {
  const MaskKey key{1, 2, 3, 4};
  std::vector<std::uint8_t> whole(1000);
  for (std::size_t i = 0; i < whole.size(); ++i) whole[i] = static_cast<std::uint8_t>(i * 7);
  std::vector<std::uint8_t> pieces(whole);
  sluice::ws::apply_mask(whole.data(), whole.size(), key, 0);
  std::size_t at = 0;
  for (std::size_t cut : {1u, 3u, 7u, 64u, 125u, 300u, 1000u}) {
    sluice::ws::apply_mask(pieces.data() + at, cut - at, key, at);
    at = cut;
  }
  CHECK(pieces == whole);
}

TEST_CASE("ws mask: remask equals unmasking with one key and masking with another", "[ws]") {
  const MaskKey client{0xde, 0xad, 0xbe, 0xef}, gateway{0x12, 0x34, 0x56, 0x78};
  std::vector<std::uint8_t> plain(77);
  for (std::size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<std::uint8_t>('a' + i % 26);
  std::vector<std::uint8_t> on_wire(plain);
  sluice::ws::apply_mask(on_wire.data(), on_wire.size(), client, 0);
  std::vector<std::uint8_t> fused(on_wire);
  sluice::ws::remask(fused.data() + 5, fused.size() - 5, client, gateway, 5);
  sluice::ws::remask(fused.data(), 5, client, gateway, 0);
  std::vector<std::uint8_t> expected(plain);
  sluice::ws::apply_mask(expected.data(), expected.size(), gateway, 0);
  CHECK(fused == expected);
  sluice::ws::apply_mask(fused.data(), fused.size(), gateway, 0);
  CHECK(fused == plain);
}

TEST_CASE("ws mask: keys come fresh from the CSPRNG across batches", "[ws]") {
  sluice::ws::MaskKeySource source;
  std::set<std::uint32_t> seen;
  const std::size_t draws = 4 * sluice::ws::MaskKeySource::kBatch;  // crosses batch refills
  for (std::size_t i = 0; i < draws; ++i) {
    const MaskKey k = source.next();
    seen.insert(static_cast<std::uint32_t>(k[0]) | static_cast<std::uint32_t>(k[1]) << 8 |
                static_cast<std::uint32_t>(k[2]) << 16 | static_cast<std::uint32_t>(k[3]) << 24);
  }
  // 1024 random 32-bit keys: a repeat has odds of about 1 in 8000; two, 1 in 10^8.
  CHECK(seen.size() >= draws - 1);
  sluice::ws::MaskKeySource other;  // another worker's source shares nothing
  CHECK(seen.count([&] {
          const MaskKey k = other.next();
          return static_cast<std::uint32_t>(k[0]) | static_cast<std::uint32_t>(k[1]) << 8 |
                 static_cast<std::uint32_t>(k[2]) << 16 | static_cast<std::uint32_t>(k[3]) << 24;
        }()) == 0);
}
