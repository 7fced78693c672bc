"""Reloads under load: the acceptance test of reload without drops.

Proves: with wrk driving keep-alive GETs through sluice (two workers) to an
nginx backend, and 1,000 WebSocket sessions (Node's `ws`) exchanging
messages through sluice with a Node `ws` echo server, 20 reloads in a row
(each a real change: a route is added or removed, alternately) cause zero
failed HTTP requests (no socket error, no non-2xx answer, wrk's own count)
and zero dropped WebSocket sessions: every session stays open through all
the reloads, every message is echoed intact and in order, and each session
closes cleanly with 1000 at the end. Every worker applies every generation
and retires no session (their routes did not change).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, Sluice, base_config, route, upstream  # noqa: E402
from wscase import WsTestCase  # noqa: E402
from peers import OutputProcess  # noqa: E402
from wspeers import NODE_BIN, NODE_DIR, NodeScript  # noqa: E402

WRK_BIN = shutil.which("wrk") or "/usr/bin/wrk"
SESSIONS = 1000
RELOADS = 20
MESSAGE_INTERVAL_MS = 500   # per session: 2,000 messages/s through sluice in all
ORIGIN = "http://localhost"


class SessionsClient(OutputProcess):
    """node ws_sessions.js: opens the sessions, talks until finish()."""

    def __init__(self, url, count):
        super().__init__("ws-sessions", [NODE_BIN, os.path.join(NODE_DIR, "ws_sessions.js"), url,
                                         str(count), str(MESSAGE_INTERVAL_MS), ORIGIN],
                         stdin_pipe=True)

    def line(self, prefix, timeout):
        found = self.wait_line(lambda l: l.startswith(prefix), timeout)
        if found is None:
            raise AssertionError("ws_sessions printed no %r:\n%s" % (prefix, self.output()))
        return found

    def finish(self, timeout):
        self.send("stop\n")
        summary = self.line("summary ", timeout)
        self.proc.wait(timeout)
        return json.loads(summary[len("summary "):])


class ReloadUnderLoad(WsTestCase):

    def test_twenty_reloads_under_load_drop_nothing(self):
        nginx = self.nginx(files={"index.html": b"x" * 512})
        echo = NodeScript("echo_server.js")
        echo.start()
        self.addCleanup(echo.stop)

        def doc(with_extra):
            ups = [upstream("web", [nginx]), upstream("echo", [echo])]
            routes = [route("web", path_prefix="/"), route("echo", path_prefix="/ws")]
            if with_extra:
                routes.append(route("web", path_prefix="/extra/", strip_prefix=True))
            return base_config(ups, routes=routes,
                               server={"workers": 2, "reload_grace": "2s", "drain_timeout": "10s"},
                               log={"access": "off"})

        s = Sluice(self.tmp, doc(False)).start()
        self.addCleanup(self._stop_sluice, s)

        sessions = SessionsClient("ws://127.0.0.1:%d/ws" % s.port, SESSIONS)
        self.addCleanup(sessions.stop)
        opened = sessions.line("open ", 60 * SLOW)
        self.assertEqual(opened, "open %d" % SESSIONS, sessions.output())

        duration = int(10 * SLOW)
        wrk = subprocess.Popen([WRK_BIN, "-t1", "-c16", "-d%ds" % duration, "--timeout", "5s",
                                "http://127.0.0.1:%d/index.html" % s.port],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: wrk.poll() is None and wrk.kill())
        # The reloads are paced over most of wrk's run (pacing, not waiting
        # for anything: each reload() itself waits until both workers applied it).
        pace = threading.Event()
        generations = []
        for i in range(RELOADS):
            generations.append(s.reload(doc(i % 2 == 0)))
            pace.wait(0.8 * duration / RELOADS)
        self.assertIsNone(wrk.poll(), "wrk ended before the last reload")
        wrk_out, _ = wrk.communicate(timeout=duration + 30)
        summary = sessions.finish(30 * SLOW)

        # HTTP: wrk saw every request answered 2xx, on connections that lasted.
        self.assertEqual(wrk.returncode, 0, wrk_out)
        self.assertNotIn("Socket errors", wrk_out)
        self.assertNotIn("Non-2xx", wrk_out)
        requests = int(re.search(r"(\d+) requests in", wrk_out).group(1))
        self.assertGreater(requests, 1000, wrk_out)

        # WebSocket: nothing dropped, everything echoed, all closed cleanly.
        self.assertEqual(summary["opened"], SESSIONS, summary)
        self.assertEqual(summary["open_failures"], [], summary)
        self.assertEqual(summary["dropped"], [], summary)
        self.assertEqual(summary["mismatches"], [], summary)
        self.assertEqual(summary["unanswered"], 0, summary)
        self.assertEqual(summary["clean_closes"], SESSIONS, summary)
        self.assertEqual(summary["echoed"], summary["sent"], summary)
        self.assertGreater(summary["sent"], SESSIONS, summary)

        # Every reload reached both workers, and none retired a session.
        self.assertEqual(generations, list(range(2, 2 + RELOADS)))
        applied = [l for l in s.stderr_lines if 'msg="config applied"' in l]
        self.assertEqual(len(applied), 2 * RELOADS, applied)
        for line in applied:
            self.assertIn("websocket_retiring=0", line)
        print("wrk: %d requests; websocket: %d messages echoed over %d sessions; %d reloads"
              % (requests, summary["echoed"], SESSIONS, RELOADS), file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
