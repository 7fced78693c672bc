"""Bodies in both directions.

Proves: Content-Length and chunked bodies arrive intact both ways; chunked
trailers are dropped both ways; `Expect: 100-continue` gives the client one
100 Continue and the body reaches the backend; HEAD, 204 and 304 answers
carry no body and leave the connection in sync; 100 MiB streams through
each way with backpressure: while the receiver stalls, the sender is held
back well short of the whole body and sluice's RSS stays bounded, and the
checksums match at the end.
"""

import hashlib
import os
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, RssMonitor, SluiceTestCase, build_request,  # noqa: E402
                     chunked_body, pattern_block, rss_kib, send_response, sha256,
                     upstream, wait_stalled, wait_until)

MiB = 1 << 20
BIG_MIB = 100                 # streamed each way
RSS_GROWTH_LIMIT = 48 * MiB   # sluice may not grow by more than this while streaming
STALL_LIMIT = 80 * MiB        # a stalled sender must be held back before this much


def digest_handler(backend, conn, req):
    """Answers with the length and hash of the request body it streamed."""
    body = ("%d %s\n" % (req.body_len, req.body_sha256)).encode()
    send_response(conn, 200, body, [("Content-Type", "text/plain")])


class Bodies(SluiceTestCase):

    def test_content_length_body_both_ways(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        body = os.urandom(300 * 1024)
        resp = self.get(s.port, "/echo", method="POST", body=body)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, body)
        req = app.wait_requests(1)[0]
        self.assertEqual((req.body_len, req.body_sha256), (len(body), sha256(body)))

    def test_chunked_request_body_arrives_and_trailers_are_dropped(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        parts = [os.urandom(n) for n in (1, 1000, 70000, 5)]
        c = self.client(s.port)
        c.send(build_request("POST", "/chunked", [("Transfer-Encoding", "chunked"),
                                                 ("Trailer", "X-Secret-Trailer")])
               + chunked_body(parts, [("X-Secret-Trailer", "leak")]))
        resp = c.read_response()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, b"".join(parts))
        req = app.wait_requests(1)[0]
        self.assertEqual(req.body, b"".join(parts))
        self.assertEqual(req.trailers, [])
        self.assertNotIn(b"x-secret-trailer", app.raw_bytes().lower())

    def test_chunked_response_body_arrives_and_trailers_are_dropped(self):
        payload = os.urandom(200 * 1024)

        def handler(backend, conn, req):
            send_response(conn, 200, payload, [("Trailer", "X-Up-Trailer")], chunked=True,
                          trailers=[("X-Up-Trailer", "leak")])
        app = self.backend("app", handler)
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        resp = c.roundtrip(target="/chunked-down")
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.complete)
        self.assertEqual(resp.body, payload)
        self.assertEqual(resp.trailers, [])
        self.assertNotIn(b"x-up-trailer: leak", bytes(c.stream.raw).lower())
        self.assertEqual(c.roundtrip(target="/after").status, 200)

    def test_many_tiny_chunks_in_one_read_arrive_whole_both_ways(self):
        # 1,500 one-byte chunks in one send: one read of Sluice's becomes
        # ~3,000 pieces of one write (each chunk's framing, then its byte),
        # more than one sendmsg takes (IOV_MAX is 1,024). All of it must go
        # at once, not wait for an event that a socket with room never raises.
        tiny = [bytes([65 + i % 26]) for i in range(1500)]

        def handler(backend, conn, req):
            conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      + chunked_body(tiny))
        app = self.backend("app", handler)
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        resp = c.roundtrip(target="/tiny-down")
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.complete)
        self.assertEqual(resp.body, b"".join(tiny))
        # The same shape upstream, on the connection the pool kept.
        c.send(build_request("POST", "/tiny-up", [("Transfer-Encoding", "chunked")])
               + chunked_body(tiny))
        resp = c.read_response()
        self.assertEqual(resp.status, 200)
        req = app.wait_requests(2)[1]
        self.assertEqual(req.body, b"".join(tiny))

    def test_expect_100_continue(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        c.send(build_request("PUT", "/upload", [("Expect", "100-continue"),
                                                ("Content-Length", "11")]))
        interim = c.read_response(stop_at_interim=True)
        self.assertEqual(interim.status, 100, "no 100 Continue before the body: %r" % interim)
        c.send(b"hello world")
        resp = c.read_response()
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.interim, [], "more than one 100 Continue")
        self.assertEqual(resp.body, b"hello world")
        self.assertEqual(app.wait_requests(1)[0].body, b"hello world")

    def test_head_204_304_have_no_body_and_keep_connection_in_sync(self):
        def handler(backend, conn, req):
            if req.target == "/204":
                send_response(conn, 204, headers=[("X-Kind", "204")])
            elif req.target == "/304":
                send_response(conn, 304, headers=[("ETag", '"v1"')])
            else:
                send_response(conn, 200, b"x" * 1234, [("X-Kind", "get")],
                              head_only=req.method == "HEAD")
        app = self.backend("app", handler)
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        head = c.roundtrip("HEAD", "/thing")
        self.assertEqual((head.status, head.header("content-length")), (200, "1234"))
        r204 = c.roundtrip(target="/204")
        self.assertEqual(r204.status, 204)
        self.assertFalse(r204.headers.has("transfer-encoding"))
        r304 = c.roundtrip(target="/304", headers=[("If-None-Match", '"v1"')])
        self.assertEqual(r304.status, 304)
        again = c.roundtrip(target="/thing")
        self.assertEqual((again.status, again.body), (200, b"x" * 1234))
        c.sock.settimeout(0.3)
        try:
            stray = c.sock.recv(100)
        except socket.timeout:
            stray = b""
        self.assertEqual(stray, b"", "stray bytes after the last response")

    def test_large_upload_streams_with_backpressure(self):
        app = self.backend("app", digest_handler)
        app.pause_body_at = 2 * MiB
        s = self.sluice([upstream("app", [app])], limits={"body_bytes": "1GiB"})
        self.assertEqual(self.get(s.port, "/warm-up").status, 200)
        base = rss_kib(s.pid) * 1024
        monitor = RssMonitor(s.pid).start()
        self.addCleanup(monitor.stop)

        c = self.client(s.port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
        state = {"sent": 0, "hash": hashlib.sha256(), "error": None}

        def send_all():
            try:
                c.send(build_request("POST", "/upload",
                                     [("Content-Length", str(BIG_MIB * MiB))]))
                for i in range(BIG_MIB):
                    block = pattern_block(i)
                    state["hash"].update(block)
                    for off in range(0, MiB, 256 * 1024):
                        c.send(block[off:off + 256 * 1024])
                        state["sent"] += 256 * 1024
            except OSError as e:
                state["error"] = e
        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()

        wait_until(lambda: app.body_progress >= 2 * MiB, 10 * SLOW,
                   message="the upload to reach the backend")
        stalled_at = wait_stalled(lambda: state["sent"], quiet=0.5 * SLOW)
        self.assertIsNotNone(stalled_at, "sender never stalled while the backend did not read")
        self.assertLess(stalled_at, STALL_LIMIT,
                        "sender got %d MiB out while the backend read 2 MiB: no backpressure"
                        % (stalled_at // MiB))
        app.resume_body.set()
        sender.join(60 * SLOW)
        self.assertFalse(sender.is_alive())
        self.assertIsNone(state["error"])
        resp = c.read_response()
        peak = monitor.stop()
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.text.split(), [str(BIG_MIB * MiB), state["hash"].hexdigest()])
        self.assertLess(peak * 1024 - base, RSS_GROWTH_LIMIT,
                        "sluice RSS grew %d MiB (base %d MiB)" % ((peak * 1024 - base) // MiB,
                                                                base // MiB))

    def test_large_chunked_download_streams_with_backpressure(self):
        state = {"sent": 0, "hash": hashlib.sha256(), "done": threading.Event()}

        def handler(backend, conn, req):
            if req.target != "/download":
                return send_response(conn, 200, b"ok")
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
            if not conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"):
                return
            for i in range(BIG_MIB):
                block = pattern_block(i)
                state["hash"].update(block)
                for off in range(0, MiB, 256 * 1024):
                    if not conn.send(b"40000\r\n" + block[off:off + 256 * 1024] + b"\r\n"):
                        return
                    state["sent"] += 256 * 1024
            conn.send(b"0\r\n\r\n")
            state["done"].set()
        app = self.backend("app", handler)
        s = self.sluice([upstream("app", [app])])
        self.assertEqual(self.get(s.port, "/warm-up").status, 200)
        base = rss_kib(s.pid) * 1024
        monitor = RssMonitor(s.pid).start()
        self.addCleanup(monitor.stop)

        c = self.client(s.port, rcvbuf=256 * 1024)
        paused = threading.Event()
        resume = threading.Event()
        result = {}

        def progress(n):
            if n >= 2 * MiB and not resume.is_set():
                paused.set()
                resume.wait(30)

        def read_all():
            try:
                result["resp"] = c.read_response(body_cap=0, progress_cb=progress)
            except Exception as e:  # reported below
                result["error"] = e
        c.request("GET", "/download")
        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        self.assertTrue(paused.wait(10 * SLOW), "download never started")
        stalled_at = wait_stalled(lambda: state["sent"], quiet=0.5 * SLOW)
        self.assertIsNotNone(stalled_at, "backend never stalled while the client did not read")
        self.assertLess(stalled_at, STALL_LIMIT,
                        "backend got %d MiB out while the client read 2 MiB: no backpressure"
                        % (stalled_at // MiB))
        resume.set()
        reader.join(60 * SLOW)
        self.assertFalse(reader.is_alive())
        peak = monitor.stop()
        self.assertNotIn("error", result, result)
        resp = result["resp"]
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.complete)
        self.assertEqual(resp.body_len, BIG_MIB * MiB)
        self.assertTrue(state["done"].wait(5))
        self.assertEqual(resp.body_sha256, state["hash"].hexdigest())
        self.assertLess(peak * 1024 - base, RSS_GROWTH_LIMIT,
                        "sluice RSS grew %d MiB (base %d MiB)" % ((peak * 1024 - base) // MiB,
                                                                base // MiB))

    def test_chunked_upload_and_sized_download_checksums(self):
        size = 16 * MiB
        data = b"".join(pattern_block(i) for i in range(16))

        def handler(backend, conn, req):
            if req.method == "POST":
                return digest_handler(backend, conn, req)
            send_response(conn, 200, data)
        app = self.backend("app", handler)
        s = self.sluice([upstream("app", [app])], limits={"body_bytes": "1GiB"})
        c = self.client(s.port)
        c.send(build_request("POST", "/up", [("Transfer-Encoding", "chunked")])
               + chunked_body([data[i:i + 100000] for i in range(0, size, 100000)]))
        resp = c.read_response()
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.text.split(), [str(size), sha256(data)])
        down = c.roundtrip(target="/down")
        self.assertEqual((down.status, down.body_len), (200, size))
        self.assertEqual(down.body_sha256, sha256(data))


if __name__ == "__main__":
    unittest.main()
