"""RFC 6455 conformance of the WebSocket relay, against an independent server.

Proves: a conforming echo server (Node's `ws`, tests/node/echo_server.js)
passes every case of ws_conformance_cases.py when connected to directly, so
the cases test the RFC and not our own reading of it; and through sluice
every case has the same client-visible outcome as directly (the same echoed
messages and pongs, the same close code, the TCP connection closed), with a
behaviour no worse than the direct one and never FAILED against the RFC.

Where sluice answers a protocol error itself (the upstream never sees the
frame), the outcome the client sees is still compared: a 1002 from sluice is
the same outcome as a 1002 from the server. Only the moment at which a
connection is failed is left out of the comparison (Autobahn's fail-fast
cases): failing earlier than the server does shows as OK versus NON-STRICT.
A difference is reported with the case, the bytes sent (masking keys are
fixed per case, so they are the same every run) and both outcomes.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, SluiceTestCase, route, upstream  # noqa: E402
from ws_conformance_cases import all_cases  # noqa: E402
from ws_conformance_client import HandshakeError, judge, run_case  # noqa: E402
from wspeers import NodeScript  # noqa: E402

START_TIMEOUT = 10.0
RUN_BUDGET = 30.0          # seconds for one pass over every case (about 3 directly)
RANK = {"OK": 0, "NON-STRICT": 1, "FAILED": 2}


class Conformance(SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.echo = NodeScript("echo_server.js").start(START_TIMEOUT * SLOW)
        self.addCleanup(self.echo.stop)
        self.cases = all_cases()

    def run_all(self, port):
        """Every case against `port`: {case id: (outcome, verdict, why)}.
        A peer that never closes costs each case its whole budget; past
        RUN_BUDGET the rest are not run and the test fails saying so."""
        results = {}
        deadline = time.monotonic() + RUN_BUDGET * SLOW
        for case in self.cases:
            if time.monotonic() > deadline:
                self.fail("%.0fs spent with %d of %d cases run against port %d; the last: %s" % (
                    RUN_BUDGET * SLOW, len(results), len(self.cases), port,
                    "\n".join("%s %s (%s)" % (cid, out.describe(), v)
                              for cid, (out, v, _) in list(results.items())[-5:])))
            outcome = run_case(port, case, SLOW)
            verdict, why = judge(outcome)
            results[case.id] = (outcome, verdict, why)
        return results

    def test_a_conforming_server_passes_every_case_directly(self):
        results = self.run_all(self.echo.port)
        bad = ["%s %s: %s\n    sent: %s\n    got:  %s" % (
                   cid, outcome.case.title, why, outcome.describe_sent(), outcome.describe())
               for cid, (outcome, verdict, why) in results.items() if verdict == "FAILED"]
        if bad:
            self.fail("the echo server fails %d of %d cases (a wrong case, or ws):\n%s" % (
                len(bad), len(self.cases), "\n".join(bad)))

    def test_through_sluice_every_case_has_the_direct_outcome(self):
        s = self.sluice([upstream("echo", [self.echo])],
                        routes=[route("echo", path_prefix="/",
                                      websocket={"allow_missing_origin": True,
                                                 "max_frame_bytes": "16MiB",
                                                 "max_message_bytes": "16MiB",
                                                 "ping_interval": "5m"})])
        try:
            run_case(s.port, self.cases[0], SLOW)
        except HandshakeError as e:
            self.fail("sluice does not relay WebSockets: %s" % e)
        direct = self.run_all(self.echo.port)
        relayed = self.run_all(s.port)
        problems = []
        counts = {"OK": 0, "NON-STRICT": 0, "FAILED": 0}
        for case in self.cases:
            d_out, d_verdict, _ = direct[case.id]
            s_out, s_verdict, s_why = relayed[case.id]
            counts[s_verdict] += 1
            issues = []
            if s_out.key() != d_out.key():
                issues.append("outcome differs")
            if s_verdict == "FAILED":
                issues.append("FAILED against the RFC: " + s_why)
            elif RANK[s_verdict] > RANK[d_verdict]:
                issues.append("%s through sluice, %s directly" % (s_verdict, d_verdict))
            if issues:
                problems.append("%s %s: %s\n    sent:   %s\n    direct: %s (%s)\n    sluice: %s (%s)" % (
                    case.id, case.title, "; ".join(issues), s_out.describe_sent(),
                    d_out.describe(), d_verdict, s_out.describe(), s_verdict))
        if problems:
            self.fail("%d of %d cases differ through sluice (through sluice: %s):\n%s" % (
                len(problems), len(self.cases),
                ", ".join("%s %d" % kv for kv in counts.items()), "\n".join(problems)))


if __name__ == "__main__":
    unittest.main()
