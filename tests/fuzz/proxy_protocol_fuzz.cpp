// libFuzzer target for the PROXY protocol parser (net/proxy_protocol):
// arbitrary bytes, optionally shaped a little (see mode below) so the fuzzer
// spends its time past the signature, fed in pieces whose sizes come from the input. Each piece
// is its own heap allocation of exactly its size, so ASan sees any read
// outside the span.
// It checks the contract callers rely on: feed() never claims more than it
// was given and takes all of it while it needs more; Done and Invalid come
// once and are sticky (same answer, nothing taken, nothing changed); the
// pieces give the same answer as the whole input in one call (same status,
// same stopping offset, same error, same info); the answer is reached on the
// deciding byte and not before (the input cut one byte short needs more, cut
// right at the stopping offset gives the same answer); and a header read as
// Done is shaped as its version says.
#include <netinet/in.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "net/proxy_protocol.hpp"

namespace {

namespace net = sluice::net;
using Status = net::ProxyHeaderParser::Status;

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr std::uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

bool same_tlv(std::string_view a, std::string_view b) { return a == b; }

bool same(const net::ProxyInfo& a, const net::ProxyInfo& b) {
  return a.version == b.version && a.command == b.command && a.source_len == b.source_len &&
         a.destination_len == b.destination_len &&
         std::memcmp(&a.source, &b.source, sizeof a.source) == 0 &&
         std::memcmp(&a.destination, &b.destination, sizeof a.destination) == 0 &&
         a.header_bytes == b.header_bytes && same_tlv(a.alpn.view(), b.alpn.view()) &&
         same_tlv(a.authority.view(), b.authority.view()) && same_tlv(a.unique_id.view(), b.unique_id.view()) &&
         a.crc32c_checked == b.crc32c_checked;
}

struct Outcome {
  Status status = Status::NeedMore;
  std::size_t at = 0;  // absolute offset where the parser stopped
  const char* error = nullptr;
  net::ProxyInfo info{};
};

// One call over a copy of exactly `n` bytes.
Outcome whole(const std::uint8_t* data, std::size_t n) {
  std::vector<std::uint8_t> copy(data, data + n);
  net::ProxyHeaderParser p;
  std::size_t consumed = 0;
  Outcome o;
  o.status = p.feed(copy, consumed);
  check(consumed <= n);
  check(o.status != Status::NeedMore || consumed == n);
  o.at = consumed;
  o.error = p.error();
  o.info = p.info();
  return o;
}

void check_done_shape(const net::ProxyInfo& info, const std::uint8_t* data, std::size_t at) {
  check(info.header_bytes == at);
  if (info.version == 1) {
    check(at >= 15 && at <= net::kMaxProxyV1Bytes);
    check(std::memcmp(data, "PROXY ", 6) == 0 && data[at - 2] == '\r' && data[at - 1] == '\n');
    check(std::memchr(data, '\n', at - 1) == nullptr);
    check(!info.crc32c_checked && info.alpn.size == 0 && info.authority.size == 0 && info.unique_id.size == 0);
  } else {
    check(info.version == 2);
    check(at >= 16 && at <= net::kMaxProxyV2Bytes);
    check(std::memcmp(data, kV2Signature, 12) == 0);
    check(at == 16u + ((std::size_t{data[14]} << 8) | data[15]));
    check((data[12] & 0xF0) == 0x20 && (data[12] & 0x0F) <= 1);
    check(info.alpn.size <= net::kMaxProxyAlpnBytes && info.authority.size <= net::kMaxProxyAuthorityBytes &&
          info.unique_id.size <= net::kMaxProxyUniqueIdBytes);
  }
  if (info.command == net::ProxyInfo::Command::Proxy) {
    const bool v4 = info.source.ss_family == AF_INET && info.source_len == sizeof(sockaddr_in) &&
                    info.destination.ss_family == AF_INET && info.destination_len == sizeof(sockaddr_in);
    const bool v6 = info.source.ss_family == AF_INET6 && info.source_len == sizeof(sockaddr_in6) &&
                    info.destination.ss_family == AF_INET6 && info.destination_len == sizeof(sockaddr_in6);
    check(v4 || v6);
    if (info.version == 2) check(data[13] == (v4 ? 0x11 : 0x21));
  } else {
    check(info.source_len == 0 && info.destination_len == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const std::uint8_t mode = data[0];
  const std::uint8_t steps[3] = {data[1], data[2], data[3]};  // piece sizes, cycled
  // mode helps the fuzzer past what it would take long to guess: bits 0-1 put
  // a v2 signature or a v1 "PROXY TCP4 "/"PROXY TCP6 " in front; bit 2 makes
  // the header end (v2 length field, v1 CRLF) mode >> 5 bytes before the
  // input does, leaving those to the application.
  std::vector<std::uint8_t> input;
  static constexpr char kTcp4[] = "PROXY TCP4 ";
  static constexpr char kTcp6[] = "PROXY TCP6 ";
  if ((mode & 3) == 1) input.assign(kV2Signature, kV2Signature + 12);
  if ((mode & 3) == 2) input.assign(kTcp4, kTcp4 + 11);
  if ((mode & 3) == 3) input.assign(kTcp6, kTcp6 + 11);
  const std::size_t prefix = input.size();
  input.insert(input.end(), data + 4, data + size);
  if ((mode & 4) != 0) {
    const std::size_t tail = std::min<std::size_t>(mode >> 5, input.size() - prefix);
    if ((mode & 3) == 1 && input.size() >= 16 + tail) {
      const std::size_t length = input.size() - 16 - tail;
      input[14] = static_cast<std::uint8_t>(length >> 8);
      input[15] = static_cast<std::uint8_t>(length);
    } else if ((mode & 3) >= 2) {
      const std::uint8_t crlf[2] = {'\r', '\n'};
      input.insert(input.end() - static_cast<std::ptrdiff_t>(tail), crlf, crlf + 2);
    }
  }
  const std::uint8_t* in = input.data();
  const std::size_t n = input.size();

  // In pieces; after the answer, the rest of the pieces must change nothing.
  net::ProxyHeaderParser parser;
  Outcome pieces;
  bool decided = false;
  std::size_t begin = 0;
  for (std::size_t k = 0; begin < n; ++k) {
    // 0 gives an empty piece, which must be harmless.
    const std::size_t len = std::min<std::size_t>(steps[k % 3] % 97, n - begin);
    std::vector<std::uint8_t> piece(in + begin, in + begin + len);
    std::size_t consumed = 12345;
    const Status s = parser.feed(piece, consumed);
    check(consumed <= len);
    if (decided) {
      check(s == pieces.status && consumed == 0 && parser.error() == pieces.error &&
            same(parser.info(), pieces.info));
    } else if (s == Status::NeedMore) {
      check(consumed == len && parser.error() == nullptr);
    } else {
      decided = true;
      pieces.status = s;
      pieces.at = begin + consumed;
      pieces.error = parser.error();
      pieces.info = parser.info();
      check((s == Status::Invalid) == (pieces.error != nullptr));
    }
    begin += len;
    if (len == 0 && k > 4 * n + 16) break;  // every step 0: nothing would ever move
  }
  if (begin < n) return 0;  // never fed it all: nothing to compare

  // The whole input in one call: the same answer at the same offset.
  const Outcome one = whole(in, n);
  if (decided) {
    check(one.status == pieces.status && one.at == pieces.at && one.error == pieces.error &&
          same(one.info, pieces.info));
  } else {
    check(one.status == Status::NeedMore && one.at == n);
    return 0;
  }

  // Decided on the deciding byte: one byte short needs more, and cutting the
  // input right there changes nothing.
  check(one.at >= 1);
  const Outcome short_one = whole(in, one.at - 1);
  check(short_one.status == Status::NeedMore && short_one.at == one.at - 1 && short_one.error == nullptr);
  const Outcome cut = whole(in, one.at);
  check(cut.status == one.status && cut.at == one.at && cut.error == one.error && same(cut.info, one.info));

  if (one.status == Status::Done) {
    check_done_shape(one.info, in, one.at);
  } else {
    // Invalid within the limits: never past the longest header we accept.
    check(one.at <= net::kMaxProxyV2Bytes);
  }
  return 0;
}
