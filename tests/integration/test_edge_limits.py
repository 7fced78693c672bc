"""Limits at the edge: per client address, per WebSocket session, per session age.

Proves: limits.connections_per_ip lets an address hold that many connections
at once (across workers), answers the next with 429 and closes it, and
admits again once one closes; on a PROXY protocol listener it counts the
carried address, so clients behind one balancer are counted apart;
websocket.max_sessions_per_ip answers the upgrade over it with 429 before
anything goes upstream, and frees the slot when a session ends;
websocket.max_messages_per_second lets a burst of that many client messages
through and closes the session 1008 at the next (the upstream gets 1001 and
never the refused message); websocket.max_session closes a session 1001
within its last tenth. Each refusal is counted in the metrics.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOOPBACK, SLOW, Sluice, base_config, metric_value, route,  # noqa: E402
                     upstream, wait_until)
from httpwire import build_request  # noqa: E402
from tlsutil import to_toml_inline  # noqa: E402
from wscase import CLOSE_WAIT, WsTestCase  # noqa: E402
from wsframes import TEXT, encode_frame  # noqa: E402


class EdgeCase(WsTestCase):

    def start(self, doc):
        s = Sluice(self.tmp, self.with_admin(doc)).start()
        self.addCleanup(self._stop_sluice, s)
        return s

    def metric(self, name, **labels):
        return metric_value(self.metrics(), name, **labels)


class ConnectionsPerIp(EdgeCase):

    def test_an_address_holds_its_limit_and_the_next_gets_429(self):
        app = self.backend("app")
        s = self.start(base_config([upstream("app", [app])], server={"workers": 2},
                                   limits={"connections_per_ip": 3}))
        held = [self.client(s.port) for _ in range(3)]
        for c in held:
            self.assertEqual(c.roundtrip(target="/held").status, 200)
        extra = self.client(s.port)
        extra.request(target="/extra")
        resp = extra.read_response()
        self.assertEqual(resp.status, 429, resp)
        self.assertTrue(extra.wait_closed()[0])
        self.assertEqual(self.metric("sluice_per_ip_refusals_total"), 1)
        held[0].close()
        # The slot comes back once sluice has seen that connection end.
        def admitted():
            c = self.client(s.port)
            c.request(target="/again")
            return c.read_response().status == 200
        wait_until(admitted, 5 * SLOW, message="a connection admitted after one closed")
        self.assertEqual(self.app_requests(app, "/extra"), 0)

    def app_requests(self, app, target):
        return sum(1 for r in app.requests if r.target == target)

    def test_proxy_protocol_addresses_are_counted_apart(self):
        app = self.backend("app")

        class PpSluice(Sluice):
            def config_text(self):
                doc = dict(self.doc)
                doc["listener"] = [{"address": "%s:%d" % (LOOPBACK, p), "proxy_protocol": True}
                                   for p in self.ports]
                return to_toml_inline(doc)

        s = PpSluice(self.tmp, base_config([upstream("app", [app])],
                                           limits={"connections_per_ip": 1})).start()
        self.addCleanup(self._stop_sluice, s)

        def via_balancer(client_ip):
            c = self.client(s.port)
            c.send(("PROXY TCP4 %s 127.0.0.1 4000 80\r\n" % client_ip).encode())
            c.send(build_request("GET", "/pp"))
            return c, c.read_response().status

        first, status = via_balancer("198.51.100.1")
        self.assertEqual(status, 200)
        _, status = via_balancer("198.51.100.2")  # another client, same balancer
        self.assertEqual(status, 200)
        _, status = via_balancer("198.51.100.1")
        self.assertEqual(status, 429)


class WebSocketLimits(EdgeCase):

    def test_sessions_per_ip_429_before_anything_goes_upstream(self):
        up = self.raw_upstream()
        ws = {"max_sessions_per_ip": 2, "allow_missing_origin": True}
        s = self.start(base_config([upstream("app", [up])],
                                   routes=[route("app", path_prefix="/chat", websocket=ws)],
                                   server={"workers": 2}))
        a, _ = self.open_session(s.port, up)
        b, _ = self.open_session(s.port, up)
        before = up.conn_count
        c = self.ws_client(s.port)
        self.assertEqual(c.handshake("/chat").status, 429)
        self.assertEqual(up.conn_count, before, "the refused upgrade reached the upstream")
        self.assertEqual(self.metric("sluice_per_ip_refusals_total"), 1)
        a.send_close(1000)
        self.assertClientClosed(a, 1000)

        def upgraded():
            d = self.ws_client(s.port)
            return d.handshake("/chat").status == 101
        wait_until(upgraded, 5 * SLOW, message="an upgrade admitted after a session ended")

    def test_message_rate_burst_then_1008(self):
        up = self.raw_upstream()
        ws = {"max_messages_per_second": 5, "allow_missing_origin": True}
        s = self.start(base_config([upstream("app", [up])],
                                   routes=[route("app", path_prefix="/chat", websocket=ws)]))
        c, conn = self.open_session(s.port, up)
        # Twenty messages in one write: the bucket holds five.
        c.send(b"".join(encode_frame(TEXT, b"m%d" % i, True, os.urandom(4)) for i in range(20)))
        self.assertClientClosed(c, 1008)
        self.assertUpstreamClosed(conn, 1001, [(TEXT, b"m%d" % i, True) for i in range(5)])
        self.assertEqual(self.metric("sluice_websocket_refusals_total", reason="rate"), 1)

    def test_max_session_closes_within_its_last_tenth(self):
        up = self.raw_upstream()
        ws = {"max_session": "1s", "allow_missing_origin": True}
        s = self.start(base_config([upstream("app", [up])],
                                   routes=[route("app", path_prefix="/chat", websocket=ws)]))
        t0 = time.monotonic()
        c, conn = self.open_session(s.port, up)
        close = self.assertClientClosed(c, 1001)
        elapsed = time.monotonic() - t0
        self.assertEqual(close.close_reason, b"session too old")
        self.assertGreaterEqual(elapsed, 0.85, "closed before max_session's last tenth")
        self.assertLess(elapsed, 1.0 + CLOSE_WAIT)
        self.assertUpstreamClosed(conn, 1001)


if __name__ == "__main__":
    unittest.main()
