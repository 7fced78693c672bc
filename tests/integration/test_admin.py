"""The admin endpoint: /metrics, /healthz, /readyz, /config, and the drain order.

Proves: after a scripted workload through two workers, /metrics has exact
counts (responses by route and status class, the no-route 404, upstream
connect errors, accepted and active connections by listener, WebSocket
sessions, messages and bytes each way, close codes by code and side, Origin
and size refusals, ping round trips, reloads and reload failures) in valid
Prometheus text; /config names the file with the SHA-256 of its bytes and the
generation; the admin endpoint is refused on a non-loopback address unless
allow_remote is set, and answers only GET and HEAD; on SIGTERM /readyz turns
503 at once while the listeners keep accepting for drain_delay, then they
close, WebSocket clients get 1001, and the process exits 0.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOOPBACK, SLUICE_BIN, SLOW, Sluice, base_config, connect_refused,  # noqa: E402
                     free_port, route, upstream, wait_until, admin_get, metric_value)
from wscase import CLOSE_WAIT, WsTestCase  # noqa: E402
from wsframes import BINARY, TEXT  # noqa: E402


class AdminCase(WsTestCase):

    def admin_sluice(self, upstreams, routes=None, **sections):
        s = Sluice(self.tmp, self.with_admin(base_config(upstreams, routes, **sections))).start()
        self.addCleanup(self._stop_sluice, s)
        return s


class Metrics(AdminCase):

    def test_exact_counts_after_a_scripted_workload(self):
        app = self.backend("app")
        echo = self.echo_server()
        dead = free_port()  # nothing listens: connect refused
        ws = {"allowed_origins": ["http://localhost"], "max_frame_bytes": "1KiB",
              "ping_interval": "200ms"}
        s = self.admin_sluice(
            [upstream("app", [app]), upstream("echo", [echo]), upstream("dead", ["127.0.0.1:%d" % dead],
                                                                        max_fails=1000)],
            routes=[route("app", path_prefix="/app/"), route("echo", path_prefix="/chat", websocket=ws),
                    route("dead", path_prefix="/dead/")],
            server={"workers": 2})

        for i in range(5):
            self.assertEqual(self.get(s.port, "/app/%d" % i).status, 200)
        self.assertEqual(self.get(s.port, "/nowhere").status, 404)
        for i in range(2):
            self.assertEqual(self.get(s.port, "/dead/%d" % i).status, 502)
        # Two sessions that talk and close normally, with a ping answered.
        for _ in range(2):
            c = self.ws_client(s.port, answer_pings=True)
            self.assertEqual(c.handshake("/chat").status, 101)
            for payload in (b"one", b"three"):
                c.send_frame(TEXT, payload)
                self.assertEqual(c.read_frame(CLOSE_WAIT).payload, payload)
            c.send_frame(BINARY, b"\x00" * 100)
            self.assertEqual(len(c.read_frame(CLOSE_WAIT).payload), 100)
            # Reading answers the gateway's pings (every 200 ms); no data comes.
            deadline = time.monotonic() + 5 * SLOW
            while not c.pings and time.monotonic() < deadline:
                try:
                    self.assertIsNone(c.read_frame(0.1))
                except TimeoutError:
                    pass
            self.assertTrue(c.pings, "no gateway ping within 5 s")
            c.send_close(1000)
            _, close = c.read_until_close(CLOSE_WAIT)
            self.assertEqual(close.close_code, 1000)
        # One refused for its Origin, one failed for size.
        bad = self.ws_client(s.port)
        self.assertEqual(bad.handshake("/chat", origin="http://evil.test").status, 403)
        big = self.ws_client(s.port)
        self.assertEqual(big.handshake("/chat").status, 101)
        big.send_frame(BINARY, b"x" * 2048)
        self.assertClientClosed(big, 1009)

        # Counted when each session's line is logged; the last one may lag a
        # moment behind the client's view of it.
        wait_until(lambda: metric_value(self.metrics(), "sluice_websocket_sessions_active",
                                 host="*", path_prefix="/chat") == 0, 5 * SLOW,
                   message="no active WebSocket session")
        m = self.metrics()
        app_route = dict(host="*", path_prefix="/app/")
        chat = dict(host="*", path_prefix="/chat")
        self.assertEqual(metric_value(m, "sluice_http_responses_total", code="2xx", **app_route), 5)
        self.assertEqual(metric_value(m, "sluice_http_responses_total", code="4xx", host="", path_prefix=""), 1)
        self.assertEqual(metric_value(m, "sluice_http_responses_total", code="5xx", host="*", path_prefix="/dead/"), 2)
        self.assertEqual(metric_value(m, "sluice_http_responses_total", code="1xx", **chat), 3)
        self.assertEqual(metric_value(m, "sluice_http_responses_total", code="4xx", **chat), 1)
        # Each 502 is a connect refused, then one retry refused as well.
        self.assertEqual(metric_value(m, "sluice_upstream_connect_errors_total", upstream="dead"), 4)
        self.assertEqual(metric_value(m, "sluice_upstream_connect_timeouts_total", upstream="dead"), 0)
        self.assertEqual(metric_value(m, "sluice_upstream_response_seconds_count", upstream="app"), 5)
        listener = dict(listener="%s:%d" % (LOOPBACK, s.port))
        self.assertEqual(metric_value(m, "sluice_connections_accepted_total", **listener), 12)
        self.assertEqual(metric_value(m, "sluice_websocket_sessions_total", **chat), 3)
        self.assertEqual(metric_value(m, "sluice_websocket_messages_total", direction="client_to_upstream", **chat), 6)
        self.assertEqual(metric_value(m, "sluice_websocket_messages_total", direction="upstream_to_client", **chat), 6)
        self.assertEqual(metric_value(m, "sluice_websocket_message_bytes_total", direction="client_to_upstream", **chat),
                         2 * (3 + 5 + 100))
        self.assertEqual(metric_value(m, "sluice_websocket_closes_total", code="1000", side="client"), 2)
        self.assertEqual(metric_value(m, "sluice_websocket_closes_total", code="1009", side="gateway"), 1)
        self.assertEqual(metric_value(m, "sluice_websocket_refusals_total", reason="origin"), 1)
        self.assertEqual(metric_value(m, "sluice_websocket_refusals_total", reason="size"), 1)
        self.assertEqual(metric_value(m, "sluice_websocket_refusals_total", reason="utf8"), 0)
        self.assertGreaterEqual(metric_value(m, "sluice_websocket_ping_rtt_seconds_count"), 2)
        self.assertEqual(metric_value(m, "sluice_websocket_ping_rtt_seconds_bucket", le="+Inf"),
                         metric_value(m, "sluice_websocket_ping_rtt_seconds_count"))
        self.assertEqual(metric_value(m, "sluice_workers"), 2)
        # Once the test's clients hang up, no connection is active.
        self.assertGreater(metric_value(m, "sluice_connections_active", **listener), 0)
        for c in self._clients:
            c.close()
        wait_until(lambda: metric_value(self.metrics(), "sluice_connections_active", **listener) == 0,
                   5 * SLOW, message="no active connection")

    def test_reload_counts_and_config_facts(self):
        app = self.backend("app")
        s = self.admin_sluice([upstream("app", [app])])
        status, ctype, body = admin_get(self.admin_port, "/config")
        self.assertEqual((status, ctype), (200, "application/json"))
        facts = json.loads(body)
        with open(s.config_path, "rb") as f:
            self.assertEqual(facts["sha256"], hashlib.sha256(f.read()).hexdigest())
        self.assertEqual((facts["path"], facts["generation"]), (s.config_path, 1))

        s.reload_fails(text="[server\n")
        s.reload()
        m = self.metrics()
        self.assertEqual(metric_value(m, "sluice_config_reloads_total"), 1)
        self.assertEqual(metric_value(m, "sluice_config_reload_failures_total"), 1)
        self.assertEqual(metric_value(m, "sluice_config_generation"), 2)
        facts = json.loads(admin_get(self.admin_port, "/config")[2])
        self.assertEqual(facts["generation"], 2)

    def test_health_methods_and_unknown_paths(self):
        app = self.backend("app")
        self.admin_sluice([upstream("app", [app])])
        self.assertEqual(admin_get(self.admin_port, "/healthz")[::2], (200, "ok\n"))
        self.assertEqual(admin_get(self.admin_port, "/readyz")[::2], (200, "ready\n"))
        self.assertEqual(admin_get(self.admin_port, "/readyz", "HEAD")[::2], (200, ""))
        self.assertEqual(admin_get(self.admin_port, "/metrics", "POST")[0], 405)
        self.assertEqual(admin_get(self.admin_port, "/nope")[0], 404)

    def test_moved_by_reload_the_old_port_is_closed(self):
        # The admin socket is opened before the workers start. Each worker
        # takes a descriptor table of its own and must not keep a copy of
        # it: the old port would then stay bound and take connections that
        # nobody serves.
        app = self.backend("app")
        doc = self.with_admin(base_config([upstream("app", [app])], server={"workers": 2}))
        s = Sluice(self.tmp, doc).start()
        self.addCleanup(self._stop_sluice, s)
        old = self.admin_port
        self.assertEqual(admin_get(old, "/healthz")[::2], (200, "ok\n"))
        s.reload(self.with_admin(doc))
        self.assertNotEqual(self.admin_port, old)
        self.assertEqual(admin_get(self.admin_port, "/healthz")[::2], (200, "ok\n"))
        self.assertTrue(connect_refused(old), "the old admin port still accepts")
        self.assertEqual(self.get(s.port, "/after").status, 200)


class AdminConfig(AdminCase):

    def check(self, admin):
        doc = base_config([upstream("app", ["127.0.0.1:9"])])
        doc["admin"] = admin
        doc["listener"] = [{"address": "127.0.0.1:%d" % free_port()}]
        from harness import to_toml
        path = os.path.join(self.tmp, "check.toml")
        with open(path, "w") as f:
            f.write(to_toml(doc))
        return subprocess.run([SLUICE_BIN, "--check", "-c", path], capture_output=True, text=True,
                              timeout=30)

    def test_non_loopback_needs_allow_remote(self):
        r = self.check({"address": "0.0.0.0:9901"})
        self.assertEqual(r.returncode, 2, r)
        self.assertRegex(r.stderr, r"check\.toml:\d+:\d+: admin\.address: 0\.0\.0\.0:9901 is not a "
                                   r"loopback address")
        r = self.check({"address": "0.0.0.0:9901", "allow_remote": True})
        self.assertEqual(r.returncode, 0, r)
        r = self.check({"address": "[::1]:9901"})
        self.assertEqual(r.returncode, 0, r)


class DrainOrder(AdminCase):

    def test_readyz_fails_first_then_listeners_close_then_websockets_get_1001(self):
        app = self.backend("app")
        echo = self.echo_server()
        s = self.admin_sluice([upstream("app", [app]), upstream("echo", [echo])],
                              routes=[route("app"), route("echo", path_prefix="/chat")],
                              server={"drain_delay": "1500ms", "drain_timeout": "4s"})
        c = self.ws_client(s.port)
        self.assertEqual(c.handshake("/chat").status, 101)
        s.signal(signal.SIGTERM)
        t0 = time.monotonic()
        wait_until(lambda: admin_get(self.admin_port, "/readyz")[0] == 503, 5 * SLOW,
                   message="/readyz 503 after SIGTERM")
        # Still accepting and serving during drain_delay (the balancer's time to notice).
        resp = self.get(s.port, "/during-delay")
        self.assertEqual(resp.status, 200)
        self.assertLess(time.monotonic() - t0, 1.5, "drain_delay over before the checks ran")
        wait_until(lambda: connect_refused(s.port), 5 * SLOW, message="listener closed after drain_delay")
        self.assertGreaterEqual(time.monotonic() - t0, 1.4)
        # The session gets 1001 within the drain (4 s, spread over its first half).
        self.assertClientClosed(c, 1001)
        self.assertEqual(s.wait_exit(10 * SLOW), 0, s.stderr_tail())


    def test_websocket_closes_are_spread_over_the_drain(self):
        echo = self.echo_server()
        s = self.admin_sluice([upstream("echo", [echo])], routes=[route("echo", path_prefix="/chat")],
                              server={"drain_timeout": "6s"})
        clients = []
        for _ in range(12):
            c = self.ws_client(s.port)
            self.assertEqual(c.handshake("/chat").status, 101)
            clients.append(c)
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        arrivals = []
        for c in clients:
            self.assertClientClosed(c, 1001)
            arrivals.append(time.monotonic() - t0)
        # drain_timeout 6 s (under 10 s): spread over its first half. Twelve
        # uniform closes all within the first 0.4 s: (0.4/3)^12, never.
        self.assertGreater(max(arrivals), 0.4, arrivals)
        self.assertLess(max(arrivals), 3.0 + CLOSE_WAIT, arrivals)
        self.assertEqual(s.wait_exit(10 * SLOW), 0, s.stderr_tail())


if __name__ == "__main__":
    unittest.main()
