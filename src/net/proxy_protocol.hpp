// The HAProxy PROXY protocol, versions 1 (text) and 2 (binary): an
// incremental parser for the header a load balancer in front of us puts
// before the client's first byte, telling who the client really is.
// Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
//
// ProxyHeaderParser is fed the connection's first bytes, in whatever pieces
// they arrive, until it says Done or Invalid. It takes exactly the header and
// not one byte more: what follows (a TLS ClientHello, an HTTP request) is the
// application's, and `consumed` tells the caller where it starts. Anything
// that is not a valid header is Invalid (the caller closes the connection);
// a peer that stalls mid-header is the caller's timeout.
// Pure: no I/O, no allocation, never reads outside the span it is given. A v1
// line waits in a 107-byte array; a v2 header streams through (only its
// 16-byte head, its address block and the TLVs we keep are copied), so its
// size cap bounds work, not memory.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace sluice::net {

// Spec 2.1: the longest v1 line, "PROXY UNKNOWN" with two full IPv6
// addresses and two 5-digit ports, CRLF included.
inline constexpr std::size_t kMaxProxyV1Bytes = 107;
// Our cap on a whole v2 header (16-byte head + address block + TLVs); the
// format allows 16 + 65535. Real senders put a few dozen bytes of TLVs there
// (AWS's VPC endpoint id, HAProxy's SSL block with a CN, a unique id); 4 KiB
// leaves room for that many times over and refuses a peer that announces 64 KiB.
inline constexpr std::size_t kMaxProxyV2Bytes = 4096;
// TLVs we keep, each refused when longer: an ALPN protocol id is at most 255
// bytes (RFC 7301), so is a host name; the spec caps the unique id at 128.
inline constexpr std::size_t kMaxProxyAlpnBytes = 255;
inline constexpr std::size_t kMaxProxyAuthorityBytes = 255;
inline constexpr std::size_t kMaxProxyUniqueIdBytes = 128;

// v2 TLV types (spec 2.2.1 onwards).
inline constexpr std::uint8_t kPp2TypeAlpn = 0x01;
inline constexpr std::uint8_t kPp2TypeAuthority = 0x02;
inline constexpr std::uint8_t kPp2TypeCrc32c = 0x03;
inline constexpr std::uint8_t kPp2TypeNoop = 0x04;
inline constexpr std::uint8_t kPp2TypeUniqueId = 0x05;

// A TLV's value kept whole; empty when the header had none.
template <std::size_t N>
struct ProxyTlvValue {
  std::array<char, N> bytes{};
  std::uint16_t size = 0;
  std::string_view view() const noexcept { return {bytes.data(), size}; }
};

struct ProxyInfo {
  enum class Command : std::uint8_t {
    // Use the connection's own endpoints; source/destination are empty. A v2
    // LOCAL (the proxy's own health check), a v1 UNKNOWN, or a v2 PROXY for a
    // family or transport we do not relay (UNSPEC, AF_UNIX, UDP).
    Local,
    // source/destination hold the client's TCP endpoint and the one it
    // reached on the proxy, IPv4 or IPv6, port included.
    Proxy,
  };
  std::uint8_t version = 0;  // 1 or 2, once Done
  Command command = Command::Local;
  sockaddr_storage source{};
  socklen_t source_len = 0;
  sockaddr_storage destination{};
  socklen_t destination_len = 0;
  std::uint16_t header_bytes = 0;  // the whole header, as consumed
  // v2 only: TLVs we keep, and whether a CRC32C TLV was present (it matched,
  // or the header would be Invalid). Every other TLV is checked to fit and
  // skipped.
  ProxyTlvValue<kMaxProxyAlpnBytes> alpn;
  ProxyTlvValue<kMaxProxyAuthorityBytes> authority;  // the host name the client asked for (SNI)
  ProxyTlvValue<kMaxProxyUniqueIdBytes> unique_id;   // opaque bytes
  bool crc32c_checked = false;
};

class ProxyHeaderParser {
 public:
  enum class Status : std::uint8_t {
    NeedMore,  // all of `in` was taken; the header is not complete yet
    Done,      // info() is set; in[consumed..] is application data
    Invalid,   // see error(); consumed = bytes up to and including the offending one
  };

  // Takes bytes from `in` and says how many it took. Once Done or Invalid,
  // every later call returns the same status and takes nothing.
  Status feed(std::span<const std::uint8_t> in, std::size_t& consumed) noexcept;

  const ProxyInfo& info() const noexcept { return info_; }
  // A short fixed text ("v1: bad source port"); nullptr unless Invalid.
  const char* error() const noexcept { return error_; }

 private:
  // Each state names what the bytes being gathered are; pos_ counts header
  // bytes taken so far in every state. A check runs as soon as the bytes it
  // needs are in, so an error is found at the same offset whatever the split.
  enum class State : std::uint8_t {
    Signature,  // pos_ < 6 (v1, into line_) or < 12 (v2, into head_) bytes matched
    V1Line,     // "PROXY " matched; line_ gathers up to the LF (at most 107 bytes)
    V2Head,     // signature matched; head_ gathers bytes 13..16
    V2Skip,     // LOCAL: the rest of the block is discarded unread (spec 2.2)
    V2Address,  // PROXY: the address block, up to addr_end_ (kept for TCP)
    V2TlvHead,  // tlv_head_ gathers a TLV's type and length
    V2TlvValue, // tlv_left_ value bytes still due
    Done,
    Invalid,
  };

  Status fail(const char* why, std::size_t off, std::size_t& consumed) noexcept;
  Status finish(std::size_t off, std::size_t& consumed) noexcept;
  const char* parse_v1_line() noexcept;
  const char* check_v2_head() noexcept;
  const char* start_tlv() noexcept;
  const char* end_tlv() noexcept;
  const char* after_v2_stage() noexcept;
  void store_v2_addresses() noexcept;
  void crc_update(const std::uint8_t* p, std::size_t n) noexcept;

  ProxyInfo info_{};
  const char* error_ = nullptr;
  State state_ = State::Signature;
  std::uint8_t version_ = 0;   // 1 or 2 once the first byte is in
  std::uint8_t family_ = 0;    // v2: the family/transport byte
  std::uint8_t seen_ = 0;      // v2: bit per kept TLV type already met (duplicates are refused)
  std::uint16_t pos_ = 0;      // header bytes taken
  std::uint16_t end_ = 0;      // v2: the header's total size (16 + length)
  std::uint16_t addr_end_ = 0; // v2: where the address block ends
  std::uint16_t tlv_left_ = 0; // v2: value bytes of the current TLV still due
  std::uint16_t tlv_size_ = 0; // v2: the current TLV's value length
  std::uint8_t tlv_type_ = 0;
  std::uint8_t tlv_head_len_ = 0;
  std::array<std::uint8_t, 3> tlv_head_{};
  std::array<std::uint8_t, 4> crc_value_{};  // the CRC32C TLV's value as sent
  std::uint32_t crc_ = 0;                    // running CRC32C of the v2 header, CRC value as zeros
  std::array<std::uint8_t, 16> head_{};
  std::array<std::uint8_t, 36> addr_{};      // an IPv4 (12) or IPv6 (36) address block
  std::array<char, kMaxProxyV1Bytes> line_{};
};

}  // namespace sluice::net
