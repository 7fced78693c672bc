// Tests for src/ws/utf8: Markus Kuhn's stress-test categories, every
// boundary code point, a split-point sweep over each case (the verdict must
// not depend on how the bytes were fragmented), fail-fast position, the
// ASCII word path, and a cross-check against a slow reference decoder on
// random and exhaustive byte strings.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "ws/utf8.hpp"

namespace {

using sluice::ws::Utf8Validator;
using Bytes = std::vector<std::uint8_t>;

Bytes bytes(std::initializer_list<int> list) {
  Bytes out;
  for (int b : list) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

Bytes ascii(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes cat(const Bytes& a, const Bytes& b) {
  Bytes out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

void encode(std::uint32_t cp, Bytes& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<std::uint8_t>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<std::uint8_t>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<std::uint8_t>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<std::uint8_t>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<std::uint8_t>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<std::uint8_t>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<std::uint8_t>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
  }
}

Bytes encoded(std::uint32_t cp) {
  Bytes out;
  encode(cp, out);
  return out;
}

// The reference: decodes code point by code point from the definition
// (lead byte gives the length and the smallest legal value; the value must
// reach it, avoid surrogates and stay <= U+10FFFF). Written without tables
// so that it shares no structure with the DFA.
struct Reference {
  bool valid = true;             // every byte so far can start valid UTF-8
  bool boundary = true;          // and the input ends between code points
  std::size_t bad_at = 0;        // when !valid: index of the byte that made it so
  std::vector<std::uint32_t> cps;
};

bool can_complete(std::uint32_t bits, int have_conts, int len, std::uint32_t min) {
  // The code points reachable by appending continuation bytes: fill the
  // missing 6-bit groups with all zeros (lo) or all ones (hi).
  const int missing = len - 1 - have_conts;
  const std::uint32_t lo = bits << (6 * missing);
  const std::uint32_t hi = lo | ((1u << (6 * missing)) - 1);
  const std::uint32_t a = std::max(lo, min);
  const std::uint32_t b = std::min(hi, std::uint32_t{0x10FFFF});
  if (a > b) return false;
  return !(a >= 0xD800 && b <= 0xDFFF);
}

Reference reference(const Bytes& in) {
  Reference r;
  std::size_t i = 0;
  auto fail = [&](std::size_t at) {
    r.valid = false;
    r.boundary = false;
    r.bad_at = at;
    return r;
  };
  while (i < in.size()) {
    const std::uint8_t b = in[i];
    int len = 0;
    std::uint32_t bits = 0;
    std::uint32_t min = 0;
    if (b < 0x80) {
      r.cps.push_back(b);
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2, bits = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, bits = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, bits = b & 0x07, min = 0x10000;
    } else {
      return fail(i);  // continuation byte or a 5/6-byte/invalid lead
    }
    if (!can_complete(bits, 0, len, min)) return fail(i);
    for (int k = 1; k < len; ++k) {
      const std::size_t j = i + static_cast<std::size_t>(k);
      if (j == in.size()) {  // truncated, but still a valid prefix
        r.boundary = false;
        return r;
      }
      if ((in[j] & 0xC0) != 0x80) return fail(j);
      bits = (bits << 6) | (in[j] & 0x3F);
      if (!can_complete(bits, k, len, min)) return fail(j);
    }
    r.cps.push_back(bits);
    i += static_cast<std::size_t>(len);
  }
  return r;
}

// Feeds `in` in pieces cut at `cuts` (ascending offsets); the verdict is
// "every feed accepted and the input ended on a boundary".
bool validate_split(const Bytes& in, const std::vector<std::size_t>& cuts) {
  Utf8Validator v;
  bool ok = true;
  std::size_t from = 0;
  for (std::size_t c : cuts) {
    ok = v.feed(in.data() + from, c - from) && ok;
    from = c;
  }
  ok = v.feed(in.data() + from, in.size() - from) && ok;
  return ok && v.complete();
}

bool validate(const Bytes& in) { return validate_split(in, {}); }

// Same verdict whole, at every single cut, every pair of cuts, and byte by
// byte.
void check_every_split(const Bytes& in, bool expected) {
  CHECK(validate(in) == expected);
  for (std::size_t i = 0; i <= in.size(); ++i) {
    CHECK(validate_split(in, {i}) == expected);
    for (std::size_t j = i; j <= in.size(); ++j) {
      CHECK(validate_split(in, {i, j}) == expected);
    }
  }
  std::vector<std::size_t> all;
  for (std::size_t i = 1; i < in.size(); ++i) all.push_back(i);
  CHECK(validate_split(in, all) == expected);
}

// Index of the byte at which a byte-by-byte feed first returns false.
std::optional<std::size_t> first_rejected(const Bytes& in) {
  Utf8Validator v;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (!v.feed(&in[i], 1)) return i;
  }
  return std::nullopt;
}

struct Case {
  const char* name;
  Bytes in;
  bool valid;
};

std::vector<Case> kuhn_cases() {
  return {
      // 1 Some correct UTF-8 text
      {"1 kosme", bytes({0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5}), true},
      {"empty", {}, true},
      // 2.1 First possible sequence of a certain length
      {"2.1.1 U+0000", bytes({0x00}), true},
      {"2.1.2 U+0080", bytes({0xC2, 0x80}), true},
      {"2.1.3 U+0800", bytes({0xE0, 0xA0, 0x80}), true},
      {"2.1.4 U+10000", bytes({0xF0, 0x90, 0x80, 0x80}), true},
      {"2.1.5 5-byte U+200000", bytes({0xF8, 0x88, 0x80, 0x80, 0x80}), false},
      {"2.1.6 6-byte U+4000000", bytes({0xFC, 0x84, 0x80, 0x80, 0x80, 0x80}), false},
      // 2.2 Last possible sequence of a certain length
      {"2.2.1 U+007F", bytes({0x7F}), true},
      {"2.2.2 U+07FF", bytes({0xDF, 0xBF}), true},
      {"2.2.3 U+FFFF", bytes({0xEF, 0xBF, 0xBF}), true},
      {"2.2.4 U+1FFFFF", bytes({0xF7, 0xBF, 0xBF, 0xBF}), false},
      {"2.2.5 5-byte U+3FFFFFF", bytes({0xFB, 0xBF, 0xBF, 0xBF, 0xBF}), false},
      {"2.2.6 6-byte U+7FFFFFFF", bytes({0xFD, 0xBF, 0xBF, 0xBF, 0xBF, 0xBF}), false},
      // 2.3 Other boundary conditions
      {"2.3.1 U+D7FF", bytes({0xED, 0x9F, 0xBF}), true},
      {"2.3.2 U+E000", bytes({0xEE, 0x80, 0x80}), true},
      {"2.3.3 U+FFFD", bytes({0xEF, 0xBF, 0xBD}), true},
      {"2.3.4 U+10FFFF", bytes({0xF4, 0x8F, 0xBF, 0xBF}), true},
      {"2.3.5 U+110000", bytes({0xF4, 0x90, 0x80, 0x80}), false},
      // 3.1 Unexpected continuation bytes
      {"3.1.1 first continuation", bytes({0x80}), false},
      {"3.1.2 last continuation", bytes({0xBF}), false},
      {"3.1.3 2 continuations", bytes({0x80, 0xBF}), false},
      {"3.1.4 3 continuations", bytes({0x80, 0xBF, 0x80}), false},
      {"3.1.7 7 continuations", bytes({0x80, 0xBF, 0x80, 0xBF, 0x80, 0xBF, 0x80}), false},
      {"3.1 continuation after ASCII", bytes({0x41, 0x80}), false},
      {"3.1 continuation after a complete char", bytes({0xC2, 0x80, 0x80}), false},
      {"3.1 extra continuation after 4-byte", bytes({0xF0, 0x90, 0x80, 0x80, 0x80}), false},
      // 3.2 Lonely start characters
      {"3.2.1 2-byte lead then space", bytes({0xC2, 0x20}), false},
      {"3.2.2 3-byte lead then space", bytes({0xE1, 0x20}), false},
      {"3.2.3 4-byte lead then space", bytes({0xF1, 0x20}), false},
      {"3.2.4 5-byte lead then space", bytes({0xF8, 0x20}), false},
      {"3.2.5 6-byte lead then space", bytes({0xFC, 0x20}), false},
      // 3.3 Sequences with the last continuation byte missing
      {"3.3.1 2-byte U+0000 truncated", bytes({0xC0}), false},
      {"3.3.2 3-byte U+0000 truncated", bytes({0xE0, 0x80}), false},
      {"3.3.3 4-byte U+0000 truncated", bytes({0xF0, 0x80, 0x80}), false},
      {"3.3.6 2-byte U+07FF truncated", bytes({0xDF}), false},
      {"3.3.7 3-byte U+FFFF truncated", bytes({0xEF, 0xBF}), false},
      {"3.3.8 4-byte U+1FFFFF truncated", bytes({0xF7, 0xBF, 0xBF}), false},
      {"3.3 valid 3-byte truncated after lead", bytes({0xE2}), false},
      {"3.3 valid 4-byte truncated after 3", bytes({0xF0, 0x9F, 0x98}), false},
      {"3.3 truncated then ASCII", bytes({0xE2, 0x82, 0x41}), false},
      // 3.4 Concatenation of incomplete sequences
      {"3.4 concatenated truncations",
       bytes({0xC2, 0xE0, 0xA0, 0xF0, 0x90, 0x80, 0xDF, 0xEF, 0xBF, 0xF4, 0x8F, 0xBF}), false},
      // 3.5 Impossible bytes
      {"3.5.1 FE", bytes({0xFE}), false},
      {"3.5.2 FF", bytes({0xFF}), false},
      {"3.5.3 FE FE FF FF", bytes({0xFE, 0xFE, 0xFF, 0xFF}), false},
      {"3.5 F5", bytes({0xF5, 0x80, 0x80, 0x80}), false},
      // 4.1 Overlong ASCII '/'
      {"4.1.1 2-byte '/'", bytes({0xC0, 0xAF}), false},
      {"4.1.2 3-byte '/'", bytes({0xE0, 0x80, 0xAF}), false},
      {"4.1.3 4-byte '/'", bytes({0xF0, 0x80, 0x80, 0xAF}), false},
      {"4.1.4 5-byte '/'", bytes({0xF8, 0x80, 0x80, 0x80, 0xAF}), false},
      {"4.1.5 6-byte '/'", bytes({0xFC, 0x80, 0x80, 0x80, 0x80, 0xAF}), false},
      // 4.2 Maximum overlong sequences
      {"4.2.1 C1 BF", bytes({0xC1, 0xBF}), false},
      {"4.2.2 E0 9F BF", bytes({0xE0, 0x9F, 0xBF}), false},
      {"4.2.3 F0 8F BF BF", bytes({0xF0, 0x8F, 0xBF, 0xBF}), false},
      // 4.3 Overlong NUL
      {"4.3.1 C0 80", bytes({0xC0, 0x80}), false},
      {"4.3.2 E0 80 80", bytes({0xE0, 0x80, 0x80}), false},
      {"4.3.3 F0 80 80 80", bytes({0xF0, 0x80, 0x80, 0x80}), false},
      // 5.1 Single UTF-16 surrogates
      {"5.1.1 U+D800", bytes({0xED, 0xA0, 0x80}), false},
      {"5.1.2 U+DB7F", bytes({0xED, 0xAD, 0xBF}), false},
      {"5.1.3 U+DB80", bytes({0xED, 0xAE, 0x80}), false},
      {"5.1.4 U+DBFF", bytes({0xED, 0xAF, 0xBF}), false},
      {"5.1.5 U+DC00", bytes({0xED, 0xB0, 0x80}), false},
      {"5.1.6 U+DF80", bytes({0xED, 0xBE, 0x80}), false},
      {"5.1.7 U+DFFF", bytes({0xED, 0xBF, 0xBF}), false},
      // 5.2 Paired UTF-16 surrogates
      {"5.2.1 U+D800 U+DC00", bytes({0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80}), false},
      {"5.2.8 U+DBFF U+DFFF", bytes({0xED, 0xAF, 0xBF, 0xED, 0xBF, 0xBF}), false},
      // 5.3 Noncharacters are valid UTF-8 (RFC 6455 does not exclude them)
      {"5.3.1 U+FFFE", bytes({0xEF, 0xBF, 0xBE}), true},
      {"5.3.2 U+FFFF", bytes({0xEF, 0xBF, 0xBF}), true},
      {"5.3 U+FDD0", bytes({0xEF, 0xB7, 0x90}), true},
      // Mixed, long enough to cross the 8-byte ASCII path
      {"mixed text", cat(ascii("Hello, world! "), bytes({0xF0, 0x9F, 0x98, 0x80, 0x20, 0xE2,
                                                         0x82, 0xAC, 0x20, 0xC3, 0xA9})),
       true},
      {"bad byte after 17 ASCII", cat(ascii("abcdefghijklmnopq"), bytes({0xC0, 0x80})), false},
  };
}

}  // namespace

TEST_CASE("ws utf8: Kuhn stress-test cases get the same verdict at every split point", "[ws]") {
  for (const Case& c : kuhn_cases()) {
    INFO(c.name);
    check_every_split(c.in, c.valid);
    // The reference agrees with the table too, so the two check each other.
    const Reference r = reference(c.in);
    CHECK((r.valid && r.boundary) == c.valid);
  }
}

TEST_CASE("ws utf8: every boundary code point is valid alone and in text", "[ws]") {
  for (std::uint32_t cp : {0x0u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xD7FFu, 0xE000u, 0xFFFFu,
                           0x10000u, 0x10FFFFu}) {
    INFO("U+" << std::hex << cp);
    const Bytes e = encoded(cp);
    check_every_split(e, true);
    check_every_split(cat(cat(ascii("ab"), e), ascii("c")), true);
    CHECK(reference(e).cps == std::vector<std::uint32_t>{cp});
  }
}

TEST_CASE("ws utf8: all code points encode to valid UTF-8 except surrogates", "[ws]") {
  std::size_t rejected = 0;
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    const bool ok = validate(encoded(cp));
    const bool want = cp < 0xD800 || cp > 0xDFFF;
    if (ok != want) {
      FAIL_CHECK("U+" << std::hex << cp);
    }
    if (!ok) ++rejected;
  }
  CHECK(rejected == 0x800);
}

TEST_CASE("ws utf8: feed fails fast at the first impossible byte", "[ws]") {
  CHECK(first_rejected(bytes({0xC0})) == std::size_t{0});
  CHECK(first_rejected(bytes({0xC1})) == std::size_t{0});
  CHECK(first_rejected(bytes({0xF5})) == std::size_t{0});
  CHECK(first_rejected(bytes({0x80})) == std::size_t{0});
  CHECK(first_rejected(bytes({0xE0, 0x9F})) == std::size_t{1});        // overlong, known early
  CHECK(first_rejected(bytes({0xED, 0xA0})) == std::size_t{1});        // surrogate
  CHECK(first_rejected(bytes({0xF0, 0x8F})) == std::size_t{1});        // overlong
  CHECK(first_rejected(bytes({0xF4, 0x90})) == std::size_t{1});        // > U+10FFFF
  CHECK(first_rejected(bytes({0xE2, 0x82, 0x41})) == std::size_t{2});  // ASCII inside a sequence
  CHECK(first_rejected(bytes({0xE2, 0x82})) == std::nullopt);          // a prefix, for now

  // Once rejected, stays rejected until reset().
  Utf8Validator v;
  const Bytes bad = bytes({0xFF});
  const Bytes good = ascii("fine");
  CHECK_FALSE(v.feed(bad.data(), bad.size()));
  CHECK(v.failed());
  CHECK_FALSE(v.feed(good.data(), good.size()));
  CHECK_FALSE(v.complete());
  v.reset();
  CHECK(v.feed(good.data(), good.size()));
  CHECK(v.complete());
  CHECK_FALSE(v.failed());

  // A truncated sequence is accepted by feed() but is not complete().
  const Bytes euro_head = bytes({0xE2, 0x82});
  const Bytes euro_tail = bytes({0xAC});
  CHECK(v.feed(euro_head.data(), euro_head.size()));
  CHECK_FALSE(v.complete());
  CHECK(v.feed(euro_tail.data(), euro_tail.size()));
  CHECK(v.complete());
  // Feeding nothing changes nothing.
  CHECK(v.feed(nullptr, 0));
  CHECK(v.complete());
}

TEST_CASE("ws utf8: the ASCII word path finds a bad or multi-byte char at any offset", "[ws]") {
  for (std::size_t pos = 0; pos < 40; ++pos) {
    INFO("pos " << pos);
    Bytes text(48, 'x');
    text[pos] = 0xFF;
    CHECK(first_rejected(text) == pos);
    CHECK_FALSE(validate(text));

    Bytes multi(48, 'y');
    const Bytes emoji = encoded(0x1F600);
    multi.insert(multi.begin() + static_cast<std::ptrdiff_t>(pos), emoji.begin(), emoji.end());
    CHECK(validate(multi));
    multi.erase(multi.begin() + static_cast<std::ptrdiff_t>(pos + 3));  // drop the last byte
    CHECK_FALSE(validate(multi));
  }
  // Bytes with 0x7F and 0x00 stay on the fast path.
  Bytes low(64, 0x7F);
  low[13] = 0x00;
  CHECK(validate(low));
}

TEST_CASE("ws utf8: random valid text validates however it is split", "[ws]") {
  std::mt19937 rng(0x5eed);
  // Each length class is equally likely, so multi-byte sequences are common.
  auto random_cp = [&]() -> std::uint32_t {
    switch (rng() % 4) {
      case 0: return rng() % 0x80;
      case 1: return 0x80 + rng() % (0x800 - 0x80);
      case 2: {
        std::uint32_t cp;
        do cp = 0x800 + rng() % (0x10000 - 0x800);
        while (cp >= 0xD800 && cp <= 0xDFFF);
        return cp;
      }
      default: return 0x10000 + rng() % (0x110000 - 0x10000);
    }
  };
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::uint32_t> cps(rng() % 40);
    Bytes text;
    for (std::uint32_t& cp : cps) {
      cp = random_cp();
      encode(cp, text);
    }
    std::vector<std::size_t> cuts;
    const std::size_t pieces = text.empty() ? 0 : rng() % 6;
    for (std::size_t k = 0; k < pieces; ++k) cuts.push_back(rng() % (text.size() + 1));
    std::sort(cuts.begin(), cuts.end());
    INFO("round " << round);
    REQUIRE(validate_split(text, cuts));
    const Reference r = reference(text);
    REQUIRE(r.valid);
    REQUIRE(r.cps == cps);  // the encoder and the reference round-trip
  }
}

TEST_CASE("ws utf8: agrees with the reference decoder on random byte strings", "[ws]") {
  std::mt19937 rng(20240611);
  // Mostly bytes near the interesting boundaries, with a valid sequence
  // dropped in now and then so that longer strings are not all rejected.
  static constexpr std::uint8_t kEdges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                                            0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC,
                                            0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5,
                                            0xF7, 0xF8, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF};
  for (int round = 0; round < 100000; ++round) {
    Bytes in(rng() % 12);
    for (std::size_t i = 0; i < in.size(); ++i) {
      const unsigned pick = rng() % 10;
      if (pick < 4) {
        in[i] = kEdges[rng() % sizeof kEdges];
      } else if (pick < 8) {
        in[i] = static_cast<std::uint8_t>(rng());
      } else {
        in[i] = static_cast<std::uint8_t>(0x80 | (rng() % 0x40));  // a continuation byte
      }
    }
    const Reference r = reference(in);
    const std::optional<std::size_t> rejected = first_rejected(in);
    INFO("round " << round);
    REQUIRE(validate(in) == (r.valid && r.boundary));
    REQUIRE(rejected.has_value() == !r.valid);
    if (rejected) REQUIRE(*rejected == r.bad_at);
  }
}

TEST_CASE("ws utf8: agrees with the reference on all 4-byte strings of edge bytes", "[ws]") {
  static constexpr std::uint8_t kEdges[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                            0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED,
                                            0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
  std::size_t checked = 0;
  Bytes in(4);
  for (std::uint8_t a : kEdges)
    for (std::uint8_t b : kEdges)
      for (std::uint8_t c : kEdges)
        for (std::uint8_t d : kEdges) {
          in = {a, b, c, d};
          const Reference r = reference(in);
          const std::optional<std::size_t> rejected = first_rejected(in);
          if (validate(in) != (r.valid && r.boundary) || rejected.has_value() == r.valid ||
              (rejected && *rejected != r.bad_at)) {
            FAIL_CHECK("mismatch on " << std::hex << int{a} << ' ' << int{b} << ' ' << int{c}
                                      << ' ' << int{d});
          }
          ++checked;
        }
  CHECK(checked == 24u * 24 * 24 * 24);
  // And every 2-byte string.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      in = bytes({a, b});
      const Reference r = reference(in);
      if (validate(in) != (r.valid && r.boundary)) {
        FAIL_CHECK("mismatch on " << std::hex << a << ' ' << b);
      }
    }
  }
}
