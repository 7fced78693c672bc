"""The connection limit, and listeners on IPv6 loopback.

Proves: with [limits] max_connections = N, the connection beyond N gets a
polite 503 with Connection: close and is closed, while the N connections
already open keep being served; once one of them closes, a new connection
is served again. A listener on [::1] serves like one on 127.0.0.1.
"""

import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Sluice, SluiceTestCase, base_config, upstream, wait_until  # noqa: E402
from httpwire import Stream, build_request, read_response  # noqa: E402

LIMIT = 3


class ConnectionLimit(SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.app = self.backend("app")
        self.s = self.sluice([upstream("app", [self.app])],
                             limits={"max_connections": LIMIT})

    def test_connection_over_the_limit_gets_503_and_the_others_keep_working(self):
        held = [self.client(self.s.port) for _ in range(LIMIT)]
        for i, c in enumerate(held):
            self.assertEqual(c.roundtrip(target="/held-%d" % i).status, 200)

        extra = self.client(self.s.port)
        extra.request(target="/over-the-limit")
        resp = extra.read_response()
        self.assertErrorResponse(resp, 503, closes=True)
        self.assertClosed(extra, allow_extra=True)
        self.assertNotIn("/over-the-limit", [h.target for h in self.app.heads])

        for i, c in enumerate(held):  # still served, on the same connections
            self.assertEqual(c.roundtrip(target="/again-%d" % i).status, 200)

        # Once a held connection closes, its place is free again. The close
        # is seen by the gateway asynchronously: retry (bounded) until served.
        held[0].close()
        served = []

        def a_new_connection_is_served():
            c = self.client(self.s.port)
            r = c.roundtrip(target="/after-close")
            c.close()
            served.append(r.status)
            return r.status == 200

        wait_until(a_new_connection_is_served, 5.0, message="a connection served after one closed")
        self.assertEqual(served[-1], 200)


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Ipv6Sluice(Sluice):
    """The harness's sluice with one more listener, on [::1]."""

    def __init__(self, tmpdir, doc, port6):
        super().__init__(tmpdir, doc)
        self.port6 = port6

    def config_text(self):
        return super().config_text() + '\n[[listener]]\naddress = "[::1]:%d"\n' % self.port6


@unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback on this machine")
class Ipv6Listener(SluiceTestCase):

    def test_listener_on_ipv6_loopback_proxies(self):
        app = self.backend("app")
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
            port6 = probe.getsockname()[1]
        s = Ipv6Sluice(self.tmp, base_config([upstream("app", [app])]), port6)
        s.start()
        self.addCleanup(self._stop_sluice, s)
        with socket.create_connection(("::1", port6), timeout=10) as sock:
            sock.sendall(build_request("GET", "/over-v6", (), None, "1.1", "localhost"))
            resp = read_response(Stream(sock))
        self.assertEqual(resp.status, 200)
        app.wait_requests(1)
        forwarded = [h for h in app.heads if h.target == "/over-v6"]
        self.assertEqual(len(forwarded), 1)
        self.assertEqual(forwarded[0].header("x-forwarded-for"), "::1")


if __name__ == "__main__":
    unittest.main()
