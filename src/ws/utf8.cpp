// UTF-8 validation: see utf8.hpp.
//
// A byte is first mapped to one of 12 classes, then (state, class) picks the
// next state. The classes are the byte ranges that Unicode's table of
// well-formed sequences (Unicode 15, table 3-7) tells apart; the states are
// "how many continuation bytes remain, and is the next one range-limited".
// Both tables are built at compile time from those rules, so the rules below
// are the whole specification.
#include "ws/utf8.hpp"

#include <array>
#include <cstring>

namespace sluice::ws {
namespace {

enum Class : std::uint8_t {
  kAscii,     // 00..7F
  kCont80,    // 80..8F  continuation, low quarter
  kCont90,    // 90..9F  continuation, second quarter
  kContA0,    // A0..BF  continuation, upper half
  kBad,       // C0 C1 (always overlong), F5..FF (above U+10FFFF or 5/6-byte forms)
  kLead2,     // C2..DF
  kLeadE0,    // E0      next must be A0..BF (else overlong)
  kLead3,     // E1..EC EE EF
  kLeadED,    // ED      next must be 80..9F (else a surrogate)
  kLeadF0,    // F0      next must be 90..BF (else overlong)
  kLead4,     // F1..F3
  kLeadF4,    // F4      next must be 80..8F (else above U+10FFFF)
  kClassCount
};

enum State : std::uint8_t {
  kAccept = Utf8Validator::kAccept,  // on a code point boundary
  kReject = Utf8Validator::kReject,  // sticky
  kNeed1,                            // one continuation (any) to go
  kNeed2,                            // two to go
  kNeed3,                            // three to go
  kAfterE0,                          // then one more
  kAfterED,                          // then one more
  kAfterF0,                          // then two more
  kAfterF4,                          // then two more
  kStateCount
};

constexpr std::array<std::uint8_t, 256> make_classes() {
  std::array<std::uint8_t, 256> c{};
  for (int b = 0; b < 256; ++b) {
    std::uint8_t k = kBad;
    if (b <= 0x7F) k = kAscii;
    else if (b <= 0x8F) k = kCont80;
    else if (b <= 0x9F) k = kCont90;
    else if (b <= 0xBF) k = kContA0;
    else if (b <= 0xC1) k = kBad;
    else if (b <= 0xDF) k = kLead2;
    else if (b == 0xE0) k = kLeadE0;
    else if (b == 0xED) k = kLeadED;
    else if (b <= 0xEF) k = kLead3;
    else if (b == 0xF0) k = kLeadF0;
    else if (b <= 0xF3) k = kLead4;
    else if (b == 0xF4) k = kLeadF4;
    c[static_cast<std::size_t>(b)] = k;
  }
  return c;
}

using Table = std::array<std::array<std::uint8_t, kClassCount>, kStateCount>;

constexpr Table make_transitions() {
  Table t{};
  for (auto& row : t) row.fill(kReject);  // anything not listed is an error

  t[kAccept][kAscii] = kAccept;
  t[kAccept][kLead2] = kNeed1;
  t[kAccept][kLeadE0] = kAfterE0;
  t[kAccept][kLead3] = kNeed2;
  t[kAccept][kLeadED] = kAfterED;
  t[kAccept][kLeadF0] = kAfterF0;
  t[kAccept][kLead4] = kNeed3;
  t[kAccept][kLeadF4] = kAfterF4;

  for (Class any : {kCont80, kCont90, kContA0}) {
    t[kNeed1][any] = kAccept;
    t[kNeed2][any] = kNeed1;
    t[kNeed3][any] = kNeed2;
  }
  t[kAfterE0][kContA0] = kNeed1;
  t[kAfterED][kCont80] = kNeed1;
  t[kAfterED][kCont90] = kNeed1;
  t[kAfterF0][kCont90] = kNeed2;
  t[kAfterF0][kContA0] = kNeed2;
  t[kAfterF4][kCont80] = kNeed2;
  return t;
}

constexpr std::array<std::uint8_t, 256> kClasses = make_classes();
constexpr Table kTransitions = make_transitions();

static_assert(kClasses[0xC1] == kBad && kClasses[0xC2] == kLead2 && kClasses[0xF5] == kBad);
static_assert(kTransitions[kReject][kAscii] == kReject);

constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

}  // namespace

bool Utf8Validator::feed(const std::uint8_t* p, std::size_t n) noexcept {
  std::uint8_t s = state_;
  if (s == kReject) return false;
  const std::uint8_t* const end = p + n;
  while (p != end) {
    // Text is mostly ASCII: on a boundary, skip whole 8-byte words of it.
    if (s == kAccept) {
      while (end - p >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, sizeof w);
        if ((w & kHighBits) != 0) break;
        p += 8;
      }
      if (p == end) break;
    }
    s = kTransitions[s][kClasses[*p]];
    ++p;
    if (s == kReject) break;
  }
  state_ = s;
  return s != kReject;
}

}  // namespace sluice::ws
