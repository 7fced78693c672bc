// The TLS tables of the config file, and the checks on the files they name.
//
// Every certificate, key and CA file is opened and parsed here, at load, so
// that a wrong path or a key that belongs to another certificate is reported
// with file:line:col before anything starts, not found at the first handshake.
// Paths are used as written (relative ones against the working directory).
// It must never prompt for a passphrase (OpenSSL's default callback reads
// the terminal), never keep what it parsed, and never leave an error in
// OpenSSL's queue for the next caller to misread.
#include "config/tls_settings.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>

namespace sluice::config {
namespace {

// Far above any real certificate chain or CA bundle; stops a path such as
// /dev/zero from being read forever.
constexpr std::size_t kMaxFileBytes = 16u << 20;
constexpr std::size_t kMaxAlpnBytes = 255;  // one length byte on the wire (RFC 7301)
constexpr std::size_t kMaxNameBytes = 253;

struct FreeBio {
  void operator()(BIO* b) const noexcept { BIO_free_all(b); }
};
struct FreeX509 {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct FreeKey {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct FreeInfos {
  void operator()(STACK_OF(X509_INFO) * s) const noexcept {
    sk_X509_INFO_pop_free(s, X509_INFO_free);
  }
};
using BioPtr = std::unique_ptr<BIO, FreeBio>;
using X509Ptr = std::unique_ptr<X509, FreeX509>;
using KeyPtr = std::unique_ptr<EVP_PKEY, FreeKey>;
using InfosPtr = std::unique_ptr<STACK_OF(X509_INFO), FreeInfos>;

// The reason of the first (innermost) error in OpenSSL's queue, such as
// "bad base64 decode", and an empty queue afterwards. OpenSSL 3's decoders
// queue a bare "unsupported" when all of them refused the input; the errors
// after it, when there are any, say why.
std::string take_openssl_reason() {
  const char* first = nullptr;
  const char* specific = nullptr;
  while (const unsigned long code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    if (reason == nullptr) continue;
    if (first == nullptr) first = reason;
    if (specific == nullptr && ERR_GET_LIB(code) != ERR_LIB_OSSL_DECODER) specific = reason;
  }
  if (specific != nullptr) return specific;
  return first != nullptr ? first : "unknown error";
}

// True when the last queued error says the PEM reader found no (further)
// block of the kind it wanted: the end of the file, not a damaged block.
bool only_no_start_line() {
  const unsigned long code = ERR_peek_last_error();
  return code != 0 && ERR_GET_LIB(code) == ERR_LIB_PEM &&
         ERR_GET_REASON(code) == PEM_R_NO_START_LINE;
}

// The whole file, or nullopt after reporting "cannot read PATH: reason" at f.
std::optional<std::string> read_file(Reader& in, const Field& f, const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int open_errno = errno;
    in.error(f, "cannot read " + path + ": " + std::strerror(open_errno));
    return std::nullopt;
  }
  std::string text;
  char buf[16384];
  std::size_t n = 0;
  errno = 0;
  while (text.size() <= kMaxFileBytes && (n = std::fread(buf, 1, sizeof buf, file)) > 0)
    text.append(buf, n);
  // A directory opens fine and fails here, with EISDIR.
  const int read_errno = std::ferror(file) ? (errno != 0 ? errno : EIO) : 0;
  std::fclose(file);
  if (read_errno != 0) {
    in.error(f, "cannot read " + path + ": " + std::strerror(read_errno));
    return std::nullopt;
  }
  if (text.size() > kMaxFileBytes) {
    in.error(f, "cannot read " + path + ": larger than 16MiB");
    return std::nullopt;
  }
  return text;
}

BioPtr memory_bio(const std::string& bytes) {
  return BioPtr(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

// "2024-01-31T23:59:59Z"
std::string time_text(const ASN1_TIME* t) {
  std::tm tm{};
  char buf[32];
  if (ASN1_TIME_to_tm(t, &tm) != 1 ||
      std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    return "an unreadable date";
  return buf;
}

// The first certificate of a PEM file, after checking that the ones after it
// (the chain) parse too; nullptr after reporting why at f.
X509Ptr read_certificate(Reader& in, const Field& f, const std::string& path) {
  const auto bytes = read_file(in, f, path);
  if (!bytes) return nullptr;
  ERR_clear_error();
  const BioPtr bio = memory_bio(*bytes);
  X509Ptr leaf(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!leaf) {
    if (only_no_start_line()) {
      ERR_clear_error();
      in.error(f, path + " holds no PEM certificate");
    } else {
      in.error(f, path + " holds no valid PEM certificate: " + take_openssl_reason());
    }
    return nullptr;
  }
  // The rest is read the way SSL_CTX_use_certificate_chain_file will read it.
  for (int i = 1;; ++i) {
    const X509Ptr next(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (next) continue;
    if (only_no_start_line()) {
      ERR_clear_error();
      break;
    }
    in.error(f, path + ": certificate " + std::to_string(i + 1) + " in the file is not valid: " +
                    take_openssl_reason());
    return nullptr;
  }
  // Not an error: a certificate renewed by a cron job that has not run yet
  // should not keep the gateway from starting; clients will say so.
  if (X509_cmp_current_time(X509_get0_notAfter(leaf.get())) < 0)
    in.warning(f, path + " expired on " + time_text(X509_get0_notAfter(leaf.get())));
  else if (X509_cmp_current_time(X509_get0_notBefore(leaf.get())) > 0)
    in.warning(f, path + " is not valid before " + time_text(X509_get0_notBefore(leaf.get())));
  ERR_clear_error();
  return leaf;
}

// Whether the text holds a PEM block of a private key in any of its forms
// ("PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", ...). OpenSSL 3
// answers "unsupported" both for a file without one and for a damaged one.
bool has_private_key_block(std::string_view text) {
  constexpr std::string_view kBegin = "-----BEGIN ";
  for (auto at = text.find(kBegin); at != std::string_view::npos; at = text.find(kBegin, at + 1)) {
    const auto label_at = at + kBegin.size();
    const auto end = text.find("-----", label_at);
    if (end == std::string_view::npos) return false;
    if (text.substr(label_at, end - label_at).ends_with("PRIVATE KEY")) return true;
  }
  return false;
}

// Called by OpenSSL instead of its default, which would prompt on the terminal.
int refuse_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* asked) {
  *static_cast<bool*>(asked) = true;
  return -1;
}

// The first private key of a PEM file; nullptr after reporting why at f.
KeyPtr read_key(Reader& in, const Field& f, const std::string& path) {
  const auto bytes = read_file(in, f, path);
  if (!bytes) return nullptr;
  ERR_clear_error();
  bool asked = false;
  const BioPtr bio = memory_bio(*bytes);
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, &asked)
                 : nullptr);
  if (key) return key;
  if (asked) {
    ERR_clear_error();
    in.error(f, path + " holds an encrypted private key: Sluice cannot ask for a passphrase, "
                       "so the key must be stored unencrypted");
  } else if (!has_private_key_block(*bytes)) {
    ERR_clear_error();
    in.error(f, path + " holds no PEM private key");
  } else {
    in.error(f, path + " holds no valid PEM private key: " + take_openssl_reason());
  }
  return nullptr;
}

// Either or both of a certificate and its key; when both read, they must match.
void check_pair(Reader& in, const std::optional<Field>& cert_f, const std::string& cert,
                const std::optional<Field>& key_f, const std::string& key) {
  const X509Ptr leaf = cert_f && !cert.empty() ? read_certificate(in, *cert_f, cert) : nullptr;
  const KeyPtr pkey = key_f && !key.empty() ? read_key(in, *key_f, key) : nullptr;
  if (leaf && pkey && X509_check_private_key(leaf.get(), pkey.get()) != 1) {
    ERR_clear_error();
    in.error(*key_f, key + " does not match the certificate " + cert);
  }
}

// A CA bundle, read the way SSL_CTX_load_verify_locations will read it.
void check_ca(Reader& in, const Field& f, const std::string& path) {
  const auto bytes = read_file(in, f, path);
  if (!bytes) return;
  ERR_clear_error();
  const BioPtr bio = memory_bio(*bytes);
  const InfosPtr infos(bio ? PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, nullptr)
                           : nullptr);
  if (!infos) {
    in.error(f, path + " holds no valid PEM certificate: " + take_openssl_reason());
    return;
  }
  ERR_clear_error();
  for (int i = 0; i < sk_X509_INFO_num(infos.get()); ++i)
    if (sk_X509_INFO_value(infos.get(), i)->x509 != nullptr) return;
  in.error(f, path + " holds no PEM certificate");
}

// A string that names a file: nullopt when refused (reported). Empty is
// refused unless `empty_ok`.
std::optional<std::string> path_value(Reader& in, const std::optional<Field>& f, bool empty_ok) {
  if (!f) return std::nullopt;
  auto s = in.as_string(*f);
  if (s && s->empty() && !empty_ok) {
    in.error(*f, "must not be empty");
    return std::nullopt;
  }
  return s;
}

void read_certificates(Reader& in, const Field& f, std::vector<TlsCertificate>& out) {
  constexpr const char* kShape = "{ cert = \"site.pem\", key = \"site.key\" }";
  const toml::array* entries = f.node->as_array();
  if (entries == nullptr) {
    in.error(f, std::string("expected an array of tables such as [") + kShape + "]");
    return;
  }
  if (entries->empty()) in.error(f, "must list at least one certificate");
  for (std::size_t i = 0; i < entries->size(); ++i) {
    const Field entry{entries->get(i), indexed(f.path, i)};
    const toml::table* t = entry.node->as_table();
    if (t == nullptr) {
      in.error(entry, std::string("expected a table such as ") + kShape);
      continue;
    }
    in.check_keys(*t, entry.path, {"cert", "key", "ocsp_staple"});
    TlsCertificate c;
    const auto cert_f = in.required(*t, entry.path, "cert");
    const auto key_f = in.required(*t, entry.path, "key");
    const auto cert = path_value(in, cert_f, false);
    const auto key = path_value(in, key_f, false);
    check_pair(in, cert_f, cert.value_or(""), key_f, key.value_or(""));
    if (const auto ocsp_f = in.field(*t, entry.path, "ocsp_staple")) {
      // Its bytes go to clients as they are, so only readability is checked.
      if (auto ocsp = path_value(in, ocsp_f, true); ocsp && !ocsp->empty()) {
        if (read_file(in, *ocsp_f, *ocsp)) c.ocsp_staple = std::move(*ocsp);
      }
    }
    c.cert = cert.value_or("");
    c.key = key.value_or("");
    out.push_back(std::move(c));
  }
}

void read_alpn(Reader& in, const Field& f, std::vector<std::string>& out) {
  read_string_list(in, f, "\"http/1.1\"", out, [&](const Field& entry, const std::string& name) {
    if (!name.empty() && name.size() <= kMaxAlpnBytes) return true;
    in.error(entry, "must be 1..255 bytes long");
    return false;
  });
}

// What a TLS client can send as SNI and check against the certificate: a
// DNS name or an IP address (IPv6 without brackets).
bool valid_server_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == ':';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::optional<ListenerTls> read_listener_tls(Reader& in, const Field& f) {
  const toml::table* t = f.node->as_table();
  if (t == nullptr) {
    in.error(f, "expected a table ([listener.tls] or tls = { ... })");
    return std::nullopt;
  }
  in.check_keys(*t, f.path, {"certificates", "min_version", "alpn", "session_tickets"});
  ListenerTls tls;
  if (const auto c = in.required(*t, f.path, "certificates"))
    read_certificates(in, *c, tls.certificates);
  if (const auto v = in.field(*t, f.path, "min_version")) {
    if (v->node->is_floating_point())
      in.error(*v, "expected a string: write \"1.2\" or \"1.3\", in quotes");
    else if (const auto i = in.as_choice(*v, {"1.2", "1.3"}))
      tls.min_version = static_cast<TlsVersion>(*i);
  }
  if (const auto a = in.field(*t, f.path, "alpn")) read_alpn(in, *a, tls.alpn);
  if (const auto b = in.field(*t, f.path, "session_tickets"))
    if (const auto v = in.as_bool(*b)) tls.session_tickets = *v;
  return tls;
}

void read_upstream_tls(Reader& in, const Field& f, UpstreamTls& out) {
  const toml::table* t = f.node->as_table();
  if (t == nullptr) {
    in.error(f, "expected a table (tls = { enabled = true, ... } or [upstream.tls])");
    return;
  }
  in.check_keys(*t, f.path, {"enabled", "verify", "ca", "server_name", "cert", "key"});
  if (const auto b = in.field(*t, f.path, "enabled"))
    if (const auto v = in.as_bool(*b)) out.enabled = *v;
  if (const auto b = in.field(*t, f.path, "verify"))
    if (const auto v = in.as_bool(*b)) out.verify = *v;
  // Files are checked even while enabled = false: turning TLS on later
  // should not be the moment a wrong path comes to light.
  const auto ca_f = in.field(*t, f.path, "ca");
  if (auto ca = path_value(in, ca_f, true)) {
    if (!ca->empty()) check_ca(in, *ca_f, *ca);
    out.ca = std::move(*ca);
  }
  if (const auto n = in.field(*t, f.path, "server_name")) {
    if (auto name = in.as_string(*n)) {
      if (!name->empty() && !valid_server_name(*name))
        in.error(*n, "invalid server name " + quoted(*name) +
                         ": expected a host name or an IP address");
      else
        out.server_name = std::move(*name);
    }
  }
  const auto cert_f = in.field(*t, f.path, "cert");
  const auto key_f = in.field(*t, f.path, "key");
  const auto cert = path_value(in, cert_f, true);
  const auto key = path_value(in, key_f, true);
  const bool has_cert = cert && !cert->empty();
  const bool has_key = key && !key->empty();
  if (has_cert && !has_key && (!key_f || key))
    in.error(*cert_f, "a client certificate needs its key as well (set both cert and key, "
                      "or neither)");
  if (has_key && !has_cert && (!cert_f || cert))
    in.error(*key_f, "a client key needs its certificate as well (set both cert and key, "
                     "or neither)");
  check_pair(in, cert_f, cert.value_or(""), key_f, key.value_or(""));
  out.cert = cert.value_or("");
  out.key = key.value_or("");
}

}  // namespace sluice::config
