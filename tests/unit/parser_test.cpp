// Tests for src/http/parser: the llhttp seam.
//
// Every message shape the proxy relies on is fed whole, then split in two at
// every offset, then byte by byte; each run must report the same heads, the
// same de-chunked body, the same chunk sizes and the same pause offsets.
// Every smuggling shape and every head limit must give the same error
// wherever the input is split. A seeded mutation fuzz compares split and
// unsplit parses of damaged inputs. Each piece is copied into a buffer of its
// own exact size, so a read past the span shows up under the sanitizers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "http/parser.hpp"

namespace {

using sluice::http::HeadLimits;
using sluice::http::MessageHead;
using sluice::http::ParseError;
using sluice::http::Parser;
using sluice::http::ParserHandler;
using Next = ParserHandler::Next;
using Kind = Parser::Kind;
using namespace std::string_literals;

// What one message looked like to the handler.
struct Msg {
  std::string method;  // llhttp's name; "" for responses
  std::string url;
  int status = 0;
  std::string reason;
  int major = 1;
  int minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;
  bool keep_alive = true;
  bool chunked = false;
  bool has_cl = false;
  bool upgrade = false;
  std::uint64_t cl = 0;
  std::string body;
  std::vector<std::uint64_t> chunks;  // sizes from on_chunk, in order
  int chunk_ends = 0;                 // on_chunk_end calls
};

// Where feed() or finish() stopped: after a head ('H'), after a message
// ('M'), or a message completed by finish() at EOF ('E'); `at` is the
// absolute offset in the input.
struct Stop {
  char what;
  std::size_t at;
};

struct Outcome {
  std::vector<Msg> msgs;
  std::vector<Stop> stops;
  ParseError error = ParseError::None;
  bool open_at_end = false;  // in_message() after the last byte (and finish())
};

std::string escaped(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// One canonical text per outcome, so that a mismatch prints as a readable diff.
std::string describe(const Outcome& o) {
  std::ostringstream s;
  for (std::size_t i = 0; i < o.msgs.size(); ++i) {
    const Msg& m = o.msgs[i];
    s << "message " << i << ": method=" << m.method << " url=" << escaped(m.url)
      << " status=" << m.status << " reason=" << escaped(m.reason) << " version=" << m.major
      << "." << m.minor << " keep_alive=" << m.keep_alive << " chunked=" << m.chunked
      << " has_cl=" << m.has_cl << " cl=" << m.cl << " upgrade=" << m.upgrade << "\n";
    for (const auto& [n, v] : m.headers) s << "  header [" << escaped(n) << "]: [" << escaped(v) << "]\n";
    s << "  body (" << m.body.size() << ") [" << escaped(m.body) << "]\n  chunks";
    for (std::uint64_t c : m.chunks) s << " " << c;
    s << " ends=" << m.chunk_ends << "\n";
  }
  s << "stops";
  for (const Stop& st : o.stops) s << " " << st.what << "@" << st.at;
  s << "\nerror=" << sluice::http::to_string(o.error) << " open_at_end=" << o.open_at_end << "\n";
  return s.str();
}

class Recorder final : public ParserHandler {
 public:
  Recorder(Kind kind, std::vector<Next> policy, bool reject_body)
      : kind_(kind), policy_(std::move(policy)), reject_body_(reject_body) {}

  Next on_head(MessageHead& h) override {
    Msg m;
    if (kind_ == Kind::Request) m.method = llhttp_method_name(static_cast<llhttp_method_t>(h.method));
    m.url = std::string(h.url());
    m.status = h.status;
    m.reason = std::string(h.reason());
    m.major = h.version_major;
    m.minor = h.version_minor;
    for (std::size_t i = 0; i < h.header_count(); ++i) {
      m.headers.emplace_back(std::string(h.name(i)), std::string(h.value(i)));
    }
    m.keep_alive = h.keep_alive;
    m.chunked = h.chunked;
    m.has_cl = h.has_content_length;
    m.upgrade = h.upgrade;
    m.cl = h.content_length;
    msgs.push_back(std::move(m));
    const std::size_t i = msgs.size() - 1;
    return i < policy_.size() ? policy_[i] : Next::Continue;
  }
  bool skip_body(const MessageHead&) override {
    const std::size_t i = msgs.size();  // the message whose head is completing
    return i < policy_.size() && policy_[i] == Next::SkipBody;
  }
  bool on_body(const char* p, std::size_t n) override {
    if (msgs.empty()) {
      FAIL_CHECK("on_body before any head");
      return false;
    }
    // Refuse before recording: how much arrives in the first span depends on the split.
    if (reject_body_) return false;
    msgs.back().body.append(p, n);
    return true;
  }
  void on_chunk(std::uint64_t size) override {
    if (!msgs.empty()) msgs.back().chunks.push_back(size);
  }
  void on_chunk_end() override {
    if (!msgs.empty()) ++msgs.back().chunk_ends;
  }

  std::vector<Msg> msgs;

 private:
  Kind kind_;
  std::vector<Next> policy_;  // what on_head returns for message i (Continue past the end)
  bool reject_body_;
};

struct Case {
  Kind kind = Kind::Request;
  std::string input;
  HeadLimits limits{};
  std::vector<Next> policy{};
  bool eof = false;          // call finish() after the last byte
  bool reject_body = false;  // on_body returns false
};

// Feeds `c.input` cut at `cuts` (ascending offsets), following the contract:
// on Paused, resume() and feed the rest of the same piece from `consumed`.
Outcome parse(const Case& c, const std::vector<std::size_t>& cuts) {
  Recorder rec(c.kind, c.policy, c.reject_body);
  Parser parser(c.kind, rec, c.limits);
  Outcome out;
  const std::size_t n = c.input.size();
  std::size_t guard = 0;
  std::size_t begin = 0;
  for (std::size_t k = 0; k <= cuts.size(); ++k) {
    const std::size_t end = k < cuts.size() ? cuts[k] : n;
    const std::vector<char> piece(c.input.begin() + static_cast<std::ptrdiff_t>(begin),
                                  c.input.begin() + static_cast<std::ptrdiff_t>(end));
    std::size_t off = 0;
    do {
      REQUIRE(++guard < 4 * n + 64);  // every round consumes or moves past a pause
      const Parser::Result r = parser.feed(piece.data() + off, piece.size() - off);
      REQUIRE(r.consumed <= piece.size() - off);
      off += r.consumed;
      if (r.status == Parser::Status::Error) {
        REQUIRE(parser.error() != ParseError::None);
        out.error = parser.error();
        out.msgs = rec.msgs;
        return out;
      }
      if (r.status == Parser::Status::Paused) {
        const bool done = parser.message_complete();
        if (!done) REQUIRE(parser.head_complete());
        out.stops.push_back({done ? 'M' : 'H', begin + off});
        if (parser.upgraded()) {  // the rest is another protocol: the caller stops here
          out.msgs = rec.msgs;
          return out;
        }
        parser.resume();
        continue;
      }
      REQUIRE(off == piece.size());  // Ok: everything given was consumed
    } while (off < piece.size());
    begin = end;
  }
  if (c.eof) {
    const Parser::Result r = parser.finish();
    CHECK(r.consumed == 0);
    if (r.status == Parser::Status::Error) {
      out.error = parser.error();
    } else if (r.status == Parser::Status::Paused) {
      REQUIRE(parser.message_complete());
      out.stops.push_back({'E', n});
      parser.resume();
    }
  }
  out.open_at_end = parser.in_message();
  out.msgs = std::move(rec.msgs);
  return out;
}

// The whole input at once, every 2-way split (empty pieces included), and
// byte by byte: all must describe the same as `expected`.
void sweep(const Case& c, const Outcome& expected) {
  const std::string want = describe(expected);
  const std::size_t n = c.input.size();
  INFO("input: " << escaped(c.input));
  {
    INFO("fed whole");
    REQUIRE(describe(parse(c, {})) == want);
  }
  for (std::size_t i = 0; i <= n; ++i) {
    INFO("split at " << i);
    REQUIRE(describe(parse(c, {i})) == want);
  }
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < n; ++i) every.push_back(i);
  INFO("byte by byte");
  REQUIRE(describe(parse(c, every)) == want);
}

// The same error wherever the input is split, and the same outcome up to it:
// heads, body bytes and chunk sizes the handler saw first, and the stops.
void expect_error(const Case& c, ParseError want) {
  Outcome whole = parse(c, {});
  INFO("input: " << escaped(c.input));
  INFO("parsed whole:\n" << describe(whole));
  REQUIRE(whole.error == want);
  sweep(c, whole);
}

Msg request(const char* method, const char* url,
            std::vector<std::pair<std::string, std::string>> headers) {
  Msg m;
  m.method = method;
  m.url = url;
  m.headers = std::move(headers);
  return m;
}

Msg response(int status, const char* reason,
             std::vector<std::pair<std::string, std::string>> headers) {
  Msg m;
  m.status = status;
  m.reason = reason;
  m.headers = std::move(headers);
  return m;
}

Msg with_cl(Msg m, std::uint64_t cl, std::string body) {
  m.has_cl = true;
  m.cl = cl;
  m.body = std::move(body);
  return m;
}

constexpr HeadLimits kSmall{256, 8, 32};  // header_bytes, header_count, uri_bytes

std::string repeat(char c, std::size_t n) { return std::string(n, c); }

}  // namespace

// ---- message shapes at every split point ----

TEST_CASE("http parser: Content-Length request decodes the same at every split point", "[http]") {
  Case c;
  c.input =
      "POST /submit?q=1&r=%20 HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\n"
      "Content-Length: 11\r\nX-Empty:\r\nX-Lead:   leading\r\n\r\nhello world";
  Outcome want;
  want.msgs.push_back(with_cl(request("POST", "/submit?q=1&r=%20",
                                      {{"Host", "example.com"},
                                       {"Content-Type", "text/plain"},
                                       {"Content-Length", "11"},
                                       {"X-Empty", ""},
                                       {"X-Lead", "leading"}}),
                              11, "hello world"));
  want.stops.push_back({'M', c.input.size()});
  sweep(c, want);
}

TEST_CASE("http parser: chunked request decodes the same at every split point", "[http]") {
  Case c;
  c.input =
      "POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n"
      "6;quoted=\"a b\";flag\r\n world\r\n"
      "A\r\n0123456789\r\n"
      "0;last=1\r\nX-Trailer: t\r\nX-Checksum: abc\r\n\r\n";
  Msg m = request("POST", "/upload", {{"Host", "example.com"}, {"Transfer-Encoding", "chunked"}});
  m.chunked = true;
  m.body = "hello world0123456789";
  m.chunks = {5, 6, 10, 0};
  m.chunk_ends = 3;  // the last chunk ends the message instead
  Outcome want;
  want.msgs.push_back(m);
  want.stops.push_back({'M', c.input.size()});
  sweep(c, want);
}

TEST_CASE("http parser: responses with Content-Length and chunked bodies decode the same at every split point", "[http]") {
  Case c;
  c.kind = Kind::Response;
  const std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello";
  const std::string second =
      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nX-B: 2\r\n\r\n"
      "3\r\nabc\r\n1;e=f\r\nd\r\n0\r\nTrailer-Field: x\r\n\r\n";
  c.input = first + second;
  Msg chunked = response(404, "Not Found", {{"Transfer-Encoding", "chunked"}, {"X-B", "2"}});
  chunked.chunked = true;
  chunked.body = "abcd";
  chunked.chunks = {3, 1, 0};
  chunked.chunk_ends = 2;
  Outcome want;
  want.msgs.push_back(with_cl(response(200, "OK", {{"Content-Length", "5"}, {"X-A", "1"}}), 5, "hello"));
  want.msgs.push_back(chunked);
  want.stops = {{'M', first.size()}, {'M', c.input.size()}};
  sweep(c, want);
}

TEST_CASE("http parser: responses to HEAD skip their body at every split point", "[http]") {
  Case c;
  c.kind = Kind::Response;
  const std::string a = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n";
  const std::string b = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string d = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  c.input = a + b + d;
  c.policy = {Next::SkipBody, Next::SkipBody, Next::Continue};
  Msg ma = response(200, "OK", {{"Content-Length", "1234"}, {"Content-Type", "text/html"}});
  ma.has_cl = true;
  ma.cl = 1234;
  Msg mb = response(200, "OK", {{"Transfer-Encoding", "chunked"}});
  mb.chunked = true;
  Outcome want;
  want.msgs = {ma, mb, with_cl(response(200, "OK", {{"Content-Length", "2"}}), 2, "ok")};
  want.stops = {{'M', a.size()}, {'M', a.size() + b.size()}, {'M', c.input.size()}};
  sweep(c, want);
}

TEST_CASE("http parser: 1xx responses then the final one, at every split point", "[http]") {
  Case c;
  c.kind = Kind::Response;
  const std::string a = "HTTP/1.1 100 Continue\r\n\r\n";
  const std::string b = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";
  const std::string d = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nLocation: /x\r\n\r\nok";
  c.input = a + b + d;
  Outcome want;
  want.msgs = {response(100, "Continue", {}),
               response(103, "Early Hints", {{"Link", "</style.css>; rel=preload"}}),
               with_cl(response(201, "Created", {{"Content-Length", "2"}, {"Location", "/x"}}), 2,
                       "ok")};
  want.stops = {{'M', a.size()}, {'M', a.size() + b.size()}, {'M', c.input.size()}};
  sweep(c, want);
}

TEST_CASE("http parser: pipelined requests stop after each message at every split point", "[http]") {
  const std::string a = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string b = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
  const std::string d = "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n";
  const std::string e = "DELETE /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  Case c;
  c.input = a + b + d + e;
  Msg put = request("PUT", "/c", {{"Host", "x"}, {"Transfer-Encoding", "chunked"}});
  put.chunked = true;
  put.body = "xyz";
  put.chunks = {3, 0};
  put.chunk_ends = 1;
  Msg del = request("DELETE", "/d", {{"Host", "x"}, {"Connection", "close"}});
  del.keep_alive = false;
  Outcome want;
  want.msgs = {request("GET", "/a", {{"Host", "x"}}),
               with_cl(request("POST", "/b", {{"Host", "x"}, {"Content-Length", "3"}}), 3, "abc"),
               put, del};
  const std::size_t ab = a.size() + b.size();
  want.stops = {{'M', a.size()}, {'M', ab}, {'M', ab + d.size()}, {'M', c.input.size()}};
  sweep(c, want);
}

TEST_CASE("http parser: a handler pause after each head stops at the same offsets at every split point", "[http]") {
  const std::string a = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n";
  const std::string b = "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string b_body = "3\r\nxyz\r\n0\r\n\r\n";
  const std::string d = "GET /d HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string e = "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n";
  Case c;
  c.input = a + "abc" + b + b_body + d + e + "hi";
  c.policy = {Next::Pause, Next::Pause, Next::Pause, Next::Pause};
  Msg put = request("PUT", "/c", {{"Host", "x"}, {"Transfer-Encoding", "chunked"}});
  put.chunked = true;
  put.body = "xyz";
  put.chunks = {3, 0};
  put.chunk_ends = 1;
  Outcome want;
  want.msgs = {with_cl(request("POST", "/b", {{"Host", "x"}, {"Content-Length", "3"}}), 3, "abc"),
               put, request("GET", "/d", {{"Host", "x"}}),
               with_cl(request("POST", "/e", {{"Host", "x"}, {"Content-Length", "2"}}), 2, "hi")};
  std::size_t at = 0;
  auto mark = [&](char what, std::size_t len) {
    at += len;
    want.stops.push_back({what, at});
  };
  mark('H', a.size());
  mark('M', 3);
  mark('H', b.size());
  mark('M', b_body.size());
  mark('H', d.size());
  // A request without a body paused after its head completes on the next
  // feed, before that feed consumes anything.
  mark('M', 0);
  mark('H', e.size());
  mark('M', 2);
  sweep(c, want);
}

TEST_CASE("http parser: a read-until-close response is finished by finish() at every split point", "[http]") {
  Case c;
  c.kind = Kind::Response;
  c.input = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome bytes\r\n\r\nuntil the close";
  c.eof = true;
  Msg m = response(200, "OK", {{"Content-Type", "text/plain"}});
  m.keep_alive = false;
  m.body = "some bytes\r\n\r\nuntil the close";
  Outcome want;
  want.msgs = {m};
  want.stops = {{'E', c.input.size()}};
  sweep(c, want);
}

TEST_CASE("http parser: HTTP/1.0 requests and a close-delimited 1.0 response at every split point", "[http]") {
  SECTION("requests: keep-alive only when asked for") {
    const std::string a = "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    Case c;
    c.input = a + "GET /b HTTP/1.0\r\nHost: x\r\n\r\n";
    Msg ma = request("GET", "/a", {{"Connection", "keep-alive"}});
    ma.minor = 0;
    Msg mb = request("GET", "/b", {{"Host", "x"}});
    mb.minor = 0;
    mb.keep_alive = false;
    Outcome want;
    want.msgs = {ma, mb};
    want.stops = {{'M', a.size()}, {'M', c.input.size()}};
    sweep(c, want);
  }
  SECTION("response without a length ends at EOF") {
    Case c;
    c.kind = Kind::Response;
    c.input = "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nold body";
    c.eof = true;
    Msg m = response(200, "OK", {{"Server", "old"}});
    m.minor = 0;
    m.keep_alive = false;
    m.body = "old body";
    Outcome want;
    want.msgs = {m};
    want.stops = {{'E', c.input.size()}};
    sweep(c, want);
  }
}

TEST_CASE("http parser: header values exclude surrounding whitespace at every split point", "[http]") {
  // RFC 9110 5.5: OWS around a field value is not part of it. A Host value of
  // "example.com " must reach normalise_host as "example.com".
  Case c;
  c.input = "GET / HTTP/1.1\r\nHost: example.com \r\nX-A:\t a b \t\r\nExpect: 100-continue  \r\n\r\n";
  Outcome want;
  want.msgs = {request("GET", "/", {{"Host", "example.com"}, {"X-A", "a b"}, {"Expect", "100-continue"}})};
  want.stops = {{'M', c.input.size()}};
  sweep(c, want);
}

TEST_CASE("http parser: an upgrade or CONNECT request stops once, like any message", "[http]") {
  // "It stops after every complete message": one stop per message. A second
  // stop with no new head and nothing consumed reads, to a caller, as another
  // complete message whose head is the previous one.
  const std::pair<const char*, std::string> cases[] = {
      {"websocket upgrade",
       "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
      {"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"},
  };
  for (const auto& [what, head] : cases) {
    DYNAMIC_SECTION(what) {
      Case c;
      c.input = head + "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
      const Outcome whole = parse(c, {});
      INFO("parsed whole:\n" << describe(whole));
      REQUIRE_FALSE(whole.msgs.empty());
      CHECK(whole.msgs[0].upgrade);
      std::size_t message_stops = 0;
      for (const Stop& s : whole.stops) message_stops += s.what == 'M' ? 1 : 0;
      CHECK(message_stops <= whole.msgs.size());
      sweep(c, whole);  // whatever it does, it does it at every split point
    }
  }
}

TEST_CASE("http parser: a bodiless request paused after its head is not Truncated by EOF", "[http]") {
  // The message ended with its head; EOF after it is not "inside a message".
  for (const char* in : {"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"}) {
    Case c;
    c.input = in;
    c.policy = {Next::Pause};
    c.eof = true;
    const Outcome got = parse(c, {});
    INFO("input: " << escaped(c.input) << "\nparsed:\n" << describe(got));
    CHECK(got.error == ParseError::None);
    CHECK_FALSE(got.open_at_end);
  }
}

// ---- the contract around pauses, EOF and errors ----

TEST_CASE("http parser: feed() without resume() stays paused and consumes nothing", "[http]") {
  struct H final : ParserHandler {
    Next on_head(MessageHead&) override { return Next::Continue; }
    bool on_body(const char*, std::size_t) override { return true; }
  } h;
  Parser p(Kind::Request, h, HeadLimits{});
  const std::string in = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::size_t first = in.find("GET /b");
  Parser::Result r = p.feed(in.data(), in.size());
  REQUIRE(r.status == Parser::Status::Paused);
  REQUIRE(r.consumed == first);
  CHECK(p.message_complete());
  CHECK_FALSE(p.in_message());
  CHECK(p.head().url() == "/a");
  r = p.feed(in.data() + first, in.size() - first);
  CHECK(r.status == Parser::Status::Paused);
  CHECK(r.consumed == 0);
  CHECK(p.head().url() == "/a");
  p.resume();
  CHECK_FALSE(p.message_complete());
  r = p.feed(in.data() + first, in.size() - first);
  CHECK(r.status == Parser::Status::Paused);
  CHECK(r.consumed == in.size() - first);
  CHECK(p.head().url() == "/b");
}

TEST_CASE("http parser: needs_eof and remaining_length describe the framing", "[http]") {
  struct H final : ParserHandler {
    Next on_head(MessageHead&) override { return Next::Continue; }
    bool on_body(const char*, std::size_t) override { return true; }
  } h;
  Parser p(Kind::Response, h, HeadLimits{});
  const std::string a = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123";
  REQUIRE(p.feed(a.data(), a.size()).status == Parser::Status::Ok);
  CHECK_FALSE(p.needs_eof());
  CHECK(p.remaining_length() == 6);
  CHECK(p.in_message());
  p.reset();
  const std::string b = "HTTP/1.1 200 OK\r\n\r\nabc";
  REQUIRE(p.feed(b.data(), b.size()).status == Parser::Status::Ok);
  CHECK(p.needs_eof());
  CHECK(p.finish().status == Parser::Status::Paused);
  CHECK(p.message_complete());
}

TEST_CASE("http parser: finish() between messages is not an error", "[http]") {
  for (const char* in : {"", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"}) {
    Case c;
    c.input = in;
    c.eof = true;
    Outcome got = parse(c, {});
    INFO("input: " << escaped(c.input));
    CHECK(got.error == ParseError::None);
    CHECK_FALSE(got.open_at_end);
  }
}

TEST_CASE("http parser: EOF inside a message is Truncated at every split point", "[http]") {
  const char* inputs[] = {
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",      // inside a CL body
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",         // before the CL body
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",  // inside a chunk
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",    // before the trailers end
      "GET / HTTP/1.1\r\nHost: x\r\n",                                      // inside the head
      "GET / HT",                                                           // inside the request line
  };
  for (const char* in : inputs) {
    Case c;
    c.input = in;
    c.eof = true;
    expect_error(c, ParseError::Truncated);
  }
  Case r;
  r.kind = Kind::Response;
  r.input = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab";
  r.eof = true;
  expect_error(r, ParseError::Truncated);
}

TEST_CASE("http parser: a handler that refuses the body or the head gives Rejected at every split point", "[http]") {
  Case c;
  c.input = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd";
  c.reject_body = true;
  expect_error(c, ParseError::Rejected);

  Case chunked;
  chunked.input = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
  chunked.reject_body = true;
  expect_error(chunked, ParseError::Rejected);

  Case head;
  head.input = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  head.policy = {Next::Abort};
  expect_error(head, ParseError::Rejected);
}

TEST_CASE("http parser: after an error the parser is dead until reset()", "[http]") {
  struct H final : ParserHandler {
    Next on_head(MessageHead&) override { return Next::Continue; }
    bool on_body(const char*, std::size_t) override { return true; }
  } h;
  Parser p(Kind::Request, h, HeadLimits{});
  const std::string bad = "GET / HTTP/1.1\r\nHo st: x\r\n\r\n";
  REQUIRE(p.feed(bad.data(), bad.size()).status == Parser::Status::Error);
  CHECK(p.error() == ParseError::Malformed);
  CHECK(std::string(p.reason()).size() > 0);
  const std::string good = "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n";
  Parser::Result r = p.feed(good.data(), good.size());
  CHECK(r.status == Parser::Status::Error);
  CHECK(r.consumed == 0);
  CHECK(p.finish().status == Parser::Status::Error);
  p.reset();
  CHECK(p.error() == ParseError::None);
  r = p.feed(good.data(), good.size());
  CHECK(r.status == Parser::Status::Paused);
  CHECK(r.consumed == good.size());
  CHECK(p.head().url() == "/ok");
}

// ---- smuggling shapes: each is Malformed, wherever the input is split ----

TEST_CASE("http parser: request smuggling shapes are Malformed at every split point", "[http]") {
  const std::pair<const char*, std::string> shapes[] = {
      {"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
      {"duplicate CL, same value", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
      {"duplicate CL, different values", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
      {"CL with a plus sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc"},
      {"CL as a list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc"},
      {"CL negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"},
      {"CL overflow", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"},
      {"CL empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n"},
      {"TE chunked then gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"},
      {"TE gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc"},
      {"TE xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"},
      {"obs-fold with a tab", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n"},
      {"obs-fold hiding TE", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n chunked\r\n\r\n0\r\n\r\n"},
      {"bare LF everywhere", "GET / HTTP/1.1\nHost: x\n\n"},
      {"bare LF after a header", "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n"},
      {"bare LF ending the head", "GET / HTTP/1.1\r\nHost: x\r\n\n"},
      {"bare LF ending a head without headers", "GET / HTTP/1.1\r\n\n"},
      {"bare LF ending the request line", "GET / HTTP/1.1\nHost: x\r\n\r\n"},
      {"bare LF after a chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"},
      {"bare LF after chunk data", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n"},
      {"bare LF after the last chunk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\n"},
      {"bare LF ending the trailers", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n"},
      {"bare LF after a trailer", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\n\r\n"},
      {"bare CR in a value", "GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n"},
      {"bare CR after the request line", "GET / HTTP/1.1\rHost: x\r\n\r\n"},
      {"space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n"},
      {"whitespace before the first header", "GET / HTTP/1.1\r\n Host: x\r\n\r\n"},
      {"space inside the URL", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"control character in a chunk extension", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n"},
      {"space inside a name", "GET / HTTP/1.1\r\nHo st: x\r\n\r\n"},
      {"separator in a name", "GET / HTTP/1.1\r\nHost: x\r\nX(a): b\r\n\r\n"},
      {"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n"},
      {"chunk size with a 0x prefix", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"},
      {"chunk size overflow", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n"},
      {"chunk data longer than its size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n"},
      {"NUL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"s},
      {"NUL in the URL", "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n"s},
      {"NUL in a name", "GET / HTTP/1.1\r\nHost: x\r\nX\0A: b\r\n\r\n"s},
      {"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: x\r\n\r\n"},
      {"bad header in the trailers", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Name: x\r\n\r\n"},
  };
  for (const auto& [what, input] : shapes) {
    DYNAMIC_SECTION("shape: " << what) {
      Case c;
      c.input = input;
      expect_error(c, ParseError::Malformed);
    }
  }
}

TEST_CASE("http parser: response smuggling shapes are Malformed at every split point", "[http]") {
  const std::pair<const char*, std::string> shapes[] = {
      {"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"duplicate CL, same value", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
      {"duplicate CL, different values", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
      {"CL as a list", "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc"},
      {"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"},
      {"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"},
      {"bare LF ending the head", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n"},
      {"space before the colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"},
      {"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n"},
      {"NUL in a value", "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n"s},
  };
  for (const auto& [what, input] : shapes) {
    DYNAMIC_SECTION("shape: " << what) {
      Case c;
      c.kind = Kind::Response;
      c.input = input;
      expect_error(c, ParseError::Malformed);
    }
  }
}

// ---- head limits ----

TEST_CASE("http parser: a URI over uri_bytes is UriTooLong at every split point", "[http]") {
  Case ok;
  ok.limits = kSmall;
  ok.input = "GET /" + repeat('u', 31) + " HTTP/1.1\r\nHost: x\r\n\r\n";  // exactly 32
  Outcome want;
  want.msgs = {request("GET", "", {{"Host", "x"}})};
  want.msgs[0].url = "/" + repeat('u', 31);
  want.stops = {{'M', ok.input.size()}};
  sweep(ok, want);

  Case over = ok;
  over.input = "GET /" + repeat('u', 32) + " HTTP/1.1\r\nHost: x\r\n\r\n";  // 33
  expect_error(over, ParseError::UriTooLong);
}

TEST_CASE("http parser: a head over header_bytes is HeadTooLarge at every split point", "[http]") {
  const std::string start = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  const std::size_t room = kSmall.header_bytes - start.size() - 4;  // value + "\r\n\r\n"

  Case exact;
  exact.limits = kSmall;
  exact.input = start + repeat('p', room) + "\r\n\r\n";
  REQUIRE(exact.input.size() == kSmall.header_bytes);
  Outcome want;
  want.msgs = {request("GET", "/", {{"Host", "x"}, {"X-Pad", repeat('p', room)}})};
  want.stops = {{'M', exact.input.size()}};
  sweep(exact, want);

  SECTION("one byte over") {
    Case c = exact;
    c.input = start + repeat('p', room + 1) + "\r\n\r\n";
    expect_error(c, ParseError::HeadTooLarge);
  }
  SECTION("mostly whitespace inside a value") {
    Case c = exact;
    c.input = start + "a" + repeat(' ', 2 * kSmall.header_bytes) + "b\r\n\r\n";
    expect_error(c, ParseError::HeadTooLarge);
  }
  SECTION("whitespace only after the colon") {
    Case c = exact;
    c.input = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad:" + repeat(' ', 2 * kSmall.header_bytes) + "\r\n\r\n";
    expect_error(c, ParseError::HeadTooLarge);
  }
  SECTION("a header line that never ends") {
    Case c = exact;
    c.input = start + repeat('a', 2 * kSmall.header_bytes);
    expect_error(c, ParseError::HeadTooLarge);
  }
  SECTION("a header name that never ends") {
    Case c = exact;
    c.input = "GET / HTTP/1.1\r\n" + repeat('N', 2 * kSmall.header_bytes);
    expect_error(c, ParseError::HeadTooLarge);
  }
  SECTION("a response head") {
    Case c = exact;
    c.kind = Kind::Response;
    c.input = "HTTP/1.1 200 OK\r\nX-Pad: " + repeat('p', kSmall.header_bytes) + "\r\n\r\n";
    expect_error(c, ParseError::HeadTooLarge);
  }
}

TEST_CASE("http parser: the head limit applies to each pipelined message afresh", "[http]") {
  const std::string start = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  const std::size_t room = kSmall.header_bytes - start.size() - 4;
  const std::string one = start + repeat('p', room) + "\r\n\r\n";
  Case c;
  c.limits = kSmall;
  c.input = one + one + one;
  const Msg m = request("GET", "/", {{"Host", "x"}, {"X-Pad", repeat('p', room)}});
  Outcome want;
  want.msgs = {m, m, m};
  want.stops = {{'M', one.size()}, {'M', 2 * one.size()}, {'M', 3 * one.size()}};
  sweep(c, want);
}

TEST_CASE("http parser: more headers than header_count is TooManyHeaders at every split point", "[http]") {
  std::string head = "GET / HTTP/1.1\r\n";
  std::vector<std::pair<std::string, std::string>> headers;
  for (std::uint32_t i = 0; i < kSmall.header_count; ++i) {
    head += "H" + std::to_string(i) + ": v\r\n";
    headers.emplace_back("H" + std::to_string(i), "v");
  }
  Case ok;
  ok.limits = kSmall;
  ok.input = head + "\r\n";
  Outcome want;
  want.msgs = {request("GET", "/", headers)};
  want.stops = {{'M', ok.input.size()}};
  sweep(ok, want);

  Case over = ok;
  over.input = head + "Hx: v\r\n\r\n";
  expect_error(over, ParseError::TooManyHeaders);

  // Trailers are dropped, so they do not count against header_count.
  Case trailers;
  trailers.limits = kSmall;
  trailers.input = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (std::uint32_t i = 0; i < kSmall.header_count + 2; ++i) trailers.input += "T" + std::to_string(i) + ": v\r\n";
  trailers.input += "\r\n";
  Outcome got = parse(trailers, {});
  CHECK(got.error == ParseError::None);
  CHECK(got.stops.size() == 1);
}

// ---- fuzz: damaged inputs parse the same however they are split ----

TEST_CASE("http parser: mutated messages give the same outcome split or whole (seeded fuzz)", "[http][fuzz]") {
  const std::vector<std::pair<Kind, std::string>> seeds = {
      {Kind::Request,
       "POST /u?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: b\r\n\r\n"},
      {Kind::Request,
       "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nxyz\r\n0\r\nT: 1\r\n\r\n"},
      {Kind::Response, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nok"},
      {Kind::Response, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
      {Kind::Response, "HTTP/1.0 200 OK\r\nServer: s\r\n\r\nuntil close"},
  };
  const char alphabet[] = {'\r', '\n', ' ', '\t', ':', ',', ';', '0', '9', 'a', 'F', '\0', '"', '/', '\x7f', '\xff'};
  std::mt19937 rng(0x5eed);
  const HeadLimits limits{96, 6, 24};  // small enough that mutants reach the limits too
  std::size_t errors = 0;
  for (int round = 0; round < 400; ++round) {
    const auto& [kind, seed] = seeds[static_cast<std::size_t>(round) % seeds.size()];
    std::string s = seed;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const std::size_t at = rng() % s.size();
      const char ch = alphabet[rng() % sizeof alphabet];
      switch (rng() % 4) {
        case 0: s[at] = ch; break;
        case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), ch); break;
        case 2: s.erase(at, 1); break;
        default: s.insert(at, std::string(rng() % 120, ch)); break;
      }
    }
    Case c;
    c.kind = kind;
    c.input = s;
    c.limits = limits;
    c.eof = (round % 2) == 0;
    const Outcome whole = parse(c, {});
    errors += whole.error != ParseError::None ? 1 : 0;
    const std::string want = describe(whole);
    INFO("round " << round << " input: " << escaped(s));
    for (int k = 0; k < 4; ++k) {
      std::vector<std::size_t> cuts;
      const std::size_t pieces = 1 + rng() % 4;
      for (std::size_t j = 0; j < pieces; ++j) cuts.push_back(s.empty() ? 0 : rng() % (s.size() + 1));
      std::sort(cuts.begin(), cuts.end());
      INFO("cuts: " << Catch::Detail::stringify(cuts));
      REQUIRE(describe(parse(c, cuts)) == want);
    }
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < s.size(); ++i) every.push_back(i);
    INFO("byte by byte");
    REQUIRE(describe(parse(c, every)) == want);
  }
  // The mutations must actually reach the error paths, or this proves little.
  CHECK(errors > 40);
  CHECK(errors < 400);
}
