// libFuzzer target for the HTTP parser (http/parser): arbitrary bytes, fed as
// a request or a response stream, cut at points taken from the input itself.
// It checks the contract every caller relies on: feed() never claims more
// than it was given, a pause always has a cause (a head or a message), an
// error is sticky, and nothing reads outside the span (ASan watches that).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "http/parser.hpp"

namespace {

using sluice::http::MessageHead;
using sluice::http::Parser;
using sluice::http::ParserHandler;

struct Handler final : ParserHandler {
  Next on_head(MessageHead& head) override {
    // Touch everything the head exposes, as a proxy would.
    std::size_t n = head.url().size() + head.reason().size();
    for (std::size_t i = 0; i < head.header_count(); ++i) n += head.name(i).size() + head.value(i).size();
    seen += n;
    return pause_heads ? Next::Pause : Next::Continue;
  }
  bool on_body(const char* p, std::size_t n) override {
    if (n > 0) seen += static_cast<unsigned char>(p[n - 1]);
    return true;
  }
  bool skip_body(const MessageHead&) override { return skip; }
  std::size_t seen = 0;
  bool pause_heads = false;
  bool skip = false;
};

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t mode = data[0];
  const std::size_t step = 1 + data[1] % 64;  // the piece size the stream arrives in
  data += 2;
  size -= 2;
  Handler h;
  h.pause_heads = mode & 1;
  h.skip = mode & 2;
  sluice::http::HeadLimits limits{1024, 32, 256};
  Parser parser((mode & 4) ? Parser::Kind::Response : Parser::Kind::Request, h, limits);
  // A copy per piece, exactly as large as the piece: ASan sees any overread.
  std::size_t rounds = 0;
  for (std::size_t begin = 0; begin < size;) {
    const std::size_t len = std::min(step, size - begin);
    std::vector<char> piece(data + begin, data + begin + len);
    std::size_t off = 0;
    while (off < len) {
      check(++rounds < 16 * size + 64);  // every round consumes or resumes
      Parser::Result r = parser.feed(piece.data() + off, len - off);
      check(r.consumed <= len - off);
      off += r.consumed;
      if (r.status == Parser::Status::Error) {
        check(parser.error() != sluice::http::ParseError::None);
        check(parser.feed(piece.data(), len).status == Parser::Status::Error);  // sticky
        return 0;
      }
      if (r.status == Parser::Status::Paused) {
        check(parser.head_complete() || parser.message_complete());
        if (parser.upgraded()) return 0;  // the rest is another protocol
        parser.resume();
      } else {
        check(off == len);
      }
    }
    begin += len;
  }
  Parser::Result end = parser.finish();
  check(end.consumed == 0);
  return 0;
}
