"""The access log: JSON format and reopening on SIGUSR1.

Proves: with log.format = "json" every line is one JSON object with the
time first and the same facts as the text format (a WebSocket session's
line adds its counters and close); with log.access a file, SIGUSR1 after the
file was moved away (as logrotate does) makes sluice write to a new file at
the path, while what came before stays in the moved one, and no line is lost
or split; SIGUSR1 with the log on stdout changes nothing.
"""

import json
import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, route, upstream, wait_until  # noqa: E402
from wscase import WsTestCase  # noqa: E402
from wsframes import TEXT  # noqa: E402


def lines_of(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().splitlines()


class AccessLogFile(WsTestCase):

    def test_json_records(self):
        app = self.backend("app")
        up = self.raw_upstream()
        path = os.path.join(self.tmp, "access.json")
        s = self.sluice([upstream("app", [app]), upstream("ws", [up])],
                        routes=[route("app"), route("ws", path_prefix="/chat",
                                                    websocket={"allow_missing_origin": True})],
                        log={"access": path, "format": "json"})
        self.assertEqual(self.get(s.port, "/json?q=%22x%22").status, 200)
        c, conn = self.open_session(s.port, up)
        c.send_frame(TEXT, b"hi")
        conn.wait_frames(1)
        c.send_close(1000)
        self.assertClientClosed(c, 1000)
        wait_until(lambda: len(lines_of(path)) >= 2, 5 * SLOW, message="two access records")
        records = [json.loads(l) for l in lines_of(path)]
        http_rec = next(r for r in records if r["path"].startswith("/json"))
        self.assertEqual(list(http_rec)[0], "time")
        self.assertRegex(http_rec["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual((http_rec["method"], http_rec["path"], http_rec["status"], http_rec["route"]),
                         ("GET", "/json?q=%22x%22", 200, "/"))
        self.assertEqual(http_rec["client"], "127.0.0.1")
        self.assertEqual(http_rec["upstream"], app.addr)
        self.assertIsInstance(http_rec["duration_ms"], float)
        ws_rec = next(r for r in records if r["path"] == "/chat")
        self.assertEqual((ws_rec["status"], ws_rec["msgs_c2u"], ws_rec["bytes_c2u"], ws_rec["close_code"],
                          ws_rec["closed_by"]), (101, 1, 2, 1000, "client"))

    def test_sigusr1_reopens_the_file_after_rotation(self):
        app = self.backend("app")
        path = os.path.join(self.tmp, "access.log")
        s = self.sluice([upstream("app", [app])], server={"workers": 2}, log={"access": path})
        for i in range(20):
            self.assertEqual(self.get(s.port, "/before/%d" % i).status, 200)
        wait_until(lambda: len(lines_of(path)) >= 20, 5 * SLOW, message="20 lines before rotation")
        os.rename(path, path + ".1")
        s.signal(signal.SIGUSR1)
        s.wait_log(r'msg="access log reopened"', stream="stderr")
        for i in range(20):
            self.assertEqual(self.get(s.port, "/after/%d" % i).status, 200)
        wait_until(lambda: len(lines_of(path)) >= 20, 5 * SLOW, message="20 lines in the new file")
        old, new = lines_of(path + ".1"), lines_of(path)
        self.assertEqual(sorted(l.split("path=")[1].split()[0] for l in old),
                         sorted("/before/%d" % i for i in range(20)))
        self.assertEqual(sorted(l.split("path=")[1].split()[0] for l in new),
                         sorted("/after/%d" % i for i in range(20)))

    def test_sigusr1_with_stdout_changes_nothing(self):
        app = self.backend("app")
        s = self.sluice([upstream("app", [app])])
        s.signal(signal.SIGUSR1)
        self.assertEqual(self.get(s.port, "/still").status, 200)
        s.wait_log(r"path=/still status=200")
        self.assertNotIn("reopened", s.stderr_text())


if __name__ == "__main__":
    unittest.main()
