"""Upstream servers given by a name: every address is a member.

Proves: a server written as "app.test:PORT", where app.test has two
addresses (127.0.0.1 and 127.0.0.2, from a hosts file sluice sees as its
/etc/hosts in a private mount namespace), is two pool members: round robin
alternates between backends on the two addresses (exact counts), the metrics
list each address, and health checks probe and eject each address on its own.

And DNS re-resolution (resolve_interval): as the hosts file changes under a
running sluice, a new address joins the pool, a vanished one drains (no new
traffic, while a request already on it finishes unharmed), a name that stops
resolving keeps its last known addresses (warned once), and a reload in
between keeps the pool and the current resolved set.
"""

import os
import re
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOOPBACK, SLOW, Sluice, SluiceTestCase, base_config,  # noqa: E402
                     upstream, wait_until, metric_value)
from peers import Backend, default_handler, send_response  # noqa: E402
from httpwire import Client  # noqa: E402

SECOND = "127.0.0.2"
WAIT = 10.0 * SLOW


def can_unshare():
    return os.geteuid() == 0 and os.path.exists("/usr/bin/unshare")


class DnsCase(SluiceTestCase):
    """Backends on two loopback addresses and a sluice whose /etc/hosts the
    test writes."""

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

    def write_hosts(self, *addresses):
        """app.test -> `addresses` (none: app.test does not resolve). Written
        in place: the bind mount follows the inode."""
        with open(os.path.join(self.tmp, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")
            for a in addresses:
                f.write("%s app.test\n" % a)

    def start(self, upstreams, addresses=(LOOPBACK, SECOND)):
        hosts = os.path.join(self.tmp, "hosts")
        self.write_hosts(*addresses)
        doc = base_config(upstreams, log={"level": "debug"})
        self.with_admin(doc)
        s = Sluice(self.tmp, doc)
        s.hosts_file = hosts
        s.start()
        self.addCleanup(self._stop_sluice, s)
        return s


@unittest.skipUnless(can_unshare(), "needs root for a private mount namespace (unshare -m)")
class NameWithTwoAddresses(DnsCase):

    def test_each_address_is_a_member(self):
        first, second = self.two_backends()
        s = self.start([upstream("app", ["app.test:%d" % first.port])])
        c = self.client(s.port)
        for i in range(10):
            self.assertEqual(c.roundtrip(target="/r%d" % i).status, 200)
        self.assertEqual((first.request_count, second.request_count), (5, 5))
        m = self.metrics()
        for b in (first, second):
            self.assertEqual(metric_value(m, "sluice_upstream_server_healthy", upstream="app",
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
        wait_until(lambda: metric_value(self.metrics(), "sluice_health_checks_total", upstream="app",
                                       server=first.addr, result="success"), WAIT, 0.05,
                   "a good probe of the first address")
        c = self.client(s.port)
        for i in range(6):
            self.assertEqual(c.roundtrip(target="/r%d" % i).status, 200)
        traffic = [t for t in second.targets() if t != "/health"]
        self.assertEqual(traffic, [])
        self.assertEqual(len([t for t in first.targets() if t != "/health"]), 6)



@unittest.skipUnless(can_unshare(), "needs root for a private mount namespace (unshare -m)")
class NameFollowedByResolveInterval(DnsCase):

    def members(self, state):
        return metric_value(self.metrics(), "sluice_upstream_members", upstream="app", state=state)

    def traffic(self, backend):
        return [t for t in backend.targets() if t != "/slow"]

    def test_members_join_drain_and_survive_failed_lookups_and_reloads(self):
        release = threading.Event()

        def handler(backend, conn, req):
            if req.target == "/slow":
                backend.hold(release)  # an in-flight request on .1 while .1 vanishes
            default_handler(backend, conn, req)
        first, second = self.two_backends(handler)
        ups = [upstream("app", ["app.test:%d" % first.port], resolve_interval="200ms")]
        s = self.start(ups, addresses=(LOOPBACK,))
        c = self.client(s.port)
        for i in range(4):
            self.assertEqual(c.roundtrip(target="/a%d" % i).status, 200)
        self.assertEqual((len(self.traffic(first)), second.request_count), (4, 0))
        self.assertEqual(self.members("active"), 1)

        # A slow request lands on .1, the only member.
        slow = Client(s.port, timeout=WAIT)
        self._clients.append(slow)
        slow.request(target="/slow")
        wait_until(lambda: "/slow" in [h.target for h in first.heads], WAIT, 0.02,
                   "the slow request at the first backend")

        # .2 joins: traffic reaches both, without a reload.
        self.write_hosts(LOOPBACK, SECOND)
        s.wait_log(r'msg="upstream server addresses changed" upstream=app server=app\.test:%d '
                   r'added=%s removed=-' % (first.port, re.escape(second.addr)), "stderr", WAIT)
        sent = [0]

        def second_served():
            sent[0] += 1
            self.assertEqual(c.roundtrip(target="/b%d" % sent[0]).status, 200)
            return second.request_count > 0
        wait_until(second_served, WAIT, 0.02, "a request at the new member")
        before = len(self.traffic(first))
        for i in range(4):
            self.assertEqual(c.roundtrip(target="/c%d" % i).status, 200)
        self.assertEqual(len(self.traffic(first)) - before, 2)  # round robin over both
        self.assertEqual(self.members("active"), 2)
        m = self.metrics()
        for b in (first, second):
            self.assertEqual(metric_value(m, "sluice_upstream_server_healthy", upstream="app",
                                         server=b.addr), 1, b.addr)

        # A reload in between keeps the pool and the resolved set (both members).
        s.reload()
        seen_second = second.request_count
        seen_first = len(self.traffic(first))
        for i in range(4):
            self.assertEqual(c.roundtrip(target="/d%d" % i).status, 200)
        self.assertEqual((len(self.traffic(first)) - seen_first,
                          second.request_count - seen_second), (2, 2))

        # .1 vanishes: every new request goes to .2; the slow one on .1 goes on.
        self.write_hosts(SECOND)
        s.wait_log(r'msg="upstream server addresses changed" upstream=app server=app\.test:%d '
                   r'added=- removed=%s' % (first.port, re.escape(first.addr)), "stderr", WAIT)
        wait_until(lambda: self.members("draining") == 1, WAIT, 0.02,
                   "the first member draining under the slow request")
        self.assertEqual(self.members("active"), 1)
        at_first = len(self.traffic(first))
        for i in range(6):
            self.assertEqual(self.client(s.port).roundtrip(target="/e%d" % i).status, 200)
        self.assertEqual(len(self.traffic(first)), at_first)
        m = self.metrics()
        self.assertIsNone(metric_value(m, "sluice_upstream_server_healthy", upstream="app",
                                      server=first.addr))
        release.set()
        r = slow.read_response()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete, r)
        wait_until(lambda: self.members("draining") == 0, WAIT, 0.02,
                   "the drained member freed once its request ended")

        # app.test stops resolving: the last known address (.2) is kept, warned once.
        self.write_hosts()
        s.wait_log(r'did not resolve, keeping its last known addresses.*upstream=app.*'
                   r'addresses=%s' % re.escape(second.addr), "stderr", WAIT)
        wait_until(lambda: s.stderr_text().count("upstream server lookup failed") >= 3, WAIT,
                   0.05, "three failed lookups")
        self.assertEqual(s.stderr_text().count("did not resolve, keeping"), 1)
        at_second = second.request_count
        for i in range(3):
            self.assertEqual(c.roundtrip(target="/f%d" % i).status, 200)
        self.assertEqual(second.request_count - at_second, 3)
        self.assertEqual(self.members("active"), 1)

        # It resolves again.
        self.write_hosts(SECOND)
        s.wait_log(r'msg="upstream server name resolves again" upstream=app', "stderr", WAIT)


if __name__ == "__main__":
    unittest.main()
