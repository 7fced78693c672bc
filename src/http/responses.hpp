// The gateway's own responses: small plain-text errors and 100 Continue.
// Static text only: building one never allocates.
#pragma once

#include <string_view>

namespace sluice::http {

// A complete response for `status` with a short text/plain body. With
// `close`, it carries Connection: close; otherwise keep-alive framing.
std::string_view error_response(int status, bool close) noexcept;

inline constexpr std::string_view kContinue100 = "HTTP/1.1 100 Continue\r\n\r\n";

const char* reason_phrase(int status) noexcept;

}  // namespace sluice::http
