"""A real nginx behind sluice.

Proves, against a server sluice's authors did not write: fixed content and
a 24 MiB static file (sendfile) arrive intact through curl and http.client;
curl's requests ride one client connection and nginx's own log shows them on
one upstream connection ($connection / $connection_requests); HEAD, 304 (a
real If-None-Match revalidation) and 204 carry no body and keep the
connection in sync; nginx sees the forwarding headers; request bodies, sized
and chunked, reach nginx and come back (echo module).
"""

import hashlib
import http.client
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SluiceTestCase, build_request, chunked_body, curl, upstream)  # noqa: E402

BIG = os.urandom(24 << 20)


class NginxBackend(SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.ngx = self.nginx({"big.bin": BIG, "index.html": b"<p>index</p>\n"})
        self.s = self.sluice([upstream("web", [self.ngx])],
                             limits={"body_bytes": "64MiB"})
        self.base = "http://127.0.0.1:%d" % self.s.port

    def test_fixed_content_and_connection_reuse_on_both_sides(self):
        out = curl(["-w", "|%{http_code} %{num_connects}\\n",
                    self.base + "/hello", self.base + "/hello", self.base + "/index.html"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.decode().splitlines(),
                         ["hello from nginx", "|200 1", "hello from nginx", "|200 0",
                          "<p>index</p>", "|200 0"])
        entries = self.ngx.wait_log_entries(3)
        self.assertEqual(len({e["conn"] for e in entries}), 1,
                         "sluice opened a new upstream connection per request: %r" % entries)
        self.assertEqual([e["reqs"] for e in entries], ["1", "2", "3"])

    def test_large_static_file_via_curl_and_http_client(self):
        path = os.path.join(self.tmp, "big.out")
        out = curl(["-o", path, "-w", "%{http_code} %{size_download}", self.base + "/big.bin"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.decode(), "200 %d" % len(BIG))
        with open(path, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).digest(), hashlib.sha256(BIG).digest())

        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("GET", "/big.bin")
        r = conn.getresponse()
        digest = hashlib.sha256()
        for _ in range(10000):
            block = r.read(1 << 20)
            if not block:
                break
            digest.update(block)
        self.assertEqual(r.status, 200)
        self.assertEqual(digest.digest(), hashlib.sha256(BIG).digest())

    def test_head_304_204_have_no_body(self):
        c = self.client(self.s.port)
        head = c.roundtrip("HEAD", "/big.bin")
        self.assertEqual((head.status, head.header("content-length")), (200, str(len(BIG))))
        etag = head.header("etag")
        self.assertTrue(etag, head)
        not_modified = c.roundtrip(target="/big.bin", headers=[("If-None-Match", etag)])
        self.assertEqual(not_modified.status, 304)
        no_content = c.roundtrip(target="/nothing")
        self.assertEqual(no_content.status, 204)
        hello = c.roundtrip(target="/hello")
        self.assertEqual((hello.status, hello.body), (200, b"hello from nginx\n"))

    def test_nginx_sees_forwarding_headers(self):
        resp = self.get(self.s.port, "/forwarded", host="site.example",
                        headers=[("X-Forwarded-For", "192.0.2.7")])
        self.assertEqual(resp.status, 200)
        fields = dict(part.split("=", 1) for part in resp.text.strip().split("|"))
        self.assertEqual(fields["xff"], "127.0.0.1")  # the client is no trusted proxy
        self.assertEqual(fields["xfp"], "http")
        self.assertEqual(fields["xfh"], "site.example")
        self.assertIn("1.1 sluice", fields["via"])
        self.assertEqual(fields["host"], "site.example")

    def test_request_bodies_reach_nginx(self):
        if not self.ngx.has_echo:
            self.skipTest("nginx echo module not installed")
        body = os.urandom(1 << 20)
        c = self.client(self.s.port)
        sized = c.roundtrip("POST", "/echo", body=body)
        self.assertEqual((sized.status, sized.body_sha256),
                         (200, hashlib.sha256(body).hexdigest()))
        c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")])
               + chunked_body([body[i:i + 65536] for i in range(0, len(body), 65536)]))
        chunked = c.read_response()
        self.assertEqual((chunked.status, chunked.body_sha256),
                         (200, hashlib.sha256(body).hexdigest()))


if __name__ == "__main__":
    unittest.main()
