"""Retries, passive health and balancing.

Proves: an idempotent request (GET, HEAD, OPTIONS, PUT, DELETE) whose pooled
connection turns out dead, or whose connect fails, is retried once on the
other server and succeeds; a POST that was sent on a connection that died is
not retried (502, and the backend saw it exactly once); after max_fails
connect failures a server is ejected: nothing even connects to it while
fail_timeout runs (shown by starting to listen on its port), and it is tried
again afterwards; when every server is down or ejected the answer is a fast
503. round_robin alternates, least_conn avoids the busy server,
hash_client_ip keeps one client on one server.
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, SluiceTestCase, default_handler, upstream)  # noqa: E402

IDEMPOTENT = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")


def dies_on_reuse(backend, conn, req):
    """Answers the first request on a connection; closes without answering
    any later one, the way a pooled connection that timed out looks."""
    if req.index == 0:
        default_handler(backend, conn, req)
    else:
        conn.close()


def killed(backend):
    return [r for r in backend.requests if r.index > 0]


class Retry(SluiceTestCase):

    def test_idempotent_request_on_dead_pooled_connection_is_retried_elsewhere(self):
        flaky = self.backend("flaky", dies_on_reuse)
        good = self.backend("good")
        s = self.sluice([upstream("app", [flaky, good], max_fails=1000)])
        c = self.client(s.port)
        for i in range(8):
            method = IDEMPOTENT[i % len(IDEMPOTENT)]
            body = b"payload-%d" % i if method == "PUT" else None
            resp = c.roundtrip(method, "/r%d" % i, body=body)
            self.assertEqual(resp.status, 200, "%s /r%d: %r" % (method, i, resp))
        dead = killed(flaky)
        self.assertTrue(dead, "no request ever met a dead pooled connection "
                              "(flaky saw %r)" % flaky.targets())
        for r in dead:
            self.assertIn(r.target, good.targets(), "%s %s not retried on the other server"
                          % (r.method, r.target))
            again = [g for g in good.requests if g.target == r.target][0]
            self.assertEqual(again.body, r.body, "retried request lost its body")

    def test_post_on_dead_pooled_connection_is_not_retried(self):
        flaky = self.backend("flaky", dies_on_reuse)
        s = self.sluice([upstream("app", [flaky], max_fails=1000)])
        c = self.client(s.port)
        self.assertEqual(c.roundtrip("POST", "/p1", body=b"one").status, 200)
        resp = c.roundtrip("POST", "/p2", body=b"two")
        self.assertErrorResponse(resp, 502)
        if not resp.closes():
            self.assertEqual(c.roundtrip(target="/after").status, 200)
        else:
            self.assertEqual(self.get(s.port, "/after").status, 200)
        posts = [r.target for r in flaky.requests if r.method == "POST"]
        self.assertEqual(posts, ["/p1", "/p2"], "POST replayed")

    def test_idempotent_requests_retried_on_connect_failure(self):
        dead = self.backend("dead", start=False)
        good = self.backend("good")
        s = self.sluice([upstream("app", [dead, good], max_fails=1000)])
        c = self.client(s.port)
        for method in IDEMPOTENT:
            for i in range(2):  # round robin: one of the two picks the dead one
                body = b"put-body" if method == "PUT" else None
                resp = c.roundtrip(method, "/%s-%d" % (method.lower(), i), body=body)
                self.assertEqual(resp.status, 200, "%s: %r" % (method, resp))
        self.assertEqual(good.request_count, 2 * len(IDEMPOTENT))
        puts = [r for r in good.requests if r.method == "PUT"]
        self.assertTrue(all(r.body == b"put-body" for r in puts))


class PassiveHealth(SluiceTestCase):

    def test_ejected_server_is_tried_again_after_fail_timeout(self):
        dead = self.backend("dead", start=False)
        good = self.backend("good")
        s = self.sluice([upstream("app", [dead, good], max_fails=2, fail_timeout="1s")])
        c = self.client(s.port)
        for i in range(8):
            self.assertEqual(c.roundtrip(target="/warm%d" % i).status, 200)
        dead.start()
        deadline = time.monotonic() + 1 + 6 * SLOW
        for i in range(400):
            if dead.request_count or time.monotonic() > deadline:
                break
            self.assertEqual(c.roundtrip(target="/later%d" % i).status, 200)
            time.sleep(0.02)
        self.assertGreater(dead.request_count, 0, "ejected server never tried again")

    def test_ejected_server_gets_no_connects(self):
        dead = self.backend("dead", start=False)
        good = self.backend("good")
        s = self.sluice([upstream("app", [dead, good], max_fails=2, fail_timeout="60s")])
        c = self.client(s.port)
        for i in range(8):
            self.assertEqual(c.roundtrip(target="/warm%d" % i).status, 200)
        dead.start()
        for i in range(8):
            self.assertEqual(c.roundtrip(target="/after%d" % i).status, 200)
        self.assertEqual(good.request_count, 16)
        self.assertEqual(dead.conn_count, 0, "sluice connected to an ejected server")

    def test_all_servers_down_is_fast_503(self):
        d1 = self.backend("d1", start=False)
        d2 = self.backend("d2", start=False)
        s = self.sluice([upstream("app", [d1, d2], max_fails=1, fail_timeout="60s")])
        statuses = []
        for i in range(6):
            resp = self.get(s.port, "/down%d" % i)
            statuses.append(resp.status)
            if resp.status == 503:
                self.assertErrorResponse(resp, 503)
                break
            self.assertEqual(resp.status, 502, resp)
        self.assertEqual(statuses[-1], 503, "never 503 with every server ejected: %r" % statuses)
        for i in range(3):
            started = time.monotonic()
            c = self.client(s.port)
            resp = c.roundtrip(target="/fast%d" % i)
            elapsed = time.monotonic() - started
            self.assertErrorResponse(resp, 503)
            self.assertLess(elapsed, 0.5 * SLOW, "503 took %.2fs" % elapsed)
            self.assertConnectionConsistent(c, resp, "/fast-again")


class Balancing(SluiceTestCase):

    def test_round_robin_alternates(self):
        a, b = self.backend("a"), self.backend("b")
        s = self.sluice([upstream("app", [a, b], balance="round_robin")])
        names = [self.get(s.port, "/rr%d" % i).header("x-backend") for i in range(6)]
        self.assertEqual(sorted(names), ["a"] * 3 + ["b"] * 3, names)
        self.assertTrue(all(names[i] != names[i + 1] for i in range(5)), names)

    def test_least_conn_avoids_the_busy_server(self):
        release = threading.Event()

        def handler(backend, conn, req):
            if req.target == "/busy":
                backend.hold(release, timeout=20)
            default_handler(backend, conn, req)
        a, b = self.backend("a", handler), self.backend("b", handler)
        s = self.sluice([upstream("app", [a, b], balance="least_conn")])
        busy = self.client(s.port)
        busy.request("GET", "/busy")
        deadline = time.monotonic() + 10
        while not (a.heads or b.heads) and time.monotonic() < deadline:
            time.sleep(0.01)
        holder = a if a.heads else b
        other = b if holder is a else a
        names = [self.get(s.port, "/quick%d" % i).header("x-backend") for i in range(4)]
        self.assertEqual(names, [other.name] * 4,
                         "least_conn sent requests to the server busy with one")
        release.set()
        self.assertEqual(busy.read_response().status, 200)

    def test_hash_client_ip_is_sticky(self):
        backends = [self.backend(n) for n in ("a", "b", "c")]
        s = self.sluice([upstream("app", backends, balance="hash_client_ip")])
        names = {self.get(s.port, "/h%d" % i).header("x-backend") for i in range(6)}
        self.assertEqual(len(names), 1, "one client IP spread over %r" % names)


if __name__ == "__main__":
    unittest.main()
