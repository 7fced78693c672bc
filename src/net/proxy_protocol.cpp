// PROXY protocol v1/v2 header parser; see proxy_protocol.hpp. Pure: no I/O,
// no allocation, never touches a byte outside the span it is given.
#include "net/proxy_protocol.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "net/cidr.hpp"

namespace sluice::net {

namespace {

constexpr std::array<std::uint8_t, 6> kV1Prefix = {'P', 'R', 'O', 'X', 'Y', ' '};
constexpr std::array<std::uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t kV2HeadBytes = 16;
static_assert(kMaxProxyV2Bytes >= kV2HeadBytes + 216 && kMaxProxyV2Bytes <= 0xFFFF);
static_assert(kMaxProxyV2Bytes == 4096, "update the cap's error text");

// Family/transport byte (spec 2.2, 14th byte) and the address block each implies.
constexpr std::uint8_t kFamUnspec = 0x00;
constexpr std::uint8_t kFamTcp4 = 0x11, kFamUdp4 = 0x12;
constexpr std::uint8_t kFamTcp6 = 0x21, kFamUdp6 = 0x22;
constexpr std::uint8_t kFamUnixStream = 0x31, kFamUnixDgram = 0x32;
constexpr std::uint16_t kAddrBytesInet = 12, kAddrBytesInet6 = 36, kAddrBytesUnix = 216;

// Bits of seen_, one per kept TLV type.
constexpr std::uint8_t seen_bit(std::uint8_t type) noexcept { return static_cast<std::uint8_t>(1u << type); }

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as the spec's
// PP2_TYPE_CRC32C requires; one table lookup per byte.
constexpr std::array<std::uint32_t, 256> make_crc32c_table() noexcept {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F6'3B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<std::uint32_t, 256> kCrc32cTable = make_crc32c_table();

std::uint32_t crc32c_byte(std::uint32_t crc, std::uint8_t b) noexcept {
  return kCrc32cTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
}

// 0..65535 in plain decimal: no sign, no leading zeros ("0" itself is fine).
bool parse_port(std::string_view s, std::uint16_t& out) noexcept {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  std::uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 0xFFFF) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

void set_v4(sockaddr_storage& ss, socklen_t& len, const void* addr4, std::uint16_t port_be) noexcept {
  ss = sockaddr_storage{};
  auto& in4 = reinterpret_cast<sockaddr_in&>(ss);
  in4.sin_family = AF_INET;
  in4.sin_port = port_be;
  std::memcpy(&in4.sin_addr, addr4, 4);
  len = sizeof(sockaddr_in);
}

void set_v6(sockaddr_storage& ss, socklen_t& len, const void* addr16, std::uint16_t port_be) noexcept {
  ss = sockaddr_storage{};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = port_be;
  std::memcpy(&in6.sin6_addr, addr16, 16);
  len = sizeof(sockaddr_in6);
}

}  // namespace

ProxyHeaderParser::Status ProxyHeaderParser::fail(const char* why, std::size_t off,
                                                  std::size_t& consumed) noexcept {
  error_ = why;
  state_ = State::Invalid;
  consumed = off;
  return Status::Invalid;
}

ProxyHeaderParser::Status ProxyHeaderParser::finish(std::size_t off, std::size_t& consumed) noexcept {
  state_ = State::Done;
  info_.version = version_;
  info_.header_bytes = pos_;
  consumed = off;
  return Status::Done;
}

void ProxyHeaderParser::crc_update(const std::uint8_t* p, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) crc_ = crc32c_byte(crc_, p[i]);
}

// The line is in line_[0, pos_), "PROXY " first and '\n' last.
const char* ProxyHeaderParser::parse_v1_line() noexcept {
  if (pos_ < 8 || line_[pos_ - 2] != '\r') return "v1: line must end in CRLF";
  const std::string_view body(line_.data() + kV1Prefix.size(), pos_ - kV1Prefix.size() - 2);
  if (body.find('\r') != std::string_view::npos) return "v1: stray CR";
  // Spec 2.1: after UNKNOWN the receiver ignores everything up to the CRLF.
  if (body == "UNKNOWN" || body.starts_with("UNKNOWN ")) {
    info_.command = ProxyInfo::Command::Local;
    return nullptr;
  }
  // PROTO SRC DST SPORT DPORT, one space between each, none around.
  std::array<std::string_view, 5> f;
  std::size_t count = 0;
  for (std::size_t start = 0;;) {
    const std::size_t sp = body.find(' ', start);
    const std::string_view field = body.substr(start, sp == std::string_view::npos ? sp : sp - start);
    if (field.empty()) return "v1: fields must be separated by exactly one space";
    if (count == f.size()) return "v1: too many fields";
    f[count++] = field;
    if (sp == std::string_view::npos) break;
    start = sp + 1;
  }
  const bool v4 = f[0] == "TCP4";
  if (!v4 && f[0] != "TCP6") return "v1: protocol must be TCP4, TCP6 or UNKNOWN";
  if (count != f.size()) return "v1: expected protocol, two addresses and two ports";
  std::uint16_t sport = 0, dport = 0;
  if (v4) {
    in_addr src{}, dst{};
    if (!parse_ipv4(f[1], src)) return "v1: source is not an IPv4 address";
    if (!parse_ipv4(f[2], dst)) return "v1: destination is not an IPv4 address";
    if (!parse_port(f[3], sport)) return "v1: bad source port";
    if (!parse_port(f[4], dport)) return "v1: bad destination port";
    set_v4(info_.source, info_.source_len, &src, htons(sport));
    set_v4(info_.destination, info_.destination_len, &dst, htons(dport));
  } else {
    in6_addr src{}, dst{};
    if (!parse_ipv6(f[1], src)) return "v1: source is not an IPv6 address";
    if (!parse_ipv6(f[2], dst)) return "v1: destination is not an IPv6 address";
    if (!parse_port(f[3], sport)) return "v1: bad source port";
    if (!parse_port(f[4], dport)) return "v1: bad destination port";
    set_v6(info_.source, info_.source_len, &src, htons(sport));
    set_v6(info_.destination, info_.destination_len, &dst, htons(dport));
  }
  info_.command = ProxyInfo::Command::Proxy;
  return nullptr;
}

// head_ holds all 16 bytes: check them and pick the next state.
const char* ProxyHeaderParser::check_v2_head() noexcept {
  if ((head_[12] >> 4) != 2) return "v2: version must be 2";
  const std::uint8_t command = head_[12] & 0x0F;
  if (command > 1) return "v2: command must be LOCAL or PROXY";
  const std::size_t length = (std::size_t{head_[14]} << 8) | head_[15];
  if (kV2HeadBytes + length > kMaxProxyV2Bytes) return "v2: header longer than the 4 KiB cap";
  end_ = static_cast<std::uint16_t>(kV2HeadBytes + length);
  if (command == 0) {
    // LOCAL: "discard the protocol block including the family which is
    // ignored" (spec 2.2). TLVs included: nothing in them is used.
    state_ = State::V2Skip;
    return nullptr;
  }
  family_ = head_[13];
  std::uint16_t addr_bytes = 0;
  switch (family_) {
    case kFamUnspec: addr_bytes = 0; break;
    case kFamTcp4: case kFamUdp4: addr_bytes = kAddrBytesInet; break;
    case kFamTcp6: case kFamUdp6: addr_bytes = kAddrBytesInet6; break;
    case kFamUnixStream: case kFamUnixDgram: addr_bytes = kAddrBytesUnix; break;
    // Spec 2.2: other values "must be rejected as invalid by receivers".
    default: return "v2: unknown address family or transport";
  }
  if (length < addr_bytes) return "v2: length shorter than the address block";
  addr_end_ = static_cast<std::uint16_t>(kV2HeadBytes + addr_bytes);
  state_ = State::V2Address;
  return nullptr;
}

// Only TCP over IPv4 or IPv6 is relayed; the rest reads as LOCAL (spec 2.2:
// UNSPEC "should ignore address information"; UNIX and UDP are not what a
// TCP listener can stand in for).
void ProxyHeaderParser::store_v2_addresses() noexcept {
  const std::uint8_t* a = addr_.data();
  if (family_ == kFamTcp4) {
    std::uint16_t sport = 0, dport = 0;  // already in network order
    std::memcpy(&sport, a + 8, 2);
    std::memcpy(&dport, a + 10, 2);
    set_v4(info_.source, info_.source_len, a, sport);
    set_v4(info_.destination, info_.destination_len, a + 4, dport);
    info_.command = ProxyInfo::Command::Proxy;
  } else if (family_ == kFamTcp6) {
    std::uint16_t sport = 0, dport = 0;
    std::memcpy(&sport, a + 32, 2);
    std::memcpy(&dport, a + 34, 2);
    set_v6(info_.source, info_.source_len, a, sport);
    set_v6(info_.destination, info_.destination_len, a + 16, dport);
    info_.command = ProxyInfo::Command::Proxy;
  } else {
    info_.command = ProxyInfo::Command::Local;
  }
}

// tlv_head_ is complete: check the TLV against what is left and its type.
const char* ProxyHeaderParser::start_tlv() noexcept {
  tlv_type_ = tlv_head_[0];
  tlv_size_ = static_cast<std::uint16_t>((tlv_head_[1] << 8) | tlv_head_[2]);
  tlv_left_ = tlv_size_;
  if (tlv_size_ > end_ - pos_) return "v2: TLV overruns the header";
  std::size_t max = 0xFFFF;
  switch (tlv_type_) {
    case kPp2TypeAlpn: max = kMaxProxyAlpnBytes; break;
    case kPp2TypeAuthority: max = kMaxProxyAuthorityBytes; break;
    case kPp2TypeUniqueId: max = kMaxProxyUniqueIdBytes; break;
    case kPp2TypeCrc32c:
      if (tlv_size_ != 4) return "v2: CRC32C TLV must be 4 bytes";
      break;
    default: return nullptr;  // skipped unread (NOOP, SSL, NETNS, custom)
  }
  // A kept TLV twice would leave two answers to the same question.
  if ((seen_ & seen_bit(tlv_type_)) != 0) return "v2: duplicate TLV";
  seen_ = static_cast<std::uint8_t>(seen_ | seen_bit(tlv_type_));
  if (tlv_size_ > max) return "v2: TLV value too long";
  switch (tlv_type_) {
    case kPp2TypeAlpn: info_.alpn.size = tlv_size_; break;
    case kPp2TypeAuthority: info_.authority.size = tlv_size_; break;
    case kPp2TypeUniqueId: info_.unique_id.size = tlv_size_; break;
    default: break;
  }
  return nullptr;
}

// Moves through the v2 stages that have all their bytes: the address block,
// complete TLVs, the end of the header. Returns an error, or nullptr with
// state_ either waiting for bytes or Done.
const char* ProxyHeaderParser::after_v2_stage() noexcept {
  for (;;) {
    switch (state_) {
      case State::V2Skip:
        if (pos_ == end_) state_ = State::Done;
        return nullptr;
      case State::V2Address:
        if (pos_ < addr_end_) return nullptr;
        store_v2_addresses();
        break;  // to the next TLV
      case State::V2TlvHead:
        if (tlv_head_len_ < tlv_head_.size()) return nullptr;
        if (const char* e = start_tlv()) return e;
        state_ = State::V2TlvValue;
        continue;
      case State::V2TlvValue:
        if (tlv_left_ > 0) return nullptr;
        break;  // to the next TLV
      default:
        return nullptr;
    }
    // Between TLVs: the header ends here, or a whole TLV head must fit.
    if (pos_ == end_) {
      if ((seen_ & seen_bit(kPp2TypeCrc32c)) != 0) {
        const std::uint32_t sent = (std::uint32_t{crc_value_[0]} << 24) | (std::uint32_t{crc_value_[1]} << 16) |
                                   (std::uint32_t{crc_value_[2]} << 8) | crc_value_[3];
        if ((crc_ ^ 0xFFFF'FFFFu) != sent) return "v2: CRC32C mismatch";
        info_.crc32c_checked = true;
      }
      state_ = State::Done;
      return nullptr;
    }
    if (end_ - pos_ < static_cast<int>(tlv_head_.size())) return "v2: truncated TLV";
    tlv_head_len_ = 0;
    state_ = State::V2TlvHead;
  }
}

ProxyHeaderParser::Status ProxyHeaderParser::feed(std::span<const std::uint8_t> in,
                                                  std::size_t& consumed) noexcept {
  consumed = 0;
  if (state_ == State::Done) return Status::Done;
  if (state_ == State::Invalid) return Status::Invalid;
  const std::uint8_t* p = in.data();
  const std::size_t n = in.size();
  std::size_t off = 0;
  while (off < n) {
    std::size_t take = 0;
    switch (state_) {
      case State::Signature: {
        // Byte by byte: the first says which version, each one after must
        // match its signature (so an HTTP request fails on its first byte).
        const std::uint8_t c = p[off++];
        if (pos_ == 0) version_ = c == kV1Prefix[0] ? 1 : c == kV2Signature[0] ? 2 : 0;
        if (version_ == 1 && c == kV1Prefix[pos_]) {
          line_[pos_++] = static_cast<char>(c);
          if (pos_ == kV1Prefix.size()) state_ = State::V1Line;
        } else if (version_ == 2 && c == kV2Signature[pos_]) {
          head_[pos_++] = c;
          if (pos_ == kV2Signature.size()) state_ = State::V2Head;
        } else {
          return fail("not a PROXY protocol header", off, consumed);
        }
        continue;
      }
      case State::V1Line: {
        // Up to the first LF, and never past 107 bytes.
        const std::size_t avail = std::min(kMaxProxyV1Bytes - pos_, n - off);
        const auto* lf = static_cast<const std::uint8_t*>(std::memchr(p + off, '\n', avail));
        take = lf != nullptr ? static_cast<std::size_t>(lf - (p + off)) + 1 : avail;
        std::memcpy(line_.data() + pos_, p + off, take);
        pos_ = static_cast<std::uint16_t>(pos_ + take);
        off += take;
        if (lf != nullptr) {
          if (const char* e = parse_v1_line()) return fail(e, off, consumed);
          return finish(off, consumed);
        }
        if (pos_ == kMaxProxyV1Bytes) return fail("v1: no CRLF within 107 bytes", off, consumed);
        continue;
      }
      case State::V2Head: {
        take = std::min(kV2HeadBytes - pos_, n - off);
        std::memcpy(head_.data() + pos_, p + off, take);
        pos_ = static_cast<std::uint16_t>(pos_ + take);
        off += take;
        if (pos_ < kV2HeadBytes) continue;
        crc_ = 0xFFFF'FFFFu;
        crc_update(head_.data(), kV2HeadBytes);
        if (const char* e = check_v2_head()) return fail(e, off, consumed);
        break;
      }
      case State::V2Skip:
        take = std::min<std::size_t>(end_ - pos_, n - off);
        pos_ = static_cast<std::uint16_t>(pos_ + take);
        off += take;
        break;
      case State::V2Address:
        take = std::min<std::size_t>(addr_end_ - pos_, n - off);
        // Only the IPv4 and IPv6 blocks are kept; a UNIX one is skipped.
        if (addr_end_ - kV2HeadBytes <= addr_.size()) std::memcpy(addr_.data() + (pos_ - kV2HeadBytes), p + off, take);
        crc_update(p + off, take);
        pos_ = static_cast<std::uint16_t>(pos_ + take);
        off += take;
        break;
      case State::V2TlvHead:
        take = std::min<std::size_t>(tlv_head_.size() - tlv_head_len_, n - off);
        std::memcpy(tlv_head_.data() + tlv_head_len_, p + off, take);
        crc_update(p + off, take);
        tlv_head_len_ = static_cast<std::uint8_t>(tlv_head_len_ + take);
        pos_ = static_cast<std::uint16_t>(pos_ + take);
        off += take;
        break;
      case State::V2TlvValue: {
        take = std::min<std::size_t>(tlv_left_, n - off);
        const std::size_t at = tlv_size_ - tlv_left_;  // offset in the value
        switch (tlv_type_) {
          case kPp2TypeAlpn: std::memcpy(info_.alpn.bytes.data() + at, p + off, take); break;
          case kPp2TypeAuthority: std::memcpy(info_.authority.bytes.data() + at, p + off, take); break;
          case kPp2TypeUniqueId: std::memcpy(info_.unique_id.bytes.data() + at, p + off, take); break;
          default: break;
        }
        if (tlv_type_ == kPp2TypeCrc32c) {
          // The checksum covers the header with its own value zeroed.
          std::memcpy(crc_value_.data() + at, p + off, take);
          for (std::size_t i = 0; i < take; ++i) crc_ = crc32c_byte(crc_, 0);
        } else {
          crc_update(p + off, take);
        }
        tlv_left_ = static_cast<std::uint16_t>(tlv_left_ - take);
        pos_ = static_cast<std::uint16_t>(pos_ + take);
        off += take;
        break;
      }
      case State::Done:
      case State::Invalid:
        break;  // not reached: feed() returns as soon as either is set
    }
    // A v2 stage took bytes (or the head just completed): settle what is whole.
    if (const char* e = after_v2_stage()) return fail(e, off, consumed);
    if (state_ == State::Done) return finish(off, consumed);
  }
  consumed = off;
  return Status::NeedMore;
}

}  // namespace sluice::net
