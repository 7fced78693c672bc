"""Configuration reload on SIGHUP.

Proves: an invalid file is refused with its errors logged (file:line, key)
and the running configuration keeps serving; a valid one takes effect for
new connections and for the next request on a kept-alive connection, with no
connection dropped; listeners added and removed take effect while a kept one
keeps its socket (a connection accepted before the reload is still served);
WebSocket sessions on an unchanged route keep relaying untouched, while those
on a removed route or a route whose upstream changed get close 1012 within
reload_grace, spread out, and are counted in the worker's log line; a
certificate replaced on disk is served by new TLS handshakes after a reload.
"""

import os
import re
import ssl
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOOPBACK, SLOW, Sluice, base_config, connect_refused, free_port,  # noqa: E402
                     route, upstream, wait_until)
from tlsutil import TlsSluice, cert_subject_cn, cleanup_shared_pki, shared_pki, tls_table  # noqa: E402
from wscase import CLOSE_WAIT, WsTestCase  # noqa: E402
from wsframes import TEXT as OP_TEXT  # noqa: E402


def tearDownModule():
    cleanup_shared_pki()


class Reload(WsTestCase):

    def test_invalid_file_is_refused_and_the_old_config_keeps_serving(self):
        a = self.backend("a")
        b = self.backend("b")
        s = self.sluice([upstream("a", [a])])
        kept = self.client(s.port)
        self.assertEqual(kept.roundtrip(target="/x").header("x-backend"), "a")

        text = s.config_text().replace('upstream = "a"', 'upstream = "nope"')
        errors = s.reload_fails(text=text)
        joined = "\n".join(errors)
        self.assertRegex(joined, r"sluice\.toml:\d+:\d+: route\[0\]\.upstream")
        self.assertIn("keeping the running configuration", joined)
        self.assertIn("failures=1", joined)
        # Both the connection from before and a new one are still served, by a.
        self.assertEqual(kept.roundtrip(target="/y").header("x-backend"), "a")
        self.assertEqual(self.get(s.port, "/z").header("x-backend"), "a")

        # Fixed, it is taken: both connections now reach b.
        s.reload(base_config([upstream("b", [b])]))
        self.assertEqual(kept.roundtrip(target="/y").header("x-backend"), "b")
        self.assertEqual(self.get(s.port, "/z").header("x-backend"), "b")

    def test_routes_added_and_removed(self):
        a = self.backend("a")
        b = self.backend("b")
        s = self.sluice([upstream("a", [a])], routes=[route("a", path_prefix="/a/")])
        self.assertEqual(self.get(s.port, "/b/1").status, 404)
        s.reload(base_config([upstream("a", [a]), upstream("b", [b])],
                             routes=[route("b", path_prefix="/b/")]))
        resp = self.get(s.port, "/b/1")
        self.assertEqual((resp.status, resp.header("x-backend")), (200, "b"))
        self.assertEqual(self.get(s.port, "/a/1").status, 404)

    def test_listeners_added_and_removed_while_a_kept_one_keeps_its_socket(self):
        a = self.backend("a")
        s = self.sluice([upstream("a", [a])])
        first = s.port
        before = self.client(first)
        self.assertEqual(before.roundtrip(target="/1").status, 200)

        second = free_port()
        s.reload(ports=[first, second])
        self.assertEqual(self.get(second, "/2").status, 200)
        self.assertEqual(before.roundtrip(target="/3").status, 200)

        s.reload(ports=[second])
        self.assertTrue(connect_refused(first), "the removed listener still accepts")
        self.assertEqual(self.get(second, "/4").status, 200)
        # A connection accepted by a removed listener is not cut off.
        self.assertEqual(before.roundtrip(target="/5").status, 200)

    def test_a_port_that_cannot_be_bound_fails_the_reload(self):
        a = self.backend("a")
        s = self.sluice([upstream("a", [a])])
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind((LOOPBACK, 0))
        taken.listen(1)
        errors = s.reload_fails(ports=[s.port, taken.getsockname()[1]])
        self.assertRegex("\n".join(errors), r"bind 127\.0\.0\.1:\d+")
        self.assertEqual(self.get(s.ports[0], "/still").status, 200)


class ReloadWebSocket(WsTestCase):

    def session(self, port, target):
        """A raw client upgraded through sluice to an echo server."""
        c = self.ws_client(port)
        resp = c.handshake(target)
        self.assertEqual(resp.status, 101, resp)
        self.echo_round(c, b"before")
        return c

    def echo_round(self, c, text):
        c.send_frame(OP_TEXT, text)
        f = c.read_frame(CLOSE_WAIT)
        self.assertEqual((f.opcode, f.payload), (OP_TEXT, text), f)

    def test_sessions_on_unchanged_routes_survive_and_changed_ones_get_1012(self):
        keep_up, gone_up = self.echo_server(name="keep"), self.echo_server(name="gone")
        moved_up, moved_to = self.echo_server(name="moved"), self.echo_server(name="moved-to")

        def doc(moved_server, with_gone):
            ups = [upstream("keep", [keep_up]), upstream("moved", [moved_server])]
            routes = [route("keep", path_prefix="/keep"), route("moved", path_prefix="/moved")]
            if with_gone:
                ups.append(upstream("gone", [gone_up]))
                routes.append(route("gone", path_prefix="/gone"))
            return base_config(ups, routes=routes, server={"reload_grace": "2s", "workers": 2})

        s = Sluice(self.tmp, doc(moved_up, True)).start()
        self.addCleanup(self._stop_sluice, s)
        keep = [self.session(s.port, "/keep") for _ in range(3)]
        gone = [self.session(s.port, "/gone") for _ in range(3)]
        moved = [self.session(s.port, "/moved") for _ in range(3)]

        started = time.monotonic()
        s.reload(doc(moved_to, False))
        for c in gone + moved:
            self.assertClientClosed(c, 1012)
        self.assertLess(time.monotonic() - started, 2.0 + CLOSE_WAIT,
                        "the 1012 closes came well after reload_grace")
        # The kept sessions relay as before, after the others are gone.
        for c in keep:
            self.echo_round(c, b"after")
        applied = [l for l in s.stderr_lines if 'msg="config applied"' in l]
        self.assertEqual(sum(int(re.search(r"websocket_retiring=(\d+)", l).group(1))
                             for l in applied), 6, applied)
        # A new session on the moved route reaches the new upstream.
        self.session(s.port, "/moved")
        self.assertEqual(len(moved_to.handshakes), 1)
        # Access lines are flushed once a second.
        wait_until(lambda: sum("close_code=1012" in l for l in s.access_lines()) >= 6, 5.0,
                   message="six access lines with close_code=1012")
        closes = [l for l in s.access_lines() if "close_code=1012" in l]
        self.assertEqual(len(closes), 6, s.access_lines())
        for line in closes:
            self.assertIn("closed_by=gateway", line)

    def test_closes_are_spread_over_reload_grace(self):
        up = self.echo_server(name="gone")
        other = self.backend("other")
        s = self.sluice([upstream("gone", [up])], routes=[route("gone", path_prefix="/gone")],
                        server={"reload_grace": "3s"})
        clients = [self.session(s.port, "/gone") for _ in range(12)]
        t0 = time.monotonic()
        s.reload(base_config([upstream("other", [other])], server={"reload_grace": "3s"}))
        arrivals = []
        for c in clients:
            self.assertClientClosed(c, 1012)
            arrivals.append(time.monotonic() - t0)
        # Twelve closes at uniform random times in [0, 3 s): the chance that
        # all fall within the first 0.5 s is (1/6)^12.
        self.assertGreater(max(arrivals), 0.5, arrivals)
        self.assertLess(max(arrivals), 3.0 + CLOSE_WAIT, arrivals)


class ReloadTls(WsTestCase):

    def test_replaced_certificate_is_served_after_reload(self):
        pki = shared_pki("site")
        a = self.backend("a")
        live = {"cert": os.path.join(self.tmp, "live.pem"), "key": os.path.join(self.tmp, "live.key")}

        def install(entry):
            for k in ("cert", "key"):
                with open(entry[k], "rb") as f, open(live[k], "wb") as g:
                    g.write(f.read())

        install(pki.site())
        s = TlsSluice(self.tmp, base_config([upstream("a", [a])]), [tls_table([live])]).start()
        self.addCleanup(self._stop_sluice, s)
        self.assertEqual(cert_subject_cn(self.served_pem(s.port)), "site.test")
        install(pki.other())
        s.reload()
        self.assertEqual(cert_subject_cn(self.served_pem(s.port)), "*.other.test")

    def served_pem(self, port):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection((LOOPBACK, port), timeout=10 * SLOW) as raw:
            with ctx.wrap_socket(raw, server_hostname="site.test") as t:
                return ssl.DER_cert_to_PEM_cert(t.getpeercert(binary_form=True))


if __name__ == "__main__":
    unittest.main()
