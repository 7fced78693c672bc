// The narrow seam around llhttp: one HTTP/1.x message at a time, strict.
//
// Parser collects the head (request line or status line, headers) into a
// MessageHead it owns, enforcing the head limits as bytes arrive, and reports
// the body as spans that point into the caller's buffer (never copied).
// It stops after every complete message (feed() returns Paused) so that a
// proxy answers pipelined requests one at a time; resume() goes on.
// Pure: no I/O, never reads outside the span it is given.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::http {

struct HeadLimits {
  std::uint32_t header_bytes = 16'384;  // raw bytes of request line + headers
  std::uint32_t header_count = 100;
  std::uint32_t uri_bytes = 8'192;
};

class MessageHead {
 public:
  std::string_view url() const noexcept { return view(url_off_, url_len_); }
  std::string_view reason() const noexcept { return view(reason_off_, reason_len_); }
  std::size_t header_count() const noexcept { return headers_.size(); }
  std::string_view name(std::size_t i) const noexcept {
    return view(headers_[i].name_off, headers_[i].name_len);
  }
  std::string_view value(std::size_t i) const noexcept {
    return view(headers_[i].value_off, headers_[i].value_len);
  }
  // First header with this name (case-insensitive), if any.
  std::optional<std::string_view> find(std::string_view name) const noexcept;
  std::size_t count(std::string_view name) const noexcept;

  std::uint8_t method = 0;         // llhttp_method_t, requests only
  std::uint16_t status = 0;        // responses only
  std::uint8_t version_major = 1;
  std::uint8_t version_minor = 1;
  bool keep_alive = false;         // llhttp_should_keep_alive at head time
  bool chunked = false;            // Transfer-Encoding ends in chunked
  bool has_content_length = false;
  bool upgrade = false;            // Upgrade header present (or CONNECT)
  std::uint64_t content_length = 0;

 private:
  friend class Parser;
  struct HeaderRef {
    std::uint32_t name_off, name_len, value_off, value_len;
  };
  std::string_view view(std::uint32_t off, std::uint32_t len) const noexcept {
    return std::string_view(buf_).substr(off, len);
  }
  void clear() noexcept;
  void release() noexcept;

  std::string buf_;  // url, reason, names and values, back to back
  std::vector<HeaderRef> headers_;
  std::uint32_t url_off_ = 0, url_len_ = 0;
  std::uint32_t reason_off_ = 0, reason_len_ = 0;
};

class ParserHandler {
 public:
  enum class Next : std::uint8_t {
    Continue,  // go on parsing the body
    Pause,     // stop right after the head; feed() returns Paused
    SkipBody,  // same as Continue; kept for callers that say it (use skip_body())
    Abort,     // stop with ParseError::Rejected
  };
  // Called once the head's bytes are all checked, so never for a malformed head.
  virtual Next on_head(MessageHead& head) = 0;
  // Asked while the head completes, before on_head: true when the message has
  // no body whatever its headers say (a response to HEAD). Decide only here.
  virtual bool skip_body(const MessageHead& head) { (void)head; return false; }
  // A span of body bytes (de-chunked), inside the buffer given to feed().
  // Returning false stops parsing with ParseError::Rejected.
  virtual bool on_body(const char* p, std::size_t n) = 0;
  // A chunk-size line was parsed (size 0: the last chunk). Chunked only.
  virtual void on_chunk(std::uint64_t size) { (void)size; }
  virtual void on_chunk_end() {}

 protected:
  ~ParserHandler() = default;
};

enum class ParseError : std::uint8_t {
  None,
  Malformed,        // syntax or framing (smuggling shapes included): 400 / 502
  UriTooLong,       // 414
  HeadTooLarge,     // 431
  TooManyHeaders,   // 431
  Rejected,         // the handler returned Abort
  Truncated,        // EOF inside a message
};
const char* to_string(ParseError e) noexcept;

class Parser {
 public:
  enum class Kind : std::uint8_t { Request, Response };
  enum class Status : std::uint8_t {
    Ok,        // everything given was consumed, message not finished
    Paused,    // stopped early: after a head (handler asked) or after a message
    Error,     // see error(); the parser is dead until reset()
  };
  struct Result {
    Status status;
    std::size_t consumed;
  };

  Parser(Kind kind, ParserHandler& handler, const HeadLimits& limits);
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  Result feed(const char* p, std::size_t n);
  // After Paused: lets the next feed() go on.
  void resume() noexcept;
  // The peer sent EOF. Completes a read-until-close message (returns Paused
  // with message_complete() true) or reports Truncated.
  Result finish();
  void reset();
  // Between messages only: gives back the head's storage (it is rebuilt,
  // allocating, by the next message).
  void trim() noexcept;
  // New limits from the next message head on (a reload changed them).
  void set_limits(const HeadLimits& limits) noexcept { limits_ = limits; }

  bool message_complete() const noexcept { return message_done_; }
  // The last message was an upgrade (or CONNECT): the bytes after it belong
  // to another protocol; feed() takes none of them.
  bool upgraded() const noexcept { return upgraded_; }
  bool in_message() const noexcept { return started_ && !message_done_; }
  bool head_complete() const noexcept { return head_done_; }
  ParseError error() const noexcept { return error_; }
  const char* reason() const noexcept { return reason_; }
  MessageHead& head() noexcept { return head_; }
  // Body bytes still expected for a Content-Length message.
  std::uint64_t remaining_length() const noexcept { return parser_.content_length; }
  // The message ends only when the peer closes (response without length).
  bool needs_eof() const noexcept { return llhttp_message_needs_eof(&parser_) != 0; }

 private:
  enum class Last : std::uint8_t { None, Field, Value, ValueDone };

  int on_message_begin() noexcept;
  int on_url(const char* p, std::size_t n) noexcept;
  int on_status(const char* p, std::size_t n) noexcept;
  int on_header_field(const char* p, std::size_t n) noexcept;
  int on_header_value(const char* p, std::size_t n) noexcept;
  int on_headers_complete() noexcept;
  int on_body(const char* p, std::size_t n) noexcept;
  int on_chunk_header() noexcept;
  int on_chunk_complete() noexcept;
  int on_message_complete() noexcept;
  int fail(ParseError e, const char* why) noexcept;
  void on_value_done() noexcept;
  bool has_bare_lf(const char* from, const char* to) const noexcept;
  bool append(std::uint32_t& len, const char* p, std::size_t n, std::size_t cap) noexcept;

  static const llhttp_settings_t kSettings;

  llhttp_t parser_{};
  Kind kind_;
  ParserHandler& handler_;
  HeadLimits limits_;
  MessageHead head_;
  std::size_t head_raw_ = 0;  // raw bytes fed since the message began, until its head is done
  std::size_t trailer_bytes_ = 0;
  llhttp_errno_t last_errno_ = HPE_OK;
  const char* feed_start_ = nullptr;  // start of the span llhttp is executing
  char prev_byte_ = 0;                // last byte of the previous span
  bool internal_pause_ = false;       // paused at a head only to check it
  bool upgraded_ = false;             // an upgrade message completed: no more HTTP
  bool head_pending_ = false;         // head parsed, not yet checked and handed to on_head
  ParseError error_ = ParseError::None;
  const char* reason_ = "";
  Last last_ = Last::None;
  bool started_ = false;
  bool head_done_ = false;
  bool message_done_ = false;
  bool in_trailers_ = false;
};

}  // namespace sluice::http
