// Incremental UTF-8 validation for WebSocket text messages (RFC 6455 5.6,
// 8.1): a message arrives in fragments and partial frames, split anywhere,
// so the validator carries one byte of DFA state between calls.
// Pure: no I/O, no allocation, never reads past the span it is given.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::ws {

// Accepts exactly the well-formed UTF-8 of Unicode 15 table 3-7: no
// overlongs, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no 5- or
// 6-byte forms, no stray continuation bytes.
class Utf8Validator {
 public:
  // Feeds the next n bytes. Returns false as soon as the input so far cannot
  // be the prefix of valid UTF-8 (fail fast, as RFC 6455 8.1 allows); once
  // false, every later call returns false until reset().
  bool feed(const std::uint8_t* p, std::size_t n) noexcept;

  // True when the input so far is valid and ends on a code point boundary.
  // Call at the end of a message: a truncated sequence is invalid there.
  bool complete() const noexcept { return state_ == kAccept; }

  // True once feed() has seen an invalid byte.
  bool failed() const noexcept { return state_ == kReject; }

  void reset() noexcept { state_ = kAccept; }

  // DFA states; the values index the transition table in utf8.cpp.
  static constexpr std::uint8_t kAccept = 0;
  static constexpr std::uint8_t kReject = 1;

 private:
  std::uint8_t state_ = kAccept;
};

}  // namespace sluice::ws
