"""Request limits and the request-head timeout.

Proves: requests just under each limit pass; a declared body over
body_bytes is 413 up front (also with Expect: 100-continue, and without a
100 Continue first); a chunked body that grows past body_bytes while
streaming is 413 and never completes upstream; a URI over uri_bytes is 414;
a head over header_bytes or with more than header_count fields is 431; a
head not complete within timeouts.header is 408, also when it trickles in.
Every refusal has a small text body, Connection: close, closes the
connection, and (except the streamed 413) never reaches the backend.
"""

import os
import select
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, SluiceTestCase, build_request, upstream)  # noqa: E402

LIMITS = {"body_bytes": "64KiB", "header_bytes": 4096, "header_count": 20,
          "uri_bytes": 512}
TIMEOUTS = {"header": "500ms"}


class Limits(SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.app = self.backend("app")
        self.s = self.sluice([upstream("app", [self.app])], limits=LIMITS, timeouts=TIMEOUTS)

    def refused(self, data, status, tag):
        """Sends `data` on a fresh connection; asserts a closing `status`."""
        c = self.client(self.s.port)
        try:
            c.send(data)
        except OSError:
            pass  # sluice may stop reading once it has decided
        resp = c.read_response()
        self.assertErrorResponse(resp, status, closes=True)
        self.assertClosed(c, allow_extra=True)
        self.assertNeverForwarded(tag)
        return resp

    def assertNeverForwarded(self, tag):
        # A request after the refused one, on its own connection, is seen by
        # the backend; whatever was forwarded before it has arrived by then.
        canary = "/canary-" + tag
        self.assertEqual(self.get(self.s.port, canary).status, 200)
        self.app.wait_requests(1)
        seen = [h.target for h in self.app.heads]
        self.assertIn(canary, seen)
        self.assertFalse([t for t in seen if tag in t and t != canary],
                         "refused request reached the backend: %r" % seen)

    def test_just_under_every_limit_passes(self):
        c = self.client(self.s.port)
        body = os.urandom(60 * 1024)
        self.assertEqual(c.roundtrip("POST", "/body", body=body).body, body)
        self.assertEqual(c.roundtrip(target="/" + "u" * 400).status, 200)
        headers = [("X-H%d" % i, "v") for i in range(15)]
        self.assertEqual(c.roundtrip(target="/count", headers=headers).status, 200)
        headers = [("X-Big%d" % i, "b" * 600) for i in range(4)]
        self.assertEqual(c.roundtrip(target="/bytes", headers=headers).status, 200)

    def test_declared_body_over_limit_is_413_up_front(self):
        self.refused(build_request("POST", "/big-cl", [("Content-Length", str(100 * 1024))]),
                     413, "big-cl")

    def test_declared_body_over_limit_with_expect_is_413_without_100(self):
        resp = self.refused(build_request("POST", "/big-expect",
                                          [("Content-Length", str(100 * 1024)),
                                           ("Expect", "100-continue")]),
                            413, "big-expect")
        self.assertEqual(resp.interim, [], "100 Continue sent for a body that will be refused")

    def test_chunked_body_over_limit_while_streaming_is_413(self):
        chunk = b"%x\r\n%s\r\n" % (8192, b"z" * 8192)
        c = self.client(self.s.port)
        try:
            c.send(build_request("POST", "/big-chunked", [("Transfer-Encoding", "chunked")]))
            for _ in range(16):  # 128 KiB, twice the limit, never terminated
                c.send(chunk)
        except OSError:
            pass
        resp = c.read_response()
        self.assertErrorResponse(resp, 413, closes=True)
        self.assertClosed(c, allow_extra=True)
        self.assertEqual(self.get(self.s.port, "/canary").status, 200)
        self.assertFalse([r for r in self.app.requests if r.target == "/big-chunked"],
                         "the over-limit body completed upstream")

    def test_long_uri_is_414(self):
        self.refused(build_request("GET", "/long-uri-" + "u" * 600), 414, "long-uri")

    def test_header_bytes_over_limit_is_431(self):
        headers = [("X-Big%d" % i, "b" * 1000) for i in range(5)]
        self.refused(build_request("GET", "/hdr-bytes", headers), 431, "hdr-bytes")

    def test_header_count_over_limit_is_431(self):
        headers = [("X-H%d" % i, "v") for i in range(25)]
        self.refused(build_request("GET", "/hdr-count", headers), 431, "hdr-count")

    def test_incomplete_head_is_408(self):
        c = self.client(self.s.port)
        c.send(b"GET /slow-head HTTP/1.1\r\nHost: localhost\r\nX-Partial: yes\r\n")
        started = time.monotonic()
        resp = c.read_response()
        elapsed = time.monotonic() - started
        self.assertErrorResponse(resp, 408, closes=True)
        self.assertGreater(elapsed, 0.3, "408 long before timeouts.header")
        self.assertLess(elapsed, 3 * SLOW, "408 took %.1fs for a 500ms timeout" % elapsed)
        self.assertClosed(c)
        self.assertNeverForwarded("slow-head")

    def test_trickling_head_is_408(self):
        # One byte every 100 ms never completes the head: the timeout covers
        # the whole head, not the gap between bytes.
        c = self.client(self.s.port)
        c.send(b"GET /trickle HTTP/1.1\r\nHost: localhost\r\nX-Trickle: ")
        started = time.monotonic()
        for _ in range(int(50 * SLOW)):
            readable, _, _ = select.select([c.sock], [], [], 0.1)
            if readable:
                break
            try:
                c.send(b"a")
            except OSError:
                break
        resp = c.read_response()
        elapsed = time.monotonic() - started
        self.assertErrorResponse(resp, 408, closes=True)
        self.assertLess(elapsed, 3 * SLOW, "trickling head kept alive for %.1fs" % elapsed)
        self.assertClosed(c, allow_extra=True)
        self.assertNeverForwarded("trickle")


if __name__ == "__main__":
    unittest.main()
