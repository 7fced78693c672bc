// Error log: one `key=value` line per event on stderr, with a level filter.
//
// Lines are formatted into a stack buffer and written with a single write(2),
// so lines from different workers never interleave and nothing is allocated.
// SLUICE_LOG costs one relaxed load when its level is off: the arguments are
// not evaluated. Never log secrets or request bodies here.
#pragma once

#include <atomic>
#include <cstdint>

namespace sluice::log {

enum class Level : std::uint8_t { Debug, Info, Warn, Error };

extern std::atomic<std::uint8_t> g_level;

inline bool enabled(Level level) noexcept {
  return static_cast<std::uint8_t>(level) >= g_level.load(std::memory_order_relaxed);
}
void set_level(Level level) noexcept;
const char* to_string(Level level) noexcept;

// printf-style; prefixes the time and level, appends the newline.
void emit(Level level, const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));

}  // namespace sluice::log

#define SLUICE_LOG(level, ...)                                   \
  do {                                                           \
    if (::sluice::log::enabled(::sluice::log::Level::level))     \
      ::sluice::log::emit(::sluice::log::Level::level, __VA_ARGS__); \
  } while (0)
