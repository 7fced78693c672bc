"""Graceful shutdown on SIGTERM and SIGINT.

Proves: with a request in flight, SIGTERM stops accepting at once (new
connections are refused) while the in-flight request completes with 200 and
its connection is then closed, and the process exits 0 with no handle left;
an idle keep-alive connection does not hold shutdown up; a request that
never finishes holds it up only until drain_timeout, and the exit is still
clean; SIGINT behaves like SIGTERM.
"""

import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, SluiceTestCase, connect_refused, send_response,  # noqa: E402
                     upstream, wait_until)


class Drain(SluiceTestCase):

    def held_backend(self):
        """A backend that holds /slow until `release` is set."""
        self.got_request = threading.Event()
        self.release = threading.Event()

        def handler(backend, conn, req):
            if req.target == "/slow":
                self.got_request.set()
                backend.hold(self.release, timeout=30)
            send_response(conn, 200, b"done %s\n" % req.target.encode())
        return self.backend("app", handler)

    def test_in_flight_request_completes_and_new_connections_are_refused(self):
        app = self.held_backend()
        s = self.sluice([upstream("app", [app])], server={"workers": 2, "drain_timeout": "30s"})
        c = self.client(s.port)
        c.request("GET", "/slow")
        self.assertTrue(self.got_request.wait(10), "request never reached the backend")

        s.signal(signal.SIGTERM)
        wait_until(lambda: connect_refused(s.port), 5 * SLOW,
                   message="new connections to be refused after SIGTERM")
        self.assertIsNone(s.proc.poll(), "exited with a request in flight")

        self.release.set()
        resp = c.read_response()
        self.assertEqual((resp.status, resp.body), (200, b"done /slow\n"))
        self.assertTrue(resp.complete)
        self.assertClosed(c)
        self.assertIsNotNone(s.wait_exit(10 * SLOW), "sluice still running after the drain")
        s.assert_clean_exit()

    def test_idle_keepalive_connection_does_not_hold_shutdown(self):
        app = self.held_backend()
        s = self.sluice([upstream("app", [app])], server={"drain_timeout": "30s"})
        c = self.client(s.port)
        self.assertEqual(c.roundtrip(target="/quick").status, 200)
        started = time.monotonic()
        s.signal(signal.SIGTERM)
        self.assertIsNotNone(s.wait_exit(5 * SLOW),
                             "idle keep-alive connection held shutdown for the drain timeout")
        self.assertLess(time.monotonic() - started, 5 * SLOW)
        s.assert_clean_exit()
        self.assertClosed(c)

    def test_drain_timeout_bounds_a_request_that_never_finishes(self):
        app = self.held_backend()
        s = self.sluice([upstream("app", [app])], server={"drain_timeout": "1s"})
        c = self.client(s.port)
        c.request("GET", "/slow")
        self.assertTrue(self.got_request.wait(10))
        started = time.monotonic()
        s.signal(signal.SIGTERM)
        code = s.wait_exit(1 + 5 * SLOW)
        elapsed = time.monotonic() - started
        self.assertIsNotNone(code, "sluice ignored drain_timeout")
        self.assertGreater(elapsed, 0.8, "exited before drain_timeout with a request in flight")
        s.assert_clean_exit()
        closed, _ = c.wait_closed(2)
        self.assertTrue(closed)

    def test_sigint_drains_like_sigterm(self):
        app = self.held_backend()
        s = self.sluice([upstream("app", [app])])
        self.assertEqual(self.get(s.port, "/quick").status, 200)
        s.signal(signal.SIGINT)
        self.assertIsNotNone(s.wait_exit(5 * SLOW))
        s.assert_clean_exit()


if __name__ == "__main__":
    unittest.main()
