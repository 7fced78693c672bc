"""Upstream servers given by a name: every address is a member.

Proves: a server written as "app.test:PORT", where app.test has two
addresses (127.0.0.1 and 127.0.0.2, from a hosts file sluice sees as its
/etc/hosts in a private mount namespace), is two pool members: round robin
alternates between backends on the two addresses (exact counts), the metrics
list each address, and health checks probe and eject each address on its own.
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOOPBACK, SLOW, Sluice, SluiceTestCase, base_config, free_port,  # noqa: E402
                     upstream, wait_until)
from peers import Backend, default_handler, send_response  # noqa: E402
import test_admin as admin  # noqa: E402  (its helpers; its tests are not run from here)

SECOND = "127.0.0.2"
WAIT = 10.0 * SLOW


def can_unshare():
    return os.geteuid() == 0 and os.path.exists("/usr/bin/unshare")


@unittest.skipUnless(can_unshare(), "needs root for a private mount namespace (unshare -m)")
class NameWithTwoAddresses(SluiceTestCase):

    def two_backends(self, handler=None):
        """Backends on 127.0.0.1:P and 127.0.0.2:P (the same port P)."""
        for _ in range(20):
            first = Backend("first", handler)
            try:
                second = Backend("second", handler, host=SECOND, port=first.port)
            except OSError:
                first.stop()
                continue
            for b in (first, second):
                b.start()
                self._backends.append(b)
                self.addCleanup(b.stop)
            return first, second
        self.fail("no port free on both loopback addresses")

    def start(self, upstreams):
        hosts = os.path.join(self.tmp, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n%s app.test\n%s app.test\n" % (LOOPBACK, SECOND))
        doc = base_config(upstreams, log={"level": "debug"})
        self.admin_port = free_port()
        doc["admin"] = {"address": "%s:%d" % (LOOPBACK, self.admin_port)}
        s = Sluice(self.tmp, doc)
        s.hosts_file = hosts
        s.start()
        self.addCleanup(self._stop_sluice, s)
        return s

    def metrics(self):
        status, _, body = admin.admin_get(self.admin_port, "/metrics")
        self.assertEqual(status, 200)
        return admin.parse_metrics(body)

    def test_each_address_is_a_member(self):
        first, second = self.two_backends()
        s = self.start([upstream("app", ["app.test:%d" % first.port])])
        c = self.client(s.port)
        for i in range(10):
            self.assertEqual(c.roundtrip(target="/r%d" % i).status, 200)
        self.assertEqual((first.request_count, second.request_count), (5, 5))
        m = self.metrics()
        for b in (first, second):
            self.assertEqual(admin.value(m, "sluice_upstream_server_healthy", upstream="app",
                                         server=b.addr), 1, b.addr)

    def test_each_address_is_health_checked_on_its_own(self):
        down = {"127.0.0.2"}

        def handler(backend, conn, req):
            if req.target == "/health":
                ok = backend.listen_sock.getsockname()[0] not in down
                send_response(conn, 200 if ok else 503, b"", [("Connection", "close")])
                conn.close()
            else:
                default_handler(backend, conn, req)
        first, second = self.two_backends(handler)
        check = {"interval": "200ms", "timeout": "150ms", "unhealthy": 1, "healthy": 1}
        s = self.start([upstream("app", ["app.test:%d" % first.port], health_check=check)])
        s.wait_log(r"failed health checks, ejected.*server=%s" % re.escape(second.addr),
                   "stderr", WAIT)
        wait_until(lambda: admin.value(self.metrics(), "sluice_health_checks_total", upstream="app",
                                       server=first.addr, result="success"), WAIT, 0.05,
                   "a good probe of the first address")
        c = self.client(s.port)
        for i in range(6):
            self.assertEqual(c.roundtrip(target="/r%d" % i).status, 200)
        traffic = [t for t in second.targets() if t != "/health"]
        self.assertEqual(traffic, [])
        self.assertEqual(len([t for t in first.targets() if t != "/health"]), 6)


if __name__ == "__main__":
    unittest.main()
