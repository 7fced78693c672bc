// Metric cells: counters, gauges and histograms written by exactly one
// thread (the worker that owns them) and read by another (a scrape on the
// main thread). Writes are relaxed atomic loads and stores: on x86-64 a plain
// mov each, no lock prefix, no fence, so counting costs what a plain integer
// would; a reader sees each cell whole, never torn. A scrape sums the cells
// of every worker.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace sluice {

class Counter {
 public:
  void add(std::uint64_t n) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  Counter& operator++() noexcept {
    add(1);
    return *this;
  }
  std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class Gauge {
 public:
  void add(std::int64_t n) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::int64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

// Observations in microseconds, in fixed buckets from 100 us to 10 s (the
// shape Prometheus clients use for request latencies), plus their count and
// sum. Buckets hold their own observations; rendering cumulates them.
class Histogram {
 public:
  static constexpr std::array<std::uint64_t, 14> kBoundsUs{
      100, 500, 1'000, 2'500, 5'000, 10'000, 25'000, 50'000, 100'000, 250'000, 500'000,
      1'000'000, 2'500'000, 10'000'000};

  void observe(std::uint64_t us) noexcept {
    std::size_t i = 0;
    while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;
    ++buckets_[i];
    ++count_;
    sum_us_.add(us);
  }
  // Observations in bucket i (i == kBoundsUs.size(): above the last bound).
  std::uint64_t bucket(std::size_t i) const noexcept { return buckets_[i].get(); }
  std::uint64_t count() const noexcept { return count_.get(); }
  std::uint64_t sum_us() const noexcept { return sum_us_.get(); }

 private:
  std::array<Counter, kBoundsUs.size() + 1> buckets_{};
  Counter count_;
  Counter sum_us_;
};

}  // namespace sluice
