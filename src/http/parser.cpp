// Parser: llhttp callbacks -> MessageHead + body spans, with head limits.
#include "http/parser.hpp"

#include "http/headers.hpp"

#include <cstring>

namespace sluice::http {

namespace {

Parser* self(llhttp_t* p) noexcept { return static_cast<Parser*>(p->data); }

}  // namespace

// ---- MessageHead

std::optional<std::string_view> MessageHead::find(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < headers_.size(); ++i) {
    if (iequals(this->name(i), name)) return value(i);
  }
  return std::nullopt;
}

std::size_t MessageHead::count(std::string_view name) const noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < headers_.size(); ++i) n += iequals(this->name(i), name) ? 1 : 0;
  return n;
}

void MessageHead::clear() noexcept {
  buf_.clear();
  headers_.clear();
  url_off_ = url_len_ = reason_off_ = reason_len_ = 0;
  method = 0;
  status = 0;
  version_major = version_minor = 1;
  keep_alive = chunked = has_content_length = upgrade = false;
  content_length = 0;
}

void MessageHead::release() noexcept {
  clear();
  std::string().swap(buf_);
  std::vector<HeaderRef>().swap(headers_);
}

const char* to_string(ParseError e) noexcept {
  switch (e) {
    case ParseError::None: return "none";
    case ParseError::Malformed: return "malformed";
    case ParseError::UriTooLong: return "uri_too_long";
    case ParseError::HeadTooLarge: return "head_too_large";
    case ParseError::TooManyHeaders: return "too_many_headers";
    case ParseError::Rejected: return "rejected";
    case ParseError::Truncated: return "truncated";
  }
  return "?";
}

// ---- Parser

const llhttp_settings_t Parser::kSettings = [] {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_begin = [](llhttp_t* p) { return self(p)->on_message_begin(); };
  s.on_url = [](llhttp_t* p, const char* at, std::size_t n) { return self(p)->on_url(at, n); };
  s.on_status = [](llhttp_t* p, const char* at, std::size_t n) {
    return self(p)->on_status(at, n);
  };
  s.on_header_field = [](llhttp_t* p, const char* at, std::size_t n) {
    return self(p)->on_header_field(at, n);
  };
  s.on_header_value = [](llhttp_t* p, const char* at, std::size_t n) {
    return self(p)->on_header_value(at, n);
  };
  s.on_header_value_complete = [](llhttp_t* p) {
    self(p)->on_value_done();
    return 0;
  };
  s.on_headers_complete = [](llhttp_t* p) { return self(p)->on_headers_complete(); };
  s.on_body = [](llhttp_t* p, const char* at, std::size_t n) { return self(p)->on_body(at, n); };
  s.on_chunk_header = [](llhttp_t* p) { return self(p)->on_chunk_header(); };
  s.on_chunk_complete = [](llhttp_t* p) { return self(p)->on_chunk_complete(); };
  s.on_message_complete = [](llhttp_t* p) { return self(p)->on_message_complete(); };
  return s;
}();

Parser::Parser(Kind kind, ParserHandler& handler, const HeadLimits& limits)
    : kind_(kind), handler_(handler), limits_(limits) {
  reset();
}

void Parser::trim() noexcept {
  if (in_message()) return;
  head_.release();
}

void Parser::reset() {
  llhttp_init(&parser_, kind_ == Kind::Request ? HTTP_REQUEST : HTTP_RESPONSE, &kSettings);
  parser_.data = this;
  head_.clear();
  head_raw_ = 0;
  error_ = ParseError::None;
  reason_ = "";
  last_ = Last::None;
  started_ = head_done_ = message_done_ = in_trailers_ = false;
  trailer_bytes_ = 0;
  last_errno_ = HPE_OK;
  internal_pause_ = false;
  upgraded_ = false;
  head_pending_ = false;
}

Parser::Result Parser::feed(const char* p, std::size_t n) {
  if (error_ != ParseError::None) return {Status::Error, 0};
  if (last_errno_ == HPE_PAUSED || last_errno_ == HPE_PAUSED_UPGRADE || upgraded_) {
    return {Status::Paused, 0};
  }
  std::size_t off = 0;
  bool again = false;  // after an internal pause llhttp runs once more, even with no bytes left
  while (off < n || again) {
    again = false;
    std::size_t len = n - off;
    if (!head_done_ && len > 0) {
      // Until the head is complete, llhttp never sees more than the head
      // budget: whitespace and long lines count, not only what callbacks see.
      if (head_raw_ >= limits_.header_bytes) {
        fail(ParseError::HeadTooLarge, "request head too large");
        return {Status::Error, off};
      }
      std::size_t budget = limits_.header_bytes - head_raw_;
      if (len > budget) len = budget;
    }
    bool head_was_done = head_done_;
    bool in_trailers = in_trailers_;
    feed_start_ = p + off;
    llhttp_errno_t e = llhttp_execute(&parser_, p + off, len);
    std::size_t used = len;
    if (e != HPE_OK) {
      const char* pos = llhttp_get_error_pos(&parser_);
      used = (pos >= p + off && pos <= p + off + len) ? static_cast<std::size_t>(pos - (p + off)) : 0;
    }
    if (!head_was_done || in_trailers) {
      // Every head, and the last chunk before trailers, ends in a pause (see
      // on_headers_complete, on_chunk_header), so [p+off, p+off+used) holds
      // head or trailer bytes only: no body byte is ever scanned.
      if (!head_was_done && !head_done_) head_raw_ += used;
      if (has_bare_lf(p + off, p + off + used)) {
        fail(ParseError::Malformed, "bare LF line ending");
        last_errno_ = HPE_USER;
        return {Status::Error, off};
      }
    }
    if (used > 0) prev_byte_ = p[off + used - 1];
    off += used;
    last_errno_ = e;
    switch (e) {
      case HPE_OK:
        continue;
      case HPE_PAUSED:
        if (head_pending_) {
          head_pending_ = false;
          const ParserHandler::Next next = handler_.on_head(head_);
          if (next == ParserHandler::Next::Abort) {
            fail(ParseError::Rejected, "rejected by handler");
            return {Status::Error, off};
          }
          if (message_done_) return {Status::Paused, off};  // no body: complete already
          if (next == ParserHandler::Next::Pause) {
            internal_pause_ = false;
            return {Status::Paused, off};
          }
        }
        if (internal_pause_) {  // the head was checked; the handler said go on
          internal_pause_ = false;
          llhttp_resume(&parser_);
          last_errno_ = HPE_OK;
          again = true;
          continue;
        }
        return {Status::Paused, off};
      case HPE_PAUSED_UPGRADE:
        message_done_ = true;
        return {Status::Paused, off};
      default:
        if (error_ == ParseError::None) {
          error_ = ParseError::Malformed;
          reason_ = llhttp_get_error_reason(&parser_);
          if (reason_ == nullptr) reason_ = llhttp_errno_name(e);
        }
        return {Status::Error, off};
    }
  }
  return {Status::Ok, off};
}

void Parser::resume() noexcept {
  if (upgraded_) return;  // what follows an upgrade is not HTTP
  if (last_errno_ == HPE_PAUSED) {
    llhttp_resume(&parser_);
  } else if (last_errno_ == HPE_PAUSED_UPGRADE) {
    llhttp_resume_after_upgrade(&parser_);
  } else {
    return;
  }
  last_errno_ = HPE_OK;
  if (message_done_) {
    started_ = head_done_ = message_done_ = in_trailers_ = false;
    head_raw_ = 0;
    trailer_bytes_ = 0;
  }
}

Parser::Result Parser::finish() {
  if (error_ != ParseError::None) return {Status::Error, 0};
  if (!started_ || message_done_) return {Status::Ok, 0};
  if (last_errno_ == HPE_PAUSED) return {Status::Paused, 0};  // the caller has not resumed
  // A resumed pause may still owe callbacks that need no byte (message
  // complete after a head without body): let llhttp run them first.
  static const char kNothing[1] = {0};
  for (int i = 0; i < 4 && !message_done_; ++i) {
    llhttp_errno_t e = llhttp_execute(&parser_, kNothing, 0);
    if (e == HPE_PAUSED && internal_pause_) {
      internal_pause_ = false;
      llhttp_resume(&parser_);
      continue;
    }
    if (e != HPE_OK) {
      last_errno_ = e;
      if (message_done_) return {Status::Paused, 0};
      if (e != HPE_PAUSED) {
        error_ = ParseError::Malformed;
        reason_ = llhttp_get_error_reason(&parser_);
        return {Status::Error, 0};
      }
    }
    break;
  }
  if (message_done_) return {Status::Paused, 0};
  llhttp_errno_t e = llhttp_finish(&parser_);
  if (message_done_) {
    last_errno_ = HPE_PAUSED;
    return {Status::Paused, 0};
  }
  if (e == HPE_OK && !in_message()) return {Status::Ok, 0};
  error_ = ParseError::Truncated;
  reason_ = "connection closed inside a message";
  return {Status::Error, 0};
}

// llhttp (8.1, even in strict mode) accepts a lone LF after the request or
// status line and as the empty line ending the head; RFC 9112 lets a server
// accept that, but a proxy that does can be desynchronised from the next hop.
bool Parser::has_bare_lf(const char* from, const char* to) const noexcept {
  for (const char* q = from; q < to;) {
    const void* hit = std::memchr(q, '\n', static_cast<std::size_t>(to - q));
    if (!hit) return false;
    const char* lf = static_cast<const char*>(hit);
    const char before = lf > feed_start_ ? lf[-1] : prev_byte_;
    if (before != '\r') return true;
    q = lf + 1;
  }
  return false;
}

int Parser::fail(ParseError e, const char* why) noexcept {
  if (error_ == ParseError::None) {
    error_ = e;
    reason_ = why;
  }
  return HPE_USER;
}

bool Parser::append(std::uint32_t& len, const char* p, std::size_t n, std::size_t cap) noexcept {
  if (len + n > cap) return false;
  head_.buf_.append(p, n);
  len += static_cast<std::uint32_t>(n);
  return true;
}

int Parser::on_message_begin() noexcept {
  head_.clear();
  started_ = true;
  head_done_ = message_done_ = in_trailers_ = false;
  last_ = Last::None;
  trailer_bytes_ = 0;
  return 0;
}

int Parser::on_url(const char* p, std::size_t n) noexcept {
  if (head_.url_len_ == 0) head_.url_off_ = static_cast<std::uint32_t>(head_.buf_.size());
  if (!append(head_.url_len_, p, n, limits_.uri_bytes)) {
    return fail(ParseError::UriTooLong, "request URI too long");
  }
  return 0;
}

int Parser::on_status(const char* p, std::size_t n) noexcept {
  if (head_.reason_len_ == 0) head_.reason_off_ = static_cast<std::uint32_t>(head_.buf_.size());
  if (!append(head_.reason_len_, p, n, 512)) return fail(ParseError::Malformed, "reason too long");
  return 0;
}

int Parser::on_header_field(const char* p, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    if (!is_tchar(static_cast<unsigned char>(p[i]))) {
      return fail(ParseError::Malformed, "invalid character in header name");
    }
  }
  if (in_trailers_) {
    // Trailers are dropped, but they may not be unbounded either.
    trailer_bytes_ += n;
    if (trailer_bytes_ > limits_.header_bytes) return fail(ParseError::HeadTooLarge, "trailers too large");
    last_ = Last::Field;
    return 0;
  }
  if (last_ != Last::Field) {
    if (head_.headers_.size() >= limits_.header_count) {
      return fail(ParseError::TooManyHeaders, "too many header fields");
    }
    head_.headers_.push_back({static_cast<std::uint32_t>(head_.buf_.size()), 0, 0, 0});
  }
  last_ = Last::Field;
  head_.buf_.append(p, n);
  head_.headers_.back().name_len += static_cast<std::uint32_t>(n);
  return 0;
}

int Parser::on_header_value(const char* p, std::size_t n) noexcept {
  // A value that does not follow a name continues the previous line: obs-fold,
  // which RFC 9112 lets a proxy refuse and which smuggling attacks rely on.
  // llhttp reports a folded continuation as one more span of the same value,
  // so the tell is the byte before the span: a value never contains LF.
  const char before = p > feed_start_ ? p[-1] : prev_byte_;
  if (last_ == Last::ValueDone || last_ == Last::None || (last_ == Last::Value && before == '\n')) {
    return fail(ParseError::Malformed, "obsolete line folding");
  }
  for (std::size_t i = 0; i < n; ++i) {
    char c = p[i];
    if (c == '\r' || c == '\n' || c == '\0') {
      return fail(ParseError::Malformed, "invalid character in header value");
    }
  }
  if (in_trailers_) {
    trailer_bytes_ += n;
    if (trailer_bytes_ > limits_.header_bytes) return fail(ParseError::HeadTooLarge, "trailers too large");
    last_ = Last::Value;
    return 0;
  }
  MessageHead::HeaderRef& h = head_.headers_.back();
  if (last_ == Last::Field) h.value_off = static_cast<std::uint32_t>(head_.buf_.size());
  last_ = Last::Value;
  head_.buf_.append(p, n);
  h.value_len += static_cast<std::uint32_t>(n);
  return 0;
}

void Parser::on_value_done() noexcept {
  // llhttp leaves trailing whitespace in the value; it is not part of it (RFC 9110 5.5).
  if (last_ == Last::Value && !in_trailers_ && !head_.headers_.empty()) {
    MessageHead::HeaderRef& h = head_.headers_.back();
    while (h.value_len > 0) {
      char c = head_.buf_[h.value_off + h.value_len - 1];
      if (c != ' ' && c != '\t') break;
      --h.value_len;
    }
  }
  last_ = Last::ValueDone;
}

int Parser::on_headers_complete() noexcept {
  MessageHead& h = head_;
  h.method = llhttp_get_method(&parser_);
  h.status = static_cast<std::uint16_t>(llhttp_get_status_code(&parser_));
  h.version_major = llhttp_get_http_major(&parser_);
  h.version_minor = llhttp_get_http_minor(&parser_);
  h.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  h.chunked = (parser_.flags & F_CHUNKED) != 0;
  h.has_content_length = (parser_.flags & F_CONTENT_LENGTH) != 0;
  h.content_length = h.has_content_length ? parser_.content_length : 0;
  h.upgrade = (parser_.flags & F_UPGRADE) != 0 ||
              (kind_ == Kind::Request && h.method == HTTP_CONNECT);
  if (h.version_major != 1) return fail(ParseError::Malformed, "unsupported HTTP version");
  for (const MessageHead::HeaderRef& ref : h.headers_) {
    if (ref.name_len == 0) return fail(ParseError::Malformed, "empty header name");
  }
  head_done_ = true;
  last_ = Last::None;
  // The handler gets the head from feed(), once feed() knows where the head
  // ends and has checked its line endings. Without a body the message
  // completes right here and its pause marks that end; otherwise pause now.
  head_pending_ = true;
  if (handler_.skip_body(h)) return 1;
  internal_pause_ = true;
  return HPE_PAUSED;
}

int Parser::on_body(const char* p, std::size_t n) noexcept {
  if (!handler_.on_body(p, n)) return fail(ParseError::Rejected, "body rejected by handler");
  return 0;
}

int Parser::on_chunk_header() noexcept {
  std::uint64_t size = parser_.content_length;
  handler_.on_chunk(size);
  if (size == 0) {
    // Pause so that feed() knows where the trailer section starts and can
    // check its line endings like a head's.
    in_trailers_ = true;
    last_ = Last::None;
    internal_pause_ = true;
    return HPE_PAUSED;
  }
  return 0;
}

int Parser::on_chunk_complete() noexcept {
  if (!in_trailers_) handler_.on_chunk_end();
  return 0;
}

int Parser::on_message_complete() noexcept {
  message_done_ = true;
  if (parser_.upgrade) upgraded_ = true;
  return HPE_PAUSED;
}

}  // namespace sluice::http
