"""Active health checks ([upstream] health_check).

Proves: probes run (GET <path> with Host, User-Agent sluice-health and
Connection: close); a server whose /health answers 503 is ejected after
exactly `unhealthy` failed probes and gets no request while ejected (exact
counts on both backends), the metrics show it (healthy gauge 0, failure
counter), and it is back in rotation after `healthy` good probes; a port
that refuses connections is ejected by the probes alone, before any request
could fail on it (no connect error counted by the workers), and an upstream
whose only server is ejected answers 503; a WebSocket probe (websocket =
true) passes against a real WebSocket server (101 with the right accept,
then a masked close 1000), fails on a plain HTTP answer or a wrong accept,
and ejects the server once it stops; a TLS probe verifies the server (SNI,
Host from tls.server_name) and a failed handshake fails it; a reload keeps the verdict of servers
that stay (an ejected server gets nothing right after the reload, although
the new settings would need many probes to eject it again).

Every wait is for an event (a log line, a metric reaching a value, a request
arriving), never a sleep standing in for one.
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, Sluice, SluiceTestCase, base_config,  # noqa: E402
                     default_handler, route, send_response, upstream, wait_until, metric_value)
from peers import Nginx  # noqa: E402
from tlsutil import UpstreamPki, cleanup_shared_pki, shared_pki  # noqa: E402
from wspeers import RawWsUpstream, WsEchoServer  # noqa: E402
from wsframes import CLOSE  # noqa: E402

FAST = {"path": "/health", "interval": "200ms", "timeout": "150ms", "unhealthy": 2, "healthy": 2}
WAIT = 10.0 * SLOW


class Health:
    """A /health switch for a Backend: 200 while `ok`, else 503."""

    def __init__(self):
        self.ok = True  # flipped by the test, read by handler threads (a plain bool is enough)

    def handler(self, backend, conn, req):
        if req.target == "/health":
            status = 200 if self.ok else 503
            send_response(conn, status, b"ok\n" if self.ok else b"down\n",
                          [("Content-Type", "text/plain"), ("Connection", "close")],
                          reason="OK" if self.ok else "Service Unavailable")
            conn.close()
        else:
            default_handler(backend, conn, req)


def traffic(backend):
    """Requests other than probes."""
    return [t for t in backend.targets() if t != "/health"]


def probes(backend):
    return [r for r in backend.requests if r.target == "/health"]


tearDownModule = cleanup_shared_pki


class HealthCase(SluiceTestCase):

    def start(self, upstreams, routes=None):
        doc = base_config(upstreams, routes, log={"level": "debug"})
        self.with_admin(doc)
        s = Sluice(self.tmp, doc).start()
        self.addCleanup(self._stop_sluice, s)
        return s

    def healthy(self, up, server):
        return metric_value(self.metrics(), "sluice_upstream_server_healthy",
                           upstream=up, server=server.addr)

    def checks(self, up, server, result):
        return metric_value(self.metrics(), "sluice_health_checks_total",
                           upstream=up, server=server.addr, result=result) or 0

    def wait_healthy(self, up, server, want):
        wait_until(lambda: self.healthy(up, server) == (1 if want else 0), WAIT, 0.05,
                   "%s %s healthy=%s in the metrics" % (up, server.addr, want))

    def send(self, s, n, prefix):
        c = self.client(s.port)
        for i in range(n):
            resp = c.roundtrip(target="/%s%d" % (prefix, i))
            self.assertEqual(resp.status, 200, resp)


class HttpProbes(HealthCase):

    def test_failing_server_is_ejected_then_restored(self):
        ha, hb = Health(), Health()
        a = self.backend("a", ha.handler)
        b = self.backend("b", hb.handler)
        s = self.start([upstream("app", [a, b], health_check=FAST)])
        # Probes happen and look like a careful client's.
        wait_until(lambda: self.checks("app", b, "success") >= 2, WAIT, 0.05, "two good probes of b")
        probe = probes(b)[0]
        self.assertEqual(probe.method, "GET")
        self.assertEqual(probe.header("host"), b.addr)
        self.assertTrue(probe.header("user-agent", "").startswith("sluice-health"), probe)
        self.assertEqual(probe.header("connection"), "close")
        self.assertEqual(self.healthy("app", b), 1)

        self.send(s, 4, "before")
        self.assertEqual((len(traffic(a)), len(traffic(b))), (2, 2))

        hb.ok = False
        line = s.wait_log(r"failed health checks, ejected.*server=%s" % re.escape(b.addr),
                          "stderr", WAIT)
        self.assertIn("upstream=app", line)
        self.assertIn("failures=2", line)  # exactly `unhealthy` in a row
        self.assertIn("status not 2xx or 3xx", line)
        self.assertEqual(self.healthy("app", b), 0)
        self.assertEqual(self.healthy("app", a), 1)
        self.assertGreaterEqual(self.checks("app", b, "failure"), 2)

        self.send(s, 10, "while")
        self.assertEqual(len(traffic(a)), 2 + 10)
        self.assertEqual(len(traffic(b)), 2, "an ejected server got requests")

        hb.ok = True
        line = s.wait_log(r"passed health checks, back in rotation.*server=%s" % re.escape(b.addr),
                          "stderr", WAIT)
        self.assertIn("successes=2", line)
        self.assertEqual(self.healthy("app", b), 1)
        self.send(s, 10, "after")
        self.assertEqual((len(traffic(a)), len(traffic(b))), (12 + 5, 2 + 5))

    def test_refused_port_is_ejected_before_any_request_fails(self):
        good = self.backend("good")
        dead = self.backend("dead", start=False)  # bound, not listening: refused
        lonely = self.backend("lonely", start=False)
        s = self.start([upstream("app", [good, dead], health_check=dict(FAST, unhealthy=1)),
                        upstream("alone", [lonely], health_check=dict(FAST, unhealthy=1))],
                       routes=[route("app"), route("alone", path_prefix="/alone")])
        line = s.wait_log(r"failed health checks, ejected.*server=%s" % re.escape(dead.addr),
                          "stderr", WAIT)
        self.assertIn("ECONNREFUSED", line)
        self.wait_healthy("alone", lonely, False)
        self.send(s, 10, "r")
        self.assertEqual(len(traffic(good)), 10)
        m = self.metrics()
        self.assertEqual(metric_value(m, "sluice_upstream_connect_errors_total", upstream="app"), 0,
                         "a worker tried the ejected server")
        self.assertEqual(metric_value(m, "sluice_upstream_server_healthy", upstream="app",
                                     server=good.addr), 1)
        # Nothing left in "alone": the same fast 503 as when passive health ejects all.
        resp = self.get(s.port, "/alone/x")
        self.assertErrorResponse(resp, 503)
        self.assertEqual(metric_value(self.metrics(), "sluice_upstream_connect_errors_total",
                                     upstream="alone"), 0)


class WebSocketProbes(HealthCase):

    def test_websocket_server_passes_then_is_ejected_when_stopped(self):
        echo = WsEchoServer("echo").start()
        stopped = []

        def stop_echo():
            if not stopped:
                stopped.append(True)
                echo.stop()
        self.addCleanup(stop_echo)
        check = dict(FAST, path="/probe", websocket=True, origin="https://health.example")
        s = self.start([upstream("ws", [echo.addr], health_check=check)])
        wait_until(lambda: self.checks("ws", echo, "success") >= 2, WAIT, 0.05,
                   "two good WebSocket probes")
        self.assertEqual(self.checks("ws", echo, "failure"), 0)
        with echo.lock:
            path, headers, _ = echo.handshakes[0]
        self.assertEqual(path, "/probe")
        self.assertEqual(headers.get("origin"), "https://health.example")
        self.assertTrue(headers.get("user-agent", "").startswith("sluice-health"))
        self.assertEqual(self.healthy("ws", echo), 1)

        stop_echo()
        s.wait_log(r"failed health checks, ejected.*upstream=ws", "stderr", WAIT)
        self.assertEqual(self.healthy("ws", echo), 0)

    def test_probe_ends_the_session_with_a_masked_close_1000(self):
        raw = RawWsUpstream("raw").start()
        self.addCleanup(raw.stop)
        s = self.start([upstream("ws", [raw], health_check=dict(FAST, websocket=True))])
        conn = raw.wait_upgraded(1, WAIT)
        self.assertEqual(conn.request.header("upgrade").lower(), "websocket")
        self.assertEqual(conn.request.header("sec-websocket-version"), "13")
        frames = conn.wait_frames(1, WAIT)
        self.assertEqual(frames[0].opcode, CLOSE)
        self.assertTrue(frames[0].masked)
        self.assertEqual(frames[0].close_code, 1000)
        wait_until(lambda: self.checks("ws", raw, "success") >= 1, WAIT, 0.05, "a good probe")
        self.assertEqual(self.checks("ws", raw, "failure"), 0)
        self.assertIsNone(s.returncode)

    def test_wrong_accept_or_plain_http_answer_fails_a_websocket_probe(self):
        liar = RawWsUpstream("liar", accept="dGhlIHNhbXBsZSBub25jZQ==")
        liar.start()
        self.addCleanup(liar.stop)
        plain = self.backend("plain")
        check = dict(FAST, websocket=True, unhealthy=1)
        s = self.start([upstream("liar", [liar], health_check=check),
                        upstream("plain", [plain], health_check=check)],
                       routes=[route("liar"), route("plain", path_prefix="/plain")])
        line = s.wait_log(r"failed health checks, ejected.*upstream=liar", "stderr", WAIT)
        self.assertIn("bad WebSocket handshake", line)
        line = s.wait_log(r"failed health checks, ejected.*upstream=plain", "stderr", WAIT)
        self.assertIn("status not 101", line)


class TlsProbes(HealthCase):

    def test_tls_probe_verifies_the_server_and_a_failed_handshake_fails(self):
        pki = shared_pki("upstream")
        nginx = Nginx(self.tmp, {"hello": b"hello\n"}, tls={"cert": pki.api_pem, "key": pki.api_key})
        self.addCleanup(nginx.stop)
        nginx.start()
        good = {"enabled": True, "ca": pki.ca_pem, "server_name": UpstreamPki.API_NAME}
        rogue = dict(good, ca=pki.rogue_ca_pem)
        check = dict(FAST, path="/hello", unhealthy=1)
        s = self.start([upstream("good", [nginx], tls=good, health_check=check),
                        upstream("rogue", [nginx], tls=rogue, health_check=check)],
                       routes=[route("good"), route("rogue", path_prefix="/rogue")])
        line = s.wait_log(r"failed health checks, ejected.*upstream=rogue", "stderr", WAIT)
        self.assertIn("TLS handshake failed", line)
        wait_until(lambda: self.checks("good", nginx, "success") >= 2, WAIT, 0.05,
                   "two good TLS probes")
        self.assertEqual(self.checks("good", nginx, "failure"), 0)
        self.assertEqual(self.healthy("good", nginx), 1)
        probe = [e for e in nginx.log_entries() if e.get("uri") == "/hello"][0]
        self.assertEqual(probe["sni"], UpstreamPki.API_NAME)
        self.assertEqual(probe["host"], UpstreamPki.API_NAME)
        self.assertEqual(probe["conn_hdr"], "close")


class ReloadKeepsHealth(HealthCase):

    def test_ejected_server_stays_ejected_across_a_reload(self):
        ha, hb = Health(), Health()
        a = self.backend("a", ha.handler)
        b = self.backend("b", hb.handler)
        s = self.start([upstream("app", [a, b], health_check=FAST)])
        hb.ok = False
        s.wait_log(r"failed health checks, ejected.*server=%s" % re.escape(b.addr), "stderr", WAIT)
        failures = self.checks("app", b, "failure")

        # New settings under which a fresh verdict would take minutes to
        # reach "ejected": only a verdict carried over keeps b out now.
        slow = dict(FAST, interval="30s", timeout="1s", unhealthy=100)
        doc = dict(s.doc)
        doc["upstream"] = [upstream("app", [a, b], keepalive=8, health_check=slow)]
        s.reload(doc)
        self.assertEqual(self.healthy("app", b), 0)
        self.assertGreaterEqual(self.checks("app", b, "failure"), failures,
                                "the reload reset the probe counts")
        self.send(s, 10, "after-reload")
        self.assertEqual(len(traffic(b)), 0, "an ejected server got requests after the reload")
        self.assertEqual(len(traffic(a)), 10)

        # An upstream whose health_check is removed puts its servers back.
        doc = dict(s.doc)
        doc["upstream"] = [upstream("app", [a, b])]
        s.reload(doc)
        s.wait_log(r"health checks removed, server back in rotation.*server=%s" % re.escape(b.addr),
                   "stderr", WAIT)
        self.assertEqual(self.healthy("app", b), 1)
        self.send(s, 10, "unchecked")
        self.assertEqual(len(traffic(b)), 5)


if __name__ == "__main__":
    unittest.main()
