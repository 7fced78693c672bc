// Tests for the TLS parts of src/config: [listener.tls], an upstream's `tls`
// table, a route's `hsts`, and the checks on the certificate, key and CA
// files they name, with the place and the file in every error.
//
// The certificates are made here, once per run, with OpenSSL's C API into a
// temporary directory: no network, no openssl binary, nothing left behind.
#include <catch2/catch.hpp>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "config_support.hpp"
#include "core/log.hpp"

namespace {

using namespace sluice::config;
namespace fs = std::filesystem;

constexpr const char* kPath = "test.toml";

// ---- certificates, made once ----

struct FreeKey {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct FreeX509 {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct FreeBio {
  void operator()(BIO* b) const noexcept { BIO_free_all(b); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, FreeKey>;
using X509Ptr = std::unique_ptr<X509, FreeX509>;
using BioPtr = std::unique_ptr<BIO, FreeBio>;

KeyPtr ec_key() {
  KeyPtr key(EVP_EC_gen("P-256"));
  REQUIRE(key);
  return key;
}

KeyPtr rsa_key() {
  KeyPtr key(EVP_RSA_gen(2048));
  REQUIRE(key);
  return key;
}

// A self-signed certificate for CN=localhost, valid from `from` to `to`
// seconds relative to now.
X509Ptr self_signed(EVP_PKEY* key, long from, long to) {
  static long serial = 1;
  X509Ptr x(X509_new());
  REQUIRE(x);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), from);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), to);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  REQUIRE(X509_sign(x.get(), key, EVP_sha256()) > 0);
  return x;
}

BioPtr open_for_writing(const fs::path& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "w"));
  REQUIRE(bio);
  return bio;
}

void write_cert(const fs::path& path, std::initializer_list<X509*> certs) {
  const BioPtr bio = open_for_writing(path);
  for (X509* x : certs) REQUIRE(PEM_write_bio_X509(bio.get(), x) == 1);
}

void write_key(const fs::path& path, EVP_PKEY* key, const char* passphrase = nullptr) {
  const BioPtr bio = open_for_writing(path);
  if (passphrase == nullptr) {
    REQUIRE(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  } else {
    REQUIRE(PEM_write_bio_PKCS8PrivateKey(bio.get(), key, EVP_aes_128_cbc(), passphrase,
                                          static_cast<int>(std::strlen(passphrase)), nullptr,
                                          nullptr) == 1);
  }
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

// The files every test here uses, in a directory removed at exit.
class Files {
 public:
  static const Files& get() {
    static const Files files;
    return files;
  }
  ~Files() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Files(const Files&) = delete;
  Files& operator=(const Files&) = delete;

  std::string operator()(const std::string& name) const { return (dir_ / name).string(); }
  const fs::path& dir() const { return dir_; }

 private:
  Files() : dir_(fs::temp_directory_path() / ("sluice-tls-test-" + std::to_string(::getpid()))) {
    fs::create_directories(dir_);
    const KeyPtr ec = ec_key();
    const KeyPtr rsa = rsa_key();
    const KeyPtr other = ec_key();
    const X509Ptr ec_cert = self_signed(ec.get(), 0, 86'400);
    const X509Ptr rsa_cert = self_signed(rsa.get(), 0, 86'400);
    write_cert(dir_ / "ec.pem", {ec_cert.get()});
    write_key(dir_ / "ec.key", ec.get());
    write_cert(dir_ / "rsa.pem", {rsa_cert.get()});
    write_key(dir_ / "rsa.key", rsa.get());
    write_key(dir_ / "other.key", other.get());
    write_key(dir_ / "encrypted.key", ec.get(), "secret");
    // A leaf and its "chain" (any certificate after it will do here).
    write_cert(dir_ / "chain.pem", {ec_cert.get(), rsa_cert.get()});
    write_cert(dir_ / "expired.pem", {self_signed(ec.get(), -2 * 86'400, -86'400).get()});
    write_cert(dir_ / "future.pem", {self_signed(ec.get(), 86'400, 2 * 86'400).get()});
    // Cert and key in one file, as some tools write them.
    write_text(dir_ / "both.pem", read_text(dir_ / "ec.pem") + read_text(dir_ / "ec.key"));

    const std::string pem = read_text(dir_ / "ec.pem");
    write_text(dir_ / "junk.txt", "this is not PEM\n");
    write_text(dir_ / "empty.pem", "");
    write_text(dir_ / "truncated.pem", pem.substr(0, pem.size() / 2));
    write_text(dir_ / "bad-chain.pem", pem + "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                             "-----END CERTIFICATE-----\n");
    write_text(dir_ / "bad.key",
               "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    write_text(dir_ / "staple.der", std::string("\x30\x03\x0a\x01\x00", 5));
  }

  fs::path dir_;
};

// ---- loading ----

std::shared_ptr<const Config> load_ok(const std::string& text) {
  return config_support::config_of(parse_config(text, kPath));
}

std::vector<ConfigError> load_bad(const std::string& text) {
  auto errors = config_support::errors_of(parse_config(text, kPath));
  // Every failed check leaves OpenSSL's error queue as it found it.
  CHECK(ERR_peek_error() == 0);
  return errors;
}

using config_support::error_for;

void expect_error(const std::string& text, const std::string& key, const std::string& fragment) {
  config_support::single_error(load_bad(text), key, fragment);
}

constexpr const char* kRouteAndUpstream = R"(
[[route]]
upstream = "app"
[[upstream]]
name = "app"
servers = ["127.0.0.1:9000"]
)";

// A file with one TLS listener whose [listener.tls] table is `tls`.
std::string with_listener_tls(const std::string& tls) {
  return "[[listener]]\naddress = \"127.0.0.1:8443\"\n[listener.tls]\n" + tls + "\n" +
         kRouteAndUpstream;
}

// `certificates` with one entry of the given cert and key file names (in Files).
std::string one_certificate(const std::string& cert, const std::string& key,
                            const std::string& extra = "") {
  const Files& f = Files::get();
  return "certificates = [{ cert = \"" + f(cert) + "\", key = \"" + f(key) + "\"" + extra +
         " }]";
}

// A file whose only upstream has the `tls` table written as `tls` (a line
// such as `tls = { ... }`, or a "[upstream.tls]" section with its keys).
std::string with_upstream_tls(const std::string& tls) {
  return "[[listener]]\naddress = \"127.0.0.1:8080\"\n[[route]]\nupstream = \"app\"\n"
         "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:9000\"]\n" +
         tls + "\n";
}

// The error log at `error` for the scope: warnings are expected, not shown.
class QuietLog {
 public:
  QuietLog() : saved_(sluice::log::g_level.load()) {
    sluice::log::set_level(sluice::log::Level::Error);
  }
  ~QuietLog() { sluice::log::g_level.store(saved_); }
  QuietLog(const QuietLog&) = delete;
  QuietLog& operator=(const QuietLog&) = delete;

 private:
  std::uint8_t saved_;
};

using config_support::InDirectory;

}  // namespace

// ---- listeners ----

TEST_CASE("config tls: a listener with two certificates loads every value", "[config][tls]") {
  const Files& f = Files::get();
  const auto c = load_ok(R"([[listener]]
address = "127.0.0.1:8080"
[[listener]]
address = "127.0.0.1:8443"
[listener.tls]
certificates = [ { cert = ")" + f("chain.pem") + R"(", key = ")" + f("ec.key") + R"(" },
                 { cert = ")" + f("rsa.pem") + R"(", key = ")" + f("rsa.key") +
                         R"(", ocsp_staple = ")" + f("staple.der") + R"(" } ]
min_version = "1.3"
alpn = ["http/1.1", "http/1.0"]
session_tickets = false
)" + kRouteAndUpstream);
  REQUIRE(c->listeners.size() == 2);
  CHECK_FALSE(c->listeners[0].tls.has_value());
  REQUIRE(c->listeners[1].tls.has_value());
  const ListenerTls& tls = *c->listeners[1].tls;
  REQUIRE(tls.certificates.size() == 2);
  CHECK(tls.certificates[0].cert == f("chain.pem"));
  CHECK(tls.certificates[0].key == f("ec.key"));
  CHECK(tls.certificates[0].ocsp_staple.empty());
  CHECK(tls.certificates[1].cert == f("rsa.pem"));
  CHECK(tls.certificates[1].key == f("rsa.key"));
  CHECK(tls.certificates[1].ocsp_staple == f("staple.der"));
  CHECK(tls.min_version == TlsVersion::V1_3);
  CHECK(tls.alpn == std::vector<std::string>{"http/1.1", "http/1.0"});
  CHECK_FALSE(tls.session_tickets);
  CHECK(c->warnings.empty());
}

TEST_CASE("config tls: defaults, and [[listener.tls.certificates]] works too", "[config][tls]") {
  const auto c = load_ok(with_listener_tls(one_certificate("ec.pem", "ec.key")));
  const ListenerTls& tls = c->listeners.at(0).tls.value();
  CHECK(tls.certificates.size() == 1);
  CHECK(tls.min_version == TlsVersion::V1_2);
  CHECK(tls.alpn == std::vector<std::string>{"http/1.1"});
  CHECK(tls.session_tickets);
  CHECK(c->upstreams.at(0).tls.enabled == false);
  CHECK(c->upstreams.at(0).tls.verify);
  CHECK(c->routes.at(0).hsts.empty());

  const Files& f = Files::get();
  const auto tables = load_ok(std::string("[[listener]]\naddress = \"127.0.0.1:8443\"\n") +
                              "[[listener.tls.certificates]]\ncert = \"" + f("ec.pem") +
                              "\"\nkey = \"" + f("ec.key") + "\"\nocsp_staple = \"\"\n" +
                              "[[listener.tls.certificates]]\ncert = \"" + f("both.pem") +
                              "\"\nkey = \"" + f("both.pem") + "\"\n" + kRouteAndUpstream);
  CHECK(tables->listeners.at(0).tls.value().certificates.size() == 2);

  const auto no_alpn = load_ok(with_listener_tls(one_certificate("ec.pem", "ec.key") +
                                                 "\nalpn = []\nmin_version = \"1.2\""));
  CHECK(no_alpn->listeners.at(0).tls.value().alpn.empty());
}

TEST_CASE("config tls: relative paths are relative to the working directory", "[config][tls]") {
  const Files& f = Files::get();
  const std::string text =
      with_listener_tls("certificates = [{ cert = \"ec.pem\", key = \"ec.key\" }]");
  {
    InDirectory in(f.dir());
    CHECK(load_ok(text)->listeners.at(0).tls.value().certificates.at(0).cert == "ec.pem");
  }
  InDirectory in(f.dir().parent_path());
  const auto errors = load_bad(text);
  CHECK(errors.size() == 2);
  CHECK(error_for(errors, "listener[0].tls.certificates[0].cert").message ==
        "cannot read ec.pem: No such file or directory");
}

TEST_CASE("config tls: each certificate file problem names the file and its place",
          "[config][tls]") {
  const Files& f = Files::get();
  const auto errors = load_bad(with_listener_tls(
      "certificates = [{ cert = \"" + f("missing.pem") + "\", key = \"" + f("ec.key") + "\" }]"));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].to_string() ==
        "test.toml:4:26: listener[0].tls.certificates[0].cert: cannot read " + f("missing.pem") +
            ": No such file or directory");

  const std::string cert = "listener[0].tls.certificates[0].cert";
  const std::string key = "listener[0].tls.certificates[0].key";
  const struct {
    const char* cert;
    const char* key;
    std::string where;
    std::string fragment;
  } cases[] = {
      {"junk.txt", "ec.key", cert, f("junk.txt") + " holds no PEM certificate"},
      {"empty.pem", "ec.key", cert, f("empty.pem") + " holds no PEM certificate"},
      {"ec.key", "ec.key", cert, f("ec.key") + " holds no PEM certificate"},
      {"truncated.pem", "ec.key", cert, f("truncated.pem") + " holds no valid PEM certificate: "},
      {"bad-chain.pem", "ec.key", cert, "certificate 2 in the file is not valid"},
      {"", "ec.key", cert, "cannot read " + f("") + ": Is a directory"},
      {"ec.pem", "missing.key", key, "cannot read " + f("missing.key") + ": No such file"},
      {"ec.pem", "ec.pem", key, f("ec.pem") + " holds no PEM private key"},
      {"ec.pem", "junk.txt", key, f("junk.txt") + " holds no PEM private key"},
      {"ec.pem", "bad.key", key, f("bad.key") + " holds no valid PEM private key: "},
      {"ec.pem", "encrypted.key", key, f("encrypted.key") + " holds an encrypted private key"},
      {"ec.pem", "other.key", key,
       f("other.key") + " does not match the certificate " + f("ec.pem")},
      {"ec.pem", "rsa.key", key, f("rsa.key") + " does not match the certificate " + f("ec.pem")},
      {"rsa.pem", "ec.key", key, f("ec.key") + " does not match the certificate " + f("rsa.pem")},
  };
  for (const auto& c : cases) {
    INFO(c.cert << " + " << c.key);
    expect_error(with_listener_tls(one_certificate(c.cert, c.key)), c.where, c.fragment);
  }
  expect_error(with_listener_tls(one_certificate("ec.pem", "ec.key",
                                                 ", ocsp_staple = \"" + f("none.der") + "\"")),
               "listener[0].tls.certificates[0].ocsp_staple",
               "cannot read " + f("none.der") + ": No such file or directory");
}

TEST_CASE("config tls: an expired certificate is a warning, not an error", "[config][tls]") {
  QuietLog quiet;
  const auto c = load_ok(with_listener_tls(one_certificate("expired.pem", "ec.key")));
  REQUIRE(c->warnings.size() == 1);
  const ConfigError& w = c->warnings[0];
  CHECK(w.key == "listener[0].tls.certificates[0].cert");
  CHECK(w.line == 4);
  CHECK_THAT(w.message, Catch::StartsWith(Files::get()("expired.pem") + " expired on 20"));

  const auto future = load_ok(with_listener_tls(one_certificate("future.pem", "ec.key")));
  REQUIRE(future->warnings.size() == 1);
  CHECK_THAT(future->warnings[0].message, Catch::Contains(" is not valid before 20"));

  // Warnings never hide errors, nor are they reported as errors.
  const auto errors = load_bad(with_listener_tls(one_certificate("expired.pem", "other.key")));
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0].message, Catch::Contains("does not match"));
}

TEST_CASE("config tls: certificates must be a non-empty list of { cert, key } tables",
          "[config][tls]") {
  const std::string prefix = "listener[0].tls.";
  expect_error(with_listener_tls("min_version = \"1.2\""), prefix + "certificates",
               "missing required key");
  expect_error(with_listener_tls("certificates = []"), prefix + "certificates",
               "must list at least one certificate");
  expect_error(with_listener_tls("certificates = \"site.pem\""), prefix + "certificates",
               "expected an array of tables");
  expect_error(with_listener_tls("certificates = [\"site.pem\"]"), prefix + "certificates[0]",
               "expected a table such as { cert = ");
  const Files& f = Files::get();
  expect_error(with_listener_tls("certificates = [{ cert = \"" + f("ec.pem") + "\" }]"),
               prefix + "certificates[0].key", "missing required key");
  expect_error(with_listener_tls("certificates = [{ key = \"" + f("ec.key") + "\" }]"),
               prefix + "certificates[0].cert", "missing required key");
  expect_error(with_listener_tls("certificates = [{ cert = \"\", key = \"" + f("ec.key") + "\" }]"),
               prefix + "certificates[0].cert", "must not be empty");
  expect_error(with_listener_tls("certificates = [{ cert = 1, key = \"" + f("ec.key") + "\" }]"),
               prefix + "certificates[0].cert", "expected a string");
  expect_error(with_listener_tls(one_certificate("ec.pem", "ec.key", ", ocsp_staple = true")),
               prefix + "certificates[0].ocsp_staple", "expected a string");

  const auto unknown = load_bad(with_listener_tls(
      one_certificate("ec.pem", "ec.key", ", chain = \"x.pem\"") + "\nciphers = \"HIGH\""));
  CHECK(unknown.size() == 2);
  CHECK(error_for(unknown, prefix + "certificates[0].chain").message == "unknown key");
  CHECK(error_for(unknown, prefix + "ciphers").message == "unknown key");
}

TEST_CASE("config tls: min_version, alpn and session_tickets are checked", "[config][tls]") {
  const std::string certs = one_certificate("ec.pem", "ec.key") + "\n";
  const std::string prefix = "listener[0].tls.";
  const struct {
    const char* body;
    const char* key;
    const char* fragment;
  } cases[] = {
      {"min_version = \"1.1\"", "min_version", "must be one of 1.2, 1.3"},
      {"min_version = \"1.0\"", "min_version", "must be one of 1.2, 1.3"},
      {"min_version = \"TLSv1.2\"", "min_version", "must be one of 1.2, 1.3"},
      {"min_version = 1.2", "min_version", "write \"1.2\" or \"1.3\", in quotes"},
      {"min_version = 12", "min_version", "expected a string"},
      {"alpn = \"http/1.1\"", "alpn", "expected an array of strings"},
      {"alpn = [\"\"]", "alpn[0]", "must be 1..255 bytes long"},
      {"alpn = [\"http/1.1\", 2]", "alpn[1]", "expected a string"},
      {"session_tickets = \"yes\"", "session_tickets", "expected a boolean"},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    expect_error(with_listener_tls(certs + c.body), prefix + c.key, c.fragment);
  }
  const std::string longest(255, 'a');
  CHECK(load_ok(with_listener_tls(certs + "alpn = [\"" + longest + "\"]"))
            ->listeners[0]
            .tls->alpn.at(0) == longest);
  expect_error(with_listener_tls(certs + "alpn = [\"" + longest + "a\"]"), prefix + "alpn[0]",
               "must be 1..255 bytes long");
}

TEST_CASE("config tls: tls must be a table, and its problems do not hide the address's",
          "[config][tls]") {
  const auto errors = load_bad(
      std::string("[[listener]]\naddress = \"127.0.0.1:0\"\ntls = true\n") + kRouteAndUpstream);
  CHECK(errors.size() == 2);
  CHECK_THAT(error_for(errors, "listener[0].tls").message, Catch::Contains("expected a table"));
  CHECK(error_for(errors, "listener[0].address").message == "port must be in 1..65535");
}

// ---- upstreams ----

TEST_CASE("config tls: upstream tls loads as an inline table and as a sub-table",
          "[config][tls]") {
  const Files& f = Files::get();
  const auto inline_form = load_ok(with_upstream_tls(
      "tls = { enabled = true, verify = true, ca = \"" + f("chain.pem") +
      "\", server_name = \"api.internal\", cert = \"\", key = \"\" }"));
  const UpstreamTls& a = inline_form->upstreams.at(0).tls;
  CHECK(a.enabled);
  CHECK(a.verify);
  CHECK(a.ca == f("chain.pem"));
  CHECK(a.server_name == "api.internal");
  CHECK(a.cert.empty());
  CHECK(a.key.empty());

  const auto table_form = load_ok(with_upstream_tls(
      "[upstream.tls]\nenabled = true\nverify = false\nserver_name = \"10.0.0.7\"\ncert = \"" +
      f("rsa.pem") + "\"\nkey = \"" + f("rsa.key") + "\""));
  const UpstreamTls& b = table_form->upstreams.at(0).tls;
  CHECK(b.enabled);
  CHECK_FALSE(b.verify);
  CHECK(b.ca.empty());
  CHECK(b.server_name == "10.0.0.7");
  CHECK(b.cert == f("rsa.pem"));
  CHECK(b.key == f("rsa.key"));

  const auto v6 = load_ok(with_upstream_tls("tls = { server_name = \"::1\" }"));
  CHECK(v6->upstreams[0].tls.server_name == "::1");
}

TEST_CASE("config tls: upstream tls files and values are checked", "[config][tls]") {
  const Files& f = Files::get();
  const struct {
    std::string tls;
    const char* key;
    std::string fragment;
  } cases[] = {
      {"ca = \"" + f("missing.pem") + "\"", "ca",
       "cannot read " + f("missing.pem") + ": No such file or directory"},
      {"ca = \"" + f("ec.key") + "\"", "ca", f("ec.key") + " holds no PEM certificate"},
      {"ca = \"" + f("junk.txt") + "\"", "ca", f("junk.txt") + " holds no PEM certificate"},
      {"ca = \"" + f("truncated.pem") + "\"", "ca", " holds no valid PEM certificate: "},
      {"cert = \"" + f("ec.pem") + "\"", "cert", "needs its key as well"},
      {"cert = \"" + f("ec.pem") + "\", key = \"\"", "cert", "needs its key as well"},
      {"key = \"" + f("ec.key") + "\"", "key", "needs its certificate as well"},
      {"cert = \"" + f("ec.pem") + "\", key = \"" + f("other.key") + "\"", "key",
       f("other.key") + " does not match the certificate " + f("ec.pem")},
      {"cert = \"" + f("junk.txt") + "\", key = \"" + f("ec.key") + "\"", "cert",
       "holds no PEM certificate"},
      {"server_name = \"a b\"", "server_name", "invalid server name \"a b\""},
      {"server_name = \"[::1]\"", "server_name", "expected a host name or an IP address"},
      {"enabled = \"yes\"", "enabled", "expected a boolean"},
      {"verify = 0", "verify", "expected a boolean"},
      {"ca = false", "ca", "expected a string"},
      {"sni = \"x\"", "sni", "unknown key"},
  };
  for (const auto& c : cases) {
    INFO(c.tls);
    expect_error(with_upstream_tls("tls = { " + c.tls + " }"),
                 std::string("upstream[0].tls.") + c.key, c.fragment);
  }
  expect_error(with_upstream_tls("tls = true"), "upstream[0].tls", "expected a table");
  // A wrongly typed key is reported once, not also as a missing half of the pair.
  const auto typed =
      load_bad(with_upstream_tls("tls = { cert = \"" + f("ec.pem") + "\", key = 1 }"));
  CHECK(typed.size() == 1);
  CHECK(error_for(typed, "upstream[0].tls.key").message == "expected a string");
}

// ---- routes ----

TEST_CASE("config tls: route hsts is a printable header value", "[config][tls]") {
  const auto route = [](const std::string& hsts) {
    return std::string("[[listener]]\naddress = \"127.0.0.1:8080\"\n[[route]]\nupstream = \"app\"\n"
                       "hsts = ") +
           hsts + "\n[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:9000\"]\n";
  };
  CHECK(load_ok(route("\"max-age=31536000; includeSubDomains\""))->routes[0].hsts ==
        "max-age=31536000; includeSubDomains");
  CHECK(load_ok(route("\"\""))->routes[0].hsts.empty());
  for (const char* bad : {"\"max-age=1\\r\\nSet-Cookie: a=b\"", "\"max-age=1\\n\"",
                          "\"max-age=1\\r\"", "\"max-age=1\\t\"", "\"max-age=\\u00e9\""}) {
    INFO(bad);
    expect_error(route(bad), "route[0].hsts", "must be printable ASCII");
  }
  expect_error(route("31536000"), "route[0].hsts", "expected a string");
}
