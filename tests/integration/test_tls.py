"""TLS termination on the listener (downstream TLS).

Proves: TLS 1.2 and 1.3 handshakes complete (openssl s_client, curl) and
requests are proxied with X-Forwarded-Proto: https; TLS 1.0 and 1.1 are
refused by the server (checked against a control s_server that accepts the
same client), and min_version = "1.3" refuses a TLS 1.2-only client; SNI
picks the certificate by its DNS names (exact and wildcard), an unknown
name or no SNI gets the first one, and the whole chain is sent and verifies
with curl against the test CA; ALPN selects http/1.1 and never h2; sessions
resume on 1.2 and 1.3 with session_tickets on and never with them off;
plain HTTP on the TLS port is a 400 with Connection: close that reaches no
backend; a stalled handshake is closed within timeouts.header while other
clients are served; garbage is closed; hsts adds Strict-Transport-Security
on TLS connections only; 50 sequential handshakes all succeed. Every test
ends with a clean sluice exit (code 0, no handle leak).

Certificates are made at test time in the test's temp dir (tlsutil.Pki):
a root CA, an intermediate, site.test (EC P-256, chain of 2) and
*.other.test (RSA 2048, signed by the root).
"""

import os
import socket
import ssl
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, SluiceTestCase, base_config, route, upstream  # noqa: E402
from httpwire import Stream, build_request, read_response  # noqa: E402
from tlsutil import (LEGACY_CIPHERS, Pki, TlsSluice, cert_dns_names,  # noqa: E402
                     cert_subject_cn, client_hello, curl_https, legacy_client_capability,
                     s_client, tls_table)

HEADER_TIMEOUT = 0.5       # [timeouts] header in the stall tests
HSTS = "max-age=31536000"


def pem_body(pem):
    """The base64 of one PEM certificate, whitespace removed, for comparing
    what was served with what is on disk."""
    return "".join(l.strip() for l in pem.strip().splitlines() if "-----" not in l)


def read_pem(path):
    with open(path) as f:
        return f.read()


class TlsTestCase(SluiceTestCase):
    """A PKI in the test's temp dir and one backend; tls_sluice() starts
    sluice with a TLS listener (and optionally a plain one)."""

    def setUp(self):
        super().setUp()
        self.pki = Pki(os.path.join(self.tmp, "pki"))
        self.app = self.backend("app")

    def tls(self, certificates=None, **options):
        opts = {"min_version": "1.2", "alpn": ["http/1.1"], "session_tickets": True}
        opts.update(options)
        if certificates is None:
            certificates = [self.pki.site(), self.pki.other()]
        return tls_table(certificates, **opts)

    def tls_sluice(self, tls=None, plain_listener=False, routes=None, **sections):
        listeners = [tls or self.tls()] + ([None] if plain_listener else [])
        s = TlsSluice(self.tmp, base_config([upstream("app", [self.app])], routes, **sections),
                      listeners)
        s.start()
        self.addCleanup(self._stop_sluice, s)
        return s

    def assertServed(self, r, protocol=None):
        """An s_client run that completed the handshake and got the
        backend's 200 through the proxy."""
        self.assertTrue(r.handshake_ok, "handshake failed: %r" % r)
        if protocol:
            self.assertEqual(r.protocol, protocol, r)
        self.assertEqual(r.http_status, 200, r)
        self.assertIn("X-Backend: app", r.http, r)

    def assertHandshakeRefused(self, r):
        """The client offered a ClientHello and the server never answered it
        with a ServerHello: the refusal is the server's, not the client's."""
        self.assertTrue(r.sent_client_hello,
                        "no ClientHello went out: the client refused on its own, which proves "
                        "nothing about the server: %r" % r)
        self.assertFalse(r.got_server_hello, "server answered with a ServerHello: %r" % r)
        self.assertFalse(r.handshake_ok, "handshake completed: %r" % r)
        self.assertIsNone(r.http_status, r)

    def raw_socket(self, port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(sock.close)
        return sock

    def wait_server_close(self, sock, timeout):
        """Reads until EOF or reset, at most `timeout` seconds. Returns
        (closed, bytes_received)."""
        deadline = time.monotonic() + timeout
        got = bytearray()
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                return True, bytes(got)
            if not data:
                return True, bytes(got)
            got += data
            if len(got) > 1 << 20:
                break
        return False, bytes(got)

    def ssl_client(self, port, server_name="site.test"):
        """A stdlib TLS client verifying against the test CA, as a Stream."""
        ctx = ssl.create_default_context(cafile=self.pki.ca_pem)
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(sock.close)
        tls = ctx.wrap_socket(sock, server_hostname=server_name)
        self.addCleanup(tls.close)
        return tls, Stream(tls)


class Handshakes(TlsTestCase):

    def setUp(self):
        super().setUp()
        self.s = self.tls_sluice()

    def forwarded_proto(self):
        return self.app.wait_requests(1)[-1].headers.get_all("x-forwarded-proto")

    def test_tls12_handshake_proxies_with_forwarded_proto_https(self):
        r = s_client(self.s.tls_port, "-tls1_2", "-servername", "site.test")
        self.assertServed(r, "TLSv1.2")
        self.assertEqual(self.forwarded_proto(), ["https"])

    def test_tls13_handshake_proxies_with_forwarded_proto_https(self):
        r = s_client(self.s.tls_port, "-tls1_3", "-servername", "site.test")
        self.assertServed(r, "TLSv1.3")
        self.assertEqual(self.forwarded_proto(), ["https"])

    def test_curl_tls12_verifies_and_proxies(self):
        r = curl_https(self.pki, self.s.tls_port, "site.test", "/via-curl",
                       ["--tlsv1.2", "--tls-max", "1.2"])
        self.assertEqual((r.returncode, r.status), (0, 200), r)
        self.assertEqual(r.header("x-target"), "/via-curl", r)
        self.assertEqual(self.forwarded_proto(), ["https"])

    def test_client_cannot_spoof_forwarded_proto_on_tls(self):
        r = curl_https(self.pki, self.s.tls_port, "site.test", "/spoof",
                       ["-H", "X-Forwarded-Proto: http"])
        self.assertEqual((r.returncode, r.status), (0, 200), r)
        self.assertEqual(self.forwarded_proto(), ["https"])

    def test_keepalive_and_a_large_body_over_one_tls_connection(self):
        # Several requests on one TLS connection, one with a body spanning
        # many TLS records each way (the backend echoes it).
        tls, stream = self.ssl_client(self.s.tls_port)
        body = os.urandom(1 << 20)
        for i, payload in enumerate((None, body, None)):
            tls.sendall(build_request("POST" if payload else "GET", "/ka-%d" % i, (), payload))
            resp = read_response(stream)
            self.assertEqual(resp.status, 200, resp)
            self.assertTrue(resp.complete, resp)
            self.assertFalse(resp.closes(), resp)
            if payload:
                self.assertEqual(resp.body_len, len(body))
                self.assertEqual(resp.body, body)
        reqs = self.app.wait_requests(3)
        self.assertEqual([r.target for r in reqs], ["/ka-0", "/ka-1", "/ka-2"])


class LegacyVersions(TlsTestCase):

    def assertLegacyRefused(self, flag):
        capable, detail = legacy_client_capability(self.pki, flag)
        if not capable:
            self.skipTest(detail)
        s = self.tls_sluice()
        r = s_client(s.tls_port, "-" + flag, "-cipher", LEGACY_CIPHERS, "-msg",
                     "-servername", "site.test")
        self.assertHandshakeRefused(r)
        self.assertEqual(self.app.request_count, 0)
        # The refusal did not hurt the listener.
        self.assertServed(s_client(s.tls_port, "-tls1_2", "-servername", "site.test"))

    def test_tls10_is_refused_by_the_server(self):
        self.assertLegacyRefused("tls1")

    def test_tls11_is_refused_by_the_server(self):
        self.assertLegacyRefused("tls1_1")

    def test_min_version_13_refuses_a_tls12_only_client(self):
        s = self.tls_sluice(self.tls(min_version="1.3"))
        r = s_client(s.tls_port, "-tls1_2", "-msg", "-servername", "site.test")
        self.assertHandshakeRefused(r)
        c = curl_https(self.pki, s.tls_port, "site.test", "/tls12",
                       ["--tlsv1.2", "--tls-max", "1.2"])
        self.assertNotEqual(c.returncode, 0, c)
        self.assertEqual(c.status, 0, c)
        self.assertEqual(self.app.request_count, 0)
        # The same server does serve TLS 1.3.
        self.assertServed(s_client(s.tls_port, "-tls1_3", "-servername", "site.test"),
                          "TLSv1.3")


class Sni(TlsTestCase):

    def served_chain(self, port, *args):
        r = s_client(port, "-showcerts", "-CAfile", self.pki.ca_pem, *args)
        self.assertServed(r)
        return r

    def assertSiteCert(self, r, chain=True):
        self.assertEqual(cert_subject_cn(r.certs[0]), "site.test", r)
        self.assertEqual(cert_dns_names(r.certs[0]), ["site.test"], r)
        self.assertEqual(pem_body(r.certs[0]), pem_body(read_pem(self.pki.site_leaf_pem)))
        if chain:
            self.assertEqual(len(r.certs), 2, "site.test chain not sent in full: %r" % r)
            self.assertEqual(pem_body(r.certs[1]), pem_body(read_pem(self.pki.intermediate_pem)))
            self.assertEqual(cert_subject_cn(r.certs[1]), "Sluice Test Intermediate CA")

    def assertOtherCert(self, r):
        self.assertEqual(len(r.certs), 1, r)
        self.assertEqual(cert_subject_cn(r.certs[0]), "*.other.test", r)
        self.assertEqual(cert_dns_names(r.certs[0]), ["*.other.test"], r)
        self.assertEqual(pem_body(r.certs[0]), pem_body(read_pem(self.pki.other_pem)))

    def test_site_test_gets_its_ecdsa_leaf_and_full_chain(self):
        s = self.tls_sluice()
        r = self.served_chain(s.tls_port, "-servername", "site.test",
                              "-verify_hostname", "site.test")
        self.assertSiteCert(r)
        self.assertTrue(r.verify_ok, "chain does not verify against the test CA: %r" % r)
        self.assertIn("subject=CN = site.test", r.stdout)

    def test_name_under_the_wildcard_gets_the_rsa_certificate(self):
        s = self.tls_sluice()
        for name in ("a.other.test", "www.other.test"):
            r = self.served_chain(s.tls_port, "-servername", name, "-verify_hostname", name)
            self.assertOtherCert(r)
            self.assertTrue(r.verify_ok, "%s: does not verify: %r" % (name, r))

    def test_unknown_name_and_no_sni_get_the_first_certificate(self):
        s = self.tls_sluice()
        for args in (("-servername", "unknown.test"), ("-servername", "other.test"),
                     ("-noservername",)):
            r = self.served_chain(s.tls_port, *args)
            self.assertSiteCert(r)

    def test_wildcard_covers_one_label_only(self):
        # RFC 6125 6.4.3: "*" stands for exactly one left-most label.
        s = self.tls_sluice()
        r = self.served_chain(s.tls_port, "-servername", "deep.a.other.test")
        self.assertSiteCert(r)

    def test_the_first_certificate_is_the_default_in_either_order(self):
        s = self.tls_sluice(self.tls([self.pki.other(), self.pki.site()]))
        self.assertOtherCert(self.served_chain(s.tls_port, "-noservername"))
        self.assertOtherCert(self.served_chain(s.tls_port, "-servername", "unknown.test"))
        self.assertSiteCert(self.served_chain(s.tls_port, "-servername", "site.test"))

    def test_curl_verifies_both_certificates_against_the_test_ca(self):
        s = self.tls_sluice()
        for host in ("site.test", "a.other.test"):
            r = curl_https(self.pki, s.tls_port, host, "/verified")
            self.assertEqual((r.returncode, r.status), (0, 200), "%s: %r" % (host, r))
        self.assertEqual(self.app.request_count, 2)


class Alpn(TlsTestCase):

    def setUp(self):
        super().setUp()
        self.s = self.tls_sluice()

    def test_http11_is_selected(self):
        r = s_client(self.s.tls_port, "-alpn", "http/1.1", "-servername", "site.test")
        self.assertServed(r)
        self.assertEqual(r.alpn, "http/1.1", r)

    def test_h2_only_is_never_selected(self):
        r = s_client(self.s.tls_port, "-alpn", "h2", "-servername", "site.test")
        self.assertNotEqual(r.alpn, "h2", "h2 selected by an HTTP/1.1 proxy: %r" % r)
        if r.handshake_ok:
            self.assertTrue(r.no_alpn, "expected no ALPN protocol: %r" % r)
            self.assertEqual(r.http_status, 200, r)
        else:
            self.assertTrue(r.alert_received("no_application_protocol"),
                            "handshake failed without no_application_protocol: %r" % r)

    def test_client_without_alpn_is_served(self):
        r = s_client(self.s.tls_port, "-servername", "site.test")
        self.assertServed(r)
        self.assertTrue(r.no_alpn, r)


class Resumption(TlsTestCase):

    def two_connections(self, port, version_flag):
        """A full handshake saving its session, then one offering it. The
        first reads the response to the end so TLS 1.3 tickets (sent after
        the handshake) are in the saved session."""
        sess = os.path.join(self.tmp, "session-%s.pem" % version_flag)
        first = s_client(port, version_flag, "-servername", "site.test", "-sess_out", sess,
                         "-msg")
        self.assertServed(first)
        self.assertEqual(first.resumption, "New", first)
        if not os.path.exists(sess):
            return first, None
        second = s_client(port, version_flag, "-servername", "site.test", "-sess_in", sess)
        return first, second

    def assertResumes(self, version_flag, protocol):
        s = self.tls_sluice()
        first, second = self.two_connections(s.tls_port, version_flag)
        self.assertTrue(first.got_session_ticket, "no NewSessionTicket: %r" % first)
        self.assertIsNotNone(second, "s_client saved no session: %r" % first)
        self.assertServed(second, protocol)
        self.assertTrue(second.reused, "session not resumed: %r" % second)

    def assertDoesNotResume(self, version_flag):
        s = self.tls_sluice(self.tls(session_tickets=False))
        first, second = self.two_connections(s.tls_port, version_flag)
        self.assertFalse(first.got_session_ticket,
                         "NewSessionTicket sent with session_tickets = false: %r" % first)
        # No saved session at all (s_client keeps none that cannot resume)
        # is as good a proof as a fresh handshake on offering it.
        if second is not None:
            self.assertFalse(second.reused, "resumed with session_tickets = false: %r" % second)
            self.assertServed(second)

    def test_tls12_session_resumes(self):
        self.assertResumes("-tls1_2", "TLSv1.2")

    def test_tls13_session_resumes(self):
        self.assertResumes("-tls1_3", "TLSv1.3")

    def test_tls12_no_resumption_without_session_tickets(self):
        self.assertDoesNotResume("-tls1_2")

    def test_tls13_no_resumption_without_session_tickets(self):
        self.assertDoesNotResume("-tls1_3")


class NotTls(TlsTestCase):

    def test_plain_http_on_the_tls_port_is_400_and_closed(self):
        s = self.tls_sluice()
        c = self.client(s.tls_port)
        c.request(target="/plain-on-tls")
        resp = c.read_response()
        self.assertErrorResponse(resp, 400, closes=True)
        text = resp.text.lower()
        self.assertTrue("tls" in text or "https" in text,
                        "400 body does not say the port wants TLS: %r" % resp)
        self.assertClosed(c)
        self.assertEqual(self.app.conn_count, 0, "plain request reached the backend")
        self.assertEqual(self.app.heads, [])
        self.assertServed(s_client(s.tls_port, "-servername", "site.test"))

    def assertGarbageClosed(self, garbage):
        s = self.tls_sluice()
        sock = self.raw_socket(s.tls_port)
        sock.sendall(garbage)
        closed, _ = self.wait_server_close(sock, 5.0 * SLOW)
        self.assertTrue(closed, "connection still open after garbage %r" % garbage[:8])
        self.assertEqual(self.app.conn_count, 0, "garbage reached the backend")
        self.assertIsNone(s.proc.poll(), "sluice exited on garbage:\n%s" % s.stderr_tail())
        self.assertServed(s_client(s.tls_port, "-servername", "site.test"))

    def test_random_bytes_are_closed_and_the_process_stays_up(self):
        # 0x00 first: neither a TLS record type nor an HTTP method character.
        self.assertGarbageClosed(b"\x00" + os.urandom(511))

    def test_tls_record_with_a_junk_handshake_is_closed(self):
        junk = bytes([0xfe]) * 64
        self.assertGarbageClosed(b"\x16\x03\x01\x00\x40" + junk)


class StalledHandshake(TlsTestCase):

    def setUp(self):
        super().setUp()
        self.s = self.tls_sluice(timeouts={"header": "%dms" % int(HEADER_TIMEOUT * 1000)})

    def assertClosedByHeaderTimeout(self, first_bytes):
        started = time.monotonic()
        sock = self.raw_socket(self.s.tls_port)
        if first_bytes:
            sock.sendall(first_bytes)
        # Another TLS client is served while this one stalls.
        self.assertServed(s_client(self.s.tls_port, "-servername", "site.test"))
        bound = HEADER_TIMEOUT + 4.0 * SLOW
        closed, got = self.wait_server_close(sock, bound)
        elapsed = time.monotonic() - started
        self.assertTrue(closed, "stalled handshake still open %.1fs after connect (timeouts.header "
                                "= %.1fs); got %r" % (elapsed, HEADER_TIMEOUT, got[:64]))
        self.assertGreaterEqual(elapsed, HEADER_TIMEOUT * 0.6,
                                "closed before timeouts.header elapsed")
        self.assertEqual(self.app.request_count, 1)   # only the s_client's

    def test_partial_client_hello_is_closed_after_header_timeout(self):
        self.assertClosedByHeaderTimeout(client_hello("site.test")[:10])

    def test_silent_connection_is_closed_after_header_timeout(self):
        self.assertClosedByHeaderTimeout(b"")


class Hsts(TlsTestCase):

    def test_hsts_only_on_tls_connections_of_its_route(self):
        routes = [route("app", path_prefix="/secure", hsts=HSTS), route("app")]
        s = self.tls_sluice(plain_listener=True, routes=routes)

        r = curl_https(self.pki, s.tls_port, "site.test", "/secure/page")
        self.assertEqual((r.returncode, r.status), (0, 200), r)
        self.assertEqual(r.headers.get_all("strict-transport-security"), [HSTS], r)

        r = curl_https(self.pki, s.tls_port, "site.test", "/elsewhere")
        self.assertEqual((r.returncode, r.status), (0, 200), r)
        self.assertNotIn("strict-transport-security", r.headers, r)

        plain = self.get(s.plain_port, "/secure/page")
        self.assertEqual(plain.status, 200, plain)
        self.assertNotIn("strict-transport-security", plain.headers, plain)

        protos = [(q.target, q.headers.get_all("x-forwarded-proto"))
                  for q in self.app.wait_requests(3)]
        self.assertEqual(protos, [("/secure/page", ["https"]), ("/elsewhere", ["https"]),
                                  ("/secure/page", ["http"])])


class ManyHandshakes(TlsTestCase):

    COUNT = 50

    def test_fifty_sequential_handshakes_all_succeed(self):
        s = self.tls_sluice()
        variants = [("site.test", ["--tlsv1.2", "--tls-max", "1.2"]),
                    ("a.other.test", ["--tlsv1.3"]),
                    ("site.test", ["--tlsv1.3"]),
                    ("b.other.test", ["--tlsv1.2", "--tls-max", "1.2"])]
        failures = []
        for i in range(self.COUNT):
            host, args = variants[i % len(variants)]
            r = curl_https(self.pki, s.tls_port, host, "/n%d" % i, args)
            if (r.returncode, r.status) != (0, 200):
                failures.append((i, host, r))
        self.assertEqual(failures, [])
        self.assertEqual(len(self.app.wait_requests(self.COUNT)), self.COUNT)
        self.assertIsNone(s.proc.poll())


if __name__ == "__main__":
    unittest.main()
