"""TLS towards upstreams, against a real nginx speaking TLS; and OCSP stapling
on the listener.

Proves: with `tls = { enabled, ca, server_name }` requests are proxied over a
verified TLS connection, TLS 1.2 and TLS 1.3 alike, bodies intact both ways
(1 MiB each way), and nginx sees the configured SNI name; a certificate that
does not match server_name, or one from a CA sluice was not given, is a 502
for the right reason (sluice's log) and nginx never sees a request;
`verify = false` proxies despite the wrong name and warns at start;
sequential requests, from one client connection and from several one after
another, all ride one pooled upstream TLS connection; a client certificate
for mutual TLS is sent and accepted, and without one nginx refuses the
request; a staple configured with `ocsp_staple` is served to clients that
ask for it (TLS 1.2 and 1.3) and none is sent without it; a plain-HTTP
upstream where TLS is expected fails fast with 502, not at a timeout (a
failed handshake is a failed connect, so a GET gets its one documented
retry, which fails as fast). Every test ends with a clean sluice exit (code 0, no handle leak).

What nginx saw comes from its access log, which records per request the
connection serial and request count, $ssl_server_name, $ssl_protocol and
$ssl_client_verify (peers.Nginx with tls=...). Certificates are made once
per run with the openssl CLI (tlsutil.UpstreamPki, tlsutil.OcspPki).
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, SluiceTestCase, base_config, route, sha256, upstream  # noqa: E402
from peers import Nginx  # noqa: E402
from tlsutil import (OcspPki, TlsSluice, UpstreamPki, cleanup_shared_pki,  # noqa: E402
                     s_client, shared_pki, tls_table)

API_NAME = UpstreamPki.API_NAME
WRONG_NAME = "other.internal"
BIG = 1 << 20
UPSTREAM_CONNECT = 5.0     # [timeouts] upstream_connect in the plain-upstream test
FAIL_FAST = 3.0            # ... and how soon its 502 must come
TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")

tearDownModule = cleanup_shared_pki


class UpstreamTlsCase(SluiceTestCase):
    """A TLS nginx as the upstream and a sluice with a plain listener whose
    upstreams speak TLS to it."""

    def setUp(self):
        super().setUp()
        self.pki = shared_pki("upstream")
        self.big = os.urandom(BIG)

    def start_nginx(self, tls=True, client_ca=None, protocols=None, name="nginx"):
        conf = None
        if tls:
            conf = {"cert": self.pki.api_pem, "key": self.pki.api_key}
            if client_ca:
                conf["client_ca"] = client_ca
            if protocols:
                conf["protocols"] = protocols
        n = Nginx(self.tmp, {"big.bin": self.big}, tls=conf, name=name)
        self.addCleanup(n.stop)
        n.start()
        return n

    def tls(self, **options):
        """An upstream `tls` table: verified against the test CA, for API_NAME."""
        t = {"enabled": True, "ca": self.pki.ca_pem, "server_name": API_NAME}
        t.update(options)
        return t

    def proxy(self, upstreams, routes=None, **sections):
        s = TlsSluice(self.tmp, base_config(upstreams, routes, **sections), [None])
        s.start()
        self.addCleanup(self._stop_sluice, s)
        return s

    def entries(self, nginx, n):
        """Exactly `n` access-log entries, once the n-th has been written."""
        entries = nginx.wait_log_entries(n, 5.0 * SLOW)
        self.assertEqual(len(entries), n, "unexpected nginx requests: %r" % entries)
        return entries

    def assertHello(self, resp):
        self.assertEqual(resp.status, 200, resp)
        self.assertTrue(resp.complete, resp)
        self.assertEqual(resp.body, b"hello from nginx\n", resp)

    def wait_error_log(self, nginx, needle, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while needle not in nginx.error_text():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True


class VerifiedUpstream(UpstreamTlsCase):
    """nginx is pinned to one TLS version per test, so both the TLS 1.2 path
    and the TLS 1.3 one (session tickets arriving after the handshake) carry
    the megabyte each way."""

    def test_tls12_verified_proxies_bodies_intact_with_sni(self):
        self.assertVerifiedProxying("TLSv1.2")

    def test_tls13_verified_proxies_bodies_intact_with_sni(self):
        self.assertVerifiedProxying("TLSv1.3")

    def assertVerifiedProxying(self, protocol):
        n = self.start_nginx(protocols=protocol)
        s = self.proxy([upstream("api", [n], tls=self.tls())])
        c = self.client(s.plain_port)
        self.assertHello(c.roundtrip(target="/hello"))

        resp = c.roundtrip(target="/big.bin")
        self.assertEqual(resp.status, 200, resp)
        self.assertTrue(resp.complete, resp)
        self.assertEqual((resp.body_len, resp.body_sha256), (BIG, sha256(self.big)))
        uris = ["/hello", "/big.bin"]

        if n.has_echo:
            body = os.urandom(BIG)
            resp = c.roundtrip("POST", "/echo", body=body)
            self.assertEqual(resp.status, 200, resp)
            self.assertTrue(resp.complete, resp)
            self.assertEqual((resp.body_len, resp.body_sha256), (BIG, sha256(body)))
            uris.append("/echo")

        entries = self.entries(n, len(uris))
        self.assertEqual([e["uri"] for e in entries], uris)
        for e in entries:
            self.assertEqual(e["status"], "200", e)
            self.assertEqual(e["sni"], API_NAME, "nginx saw another SNI name: %r" % e)
            self.assertEqual(e["proto"], protocol, e)


class RefusedUpstreamCertificate(UpstreamTlsCase):
    """A certificate sluice must not accept: 502, and the request never
    reaches nginx. A second upstream to the same nginx, configured right,
    is served afterwards: once its request is in nginx's log, a request on
    the refused connection would have been logged too."""

    def assertRefused(self, bad_tls, reason):
        n = self.start_nginx()
        s = self.proxy([upstream("bad", [n], tls=bad_tls), upstream("good", [n], tls=self.tls())],
                       routes=[route("bad", path_prefix="/bad/"), route("good")])
        resp = self.get(s.plain_port, "/bad/hello")
        self.assertErrorResponse(resp, 502)
        self.assertHello(self.get(s.plain_port, "/hello"))
        entries = self.entries(n, 1)
        self.assertEqual(entries[0]["uri"], "/hello", entries)
        self.assertEqual(entries[0]["sni"], API_NAME, entries)
        # Refused for the reason the test is about, not any handshake failure.
        s.wait_log(r'msg="upstream certificate refused" reason="%s"' % reason, "stderr")
        # nginx logs (at info) the handshake sluice broke off with an alert.
        self.assertTrue(self.wait_error_log(n, "SSL_do_handshake() failed"),
                        "no failed handshake in nginx's error log:\n%s" % n.error_text())

    def test_certificate_for_another_name_is_502_and_no_request_reaches_nginx(self):
        self.assertRefused(self.tls(server_name=WRONG_NAME), "hostname mismatch")

    def test_certificate_from_an_unknown_ca_is_502_and_no_request_reaches_nginx(self):
        self.assertRefused(self.tls(ca=self.pki.rogue_ca_pem),
                           "unable to get local issuer certificate")


class VerifyOff(UpstreamTlsCase):

    def test_verify_false_proxies_despite_the_wrong_name_and_warns_at_start(self):
        n = self.start_nginx()
        s = self.proxy([upstream("api", [n], tls=self.tls(server_name=WRONG_NAME,
                                                           verify=False))])
        startup = s.stderr_text()
        self.assertIn("not verified", startup, "no start-up warning for verify = false")
        warn = [l for l in startup.splitlines() if "not verified" in l]
        self.assertTrue(any("api" in l for l in warn), "warning does not name the upstream: %r"
                        % warn)
        self.assertHello(self.get(s.plain_port, "/hello"))
        e = self.entries(n, 1)[0]
        self.assertEqual(e["sni"], WRONG_NAME, e)
        self.assertIn(e["proto"], TLS_PROTOCOLS, e)


class Pooling(UpstreamTlsCase):

    def test_sequential_requests_from_several_clients_share_one_upstream_tls_connection(self):
        n = self.start_nginx()
        s = self.proxy([upstream("api", [n], tls=self.tls())])
        first = self.client(s.plain_port)
        for _ in range(3):
            self.assertHello(first.roundtrip(target="/hello"))
        first.close()
        for _ in range(3):
            c = self.client(s.plain_port)
            self.assertHello(c.roundtrip(target="/hello"))
            c.close()
        entries = self.entries(n, 6)
        seen = [(e["conn"], e["reqs"]) for e in entries]
        self.assertEqual(len({conn for conn, _ in seen}), 1,
                         "more than one upstream TLS connection: %r" % seen)
        self.assertEqual([reqs for _, reqs in seen], ["1", "2", "3", "4", "5", "6"], seen)
        self.assertTrue(all((e["sni"], e["proto"]) == (API_NAME, "TLSv1.3") for e in entries),
                        entries)


class MutualTls(UpstreamTlsCase):

    def test_client_certificate_is_sent_and_accepted(self):
        n = self.start_nginx(client_ca=self.pki.ca_pem)
        s = self.proxy([upstream("api", [n], tls=self.tls(cert=self.pki.client_pem,
                                                           key=self.pki.client_key))])
        self.assertHello(self.get(s.plain_port, "/hello"))
        e = self.entries(n, 1)[0]
        self.assertEqual((e["client_verify"], e["proto"]), ("SUCCESS", "TLSv1.3"), e)
        self.assertIn("CN=sluice-upstream-client", e["client_dn"], e)

    def test_without_a_client_certificate_nginx_refuses_and_sluice_relays_its_400(self):
        # nginx completes the handshake without a certificate (it asks for one
        # but only judges the request), then answers with an HTTP 400 of its
        # own. To sluice that is an ordinary upstream response, relayed as is.
        n = self.start_nginx(client_ca=self.pki.ca_pem)
        s = self.proxy([upstream("api", [n], tls=self.tls())])
        resp = self.get(s.plain_port, "/hello")
        self.assertEqual(resp.status, 400, resp)
        self.assertTrue(resp.complete, resp)
        self.assertIn(b"No required SSL certificate was sent", resp.body, resp)
        e = self.entries(n, 1)[0]
        self.assertEqual((e["status"], e["client_verify"]), ("400", "NONE"), e)


class PlainUpstream(UpstreamTlsCase):

    def test_plain_http_upstream_where_tls_is_expected_is_a_quick_502(self):
        n = self.start_nginx(tls=False)
        s = self.proxy([upstream("api", [n], tls=self.tls())],
                       timeouts={"upstream_connect": "%ds" % UPSTREAM_CONNECT})
        c = self.client(s.plain_port, timeout=UPSTREAM_CONNECT + 3)
        started = time.monotonic()
        resp = c.roundtrip(target="/hello")
        elapsed = time.monotonic() - started
        self.assertErrorResponse(resp, 502)
        self.assertLess(elapsed, FAIL_FAST, "502 took %.2fs (upstream_connect = %.0fs): the "
                        "handshake failure was not noticed" % (elapsed, UPSTREAM_CONNECT))
        # nginx took each ClientHello for a malformed request: its 400 is what
        # sluice's TLS layer was handed instead of a ServerHello. A failed
        # handshake counts as a failed connect, and a GET is retried once
        # (README): one or two attempts, none of them a request.
        entries = n.wait_log_entries(1, 5.0 * SLOW)
        self.assertLessEqual(len(entries), 2, entries)
        for e in entries:
            self.assertEqual((e["status"], e["method"]), ("400", "-"), e)


class OcspStapling(SluiceTestCase):
    """`ocsp_staple` on a listener certificate entry; the response was made
    offline with `openssl ocsp` for a leaf whose AIA names a responder."""

    def setUp(self):
        super().setUp()
        self.pki = shared_pki("ocsp")
        self.app = self.backend("app")
        control = self.pki.check_response()
        self.assertIn("%s: good" % self.pki.leaf_pem, control,
                      "the test's own OCSP response does not verify: %s" % control)

    def tls_sluice(self, staple):
        tls = tls_table([self.pki.leaf(staple)], min_version="1.2")
        s = TlsSluice(self.tmp, base_config([upstream("app", [self.app])]), [tls])
        s.start()
        self.addCleanup(self._stop_sluice, s)
        return s

    def status_request(self, port, *args):
        return s_client(port, "-status", "-servername", OcspPki.OCSP_NAME,
                        "-CAfile", self.pki.ca_pem, *args)

    def test_configured_staple_is_sent_and_says_good_on_tls12_and_tls13(self):
        s = self.tls_sluice(staple=True)
        for flag in ("-tls1_2", "-tls1_3"):
            r = self.status_request(s.tls_port, flag)
            self.assertTrue(r.handshake_ok, r)
            self.assertTrue(r.verify_ok, r)
            self.assertFalse(r.ocsp_none, "%s: no staple sent: %r" % (flag, r))
            self.assertEqual(r.ocsp_status, "successful", "%s: %r" % (flag, r))
            self.assertEqual(r.ocsp_cert_status, "good", "%s: %r" % (flag, r))
            self.assertEqual(r.ocsp_serial, self.pki.serial, "%s: %r" % (flag, r))
            self.assertEqual(r.http_status, 200, r)
        self.assertEqual(self.app.request_count, 2)

    def test_without_a_staple_none_is_sent(self):
        s = self.tls_sluice(staple=False)
        for flag in ("-tls1_2", "-tls1_3"):
            r = self.status_request(s.tls_port, flag)
            self.assertTrue(r.handshake_ok, r)
            self.assertTrue(r.ocsp_none, "%s: expected 'no response sent': %r" % (flag, r))
            self.assertIsNone(r.ocsp_status, r)
            self.assertEqual(r.http_status, 200, r)


if __name__ == "__main__":
    unittest.main()
