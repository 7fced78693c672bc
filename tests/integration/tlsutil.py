"""TLS helpers for the integration tests: a throwaway PKI made with the
openssl CLI, a Sluice whose listeners carry a [listener.tls] table, and thin
wrappers around `openssl s_client` and `openssl x509` that parse what the
tests assert on.

Everything runs on loopback against files in a test's temp dir; no network,
no system trust store. Every subprocess has a timeout. Standard library only.
"""

import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Sluice, _toml_value, curl, free_port  # noqa: E402
from httpwire import LOOPBACK, Headers  # noqa: E402

OPENSSL_BIN = shutil.which("openssl") or "/usr/bin/openssl"
TOOL_TIMEOUT = 30.0        # any one openssl invocation

# A request that makes the proxied response end the connection, so an
# `s_client -ign_eof` run ends on the server's close, after every
# post-handshake message (TLS 1.3 tickets) has been read.
CLOSE_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def _client_env():
    # Clients run with no proxy variables; OPENSSL_CONF is left as the machine
    # has it, so what a client refuses on its own is visible in the tests
    # that care (the legacy-version ones probe it explicitly).
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def run_openssl(args, stdin=b"", timeout=TOOL_TIMEOUT, check=True):
    proc = subprocess.run([OPENSSL_BIN] + list(args), input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=_client_env())
    if check and proc.returncode != 0:
        raise AssertionError("openssl %s failed (%d):\n%s" % (
            " ".join(args), proc.returncode, proc.stderr.decode("utf-8", "replace")))
    return proc


# ---------------------------------------------------------------------------
# a throwaway PKI

_EXT_CA = """\
[ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

_EXT_INTERMEDIATE = """\
[ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

_EXT_LEAF = """\
[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = %s
"""

# `openssl req` needs a config; this one has nothing the machine's could add.
_REQ_CONF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
"""


class Pki:
    """Files of a private test PKI under `directory`:

      ca.pem                 root CA (EC P-256), the only trust anchor
      intermediate.pem       intermediate CA (EC P-256), signed by the root
      site.pem / site.key    leaf for DNS:site.test (EC P-256), signed by the
                             intermediate; site.pem holds leaf then intermediate
      other.pem / other.key  leaf for DNS:*.other.test (RSA 2048), signed by
                             the root; one certificate
    """

    SITE_NAME = "site.test"
    OTHER_NAME = "*.other.test"

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self._serial = 1000
        self.ca_pem = self.path("ca.pem")
        self.intermediate_pem = self.path("intermediate.pem")
        self.site_leaf_pem = self.path("site-leaf.pem")
        self.site_pem = self.path("site.pem")
        self.site_key = self.path("site.key")
        self.other_pem = self.path("other.pem")
        self.other_key = self.path("other.key")
        self._generate()

    def path(self, name):
        return os.path.join(self.dir, name)

    def _write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def _key(self, name, kind):
        if kind == "ec":
            args = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        else:
            args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
        run_openssl(["genpkey"] + args + ["-out", self.path(name)])
        return self.path(name)

    def _cert(self, name, key, subject, ext_text, issuer_pem=None, issuer_key=None):
        """Makes a CSR for `key` and signs it (self-signed without an issuer)."""
        req_conf = self._write(name + ".req.cnf", _REQ_CONF)
        ext = self._write(name + ".ext.cnf", ext_text)
        csr = self.path(name + ".csr")
        run_openssl(["req", "-new", "-config", req_conf, "-key", key, "-subj", subject,
                     "-out", csr])
        self._serial += 1
        out = self.path(name + ".pem")
        args = ["x509", "-req", "-in", csr, "-days", "30", "-sha256",
                "-set_serial", str(self._serial), "-extfile", ext, "-extensions", "ext",
                "-out", out]
        if issuer_pem:
            args += ["-CA", issuer_pem, "-CAkey", issuer_key]
        else:
            args += ["-signkey", key]
        run_openssl(args)
        return out

    def _generate(self):
        ca_key = self._key("ca.key", "ec")
        self._cert("ca", ca_key, "/O=Sluice Tests/CN=Sluice Test Root CA", _EXT_CA)
        int_key = self._key("intermediate.key", "ec")
        self._cert("intermediate", int_key, "/O=Sluice Tests/CN=Sluice Test Intermediate CA",
                   _EXT_INTERMEDIATE, self.ca_pem, ca_key)
        self._key("site.key", "ec")
        self._cert("site-leaf", self.site_key, "/CN=site.test", _EXT_LEAF % "DNS:site.test",
                   self.intermediate_pem, int_key)
        with open(self.site_leaf_pem) as leaf, open(self.intermediate_pem) as inter:
            self._write("site.pem", leaf.read() + inter.read())
        self._key("other.key", "rsa")
        self._cert("other", self.other_key, "/CN=*.other.test", _EXT_LEAF % "DNS:*.other.test",
                   self.ca_pem, ca_key)

    # the [listener.tls] certificates entries
    def site(self):
        return {"cert": self.site_pem, "key": self.site_key}

    def other(self):
        return {"cert": self.other_pem, "key": self.other_key}


_EXT_CLIENT = """\
[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

_EXT_OCSP_SIGNER = """\
[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

# A leaf whose AIA names an OCSP responder: what makes a staple meaningful.
# The URI is never contacted (port 1 on loopback).
_EXT_LEAF_WITH_OCSP = _EXT_LEAF + "authorityInfoAccess = OCSP;URI:http://127.0.0.1:1/\n"


class UpstreamPki(Pki):
    """A PKI for TLS towards upstreams, all EC P-256, leaves signed by the root:

      ca.pem                 root CA
      api.pem / api.key      server leaf for DNS:API_NAME
      client.pem / .key      client leaf (clientAuth) for mutual TLS
      rogue-ca.pem           an unrelated CA that signed nothing we serve
    """

    API_NAME = "api.internal"

    def _generate(self):
        ca_key = self._key("ca.key", "ec")
        self._cert("ca", ca_key, "/O=Sluice Tests/CN=Sluice Upstream Test CA", _EXT_CA)
        self.api_key = self._key("api.key", "ec")
        self.api_pem = self._cert("api", self.api_key, "/CN=" + self.API_NAME,
                                  _EXT_LEAF % ("DNS:" + self.API_NAME), self.ca_pem, ca_key)
        self.client_key = self._key("client.key", "ec")
        self.client_pem = self._cert("client", self.client_key, "/CN=sluice-upstream-client",
                                     _EXT_CLIENT, self.ca_pem, ca_key)
        rogue_key = self._key("rogue-ca.key", "ec")
        self.rogue_ca_pem = self._cert("rogue-ca", rogue_key,
                                       "/O=Sluice Tests/CN=Sluice Rogue CA", _EXT_CA)


def cert_serial_hex(path):
    """The serial number as `openssl x509 -serial` prints it (upper-case hex),
    which is how an `openssl ocsp -index` file names a certificate."""
    out = run_openssl(["x509", "-in", path, "-noout", "-serial"]).stdout.decode()
    return out.strip().split("=", 1)[1]


class OcspPki(Pki):
    """A root CA, a leaf for DNS:OCSP_NAME whose AIA names an OCSP responder,
    a delegated OCSP signer, and a DER OCSP response saying the leaf is good,
    all made offline with `openssl ocsp`:

      ca.pem                   root CA (EC P-256)
      ocsp-leaf.pem / .key     the leaf to staple for
      ocsp-signer.pem / .key   OCSPSigning certificate signed by the root
      index.txt                the responder's database: the leaf, valid
      req.der / resp.der       the OCSP request for the leaf and its response
    """

    OCSP_NAME = "ocsp.test"

    def _generate(self):
        ca_key = self._key("ca.key", "ec")
        self._cert("ca", ca_key, "/O=Sluice Tests/CN=Sluice OCSP Test CA", _EXT_CA)
        self.leaf_key = self._key("ocsp-leaf.key", "ec")
        self.leaf_pem = self._cert("ocsp-leaf", self.leaf_key, "/CN=" + self.OCSP_NAME,
                                   _EXT_LEAF_WITH_OCSP % ("DNS:" + self.OCSP_NAME),
                                   self.ca_pem, ca_key)
        signer_key = self._key("ocsp-signer.key", "ec")
        signer_pem = self._cert("ocsp-signer", signer_key, "/CN=Sluice OCSP Signer",
                                _EXT_OCSP_SIGNER, self.ca_pem, ca_key)
        self.serial = cert_serial_hex(self.leaf_pem)
        expiry = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() + 30 * 86400))
        # index.txt: status, expiry, revocation date (none), serial, file, subject.
        self.index = self._write("index.txt", "V\t%s\t\t%s\tunknown\t/CN=%s\n" % (
            expiry, self.serial, self.OCSP_NAME))
        self._write("index.txt.attr", "unique_subject = no\n")
        self.req_der = self.path("req.der")
        self.resp_der = self.path("resp.der")
        run_openssl(["ocsp", "-issuer", self.ca_pem, "-cert", self.leaf_pem, "-no_nonce",
                     "-reqout", self.req_der])
        run_openssl(["ocsp", "-index", self.index, "-rsigner", signer_pem, "-rkey", signer_key,
                     "-CA", self.ca_pem, "-reqin", self.req_der, "-respout", self.resp_der,
                     "-ndays", "7"])

    def check_response(self):
        """What `openssl ocsp` itself makes of resp.der, verified against the
        root: the control for the stapling tests. Returns its output."""
        proc = run_openssl(["ocsp", "-respin", self.resp_der, "-CAfile", self.ca_pem,
                            "-issuer", self.ca_pem, "-cert", self.leaf_pem], check=False)
        return proc.stdout.decode() + proc.stderr.decode()

    def leaf(self, staple=True):
        """A [listener.tls] certificates entry, with the staple or without."""
        entry = {"cert": self.leaf_pem, "key": self.leaf_key}
        if staple:
            entry["ocsp_staple"] = self.resp_der
        return entry


_PKI_KINDS = {"site": Pki, "upstream": UpstreamPki, "ocsp": OcspPki}
_shared_pki = {}


def shared_pki(kind):
    """One PKI of each kind ("site", "upstream", "ocsp") per test process, in
    one temp dir: key generation is the slow part. A module that uses it sets
    `tearDownModule = cleanup_shared_pki`."""
    if "dir" not in _shared_pki:
        _shared_pki["dir"] = tempfile.mkdtemp(prefix="sluice-pki-")
    if kind not in _shared_pki:
        _shared_pki[kind] = _PKI_KINDS[kind](os.path.join(_shared_pki["dir"], kind))
    return _shared_pki[kind]


def cleanup_shared_pki():
    if "dir" in _shared_pki:
        shutil.rmtree(_shared_pki["dir"], True)
    _shared_pki.clear()


def cert_subject_cn(pem_text):
    """The CN of the first certificate in `pem_text`, via `openssl x509`."""
    proc = run_openssl(["x509", "-noout", "-subject", "-nameopt", "multiline"],
                       stdin=pem_text.encode())
    m = re.search(r"commonName\s*=\s*(.+)", proc.stdout.decode())
    return m.group(1).strip() if m else None


def cert_dns_names(pem_text):
    proc = run_openssl(["x509", "-noout", "-ext", "subjectAltName"], stdin=pem_text.encode())
    return re.findall(r"DNS:([^,\s]+)", proc.stdout.decode())


# ---------------------------------------------------------------------------
# sluice with TLS listeners

def toml_value(v):
    """harness._toml_value plus inline tables: a dict is `{ k = v, ... }`, at
    any depth (an upstream's `tls = { ... }`, a list of certificate entries)."""
    if isinstance(v, dict):
        return _inline_table(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return _toml_value(v)


def _inline_table(d):
    return "{ " + ", ".join("%s = %s" % (k, toml_value(v)) for k, v in d.items()) + " }"


def to_toml_inline(doc):
    """harness.to_toml, with dict values written as inline tables."""
    out = []
    for section, body in doc.items():
        items = [body] if isinstance(body, dict) else body
        header = "[%s]" if isinstance(body, dict) else "[[%s]]"
        for item in items:
            out.append(header % section)
            out.extend("%s = %s" % (k, toml_value(v)) for k, v in item.items())
            out.append("")
    return "\n".join(out)


def tls_table(certificates, **options):
    """A [listener.tls] table: `certificates` is a list of {cert, key}
    dicts; options are min_version, alpn, session_tickets."""
    table = {"certificates": list(certificates)}
    table.update(options)
    return table


class TlsSluice(Sluice):
    """The harness's Sluice whose listeners may carry a [listener.tls] table:
    `listener_tls[i]` is a tls_table() for listener i, or None for plain TCP.
    `tls_port` and `plain_port` name the first listener of each kind. Dict
    values in the config document (an upstream's `tls`) become inline tables."""

    def __init__(self, tmpdir, doc, listener_tls):
        super().__init__(tmpdir, doc, listeners=len(listener_tls))
        self.listener_tls = list(listener_tls)

    @property
    def tls_port(self):
        return next(p for p, t in zip(self.ports, self.listener_tls) if t is not None)

    @property
    def plain_port(self):
        return next(p for p, t in zip(self.ports, self.listener_tls) if t is None)

    def config_text(self):
        doc = dict(self.doc)
        doc.pop("listener", None)
        out = [to_toml_inline(doc)]
        for port, tls in zip(self.ports, self.listener_tls):
            out.append("[[listener]]")
            out.append("address = %s" % _toml_value("%s:%d" % (LOOPBACK, port)))
            out.append("")
            if tls is not None:
                out.append("[listener.tls]")
                for k, v in tls.items():
                    out.append("%s = %s" % (k, toml_value(v)))
                out.append("")
        return "\n".join(out)


# ---------------------------------------------------------------------------
# openssl s_client

_PEM_RX = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


class SClientResult:
    """What one `openssl s_client` run printed, parsed."""

    def __init__(self, args, proc):
        self.args = args
        self.returncode = proc.returncode
        self.stdout = proc.stdout.decode("utf-8", "replace")
        self.stderr = proc.stderr.decode("utf-8", "replace")
        self.text = self.stdout + "\n" + self.stderr
        # "New, TLSv1.0, Cipher is X": the version there is the cipher's, not
        # the connection's; the connection's is "Protocol  :" of SSL-Session.
        m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)", self.stdout, re.M)
        self.resumption = m.group(1) if m else None      # "New" | "Reused" | None
        self.cipher = m.group(3) if m else None
        m = re.search(r"^\s*Protocol\s*:\s*(\S+)", self.stdout, re.M)
        self.protocol = m.group(1) if m else None        # "TLSv1.2", "TLSv1.3"
        # With -msg: what went over the wire, in the clear part of the handshake.
        self.sent_client_hello = bool(re.search(r"^>>> .*Handshake.*ClientHello", self.stdout,
                                                re.M))
        self.got_server_hello = bool(re.search(r"^<<< .*Handshake.*ServerHello", self.stdout,
                                               re.M))
        self.got_session_ticket = bool(re.search(r"^<<< .*Handshake.*NewSessionTicket",
                                                 self.stdout, re.M))
        m = re.search(r"^<<< .*Alert.*fatal (\S+)", self.stdout, re.M)
        self.fatal_alert = m.group(1) if m else None     # e.g. "protocol_version"
        self.verify_ok = "Verify return code: 0 (ok)" in self.stdout
        m = re.search(r"^ALPN protocol: (\S+)", self.stdout, re.M)
        self.alpn = m.group(1) if m else None
        self.no_alpn = "No ALPN negotiated" in self.stdout
        self.certs = _PEM_RX.findall(self.stdout)
        m = re.search(r"^subject=(.*)$", self.stdout, re.M)
        self.subject = m.group(1).strip() if m else None
        # With -status: the stapled OCSP response as s_client prints it.
        self.ocsp_none = "OCSP response: no response sent" in self.stdout
        m = re.search(r"^\s*OCSP Response Status: (\S+)", self.stdout, re.M)
        self.ocsp_status = m.group(1) if m else None     # "successful", ...
        m = re.search(r"^\s*Cert Status: (\S+)", self.stdout, re.M)
        self.ocsp_cert_status = m.group(1) if m else None  # "good", "revoked", ...
        m = re.search(r"^\s*Serial Number: (\S+)", self.stdout, re.M)
        self.ocsp_serial = m.group(1) if m else None
        # The HTTP response, if a request was sent: from the status line on.
        m = re.search(r"^HTTP/1\.[01] \d{3}", self.stdout, re.M)
        i = m.start() if m else -1
        self.http = self.stdout[i:] if i >= 0 else ""

    @property
    def handshake_ok(self):
        return self.cipher is not None and self.cipher != "(NONE)"

    @property
    def reused(self):
        return self.resumption == "Reused"

    @property
    def http_status(self):
        m = re.match(r"HTTP/1\.[01] (\d{3})", self.http)
        return int(m.group(1)) if m else None

    def http_header(self, name):
        head = self.http.split("\r\n\r\n", 1)[0]
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None

    def alert_received(self, name):
        """True if the server sent a fatal alert `name` (e.g.
        "protocol_version"): s_client reports received alerts as
        "... alert <description>" with the description spelled with spaces."""
        spaced = name.replace("_", " ")
        return ("alert " + spaced) in self.text or ("alert " + name) in self.text

    def __repr__(self):
        return "<s_client %s rc=%s>\n%s" % (" ".join(self.args), self.returncode,
                                            _tail(self.text, 4000))


def _tail(text, n):
    return text if len(text) <= n else "..." + text[-n:]


def s_client(port, *args, stdin=CLOSE_REQUEST, ign_eof=True, timeout=TOOL_TIMEOUT):
    """Runs `openssl s_client -connect 127.0.0.1:port ARGS`. By default it
    sends CLOSE_REQUEST and reads until the server closes (-ign_eof), so the
    output holds the proxied response and the run ends on the server's close.
    stdin=b"" with ign_eof=False just handshakes and hangs up."""
    argv = ["s_client", "-connect", "%s:%d" % (LOOPBACK, port)] + list(args)
    if ign_eof:
        argv.append("-ign_eof")
    try:
        proc = run_openssl(argv, stdin=stdin, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("openssl %s did not finish within %.0fs (server never closed?)\n"
                             "%s" % (" ".join(argv), timeout,
                                     (e.stdout or b"").decode("utf-8", "replace")))
    return SClientResult(argv, proc)


# ---------------------------------------------------------------------------
# can this machine's client speak a legacy version at all?

LEGACY_CIPHERS = "DEFAULT@SECLEVEL=0"
_legacy_capability = {}


def legacy_client_capability(pki, flag):
    """Whether `openssl s_client -<flag> -cipher DEFAULT@SECLEVEL=0` (flag
    "tls1" or "tls1_1") completes a handshake with an `openssl s_server` that
    allows exactly that version. Returns (capable, detail). This is the
    control for the legacy-version tests: a refused handshake proves the
    proxy's refusal only if the same client gets through elsewhere."""
    if flag in _legacy_capability:
        return _legacy_capability[flag]
    port = free_port()
    server = subprocess.Popen(
        [OPENSSL_BIN, "s_server", "-accept", "%s:%d" % (LOOPBACK, port),
         "-cert", pki.site_pem, "-key", pki.site_key, "-" + flag, "-cipher", LEGACY_CIPHERS,
         "-naccept", "1", "-www"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=_client_env())
    lines = []
    accepting = threading.Event()

    def drain():
        for line in iter(server.stdout.readline, b""):
            lines.append(line.decode("utf-8", "replace"))
            if line.startswith(b"ACCEPT"):
                accepting.set()
        accepting.set()
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if not accepting.wait(10.0) or server.poll() is not None:
            result = (False, "control s_server -%s did not start: %s" % (flag, "".join(lines)))
        else:
            r = s_client(port, "-" + flag, "-cipher", LEGACY_CIPHERS, "-msg",
                         stdin=b"GET / HTTP/1.0\r\n\r\n")
            if r.handshake_ok:
                result = (True, "control handshake %s ok" % r.protocol)
            elif not r.sent_client_hello:
                result = (False, "this machine's openssl s_client cannot even offer -%s "
                                 "(no ClientHello sent):\n%s" % (flag, _tail(r.text, 1500)))
            else:
                result = (False, "this machine's openssl cannot complete a -%s handshake "
                                 "even with an s_server that allows it:\n%s"
                          % (flag, _tail(r.text, 1500)))
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)
        reader.join(5)
        server.stdout.close()
    _legacy_capability[flag] = result
    return result


# ---------------------------------------------------------------------------
# curl over https

class CurlResult:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stderr = proc.stderr.decode("utf-8", "replace")
        self.status = 0
        self.headers = Headers()
        self.body = b""
        out = proc.stdout
        # -i prints each response head; skip interim (1xx) ones.
        while out.startswith(b"HTTP/"):
            head, sep, rest = out.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split(" ")[1])
            self.headers = Headers(tuple(x.strip() for x in l.split(":", 1))
                                   for l in lines[1:] if ":" in l)
            out = rest
            if not 100 <= self.status < 200:
                break
        self.body = out

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def __repr__(self):
        return "<curl rc=%d status=%d headers=%r body=%r stderr=%r>" % (
            self.returncode, self.status, self.headers.items, self.body[:200],
            self.stderr[-600:])


def curl_https(pki, port, host="site.test", path="/", args=()):
    """`curl -i --cacert ca.pem --resolve host:port:127.0.0.1
    https://host:port/path`: verification against the test CA only."""
    url = "https://%s:%d%s" % (host, port, path)
    proc = curl(["-i", "--cacert", pki.ca_pem, "--resolve", "%s:%d:%s" % (host, port, LOOPBACK)]
                + list(args) + [url])
    return CurlResult(proc)


# ---------------------------------------------------------------------------
# raw ClientHello bytes

def client_hello(server_name="site.test"):
    """The bytes of a real ClientHello (TLS record included), made by the
    stdlib's ssl over memory BIOs, for tests that send part of one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = outgoing.read()
    if not data or data[0] != 0x16:
        raise AssertionError("stdlib ssl produced no ClientHello record: %r" % data[:16])
    return data
