"""Upstreams that fail, and clients that leave.

Proves: nothing listening is 502; a reset or a close without an answer is
502; a silent upstream is 504 after timeouts.upstream_response; a connect
that hangs is 504 after timeouts.upstream_connect; each of those is a small
text error on a connection that stays consistent with its Connection
header. A response cut short (before its Content-Length, or without its
last chunk) reaches the client as a body that never completes on a closed
connection. A client that resets mid-request, or leaves mid-response, makes
sluice let go of the upstream connection, and sluice keeps serving.
"""

import os
import select
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, SluiceTestCase, send_response, upstream)  # noqa: E402

NO_EJECT = {"max_fails": 1000}


class UpstreamFailures(SluiceTestCase):

    def error_for(self, handler=None, servers=None, timeouts=None, status=502,
                  max_seconds=5.0):
        if servers is None:
            servers = [self.backend("app", handler)]
        s = self.sluice([upstream("app", servers, **NO_EJECT)], timeouts=timeouts)
        c = self.client(s.port)
        started = time.monotonic()
        resp = c.roundtrip(target="/fail")
        elapsed = time.monotonic() - started
        self.assertErrorResponse(resp, status)
        self.assertLess(elapsed, max_seconds * SLOW, "error took %.1fs" % elapsed)
        self.assertConnectionConsistent(c, resp, "/again")
        return elapsed

    def test_refused_is_502(self):
        dead = self.backend("dead", start=False)  # bound, never listening
        self.error_for(servers=[dead])

    def test_reset_is_502(self):
        self.error_for(lambda b, conn, req: conn.reset())

    def test_close_without_answer_is_502(self):
        self.error_for(lambda b, conn, req: conn.close())

    def test_partial_head_then_close_is_502(self):
        def handler(b, conn, req):
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Len")
            conn.close()
        self.error_for(handler)

    def test_silent_upstream_is_504(self):
        never = threading.Event()
        elapsed = self.error_for(lambda b, conn, req: b.hold(never), status=504,
                                 timeouts={"upstream_response": "500ms"})
        self.assertGreater(elapsed, 0.4, "504 before the response timeout")

    def test_connect_timeout_is_504(self):
        hole = self.blackhole()
        elapsed = self.error_for(servers=[hole.addr], status=504,
                                 timeouts={"upstream_connect": "500ms"})
        self.assertGreater(elapsed, 0.4, "504 before the connect timeout")


class CutShortResponses(SluiceTestCase):

    def cut_short(self, head, first_part):
        """The backend sends `head` + `first_part`, waits until the client has
        read that much, then closes. Returns the client's view."""
        client_has_part = threading.Event()

        def handler(b, conn, req):
            conn.send(head + first_part)
            b.hold(client_has_part, timeout=10)
            conn.close()
        app = self.backend("app", handler)
        s = self.sluice([upstream("app", [app], **NO_EJECT)])
        c = self.client(s.port)
        c.request("GET", "/short")

        def progress(n):
            if n >= 50000:
                client_has_part.set()
        resp = c.read_response(progress_cb=progress)
        return c, resp

    def test_body_shorter_than_content_length(self):
        c, resp = self.cut_short(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
                                 b"a" * 50000)
        self.assertEqual(resp.status, 200)
        self.assertFalse(resp.complete, "cut-short body looked complete: %r" % resp)
        self.assertEqual(resp.body_len, 50000)
        self.assertTrue(c.stream.eof, "client connection left open after a cut body")

    def test_chunked_body_without_last_chunk(self):
        c, resp = self.cut_short(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                                 b"c350\r\n" + b"a" * 50000 + b"\r\n")
        self.assertEqual(resp.status, 200)
        self.assertFalse(resp.complete, "unterminated chunked body looked complete: %r" % resp)
        self.assertEqual(resp.body_len, 50000)
        self.assertTrue(c.stream.eof, "client connection left open after a cut body")


class ClientLeaves(SluiceTestCase):

    def test_client_leaving_mid_request_releases_upstream(self):
        upstream_saw_close = threading.Event()

        def handler(b, conn, req):
            if req.target != "/hang":
                return send_response(conn, 200, b"ok")
            # sluice must close this connection; stop waiting at teardown.
            deadline = time.monotonic() + 4 * SLOW
            while time.monotonic() < deadline and not b.closing.is_set():
                readable, _, _ = select.select([conn.sock], [], [], 0.05)
                if readable:
                    try:
                        data = conn.sock.recv(1)
                    except OSError:
                        data = b""
                    if not data:
                        upstream_saw_close.set()
                    break
            conn.close()
        app = self.backend("app", handler)
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        c.request("GET", "/hang")
        app.wait_requests(1)
        # A reset, not a FIN: a FIN could be a half-close still waiting for
        # the answer; a reset leaves no doubt the client is gone.
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        self.assertTrue(upstream_saw_close.wait(3 * SLOW),
                        "upstream connection kept after the client left")
        self.assertEqual(self.get(s.port, "/ok").status, 200)

    def test_client_leaving_mid_response_releases_upstream(self):
        finished = threading.Event()
        block = b"d" * 65536

        def handler(b, conn, req):
            if req.target != "/stream":
                return send_response(conn, 200, b"ok")
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (512 << 20))
            for _ in range(8192):  # 512 MiB at most; stops when sluice lets go
                if not conn.send(block):
                    break
            finished.set()
        app = self.backend("app", handler)
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        c.request("GET", "/stream")
        c.stream.read_exact(1 << 20)
        c.close()
        self.assertTrue(finished.wait(20 * SLOW), "upstream still streaming to a gone client")
        self.assertEqual(self.get(s.port, "/ok").status, 200)


if __name__ == "__main__":
    unittest.main()
