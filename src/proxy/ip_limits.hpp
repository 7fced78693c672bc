// Per-client-address counts shared by every worker, without a lock.
//
// A client's connections land on any worker (SO_REUSEPORT spreads them), so
// a limit per address must be counted process-wide. IpCounts is a count-min
// sketch: four rows of relaxed atomic counters, each address counted in one
// slot of each row, its count read as the smallest of the four. It can only
// err towards refusing (when every one of an address's slots is shared with
// other busy addresses), never towards letting more through: with 5,000
// addresses at a limit of 2, about one in 10,000 would be refused early. No
// memory per address, no allocation, no lock: a connection costs four atomic
// additions on accept and four on close. The rows are static storage: pages
// nobody touches cost no memory.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace sluice::proxy {

class IpCounts {
 public:
  // Counts one more for `key` unless that would pass `limit`: then counts
  // nothing and returns false.
  bool acquire(std::uint64_t key, std::uint32_t limit) noexcept;
  // Gives back what a successful acquire(key) counted.
  void release(std::uint64_t key) noexcept;
  // The count for `key` (at least the true one).
  std::uint32_t count(std::uint64_t key) const noexcept;

  // Process-wide: client connections, and WebSocket sessions per route.
  static IpCounts& connections() noexcept;
  static IpCounts& websocket_sessions() noexcept;

 private:
  static constexpr std::size_t kRows = 4;
  static constexpr std::size_t kSlots = std::size_t{1} << 15;
  static std::size_t slot(std::uint64_t key, std::size_t row) noexcept;
  std::array<std::array<std::atomic<std::uint32_t>, kSlots>, kRows> rows_{};
};

}  // namespace sluice::proxy
