// TLS (net/tls): certificate choice by SNI, refusal of a mismatched key, and
// a real worker loop serving a request over TLS, then closing clean.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>

#include "config/config.hpp"
#include "core/log.hpp"
#include "net/listener.hpp"
#include "net/tls.hpp"
#include "proxy/worker.hpp"

namespace {

namespace fs = std::filesystem;

// Certificates made for this run with Debian's openssl CLI, in a temp dir.
struct TestCerts {
  fs::path dir;
  TestCerts() {
    dir = fs::temp_directory_path() / ("sluice-tls-test-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    make("site", "ec -pkeyopt ec_paramgen_curve:P-256", "/CN=site.test", "DNS:site.test");
    make("other", "rsa:2048", "/CN=other", "DNS:*.other.test,DNS:other.test");
    make("wrong", "ec -pkeyopt ec_paramgen_curve:P-256", "/CN=wrong", "DNS:wrong.test");
    make("site_rsa", "rsa:2048", "/CN=site.test", "DNS:site.test");
  }
  ~TestCerts() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  TestCerts(const TestCerts&) = delete;
  TestCerts& operator=(const TestCerts&) = delete;

  std::string cert(const char* name) const { return (dir / (std::string(name) + ".pem")).string(); }
  std::string key(const char* name) const { return (dir / (std::string(name) + ".key")).string(); }

 private:
  void make(const char* name, const char* newkey, const char* subject, const char* san) {
    const std::string cmd = "openssl req -x509 -newkey " + std::string(newkey) + " -nodes -keyout " +
                            key(name) + " -out " + cert(name) + " -days 2 -subj '" + subject +
                            "' -addext 'subjectAltName=" + san + "' 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
};

const TestCerts& certs() {
  static const TestCerts c;
  return c;
}

sluice::config::ListenerTls two_sites() {
  sluice::config::ListenerTls t;
  t.certificates.push_back({certs().cert("site"), certs().key("site"), ""});
  t.certificates.push_back({certs().cert("other"), certs().key("other"), ""});
  return t;
}

std::uint16_t local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// A blocking TLS client: connect, handshake with SNI, send, read to EOF.
struct ClientResult {
  bool handshake = false;
  std::string peer_cn;
  int peer_key_type = 0;  // EVP_PKEY_EC, EVP_PKEY_RSA, ...
  std::string response;
};

ClientResult tls_roundtrip(std::uint16_t port, const char* sni, const std::string& request,
                           const char* sigalgs = nullptr) {
  ClientResult out;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return out;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (sni) SSL_set_tlsext_host_name(ssl, sni);
  if (sigalgs) SSL_set1_sigalgs_list(ssl, sigalgs);
  if (SSL_connect(ssl) == 1) {
    out.handshake = true;
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
      char cn[256] = {};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
      out.peer_cn = cn;
      out.peer_key_type = EVP_PKEY_get_base_id(X509_get0_pubkey(peer));
      X509_free(peer);
    }
    SSL_write(ssl, request.data(), static_cast<int>(request.size()));
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) out.response.append(buf, static_cast<std::size_t>(n));
  }
  ERR_clear_error();
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  return out;
}

// A listening socket on an ephemeral loopback port, and a config routing
// everything to `upstream_port`, ready for the test to add TLS to.
struct Gateway {
  int fd = -1;
  std::uint16_t port = 0;
  std::shared_ptr<sluice::config::Config> cfg;
};

Gateway gateway_to(std::uint16_t upstream_port) {
  std::signal(SIGPIPE, SIG_IGN);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string error;
  Gateway g;
  g.fd = sluice::net::open_listen_socket(reinterpret_cast<const sockaddr*>(&any), sizeof any,
                                         "127.0.0.1:0", error);
  REQUIRE(g.fd >= 0);
  g.port = local_port(g.fd);
  // max_fails is high so that passive health never turns a 502 into a 503.
  const std::string text = "[log]\naccess = \"off\"\n[[listener]]\naddress = \"127.0.0.1:" +
                           std::to_string(g.port) +
                           "\"\n[[route]]\nupstream = \"app\"\n[[upstream]]\nname = \"app\"\n"
                           "servers = [\"127.0.0.1:" + std::to_string(upstream_port) +
                           "\"]\nmax_fails = 1000\n";
  auto loaded = sluice::config::parse_config(text, "tls_test.toml");
  REQUIRE(std::holds_alternative<std::shared_ptr<const sluice::config::Config>>(loaded));
  g.cfg = std::make_shared<sluice::config::Config>(
      *std::get<std::shared_ptr<const sluice::config::Config>>(loaded));
  return g;
}

// Runs a worker for `g` on a thread while `client` runs here, then stops it;
// returns whether its loop closed clean. `listener` and `upstream` are the
// TLS contexts of g's one listener and one upstream (nullptr: plain).
template <typename Client>
bool with_worker(Gateway& g, std::unique_ptr<sluice::net::TlsServerContext> listener,
                 std::unique_ptr<sluice::net::TlsClientContext> upstream, Client client) {
  auto gen = std::make_shared<sluice::proxy::Generation>();
  gen->config = g.cfg;
  gen->members = sluice::proxy::Generation::members_of(*g.cfg, nullptr);
  gen->listener_tls.push_back(std::move(listener));
  gen->upstream_tls.push_back(std::move(upstream));
  sluice::proxy::Worker worker(0, 1, gen, {g.fd}, -1);
  std::promise<void> done;
  std::thread thread([&] {
    worker.run();
    done.set_value();
  });
  client();
  worker.stop();
  REQUIRE(done.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  thread.join();
  return worker.clean();
}

std::uint16_t unused_port() {
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  ::bind(s, reinterpret_cast<const sockaddr*>(&any), sizeof any);
  const std::uint16_t port = local_port(s);
  ::close(s);
  return port;
}

}  // namespace

TEST_CASE("tls context: SNI picks the certificate by its names, the first one otherwise", "[tls]") {
  std::string error;
  auto ctx = sluice::net::TlsServerContext::build(two_sites(), error);
  INFO(error);
  REQUIRE(ctx);
  CHECK(ctx->pick("site.test") == 0);
  CHECK(ctx->pick("other.test") == 1);
  CHECK(ctx->pick("a.other.test") == 1);
  CHECK(ctx->pick("b.a.other.test") == 0);  // a wildcard covers one label only
  CHECK(ctx->pick("unknown.test") == 0);
  CHECK(ctx->pick("") == 0);
}

TEST_CASE("tls context: a key that does not match its certificate is refused, naming the file",
          "[tls]") {
  sluice::config::ListenerTls t;
  t.certificates.push_back({certs().cert("site"), certs().key("wrong"), ""});
  std::string error;
  auto ctx = sluice::net::TlsServerContext::build(t, error);
  CHECK_FALSE(ctx);
  CHECK(error.find(certs().key("wrong")) != std::string::npos);
}

TEST_CASE("tls transport: a worker serves requests over TLS with the SNI certificate and closes clean",
          "[tls]") {
  const auto saved = sluice::log::g_level.load();
  sluice::log::set_level(sluice::log::Level::Error);
  // The upstream is a port nothing listens on: the answer is the gateway's 502.
  Gateway g = gateway_to(unused_port());
  g.cfg->listeners[0].tls = two_sites();
  std::string error;
  auto ctx = sluice::net::TlsServerContext::build(*g.cfg->listeners[0].tls, error);
  REQUIRE(ctx);

  const std::string request = "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n";
  ClientResult site, other, none;
  const bool clean = with_worker(g, std::move(ctx), nullptr, [&] {
    site = tls_roundtrip(g.port, "site.test", request);
    other = tls_roundtrip(g.port, "x.other.test", request);
    none = tls_roundtrip(g.port, nullptr, request);
  });
  sluice::log::g_level.store(saved);

  CHECK(site.handshake);
  CHECK(site.peer_cn == "site.test");
  CHECK(site.response.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
  CHECK(other.peer_cn == "other");
  CHECK(other.response.rfind("HTTP/1.1 502", 0) == 0);
  CHECK(none.peer_cn == "site.test");  // no SNI: the first certificate
  CHECK(clean);
}

TEST_CASE("tls transport: an RSA and an ECDSA certificate for one name are both served", "[tls]") {
  const auto saved = sluice::log::g_level.load();
  sluice::log::set_level(sluice::log::Level::Error);
  Gateway g = gateway_to(unused_port());
  sluice::config::ListenerTls t;
  t.certificates.push_back({certs().cert("site"), certs().key("site"), ""});
  t.certificates.push_back({certs().cert("site_rsa"), certs().key("site_rsa"), ""});
  g.cfg->listeners[0].tls = t;
  std::string error;
  auto ctx = sluice::net::TlsServerContext::build(t, error);
  INFO(error);
  REQUIRE(ctx);
  CHECK(ctx->pick("site.test") == 0);  // one context for the one name

  const std::string request = "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n";
  ClientResult rsa_only, ec_only;
  const bool clean = with_worker(g, std::move(ctx), nullptr, [&] {
    rsa_only = tls_roundtrip(g.port, "site.test", request, "RSA-PSS+SHA256:RSA+SHA256");
    ec_only = tls_roundtrip(g.port, "site.test", request, "ECDSA+SHA256");
  });
  sluice::log::g_level.store(saved);
  CHECK(rsa_only.handshake);
  CHECK(rsa_only.peer_key_type == EVP_PKEY_RSA);
  CHECK(ec_only.handshake);
  CHECK(ec_only.peer_key_type == EVP_PKEY_EC);
  CHECK(rsa_only.response.rfind("HTTP/1.1 502", 0) == 0);
  CHECK(clean);
}

namespace {

// One TLS server connection on a thread: handshake, answer one request, then
// read until the gateway closes its pooled connection.
class TlsUpstream {
 public:
  TlsUpstream() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 4);
    port_ = local_port(fd_);
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_chain_file(ctx_, certs().cert("site").c_str());
    SSL_CTX_use_PrivateKey_file(ctx_, certs().key("site").c_str(), SSL_FILETYPE_PEM);
    thread_ = std::thread([this] { serve(); });
  }
  ~TlsUpstream() {
    ::shutdown(fd_, SHUT_RDWR);  // unblocks accept() if nobody came
    thread_.join();
    ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  TlsUpstream(const TlsUpstream&) = delete;
  TlsUpstream& operator=(const TlsUpstream&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  bool handshook() const noexcept { return handshook_; }
  const std::string& request() const noexcept { return request_; }

 private:
  void serve() {
    // Until the destructor shuts the socket: a refused handshake may be retried.
    for (int c; (c = ::accept(fd_, nullptr, nullptr)) >= 0;) serve_one(c);
  }
  void serve_one(int c) {
    timeval tv{10, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, c);
    if (SSL_accept(ssl) == 1) {
      handshook_ = true;
      request_.clear();
      char buf[4096];
      int n;
      while (request_.find("\r\n\r\n") == std::string::npos &&
             (n = SSL_read(ssl, buf, sizeof buf)) > 0) {
        request_.append(buf, static_cast<std::size_t>(n));
      }
      const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      SSL_write(ssl, answer.data(), static_cast<int>(answer.size()));
      while (SSL_read(ssl, buf, sizeof buf) > 0) {
      }
    }
    ERR_clear_error();
    SSL_free(ssl);
    ::close(c);
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  SSL_CTX* ctx_ = nullptr;
  std::thread thread_;
  std::atomic<bool> handshook_{false};
  std::string request_;
};

// A plain client request through a worker whose upstream speaks TLS.
std::string through_tls_upstream(const TlsUpstream& up, const std::string& server_name) {
  Gateway g = gateway_to(up.port());
  sluice::config::UpstreamTls& t = g.cfg->upstreams[0].tls;
  t.enabled = true;
  t.ca = certs().cert("site");  // self-signed: its own CA
  t.server_name = server_name;
  std::string error;
  auto ctx = sluice::net::TlsClientContext::build(t, error);
  INFO(error);
  REQUIRE(ctx);

  std::string response;
  const bool clean = with_worker(g, nullptr, std::move(ctx), [&] {
    int c = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{10, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(g.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      const std::string req = "GET /x HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n";
      if (::send(c, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(c, buf, sizeof buf, 0)) > 0) response.append(buf, static_cast<std::size_t>(n));
      }
    }
    ::close(c);
  });
  CHECK(clean);
  return response;
}

}  // namespace

TEST_CASE("tls upstream: the certificate is verified against the CA and the name", "[tls]") {
  const auto saved = sluice::log::g_level.load();
  sluice::log::set_level(sluice::log::Level::Error);
  SECTION("the right name: proxied") {
    TlsUpstream up;
    const std::string r = through_tls_upstream(up, "site.test");
    CHECK(r.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(r.size() >= 2);
    CHECK(r.substr(r.size() - 2) == "ok");
    CHECK(up.handshook());
    CHECK(up.request().rfind("GET /x HTTP/1.1\r\n", 0) == 0);
  }
  SECTION("a name the certificate does not carry: 502, nothing sent") {
    TlsUpstream up;
    const std::string r = through_tls_upstream(up, "wrong.test");
    CHECK(r.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
    CHECK_FALSE(up.handshook());
    CHECK(up.request().empty());
  }
  sluice::log::g_level.store(saved);
}
