// TLS over the transport seam: OpenSSL driven through a memory BIO of our own.
//
// TlsServerContext holds one listener's certificates and settings, built
// once at start and shared read-only by every worker (an SSL_CTX is safe to
// share; the server session cache, which would take a lock, is off, and
// resumption uses stateless tickets).
// TlsTransport is a Transport that owns a TcpTransport: ciphertext read from
// TCP is fed to OpenSSL straight from the read block, plaintext comes out into
// pool blocks, and ciphertext going out is written into pool blocks handed to
// TCP by reference. It holds no buffer while idle (SSL_MODE_RELEASE_BUFFERS).
// HTTP code above it cannot tell it from TCP.
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "net/transport.hpp"

namespace sluice::net {

class TlsServerContext {
 public:
  // Loads every certificate; on failure returns nullptr and sets `error`
  // (naming the file).
  static std::unique_ptr<TlsServerContext> build(const config::ListenerTls& conf,
                                                 std::string& error);
  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;

  // A new server-side SSL (accept state), or nullptr when out of memory.
  SSL* new_ssl() const;
  // Takes `other`'s ticket secret, so that tickets `other` issued still
  // resume here (a reload building this context for the same listener).
  void adopt_ticket_secret(const TlsServerContext& other) noexcept;
  // The certificate set SNI picks for `host` (lower case): for tests.
  std::size_t pick(std::string_view host) const noexcept;

 private:
  struct Entry {
    SSL_CTX* ctx = nullptr;
    std::vector<std::string> names;  // lower case; "*.example.com" wildcards
    std::string ocsp;                // DER OCSP response to staple, or empty
  };
  TlsServerContext() = default;
  static int on_servername(SSL* ssl, int* alert, void* arg);
  static int on_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                     const unsigned char* in, unsigned int inlen, void* arg);
  static int on_ocsp(SSL* ssl, void* arg);
  static int on_ticket_key(SSL* ssl, unsigned char name[16], unsigned char* iv,
                           EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc);

  std::vector<Entry> entries_;  // entries_[0] is the default
  // Ticket keys are derived from this secret for each rotation period, so
  // that no worker ever writes shared state to rotate them.
  unsigned char ticket_secret_[32] = {};
  std::vector<unsigned char> alpn_;  // ALPN wire format, server preference order
};

// Client-side TLS settings for one upstream, built once at start and shared
// read-only by every worker.
class TlsClientContext {
 public:
  static std::unique_ptr<TlsClientContext> build(const config::UpstreamTls& conf,
                                                 std::string& error);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  // A new client-side SSL for a server named `host` (a DNS name or an IP
  // literal, as written in the config): SNI is sent for names, and with
  // verification on, the certificate must be valid for `host` (or for
  // server_name when the config gives one).
  SSL* new_ssl(std::string_view host) const;
  bool verifies() const noexcept { return verify_; }

 private:
  TlsClientContext() = default;
  SSL_CTX* ctx_ = nullptr;
  std::string server_name_;
  bool verify_ = true;
};

class TlsTransport final : public Transport, private TransportHandler {
 public:
  // Layered over `tcp`, which its owner keeps (and which outlives this):
  // from now on tcp's events come here.
  TlsTransport(IoContext& io, TransportHandler& handler, TcpTransport& tcp);
  ~TlsTransport() override;
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  TcpTransport& tcp() noexcept { return tcp_; }
  // Takes ownership of `ssl` (server side, accept state). Reading must be
  // started for the handshake to progress.
  void start_server(SSL* ssl);
  // Takes ownership of `ssl` (client side, connect state) and starts the
  // handshake on the connected TCP stream; the handler hears of the end
  // through on_handshake_done() or on_error().
  void start_client(SSL* ssl);
  bool handshake_done() const noexcept { return handshake_done_; }

  void read_start() override;
  void read_stop() override;
  int write(OutBatch& batch) override;
  void shutdown_write() override;
  void close() override;
  std::size_t write_pending() const override { return tcp_.write_pending(); }
  bool is_closing() const override { return closing_; }
  bool ready() const override { return handshake_done_; }
  void trim() override;

 private:
  // from the TCP transport
  void on_read(Block* block, std::size_t n) override;
  void on_eof() override;
  void on_error(int uv_status) override;
  void on_write_done(int status) override;
  void on_closed() override;
  // The preface (PROXY header) comes before TLS: it is the handler's.
  std::size_t on_preface(Block* b, std::size_t n, bool& done) override {
    return handler_.on_preface(b, n, done);
  }

  static BIO_METHOD* bio_method();
  static int bio_read(BIO* bio, char* buf, int len);
  static int bio_write(BIO* bio, const char* buf, int len);
  static long bio_ctrl(BIO* bio, int cmd, long num, void* ptr);

  void pump();
  void flush();
  void fail(const char* what);
  void update_tcp_reading();
  bool refuse_plain_http(const char* data, std::size_t n);

  IoContext& io_;
  TransportHandler& handler_;
  TcpTransport& tcp_;
  SSL* ssl_ = nullptr;
  // Ciphertext received and not yet consumed by OpenSSL.
  BlockRef in_block_;
  std::size_t in_off_ = 0;
  std::size_t in_len_ = 0;
  // Ciphertext produced by OpenSSL and not yet handed to TCP.
  BlockRef out_block_;
  std::size_t out_used_ = 0;
  std::size_t out_flushed_ = 0;
  OutBatch out_;
  OutBatch early_;  // plaintext written before the handshake completed
  std::vector<uv_buf_t> bufs_;  // reused by write()
  bool want_read_ = false;  // the handler wants plaintext
  bool handshake_done_ = false;
  bool client_ = false;
  bool first_bytes_seen_ = false;
  bool in_pump_ = false;
  bool closing_ = false;
  bool failed_ = false;
};

}  // namespace sluice::net
