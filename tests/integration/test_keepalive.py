"""Keep-alive on both sides, pipelining, HTTP/1.0 clients.

Proves: a client reuses one connection for many requests and the backend
sees them on one pooled connection; the upstream pool outlives client
connections; pipelined requests are answered in order; HTTP/1.0 clients get
an unchunked, correctly delimited answer and a close unless they asked for
keep-alive; `Connection: close` from either side closes only that side; an
idle keep-alive connection is closed after the idle timeout; curl reuses its
connection across URLs; 16 concurrent clients on two workers are all
answered correctly.
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, Client, SluiceTestCase, build_request, curl, send_response,  # noqa: E402
                     upstream)


def chunked_handler(backend, conn, req):
    body = ("chunked answer for %s\n" % req.target).encode() * 50
    send_response(conn, 200, body, [("Content-Type", "text/plain")], chunked=True)


def closing_handler(backend, conn, req):
    body = ("%s conn=%d\n" % (req.target, conn.id)).encode()
    send_response(conn, 200, body, [("Connection", "close")])
    conn.close()


class KeepAlive(SluiceTestCase):

    def test_client_reuses_connection_and_upstream_is_pooled(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        for i in range(5):
            resp = c.roundtrip(target="/r%d" % i)
            self.assertEqual(resp.status, 200, resp)
            self.assertFalse(resp.closes(), resp)
            self.assertIn(b"GET /r%d" % i, resp.body)
        self.assertEqual(app.conn_count, 1, "backend saw %d connections" % app.conn_count)
        self.assertEqual([len(cn.requests) for cn in app.conns], [5])

    def test_pool_outlives_client_connections(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        for i in range(4):
            c = self.client(s.port)
            self.assertEqual(c.roundtrip(target="/c%d" % i).status, 200)
            c.close()
        app.wait_requests(4)
        self.assertEqual(app.conn_count, 1, "each client connection got its own upstream one")

    def test_pipelined_requests_answered_in_order(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        c.send(build_request("GET", "/p1") + build_request("POST", "/p2", body=b"posted-body")
               + build_request("GET", "/p3") + build_request("HEAD", "/p4")
               + build_request("GET", "/p5"))
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        r4 = c.read_response("HEAD")
        r5 = c.read_response()
        self.assertIn(b"GET /p1", r1.body)
        self.assertEqual(r2.body, b"posted-body")
        self.assertIn(b"GET /p3", r3.body)
        self.assertEqual((r4.status, r4.body, r4.header("x-target")), (200, b"", "/p4"))
        self.assertIn(b"GET /p5", r5.body)
        self.assertEqual(app.targets(), ["/p1", "/p2", "/p3", "/p4", "/p5"])

    def test_http10_client_gets_close_delimited_or_sized_answer_then_close(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        resp = c.roundtrip(target="/old", version="1.0")
        self.assertEqual(resp.status, 200, resp)
        self.assertTrue(resp.complete)
        self.assertIn(b"GET /old", resp.body)
        self.assertNotIn("chunked", resp.headers.tokens("transfer-encoding"))
        self.assertClosed(c)

    def test_http10_client_never_sees_chunked_from_chunked_upstream(self):
        app = self.backend("app", chunked_handler)
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        resp = c.roundtrip(target="/old-chunked", version="1.0")
        self.assertEqual(resp.status, 200, resp)
        self.assertNotIn("chunked", resp.headers.tokens("transfer-encoding"),
                         "chunked sent to an HTTP/1.0 client")
        self.assertTrue(resp.complete)
        self.assertEqual(resp.body, b"chunked answer for /old-chunked\n" * 50)
        if resp.framing == "close":
            self.assertTrue(c.stream.eof)
        else:
            self.assertClosed(c)

    def test_http10_keepalive_is_honoured_or_closed_consistently(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        resp = c.roundtrip(target="/ka10", version="1.0", headers=[("Connection", "keep-alive")])
        self.assertEqual(resp.status, 200, resp)
        self.assertNotEqual(resp.framing, "chunked")
        if "keep-alive" in resp.headers.tokens("connection"):
            self.assertEqual(resp.framing, "length", "keep-alive answer must be sized")
            again = c.roundtrip(target="/ka10-again", version="1.0",
                                headers=[("Connection", "keep-alive")])
            self.assertEqual(again.status, 200)
            self.assertIn(b"GET /ka10-again", again.body)
        else:
            self.assertClosed(c)

    def test_client_connection_close_keeps_upstream_pooled(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        resp = c.roundtrip(target="/bye", headers=[("Connection", "close")])
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.closes(), "no Connection: close on the last response")
        self.assertClosed(c)
        self.assertEqual(self.get(s.port, "/next").status, 200)
        self.assertEqual(app.conn_count, 1, "client's Connection: close leaked upstream")

    def test_upstream_connection_close_is_not_reused_and_client_stays(self):
        app = self.backend("app", closing_handler)
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        for i in range(3):
            resp = c.roundtrip(target="/u%d" % i)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.body, b"/u%d conn=%d\n" % (i, i))
            self.assertFalse(resp.closes(), "upstream's Connection: close leaked to the client")
        self.assertEqual(app.conn_count, 3)

    def test_idle_keepalive_connection_is_closed(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])], timeouts={"idle": "1s"})
        c = self.client(s.port)
        self.assertEqual(c.roundtrip(target="/idle").status, 200)
        started = time.monotonic()
        closed, extra = c.wait_closed(6 * SLOW)
        elapsed = time.monotonic() - started
        self.assertTrue(closed, "idle connection still open after %.1fs" % elapsed)
        self.assertGreater(elapsed, 0.5, "closed well before the idle timeout")

    def test_concurrent_clients_on_two_workers(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])], server={"workers": 2})
        failures = []

        def client_run(n):
            try:
                c = Client(s.port)
                try:
                    for i in range(5):
                        body = b"client %d request %d" % (n, i)
                        resp = c.roundtrip("POST", "/c%d/%d" % (n, i), body=body)
                        if (resp.status, resp.body) != (200, body):
                            failures.append((n, i, resp))
                finally:
                    c.close()
            except Exception as e:  # reported below
                failures.append((n, repr(e)))
        threads = [threading.Thread(target=client_run, args=(n,), daemon=True)
                   for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30 * SLOW)
        self.assertFalse([t for t in threads if t.is_alive()], "clients hung")
        self.assertEqual(failures, [])
        self.assertEqual(app.request_count, 80)
        self.assertLessEqual(app.conn_count, 32, "upstream connections not reused")

    def test_curl_reuses_its_connection(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        base = "http://127.0.0.1:%d" % s.port
        args = ["-w", "%{http_code} %{num_connects}\\n"]
        for path in ("/one", "/two", "/three"):
            args += ["-o", "/dev/null", base + path]
        out = curl(args)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.decode().split("\n")[:3], ["200 1", "200 0", "200 0"])
        self.assertEqual(app.conn_count, 1)


if __name__ == "__main__":
    unittest.main()
