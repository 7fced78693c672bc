"""Routing and the basic proxy path.

Proves: a request is forwarded to the upstream its route names and the
answer comes back intact through a raw socket, http.client and curl; the
access log has one line per request naming method, path, status and
upstream; hosts match exactly, by "*.suffix" wildcard and by "*"; the longest
path prefix wins among matching hosts; strip_prefix removes the prefix (and
keeps the query); no matching route is a 404 that never reaches a backend.
"""

import http.client
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SluiceTestCase, curl, route, upstream)  # noqa: E402


def parse_default_body(resp):
    """The default backend body: "<name> conn=<id> <METHOD> <target>"."""
    name, _conn, method, target = resp.text.split()
    return name, method, target


class BasicProxy(SluiceTestCase):

    def test_get_is_forwarded_answered_and_logged(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])

        resp = self.get(s.port, "/hello?x=1")

        self.assertEqual(resp.status, 200, resp)
        self.assertTrue(resp.complete)
        self.assertEqual(resp.header("x-backend"), "app")
        self.assertEqual(parse_default_body(resp), ("app", "GET", "/hello?x=1"))
        req = app.wait_requests(1)[0]
        self.assertEqual((req.method, req.target), ("GET", "/hello?x=1"))
        self.assertEqual(req.header("host"), "localhost")
        s.wait_log(r"method=GET path=/hello\S* status=200\b.* upstream=127\.0\.0\.1:%d\b" % app.port)

    def test_http_client_library_and_curl(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])

        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("POST", "/form", body=b"a=1&b=2",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"a=1&b=2"))
        conn.request("GET", "/again")
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertIn(b"GET /again", r.read())

        out = curl(["-i", "http://127.0.0.1:%d/curl-path" % s.port])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"HTTP/1.1 200", out.stdout)
        self.assertIn(b"app conn=", out.stdout)
        self.assertIn(b"GET /curl-path", out.stdout)

    def test_access_log_has_one_line_per_request(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        c = self.client(s.port)
        for i in range(3):
            self.assertEqual(c.roundtrip(target="/log-%d" % i).status, 200)
        for i in range(3):
            s.wait_log(r"method=GET path=/log-%d\b.* status=200" % i)
        lines = [l for l in s.access_lines() if "path=/log-" in l]
        self.assertEqual(len(lines), 3, lines)


class Routing(SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.b = self.backend("b")
        self.c = self.backend("c")
        self.d = self.backend("d")
        routes = [
            route("a", host="api.example.com"),
            route("d", host="api.example.com", path_prefix="/v2/"),
            route("b", host="*.example.com"),
            route("c", host="*", path_prefix="/static/", strip_prefix=True),
            route("d", host="*", path_prefix="/static/deep/"),
        ]
        self.s = self.sluice([upstream("a", [self.a]), upstream("b", [self.b]),
                              upstream("c", [self.c]), upstream("d", [self.d])], routes)

    def check(self, host, target, backend, seen_target):
        resp = self.get(self.s.port, target, host=host)
        self.assertEqual(resp.status, 200, "%s %s -> %r" % (host, target, resp))
        self.assertEqual(parse_default_body(resp), (backend, "GET", seen_target),
                         "%s %s" % (host, target))

    def check_404(self, host, target):
        c = self.client(self.s.port)
        resp = c.roundtrip(target=target, host=host)
        self.assertErrorResponse(resp, 404)
        self.assertConnectionConsistent(c, resp, "/static/after-404")

    def test_exact_host(self):
        self.check("api.example.com", "/x", "a", "/x")

    def test_exact_host_ignores_port_and_case(self):
        self.check("api.example.com:%d" % self.s.port, "/x", "a", "/x")
        self.check("API.Example.COM", "/y", "a", "/y")

    def test_longest_prefix_within_host(self):
        self.check("api.example.com", "/v2/users", "d", "/v2/users")
        self.check("api.example.com", "/v2", "a", "/v2")

    def test_wildcard_host(self):
        self.check("www.example.com", "/x", "b", "/x")

    def test_wildcard_does_not_match_bare_domain(self):
        self.check_404("example.com", "/x")

    def test_strip_prefix_keeps_rest_and_query(self):
        self.check("other.org", "/static/a.css?v=1", "c", "/a.css?v=1")
        self.check("other.org", "/static/", "c", "/")

    def test_longer_prefix_wins_over_shorter(self):
        self.check("other.org", "/static/deep/x", "d", "/static/deep/x")

    def test_longest_prefix_wins_among_matching_hosts(self):
        # "/static/" on host "*" is longer than "/" on the exact host.
        self.check("api.example.com", "/static/a.css", "c", "/a.css")

    def test_no_route_is_404_and_never_forwarded(self):
        self.check_404("other.org", "/x")
        self.check_404("other.org", "/staticx")
        self.check_404("other.org", "/static")
        total = sum(b.request_count for b in (self.a, self.b, self.c, self.d))
        # only the follow-up requests made by assertConnectionConsistent
        seen = [t for b in (self.a, self.b, self.c, self.d) for t in b.targets()]
        self.assertTrue(all(t == "/after-404" for t in seen), seen)
        self.assertLessEqual(total, 3)


if __name__ == "__main__":
    unittest.main()
