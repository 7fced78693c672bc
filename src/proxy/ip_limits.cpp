// IpCounts: see ip_limits.hpp.
#include "proxy/ip_limits.hpp"

#include <algorithm>

namespace sluice::proxy {

std::size_t IpCounts::slot(std::uint64_t key, std::size_t row) noexcept {
  // splitmix64's finaliser with a different seed per row: the rows' slots
  // are independent, so sharing one slot says little about sharing another.
  static constexpr std::uint64_t kSeeds[kRows] = {0x9e3779b97f4a7c15ULL, 0xd1b54a32d192ed03ULL,
                                                  0x8cb92ba72f3d8dd7ULL, 0xabc98388fb8fac03ULL};
  std::uint64_t x = key + kSeeds[row];
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return static_cast<std::size_t>(x & (kSlots - 1));
}

bool IpCounts::acquire(std::uint64_t key, std::uint32_t limit) noexcept {
  std::uint32_t least = UINT32_MAX;
  for (std::size_t r = 0; r < kRows; ++r) {
    least = std::min(least, rows_[r][slot(key, r)].fetch_add(1, std::memory_order_relaxed) + 1);
  }
  if (least <= limit) return true;
  // Over: undone. Two workers racing at the limit may both refuse (one
  // connection too few), never both admit.
  release(key);
  return false;
}

void IpCounts::release(std::uint64_t key) noexcept {
  for (std::size_t r = 0; r < kRows; ++r) {
    rows_[r][slot(key, r)].fetch_sub(1, std::memory_order_relaxed);
  }
}

std::uint32_t IpCounts::count(std::uint64_t key) const noexcept {
  std::uint32_t least = UINT32_MAX;
  for (std::size_t r = 0; r < kRows; ++r) {
    least = std::min(least, rows_[r][slot(key, r)].load(std::memory_order_relaxed));
  }
  return least;
}

IpCounts& IpCounts::connections() noexcept {
  static IpCounts counts;
  return counts;
}

IpCounts& IpCounts::websocket_sessions() noexcept {
  static IpCounts counts;
  return counts;
}

}  // namespace sluice::proxy
