"""Strict parsing: messages that could desync a chain of proxies.

Proves: each ambiguous or malformed request shape (Content-Length with
Transfer-Encoding, duplicate or invalid Content-Length, a final coding other
than chunked, obs-fold, bare CR or LF line ends, invalid header names, bad
chunk sizes) is answered 400 with Connection: close, the connection is
closed, and the backend never sees the request (for a bad chunk size, which
comes after the head, never a complete one). The same shapes in an upstream
response give the client 502 (or, for a bad chunk after the head was sent,
a cut-off response), and sluice keeps serving afterwards.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ConnectionClosed, SluiceTestCase, send_response, upstream)  # noqa: E402


def req(name, head_lines, body=b"", request_line=None, eol=b"\r\n"):
    """A request for case `name`; its target carries the name so the backend
    side can be searched for it."""
    line = request_line or b"POST /s-%s HTTP/1.1" % name.encode()
    head = eol.join([line, b"Host: localhost"] + head_lines) + eol + eol
    return head + body


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"

# Head-level shapes: refused before anything is forwarded.
BAD_HEADS = {
    "cl_then_te": req("cl_then_te", [b"Content-Length: 6", b"Transfer-Encoding: chunked"],
                      b"0\r\n\r\nX" + SMUGGLED),
    "te_then_cl": req("te_then_cl", [b"Transfer-Encoding: chunked", b"Content-Length: 6"],
                      b"0\r\n\r\nX" + SMUGGLED),
    "duplicate_cl_differing": req("duplicate_cl_differing",
                                  [b"Content-Length: 5", b"Content-Length: 6"], b"hello!"),
    "duplicate_cl_same": req("duplicate_cl_same", [b"Content-Length: 5", b"Content-Length: 5"],
                             b"hello"),
    "cl_list": req("cl_list", [b"Content-Length: 5, 5"], b"hello"),
    "cl_not_a_number": req("cl_not_a_number", [b"Content-Length: abc"], b"hello"),
    "cl_negative": req("cl_negative", [b"Content-Length: -1"], b"hello"),
    "cl_plus_sign": req("cl_plus_sign", [b"Content-Length: +5"], b"hello"),
    "te_gzip_only": req("te_gzip_only", [b"Transfer-Encoding: gzip"], b"hello"),
    "te_chunked_then_gzip": req("te_chunked_then_gzip",
                                [b"Transfer-Encoding: chunked, gzip"], b"0\r\n\r\n"),
    "te_xchunked": req("te_xchunked", [b"Transfer-Encoding: xchunked"], b"0\r\n\r\n"),
    "te_space_before_colon": req("te_space_before_colon", [b"Transfer-Encoding : chunked"],
                                 b"0\r\n\r\n"),
    "obs_fold": req("obs_fold", [b"X-Folded: a", b" b", b"Content-Length: 0"]),
    "obs_fold_tab": req("obs_fold_tab", [b"X-Folded: a", b"\tb", b"Content-Length: 0"]),
    "bare_lf": req("bare_lf", [b"Content-Length: 0"], eol=b"\n"),
    "bare_lf_one_header": req("bare_lf_one_header",
                              [b"X-A: a\nX-B: b", b"Content-Length: 0"]),
    "bare_cr": req("bare_cr", [b"X-A: a\rX-B: b", b"Content-Length: 0"]),
    "header_name_space": req("header_name_space", [b"X Foo: a", b"Content-Length: 0"]),
    "header_name_paren": req("header_name_paren", [b"X(Foo): a", b"Content-Length: 0"]),
    "header_name_empty": req("header_name_empty", [b": a", b"Content-Length: 0"]),
    "header_name_control": req("header_name_control", [b"X\x01Foo: a", b"Content-Length: 0"]),
}

# Body-level shapes: the head may already be on its way upstream.
BAD_CHUNKS = {
    "chunk_size_not_hex": req("chunk_size_not_hex", [b"Transfer-Encoding: chunked"],
                              b"zz\r\nhello\r\n0\r\n\r\n"),
    "chunk_size_negative": req("chunk_size_negative", [b"Transfer-Encoding: chunked"],
                               b"-1\r\nhello\r\n0\r\n\r\n"),
    "chunk_size_overflow": req("chunk_size_overflow", [b"Transfer-Encoding: chunked"],
                               b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    "chunk_size_empty": req("chunk_size_empty", [b"Transfer-Encoding: chunked"],
                            b"\r\nhello\r\n0\r\n\r\n"),
}

BAD_RESPONSES = {
    "cl_and_te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\n",
    "duplicate_cl_differing": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
                              b"\r\nhello!",
    "cl_not_a_number": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello",
    "cl_negative": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello",
    "te_gzip_final": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nhello",
    "obs_fold": b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 5\r\n\r\nhello",
    "bare_lf": b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
    "bare_cr": b"HTTP/1.1 200 OK\r\nX-A: a\rX-B: b\r\nContent-Length: 5\r\n\r\nhello",
    "header_name_space": b"HTTP/1.1 200 OK\r\nX Foo: a\r\nContent-Length: 5\r\n\r\nhello",
    "not_http": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
}

BAD_RESPONSE_CHUNK = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n")


class RequestSmuggling(SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.app = self.backend("app")
        self.s = self.sluice([upstream("app", [self.app])])

    def send_bad(self, data):
        c = self.client(self.s.port)
        try:
            c.send(data)
        except OSError:
            pass
        resp = c.read_response()
        self.assertErrorResponse(resp, 400, closes=True)
        self.assertClosed(c, allow_extra=True)

    def canary(self, name):
        target = "/canary-" + name
        self.assertEqual(self.get(self.s.port, target).status, 200)
        return target

    def test_bad_request_heads_are_400_and_never_forwarded(self):
        for name, data in BAD_HEADS.items():
            with self.subTest(shape=name):
                self.send_bad(data)
                canary = self.canary(name)
                heads = [h.target for h in self.app.heads]
                self.assertIn(canary, heads)
                self.assertNotIn("/s-" + name, heads, "backend saw the refused request")
                self.assertNotIn("/smuggled", heads)
                self.assertNotIn(b"/s-%s " % name.encode(), self.app.raw_bytes())

    def test_bad_chunk_sizes_are_400_and_never_complete_upstream(self):
        for name, data in BAD_CHUNKS.items():
            with self.subTest(shape=name):
                self.send_bad(data)
                canary = self.canary(name)
                done = [r.target for r in self.app.requests]
                self.assertIn(canary, done)
                self.assertNotIn("/s-" + name, done,
                                 "a request with a bad chunk completed upstream")


class ResponseSmuggling(SluiceTestCase):

    def setUp(self):
        super().setUp()

        def handler(backend, conn, req):
            name = req.target.rsplit("/", 1)[-1]
            if req.target.startswith("/r/") and name in BAD_RESPONSES:
                conn.send(BAD_RESPONSES[name])
                conn.close()
            elif req.target == "/bad-chunk":
                conn.send(BAD_RESPONSE_CHUNK)
                conn.close()
            else:
                send_response(conn, 200, b"fine\n")
        self.app = self.backend("app", handler)
        self.s = self.sluice([upstream("app", [self.app], max_fails=1000)])

    def test_bad_upstream_response_heads_are_502(self):
        for name in BAD_RESPONSES:
            with self.subTest(shape=name):
                c = self.client(self.s.port)
                resp = c.roundtrip(target="/r/" + name)
                self.assertErrorResponse(resp, 502)
                self.assertNotIn(b"hello", resp.body)
                self.assertConnectionConsistent(c, resp, "/fine")
                self.assertEqual(self.get(self.s.port, "/fine").status, 200)

    def test_bad_upstream_chunk_is_502_or_a_cut_off_response(self):
        c = self.client(self.s.port)
        try:
            resp = c.roundtrip(target="/bad-chunk")
        except ConnectionClosed:
            resp = None  # closed before any response: acceptable, nothing looked complete
        if resp is not None and resp.status != 502:
            # The head had gone out before the bad chunk: the client must see
            # a body that never completes and a closed connection.
            self.assertFalse(resp.complete, "a response with a bad chunk looked complete")
            self.assertTrue(c.stream.eof)
            self.assertNotIn(b"world", resp.body)
        elif resp is not None:
            self.assertErrorResponse(resp, 502)
        self.assertEqual(self.get(self.s.port, "/fine").status, 200)


if __name__ == "__main__":
    unittest.main()
