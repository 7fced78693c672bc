"""PROXY protocol listeners and trusted_proxies.

Proves: on a listener with proxy_protocol = true, the client address carried
by a PROXY v1 (TCP4, TCP6) or v2 (IPv4, IPv6, with TLVs) header is the
client's everywhere: the upstream's X-Forwarded-For and the access log; the
header may arrive in pieces, alone or with the request in the same segment;
a LOCAL header (a balancer's own health check) keeps the connection's own
address; on a TLS listener the header comes before the ClientHello. A
connection without a valid header (plain HTTP, a bad v1 line, a v2 header
with a bad version) is closed without an answer and counted in
sluice_proxy_protocol_errors_total, as is one whose header never completes
(closed at the header timeout). The carried address is what trusted_proxies
is checked against: a trusted one's X-Forwarded-For is extended, anyone
else's replaced. A listener without proxy_protocol treats a PROXY line as a
bad request (400).
"""

import http.client
import os
import socket
import ssl
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOOPBACK, SLOW, Sluice, SluiceTestCase, base_config, free_port,  # noqa: E402
                     upstream)
from httpwire import build_request  # noqa: E402
from tlsutil import TlsSluice, cleanup_shared_pki, shared_pki, tls_table, to_toml_inline  # noqa: E402

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def tearDownModule():
    cleanup_shared_pki()


def v1(src, dst="127.0.0.1", sport=40000, dport=443, family="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (family, src, dst, sport, dport)).encode()


def v2(src=None, dst=None, sport=40000, dport=443, command=1, tlvs=b""):
    """A v2 header; src/dst None with command 0 makes a LOCAL one."""
    if src is None:
        body, fam = b"", 0x00
    elif ":" in src:
        body = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                + struct.pack("!HH", sport, dport))
        fam = 0x21
    else:
        body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
        fam = 0x11
    body += tlvs
    return V2_SIG + bytes([0x20 | command, fam]) + struct.pack("!H", len(body)) + body


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


class PpSluice(Sluice):
    """Listener 0 takes PROXY headers; listener 1 (when two) does not."""

    def config_text(self):
        doc = dict(self.doc)
        doc["listener"] = [{"address": "%s:%d" % (LOOPBACK, p), "proxy_protocol": i == 0}
                           for i, p in enumerate(self.ports)]
        return to_toml_inline(doc)


class ProxyProtocol(SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.app = self.backend("app")

    def start(self, listeners=1, **sections):
        s = PpSluice(self.tmp, base_config([upstream("app", [self.app])], **sections), listeners)
        s.start()
        self.addCleanup(self._stop_sluice, s)
        return s

    def exchange(self, port, pieces, headers=()):
        """Sends `pieces` (the header, maybe split) then a request; returns
        the response and what the backend received."""
        c = self.client(port)
        for p in pieces:
            c.send(p)
        c.send(build_request("GET", "/pp", headers))
        resp = c.read_response()
        self.assertEqual(resp.status, 200, resp)
        return resp, self.app.wait_requests(self.app.request_count)[-1]

    def assertRefused(self, port, data):
        c = self.client(port)
        c.send(data)
        closed, extra = c.wait_closed(5 * SLOW)
        self.assertTrue(closed, "connection left open after %r" % data[:40])
        self.assertEqual(extra, b"", "a connection without a valid PROXY header got an answer")

    def test_v1_and_v2_carry_the_client_address(self):
        s = self.start()
        cases = [
            ([v1("203.0.113.9")], "203.0.113.9"),
            ([v1("2001:db8::7", "::1", family="TCP6")], "2001:db8::7"),
            ([v2("198.51.100.20", "127.0.0.1")], "198.51.100.20"),
            ([v2("2001:db8::1:2", "::1", tlvs=tlv(0x01, b"h2") + tlv(0x05, b"req-42"))],
             "2001:db8::1:2"),
        ]
        for pieces, client in cases:
            _, req = self.exchange(s.port, pieces)
            self.assertEqual(req.headers.get_all("x-forwarded-for"), [client], pieces)
        s.wait_log(r"client=203\.0\.113\.9 method=GET path=/pp status=200")
        s.wait_log(r"client=2001:db8::1:2 method=GET")

    def test_header_in_pieces_and_with_the_request_in_one_segment(self):
        s = self.start()
        header = v2("192.0.2.44", "127.0.0.1")
        _, req = self.exchange(s.port, [header[i:i + 1] for i in range(len(header))])
        self.assertEqual(req.header("x-forwarded-for"), "192.0.2.44")
        c = self.client(s.port)
        c.send(v1("192.0.2.45") + build_request("GET", "/together"))
        self.assertEqual(c.read_response().status, 200)
        self.assertEqual(self.app.wait_requests(self.app.request_count)[-1].header("x-forwarded-for"),
                         "192.0.2.45")

    def test_local_keeps_the_connections_own_address(self):
        s = self.start()
        _, req = self.exchange(s.port, [v2(command=0)])
        self.assertEqual(req.header("x-forwarded-for"), "127.0.0.1")
        _, req = self.exchange(s.port, [b"PROXY UNKNOWN\r\n"])
        self.assertEqual(req.header("x-forwarded-for"), "127.0.0.1")

    def test_connections_without_a_valid_header_are_closed_and_counted(self):
        admin = free_port()
        s = self.start(timeouts={"header": "1s"})
        s.doc["admin"] = {"address": "%s:%d" % (LOOPBACK, admin)}
        s.reload()
        before = self.app.request_count
        self.assertRefused(s.port, build_request("GET", "/no-header"))
        self.assertRefused(s.port, b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n")
        self.assertRefused(s.port, V2_SIG + b"\x10\x11\x00\x0c" + b"\x00" * 12)
        # Stalled mid-header: closed at the header timeout, silently.
        c = self.client(s.port)
        c.send(b"PROXY TCP4 1.2.")
        t0 = time.monotonic()
        closed, extra = c.wait_closed(5 * SLOW)
        self.assertTrue(closed and extra == b"", (closed, extra))
        self.assertGreater(time.monotonic() - t0, 0.7)
        self.assertEqual(self.app.request_count, before)
        conn = http.client.HTTPConnection(LOOPBACK, admin, timeout=10 * SLOW)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
        conn.close()
        self.assertIn("sluice_proxy_protocol_errors_total 4\n", body)

    def test_trusted_proxies_are_checked_against_the_carried_address(self):
        s = self.start(server={"trusted_proxies": ["10.0.0.0/8"]})
        _, req = self.exchange(s.port, [v1("10.1.2.3")], headers=[("X-Forwarded-For", "198.51.100.1")])
        self.assertEqual(req.header("x-forwarded-for"), "198.51.100.1, 10.1.2.3")
        _, req = self.exchange(s.port, [v1("203.0.113.50")], headers=[("X-Forwarded-For", "198.51.100.1")])
        self.assertEqual(req.header("x-forwarded-for"), "203.0.113.50")

    def test_a_listener_without_proxy_protocol_refuses_the_line_as_http(self):
        s = self.start(listeners=2)
        c = self.client(s.ports[1])
        c.send(v1("203.0.113.9") + build_request("GET", "/x"))
        self.assertEqual(c.read_response().status, 400)


class ProxyProtocolTls(SluiceTestCase):

    def test_the_header_comes_before_the_client_hello(self):
        pki = shared_pki("site")
        app = self.backend("app")

        class PpTlsSluice(TlsSluice):
            def config_text(self):
                return super().config_text().replace(
                    "[listener.tls]", "proxy_protocol = true\n\n[listener.tls]", 1)

        s = PpTlsSluice(self.tmp, base_config([upstream("app", [app])]), [tls_table([pki.site()])])
        s.start()
        self.addCleanup(self._stop_sluice, s)
        ctx = ssl.create_default_context(cafile=pki.ca_pem)
        raw = socket.create_connection((LOOPBACK, s.tls_port), timeout=10 * SLOW)
        raw.sendall(v2("192.0.2.99", "127.0.0.1", dport=s.tls_port))
        with ctx.wrap_socket(raw, server_hostname="site.test") as t:
            t.sendall(build_request("GET", "/secure", host="site.test", headers=[("Connection", "close")]))
            data = b""
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        req = app.wait_requests(1)[0]
        self.assertEqual(req.header("x-forwarded-for"), "192.0.2.99")
        self.assertEqual(req.header("x-forwarded-proto"), "https")


if __name__ == "__main__":
    unittest.main()
