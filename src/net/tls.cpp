// TlsServerContext and TlsTransport: see tls.hpp.
#include "net/tls.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/log.hpp"

namespace sluice::net {

namespace {

// TLS 1.2: ECDHE key exchange (forward secrecy) and AEAD ciphers only.
// TLS 1.3 suites are all AEAD with forward secrecy; OpenSSL's default list stays.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";
// Session tickets are sealed with the key of the current period and accepted
// for one period more (then renewed): a key lives at most two periods.
constexpr std::time_t kTicketKeyPeriod = 12 * 60 * 60;

struct TicketKeys {
  unsigned char name[16];
  unsigned char aes[32];
  unsigned char mac[32];
};

bool derive(const unsigned char* secret, const char* label, std::int64_t epoch, unsigned char* out,
            std::size_t out_len) {
  unsigned char input[48];
  std::size_t n = std::strlen(label);
  std::memcpy(input, label, n);
  for (int i = 0; i < 8; ++i) input[n++] = static_cast<unsigned char>(epoch >> (8 * i));
  unsigned char digest[EVP_MAX_MD_SIZE];
  std::size_t digest_len = 0;
  if (!EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret, 32, input, n, digest,
                 sizeof digest, &digest_len) ||
      digest_len < out_len) {
    return false;
  }
  std::memcpy(out, digest, out_len);
  return true;
}

// The keys of `epoch` for `secret`, cached per thread (no lock, no sharing).
const TicketKeys* ticket_keys(const unsigned char* secret, std::int64_t epoch) {
  struct Cached {
    const unsigned char* secret = nullptr;
    std::int64_t epoch = -1;
    TicketKeys keys{};
  };
  thread_local Cached cache[4];
  for (Cached& c : cache) {
    if (c.secret == secret && c.epoch == epoch) return &c.keys;
  }
  Cached& slot = cache[static_cast<std::size_t>(epoch) % 4];
  if (!derive(secret, "sluice ticket name", epoch, slot.keys.name, 16) ||
      !derive(secret, "sluice ticket aes", epoch, slot.keys.aes, 32) ||
      !derive(secret, "sluice ticket mac", epoch, slot.keys.mac, 32)) {
    slot.secret = nullptr;
    return nullptr;
  }
  slot.secret = secret;
  slot.epoch = epoch;
  return &slot.keys;
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

// The DNS names a certificate answers for: SAN DNS entries, else the CN.
std::vector<std::string> certificate_names(X509* cert) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const ASN1_IA5STRING* dns = gn->d.dNSName;
      names.push_back(lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                             static_cast<std::size_t>(ASN1_STRING_length(dns)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
      names.push_back(lower(cn));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool name_matches(std::string_view pattern, std::string_view host) {
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    // A wildcard covers exactly one label: "*.a.b" matches "x.a.b", not "x.y.a.b".
    std::size_t dot = host.find('.');
    return dot != std::string_view::npos && dot > 0 && host.substr(dot) == pattern.substr(1);
  }
  return pattern == host;
}

SSL_CTX* new_server_ctx(const config::ListenerTls& conf, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    error = "SSL_CTX_new: " + openssl_error();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, conf.min_version == config::TlsVersion::V1_3 ? TLS1_3_VERSION
                                                                                 : TLS1_2_VERSION);
  std::uint64_t options = SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                          SSL_OP_NO_RENEGOTIATION;  // client-initiated: off by default in OpenSSL 3
  if (!conf.session_tickets) options |= SSL_OP_NO_TICKET;
  SSL_CTX_set_options(ctx, options);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // No server-side session cache: it is shared state behind a lock. Tickets
  // carry the session instead (stateless, keys per context).
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, conf.session_tickets ? 1 : 0);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 || SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    error = "cipher setup: " + openssl_error();
    SSL_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

bool load_pair(SSL_CTX* ctx, const config::TlsCertificate& c, std::string& error) {
  if (SSL_CTX_use_certificate_chain_file(ctx, c.cert.c_str()) != 1) {
    error = c.cert + ": cannot load the certificate chain: " + openssl_error();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, c.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = c.key + ": cannot load the private key: " + openssl_error();
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    error = c.key + ": does not match the certificate " + c.cert;
    ERR_clear_error();
    return false;
  }
  return true;
}

}  // namespace

// ---- TlsServerContext

std::unique_ptr<TlsServerContext> TlsServerContext::build(const config::ListenerTls& conf,
                                                          std::string& error) {
  std::unique_ptr<TlsServerContext> self(new TlsServerContext);
  if (RAND_bytes(self->ticket_secret_, sizeof self->ticket_secret_) != 1) {
    error = "RAND_bytes: " + openssl_error();
    return nullptr;
  }
  for (const std::string& p : conf.alpn) {
    self->alpn_.push_back(static_cast<unsigned char>(p.size()));
    self->alpn_.insert(self->alpn_.end(), p.begin(), p.end());
  }
  for (const config::TlsCertificate& c : conf.certificates) {
    // Read the leaf's names first: certificates with the same names (an RSA
    // and an ECDSA one for one site) share a context, and OpenSSL picks by
    // what the client supports.
    BIO* bio = BIO_new_file(c.cert.c_str(), "r");
    X509* leaf = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
    BIO_free(bio);
    if (!leaf) {
      error = c.cert + ": no PEM certificate: " + openssl_error();
      return nullptr;
    }
    std::vector<std::string> names = certificate_names(leaf);
    X509_free(leaf);
    Entry* entry = nullptr;
    for (Entry& e : self->entries_) {
      if (e.names == names) entry = &e;
    }
    if (!entry) {
      SSL_CTX* ctx = new_server_ctx(conf, error);
      if (!ctx) return nullptr;
      self->entries_.push_back(Entry{ctx, std::move(names), {}});
      entry = &self->entries_.back();
      SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
      SSL_CTX_set_tlsext_servername_arg(ctx, self.get());
      SSL_CTX_set_app_data(ctx, self.get());
      if (conf.session_tickets) SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
      if (!self->alpn_.empty()) SSL_CTX_set_alpn_select_cb(ctx, on_alpn, self.get());
    }
    if (!load_pair(entry->ctx, c, error)) return nullptr;
    if (!c.ocsp_staple.empty()) {
      std::ifstream in(c.ocsp_staple, std::ios::binary);
      entry->ocsp.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (!in.good() && !in.eof()) {
        error = c.ocsp_staple + ": cannot read the OCSP response";
        return nullptr;
      }
      SSL_CTX_set_tlsext_status_cb(entry->ctx, on_ocsp);
      SSL_CTX_set_tlsext_status_arg(entry->ctx, self.get());
    }
  }
  if (self->entries_.empty()) {
    error = "no certificate";
    return nullptr;
  }
  return self;
}

TlsServerContext::~TlsServerContext() {
  for (Entry& e : entries_) SSL_CTX_free(e.ctx);
}

SSL* TlsServerContext::new_ssl() const {
  SSL* ssl = SSL_new(entries_.front().ctx);
  if (ssl) SSL_set_accept_state(ssl);
  return ssl;
}

void TlsServerContext::adopt_ticket_secret(const TlsServerContext& other) noexcept {
  std::memcpy(ticket_secret_, other.ticket_secret_, sizeof ticket_secret_);
}

std::size_t TlsServerContext::pick(std::string_view host) const noexcept {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    for (const std::string& n : entries_[i].names) {
      if (name_matches(n, host)) return i;
    }
  }
  return 0;
}

int TlsServerContext::on_servername(SSL* ssl, int*, void* arg) {
  auto* self = static_cast<TlsServerContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  char host[256];
  std::size_t n = std::strlen(name);
  if (n >= sizeof host) return SSL_TLSEXT_ERR_OK;
  for (std::size_t i = 0; i < n; ++i) {
    char c = name[i];
    host[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  std::size_t i = self->pick(std::string_view(host, n));
  if (i != 0) SSL_set_SSL_CTX(ssl, self->entries_[i].ctx);
  return SSL_TLSEXT_ERR_OK;
}

int TlsServerContext::on_alpn(SSL*, const unsigned char** out, unsigned char* outlen,
                              const unsigned char* in, unsigned int inlen, void* arg) {
  auto* self = static_cast<TlsServerContext*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, self->alpn_.data(),
                            static_cast<unsigned>(self->alpn_.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // nothing in common: carry on without ALPN
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int TlsServerContext::on_ocsp(SSL* ssl, void* arg) {
  auto* self = static_cast<TlsServerContext*>(arg);
  SSL_CTX* ctx = SSL_get_SSL_CTX(ssl);
  for (const Entry& e : self->entries_) {
    if (e.ctx != ctx || e.ocsp.empty()) continue;
    auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(e.ocsp.size()));  // OpenSSL frees it
    if (!copy) return SSL_TLSEXT_ERR_NOACK;
    std::memcpy(copy, e.ocsp.data(), e.ocsp.size());
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(e.ocsp.size()));
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

int TlsServerContext::on_ticket_key(SSL* ssl, unsigned char name[16], unsigned char* iv,
                                    EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) {
  // Tickets are keyed by the context the handshake started on (OpenSSL's
  // session context), whatever SNI switched to.
  auto* self = static_cast<TlsServerContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (!self) return -1;
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr) / kTicketKeyPeriod);
  OSSL_PARAM params[3];
  auto mac_params = [&](const TicketKeys* k) {
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(k->mac), 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(mac, params) == 1;
  };
  if (enc) {
    const TicketKeys* k = ticket_keys(self->ticket_secret_, now);
    if (!k || RAND_bytes(iv, 16) != 1) return -1;
    std::memcpy(name, k->name, 16);
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k->aes, iv) != 1 || !mac_params(k)) {
      return -1;
    }
    return 1;
  }
  for (std::int64_t epoch : {now, now - 1}) {
    const TicketKeys* k = ticket_keys(self->ticket_secret_, epoch);
    if (!k || std::memcmp(name, k->name, 16) != 0) continue;
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k->aes, iv) != 1 || !mac_params(k)) {
      return -1;
    }
    // 2: valid, and issue a fresh ticket (under the current key). Always, not
    // only for the older key: a TLS 1.3 client should not reuse a ticket
    // (RFC 8446 C.4), so each resumption must leave it a new one.
    return 2;
  }
  return 0;  // unknown key: a full handshake
}

// ---- TlsClientContext

std::unique_ptr<TlsClientContext> TlsClientContext::build(const config::UpstreamTls& conf,
                                                          std::string& error) {
  std::unique_ptr<TlsClientContext> self(new TlsClientContext);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    error = "SSL_CTX_new: " + openssl_error();
    return nullptr;
  }
  self->ctx_ = ctx;
  self->verify_ = conf.verify;
  self->server_name_ = conf.server_name;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 || SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    error = "cipher setup: " + openssl_error();
    return nullptr;
  }
  if (conf.verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    int ok = conf.ca.empty() ? SSL_CTX_set_default_verify_paths(ctx)
                             : SSL_CTX_load_verify_locations(ctx, conf.ca.c_str(), nullptr);
    if (ok != 1) {
      error = (conf.ca.empty() ? std::string("the system CA store") : conf.ca) +
              ": cannot load CA certificates: " + openssl_error();
      return nullptr;
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!conf.cert.empty()) {
    config::TlsCertificate pair{conf.cert, conf.key, ""};
    if (!load_pair(ctx, pair, error)) return nullptr;
  }
  return self;
}

TlsClientContext::~TlsClientContext() {
  if (ctx_) SSL_CTX_free(ctx_);
}

SSL* TlsClientContext::new_ssl(std::string_view host) const {
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) return nullptr;
  SSL_set_connect_state(ssl);
  const std::string name(server_name_.empty() ? host : std::string_view(server_name_));
  const bool is_ip = !name.empty() && (name.find(':') != std::string::npos ||
                                       name.find_first_not_of("0123456789.") == std::string::npos);
  if (!is_ip) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (verify_) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                   : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1) {
      SSL_free(ssl);
      ERR_clear_error();
      return nullptr;
    }
  }
  return ssl;
}

// ---- the BIO: OpenSSL reads from the held read block and writes into pool blocks

BIO_METHOD* TlsTransport::bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice");
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
    return m;
  }();
  return method;
}

int TlsTransport::bio_read(BIO* bio, char* buf, int len) {
  auto* self = static_cast<TlsTransport*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (self->in_len_ == 0) {
    BIO_set_retry_read(bio);
    return -1;
  }
  std::size_t n = std::min(self->in_len_, static_cast<std::size_t>(len));
  std::memcpy(buf, self->in_block_.get()->data + self->in_off_, n);
  self->in_off_ += n;
  self->in_len_ -= n;
  return static_cast<int>(n);
}

int TlsTransport::bio_write(BIO* bio, const char* buf, int len) {
  auto* self = static_cast<TlsTransport*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  std::size_t left = static_cast<std::size_t>(len);
  while (left > 0) {
    if (!self->out_block_ || self->out_used_ == Block::kCapacity) {
      self->flush();  // hands the full block's bytes on and drops our reference
      self->out_block_ = BlockRef(self->io_.blocks().get());
      self->out_used_ = self->out_flushed_ = 0;
    }
    std::size_t n = std::min(left, Block::kCapacity - self->out_used_);
    std::memcpy(self->out_block_.get()->data + self->out_used_, buf, n);
    self->out_used_ += n;
    buf += n;
    left -= n;
  }
  return len;
}

long TlsTransport::bio_ctrl(BIO*, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // flush() runs after every OpenSSL call
    default:
      return 0;
  }
}

// ---- TlsTransport

TlsTransport::TlsTransport(IoContext& io, TransportHandler& handler, TcpTransport& tcp)
    : io_(io), handler_(handler), tcp_(tcp) {
  tcp_.set_handler(*this);
}

TlsTransport::~TlsTransport() {
  if (ssl_) SSL_free(ssl_);
}

void TlsTransport::start_server(SSL* ssl) {
  ssl_ = ssl;
  BIO* bio = BIO_new(bio_method());
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one BIO both ways: SSL takes the one reference
}

void TlsTransport::start_client(SSL* ssl) {
  start_server(ssl);  // the same BIO wiring; the SSL is in connect state
  client_ = true;
  first_bytes_seen_ = true;  // a server does not send plain HTTP to be refused
  pump();                    // writes the ClientHello
}

void TlsTransport::read_start() {
  want_read_ = true;
  if (closing_) return;
  // OpenSSL may hold decrypted records or unread ciphertext from before the
  // pause; deliver those first (unless we are inside pump(), which goes on).
  if (!in_pump_ && handshake_done_ && (in_len_ > 0 || SSL_has_pending(ssl_))) {
    pump();
    return;
  }
  update_tcp_reading();
}

void TlsTransport::read_stop() {
  want_read_ = false;
  update_tcp_reading();
}

void TlsTransport::update_tcp_reading() {
  if (closing_) return;
  // TCP reads run while the handshake needs input, or while the handler
  // wants plaintext and no ciphertext is held.
  if ((!handshake_done_ || want_read_) && in_len_ == 0) {
    tcp_.read_start();
  } else {
    tcp_.read_stop();
  }
}

int TlsTransport::write(OutBatch& batch) {
  if (closing_ || failed_) {
    batch.clear();
    return UV_ECANCELED;
  }
  if (!handshake_done_) {
    // Written before the handshake finished (an early error answer): keep it.
    if (!early_.empty()) {
      batch.clear();
      return UV_EAGAIN;
    }
    early_.swap(batch);
    return 0;
  }
  // Gather the segments (a head, body slices, chunk framing) into full
  // records: one SSL_write per 16 KiB rather than one record per segment.
  batch.to_bufs(bufs_);
  BlockRef stage(io_.blocks().get());
  std::size_t staged = 0;
  auto seal = [&]() {
    if (staged == 0) return true;
    int r = SSL_write(ssl_, stage.get()->data, static_cast<int>(staged));
    staged = 0;
    return r > 0;
  };
  bool ok = true;
  for (const uv_buf_t& b : bufs_) {
    const char* p = b.base;
    std::size_t left = b.len;
    while (ok && left > 0) {
      std::size_t n = std::min(left, Block::kCapacity - staged);
      std::memcpy(stage.get()->data + staged, p, n);
      staged += n;
      p += n;
      left -= n;
      if (staged == Block::kCapacity) ok = seal();
    }
  }
  ok = ok && seal();
  batch.clear();  // the bytes are in TLS records now: release the blocks
  if (!ok) {
    fail("write");
    return UV_EPROTO;
  }
  flush();
  return 0;
}

void TlsTransport::shutdown_write() {
  if (closing_) return;
  if (handshake_done_ && !failed_) {
    SSL_shutdown(ssl_);  // close_notify
    flush();
  }
  tcp_.shutdown_write();
}

void TlsTransport::trim() {
  out_.trim();
  early_.trim();
  std::vector<uv_buf_t>().swap(bufs_);
}

void TlsTransport::close() {
  if (closing_) return;
  closing_ = true;
  in_block_.reset();
  in_len_ = 0;
  out_block_.reset();
  out_.clear();
  early_.clear();
  tcp_.close();
}

void TlsTransport::flush() {
  if (out_block_ && out_used_ > out_flushed_) {
    out_.append_block(out_block_.get(), out_block_.get()->data + out_flushed_, out_used_ - out_flushed_);
    out_flushed_ = out_used_;
  }
  // The write holds its own references: an idle connection keeps no block.
  out_block_.reset();
  out_used_ = out_flushed_ = 0;
  if (!out_.empty() && !closing_) {
    if (tcp_.write(out_) < 0) failed_ = true;
  }
}

void TlsTransport::fail(const char* what) {
  if (failed_) return;
  failed_ = true;
  unsigned long e = ERR_peek_error();
  char reason[200] = "-";
  if (e) ERR_error_string_n(e, reason, sizeof reason);
  ERR_clear_error();
  SLUICE_LOG(Debug, "msg=\"tls %s failed\" handshake_done=%d reason=\"%s\"", what,
             handshake_done_ ? 1 : 0, reason);
  flush();  // an alert, if OpenSSL produced one
}

// Plain HTTP sent to a TLS port: say so in plain HTTP, as nginx does, then close.
bool TlsTransport::refuse_plain_http(const char* data, std::size_t n) {
  if (n == 0 || data[0] < 'A' || data[0] > 'Z') return false;  // a TLS record starts with 0x16
  static constexpr std::string_view kBody = "400 Bad Request: plain HTTP was sent to a TLS port\n";
  static const std::string kResponse =
      "HTTP/1.1 400 Bad Request\r\nServer: sluice\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Length: " + std::to_string(kBody.size()) + "\r\nConnection: close\r\n\r\n" +
      std::string(kBody);
  OutBatch b;
  b.append_copy(kResponse);
  tcp_.write(b);
  tcp_.shutdown_write();
  return true;
}

void TlsTransport::on_read(Block* block, std::size_t n) {
  if (closing_ || failed_) return;
  if (!first_bytes_seen_) {
    first_bytes_seen_ = true;
    if (refuse_plain_http(block->data, n)) {
      ++io_.counters.tls_plain_http;
      failed_ = true;
      handler_.on_error(UV_EPROTO);
      return;
    }
  }
  in_block_ = BlockRef::share(block);
  in_off_ = 0;
  in_len_ = n;
  pump();
}

void TlsTransport::pump() {
  if (in_pump_ || closing_) return;
  in_pump_ = true;
  while (!closing_ && !failed_) {
    if (!handshake_done_) {
      int r = SSL_do_handshake(ssl_);
      flush();
      if (r == 1) {
        handshake_done_ = true;
        ++io_.counters.tls_handshakes;
        if (!early_.empty()) {
          OutBatch pending;
          pending.swap(early_);
          write(pending);
        }
        if (client_) {
          in_pump_ = false;
          handler_.on_handshake_done();
          if (closing_) return;
          in_pump_ = true;
        }
        continue;
      }
      int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_READ) break;
      ++io_.counters.tls_handshake_failures;
      if (client_ && SSL_get_verify_result(ssl_) != X509_V_OK) {
        SLUICE_LOG(Warn, "msg=\"upstream certificate refused\" reason=\"%s\"",
                   X509_verify_cert_error_string(SSL_get_verify_result(ssl_)));
      }
      fail("handshake");
      in_pump_ = false;
      handler_.on_error(UV_EPROTO);
      return;
    }
    if (!want_read_) break;  // ciphertext stays held; TCP reads stop until read_start()
    Block* b = io_.blocks().get();
    int r = SSL_read(ssl_, b->data, static_cast<int>(Block::kCapacity));
    if (r > 0) {
      handler_.on_read(b, static_cast<std::size_t>(r));
      b->unref();
      continue;
    }
    b->unref();
    int err = SSL_get_error(ssl_, r);
    flush();  // post-handshake messages (tickets, key updates) may be waiting
    if (err == SSL_ERROR_WANT_READ) break;
    in_pump_ = false;
    if (err == SSL_ERROR_ZERO_RETURN) {  // close_notify: a clean end of input
      handler_.on_eof();
    } else {
      fail("read");
      handler_.on_error(UV_EPROTO);
    }
    return;
  }
  flush();
  if (in_len_ == 0) in_block_.reset();
  in_pump_ = false;
  update_tcp_reading();
}

void TlsTransport::on_eof() {
  if (closing_) return;
  if (!handshake_done_ && !failed_) ++io_.counters.tls_handshake_failures;  // gave up half-way
  handler_.on_eof();
}

void TlsTransport::on_error(int uv_status) {
  if (closing_) return;
  handler_.on_error(uv_status);
}

void TlsTransport::on_write_done(int status) { handler_.on_write_done(status); }

void TlsTransport::on_closed() { handler_.on_closed(); }

}  // namespace sluice::net
