// The RFC 6455 pieces the WebSocket bench tools (ws_load, ws_echo) share:
// Sec-WebSocket-Accept, frame heads, masking, HTTP heads and header-field
// matching.
//
// Written apart from src/ws on purpose, even where it reads like
// src/ws/frame.cpp: the tools check Sluice, so they must not inherit its
// mistakes. Pure: no I/O; never reads or writes past the spans it is given.
#pragma once

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace bench {

inline constexpr std::string_view kWsGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
inline constexpr std::size_t kMaxHeadBytes = 14;  // 2 + 8 (length) + 4 (mask key)

enum Opcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

inline std::string base64(const std::uint8_t* p, std::size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
  out.resize(static_cast<std::size_t>(len));
  return out;
}

// base64(SHA-1(key + GUID)), RFC 6455 4.2.2.
inline std::string accept_for(std::string_view key) {
  std::string joined(key);
  joined += kWsGuid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(joined.data(), joined.size(), digest, &len, EVP_sha1(), nullptr) != 1) return {};
  return base64(digest, len);
}

struct FrameHead {
  bool fin = false;
  std::uint8_t rsv = 0;  // the three RSV bits, 0..7
  std::uint8_t opcode = 0;
  bool masked = false;
  std::uint64_t length = 0;
  std::uint8_t key[4] = {};
  std::size_t size = 0;  // bytes of the head itself, 2..14
};

enum class HeadStatus { Incomplete, Ok, Bad };

// Parses a frame head from p[0..n). Bad: a length that is not in its
// shortest form or has the top bit set (RFC 6455 5.2).
inline HeadStatus parse_head(const std::uint8_t* p, std::size_t n, FrameHead& h) {
  if (n < 2) return HeadStatus::Incomplete;
  h.fin = (p[0] & 0x80) != 0;
  h.rsv = static_cast<std::uint8_t>((p[0] >> 4) & 0x7);
  h.opcode = p[0] & 0x0F;
  h.masked = (p[1] & 0x80) != 0;
  const std::uint8_t len7 = p[1] & 0x7F;
  std::size_t size = 2;
  if (len7 == 126) {
    if (n < 4) return HeadStatus::Incomplete;
    h.length = (std::uint64_t{p[2]} << 8) | p[3];
    if (h.length < 126) return HeadStatus::Bad;
    size = 4;
  } else if (len7 == 127) {
    if (n < 10) return HeadStatus::Incomplete;
    h.length = 0;
    for (int i = 0; i < 8; ++i) h.length = (h.length << 8) | p[2 + i];
    if (h.length <= 0xFFFF || (h.length >> 63) != 0) return HeadStatus::Bad;
    size = 10;
  } else {
    h.length = len7;
  }
  if (h.masked) {
    if (n < size + 4) return HeadStatus::Incomplete;
    std::memcpy(h.key, p + size, 4);
    size += 4;
  }
  h.size = size;
  return HeadStatus::Ok;
}

// How many bytes the head starting with p[0..n) needs, once n >= 2.
inline std::size_t head_size_from(const std::uint8_t* p) {
  const std::uint8_t len7 = p[1] & 0x7F;
  const std::size_t base = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
  return base + ((p[1] & 0x80) ? 4 : 0);
}

// Gathers a frame head that arrives split across reads, then parses it.
class HeadReader {
 public:
  // Takes from p[0..n) the bytes the head still lacks, advancing p and n past
  // them. Incomplete: all of p[0..n) taken and the head still short; Ok or
  // Bad: the whole head is parsed into h and the next call starts a new one.
  HeadStatus read(const std::uint8_t*& p, std::size_t& n, FrameHead& h) {
    // The first two bytes tell how long the head is.
    std::size_t want = have_ < 2 ? 2 : head_size_from(buf_);
    while (have_ < want) {
      if (n == 0) return HeadStatus::Incomplete;
      const std::size_t take = std::min(want - have_, n);
      std::memcpy(buf_ + have_, p, take);
      have_ += take;
      p += take;
      n -= take;
      if (have_ == 2) want = head_size_from(buf_);
    }
    const std::size_t size = have_;
    have_ = 0;
    return parse_head(buf_, size, h);
  }

 private:
  std::uint8_t buf_[kMaxHeadBytes] = {};
  std::size_t have_ = 0;
};

// Writes a frame head (RSV bits clear) into out[0..14); returns its size.
// key == nullptr: unmasked.
inline std::size_t encode_head(std::uint8_t* out, bool fin, std::uint8_t opcode, std::uint64_t length,
                               const std::uint8_t* key) {
  out[0] = static_cast<std::uint8_t>((fin ? 0x80 : 0) | (opcode & 0x0F));
  const std::uint8_t mask_bit = key ? 0x80 : 0;
  std::size_t size = 2;
  if (length < 126) {
    out[1] = static_cast<std::uint8_t>(mask_bit | length);
  } else if (length <= 0xFFFF) {
    out[1] = static_cast<std::uint8_t>(mask_bit | 126);
    out[2] = static_cast<std::uint8_t>(length >> 8);
    out[3] = static_cast<std::uint8_t>(length);
    size = 4;
  } else {
    out[1] = static_cast<std::uint8_t>(mask_bit | 127);
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(length >> (56 - 8 * i));
    size = 10;
  }
  if (key) {
    std::memcpy(out + size, key, 4);
    size += 4;
  }
  return size;
}

// dst[i] = src[i] ^ key[(phase + i) % 4] for i < n; dst == src is allowed.
// `phase` is the payload offset of src[0]: frames arrive in pieces.
inline void xor_mask(std::uint8_t* dst, const std::uint8_t* src, std::size_t n, const std::uint8_t key[4],
                     std::uint64_t phase) {
  std::uint8_t k[8];
  for (std::size_t i = 0; i < 8; ++i) k[i] = key[(phase + i) & 3];
  std::uint64_t kw;
  std::memcpy(&kw, k, 8);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, src + i, 8);
    w ^= kw;
    std::memcpy(dst + i, &w, 8);
  }
  for (; i < n; ++i) dst[i] = src[i] ^ k[i & 7];
}

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True when the comma-separated list `value` holds `token` (case-insensitive).
inline bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// Appends p[0..n) to buf, an HTTP head that arrives in pieces. Returns the
// head's size, through its empty line, once buf holds all of it; else 0.
inline std::size_t append_head(std::string& buf, const std::uint8_t* p, std::size_t n) {
  const std::size_t before = buf.size();
  buf.append(reinterpret_cast<const char*>(p), n);
  const std::size_t end = buf.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
  return end == std::string::npos ? 0 : end + 4;
}

// Calls f(name, value) for each header line of an HTTP head (the lines after
// the first, up to the empty line). Returns false on a line without a colon.
template <typename F>
bool for_each_header(std::string_view head, F&& f) {
  std::size_t pos = head.find("\r\n");
  if (pos == std::string_view::npos) return false;
  pos += 2;
  while (pos < head.size()) {
    const std::size_t end = head.find("\r\n", pos);
    const std::string_view line = head.substr(pos, end == std::string_view::npos ? end : end - pos);
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    f(line.substr(0, colon), trim(line.substr(colon + 1)));
    if (end == std::string_view::npos) break;
    pos = end + 2;
  }
  return true;
}

// Loopback only: 127.0.0.0/8.
inline bool is_loopback_v4(std::string_view address) { return address.substr(0, 4) == "127."; }

}  // namespace bench
