// Unit tests for src/proxy/ip_limits: the per-address count-min sketch.
#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "proxy/ip_limits.hpp"

using sluice::proxy::IpCounts;

TEST_CASE("ip limits: an address gets up to its limit, and back what it gives", "[ip_limits]") {
  auto counts = std::make_unique<IpCounts>();
  const std::uint64_t a = 0x0a000001, b = 0x0a000002;
  for (int i = 0; i < 3; ++i) CHECK(counts->acquire(a, 3));
  CHECK_FALSE(counts->acquire(a, 3));
  CHECK(counts->count(a) == 3);  // the refused one left nothing counted
  CHECK(counts->acquire(b, 3));  // another address has its own count
  counts->release(a);
  CHECK(counts->acquire(a, 3));
  CHECK_FALSE(counts->acquire(a, 3));
  for (int i = 0; i < 3; ++i) counts->release(a);
  counts->release(b);
  CHECK(counts->count(a) == 0);
  CHECK(counts->count(b) == 0);
}

TEST_CASE("ip limits: many addresses at once do not crowd each other out", "[ip_limits]") {
  auto counts = std::make_unique<IpCounts>();
  // 5,000 addresses with 2 each: with 2 x 32768 slots, an address is refused
  // only if both its slots are shared with others; allow a handful.
  int refused = 0;
  for (std::uint64_t k = 1; k <= 5000; ++k) {
    for (int i = 0; i < 2; ++i) refused += counts->acquire(k * 2654435761u, 2) ? 0 : 1;
  }
  CHECK(refused < 5);
}

TEST_CASE("ip limits: workers racing at the limit never admit more than it", "[ip_limits]") {
  auto counts = std::make_unique<IpCounts>();
  constexpr std::uint64_t key = 42;
  constexpr std::uint32_t limit = 100;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) admitted += counts->acquire(key, limit) ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(admitted.load() <= static_cast<int>(limit));
  CHECK(admitted.load() >= static_cast<int>(limit) - 4);  // at most one refusal too many per racer
  CHECK(counts->count(key) == static_cast<std::uint32_t>(admitted.load()));
}
