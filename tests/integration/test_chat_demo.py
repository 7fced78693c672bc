"""The demo that `make run` shows, used the way a person would: in a browser.

Sluice runs on conf/sluice.toml itself, with only its ports moved to free ones
(the allowed origins follow them) and one more plain listener, in front of
the demo's own upstreams (demo/backend.py serving the page, demo/chat_server.js
the chat). Debian's chromium, driven by playwright-core
(tests/node/chat_demo_browser.js), opens the page.

Proves: two pages, from two allowed origins (https://localhost:PORT and
https://127.0.0.1:PORT), open the chat over wss and each sees the other's
message; "Send 2 MiB" gets close code 1009 in that page, Sluice logs the
session as closed by the gateway with 1009, and the other page stays open and
never gets the message; a page served from an origin that is not allowed
never opens (error event, close 1006), because Sluice answered its handshake
with 403. The screenshot of the first page, after the 1009, is saved beside
the Sluice binary as chat-demo.png.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOOPBACK, SLOW, SLUICE_BIN, SOURCE_DIR, Sluice,  # noqa: E402
                     SluiceTestCase, free_port, to_toml)
from peers import OutputProcess  # noqa: E402

NODE_BIN = "/usr/bin/node"
CHROMIUM = "/usr/bin/chromium"
NODE_DIR = os.path.join(SOURCE_DIR, "tests", "node")
DEFAULT_CONFIG = os.path.join(SOURCE_DIR, "conf", "sluice.toml")
SCREENSHOT = os.path.join(os.path.dirname(os.path.abspath(SLUICE_BIN)), "chat-demo.png")

# The default config's ports, replaced by free ones.
PLAIN, TLS, BACKEND, CHAT = 8080, 8443, 9000, 9001
BIG = 2 * 1024 * 1024       # what "Send 2 MiB" sends (demo/static/app.js)
START_TIMEOUT = 10.0        # for each demo upstream to listen
BROWSER_TIMEOUT = 120.0 * SLOW


def demo_process(name, argv, ready):
    """One demo upstream (a command that prints a `ready` line once it
    listens), its output kept for failure messages."""
    p = OutputProcess(name, argv, cwd=SOURCE_DIR)
    if p.wait_line(lambda l: ready in l, START_TIMEOUT * SLOW) is None:
        p.stop()
        raise AssertionError("%s did not say %r within %.0fs:\n%s" % (
            name, ready, START_TIMEOUT * SLOW, p.output()))
    return p


class DemoSluice(Sluice):
    """Sluice on conf/sluice.toml with its ports moved: ports[0] takes the
    plain listener's (8080), ports[1] the TLS one's (8443), in the addresses
    and in the /chat route's allowed origins alike; ports[2] is one more plain
    listener, whose origin no route allows. Certificate paths are made
    absolute (Sluice runs in the test's temp dir), the drain is shortened."""

    def __init__(self, tmpdir, backend_port, chat_port):
        super().__init__(tmpdir, None, listeners=3)
        self.backend_port = backend_port
        self.chat_port = chat_port
        with open(DEFAULT_CONFIG, "rb") as f:
            self.default = tomllib.load(f)

    plain_port = property(lambda self: self.ports[0])
    tls_port = property(lambda self: self.ports[1])
    outsider_port = property(lambda self: self.ports[2])

    def config_text(self):
        doc = json.loads(json.dumps(self.default))  # a deep copy
        moved = {PLAIN: self.plain_port, TLS: self.tls_port,
                 BACKEND: self.backend_port, CHAT: self.chat_port}

        def move(text):
            host, port = text.rsplit(":", 1)
            if int(port) not in moved:
                raise AssertionError("conf/sluice.toml: unexpected port in %r" % text)
            return "%s:%d" % (host, moved[int(port)])

        doc["server"]["drain_timeout"] = "5s"
        for listener in doc["listener"]:
            listener["address"] = move(listener["address"])
            for entry in listener.get("tls", {}).get("certificates", []):
                for key in ("cert", "key"):
                    entry[key] = os.path.join(SOURCE_DIR, entry[key])
        doc["listener"].append({"address": "%s:%d" % (LOOPBACK, self.outsider_port)})
        for up in doc["upstream"]:
            up["servers"] = [move(s) for s in up["servers"]]
        for r in doc["route"]:
            ws = r.get("websocket", {})
            if "allowed_origins" in ws:
                ws["allowed_origins"] = [move(o) for o in ws["allowed_origins"]]
        return to_toml(doc)


class ChatDemoInBrowser(SluiceTestCase):

    def setUp(self):
        super().setUp()
        for path, what in ((CHROMIUM, "chromium"),
                           (os.path.join(NODE_DIR, "node_modules", "playwright-core"),
                            "playwright-core in tests/node"),
                           (os.path.join(SOURCE_DIR, "demo", "node_modules", "ws"),
                            "Node's ws in demo/")):
            if not os.path.exists(path):
                self.fail("%s is not installed (make test-deps): no %s" % (what, path))

    def demo_process(self, name, argv, ready):
        p = demo_process(name, argv, ready)
        self.addCleanup(p.stop)
        return p

    def start_demo(self):
        backend_port, chat_port = free_port(), free_port()
        self.demo_process("backend", ["/usr/bin/python3", "demo/backend.py",
                                      "--port", str(backend_port)], "listening on")
        self.chat = self.demo_process("chat", [NODE_BIN, "demo/chat_server.js",
                                               "--port", str(chat_port)], "listening on")
        s = DemoSluice(self.tmp, backend_port, chat_port)
        s.start()
        self.addCleanup(self._stop_sluice, s)
        return s

    def run_browser(self, s):
        """Runs chat_demo_browser.js in a process group of its own, so that
        the browser it starts goes with it whatever happens; returns the
        report."""
        args = {
            "alice": "https://localhost:%d/" % s.tls_port,
            "bob": "https://%s:%d/" % (LOOPBACK, s.tls_port),
            "outsider": "http://%s:%d/" % (LOOPBACK, s.outsider_port),
            "screenshot": SCREENSHOT,
            "timeout_ms": int(20000 * SLOW),
        }
        proc = subprocess.Popen([NODE_BIN, os.path.join(NODE_DIR, "chat_demo_browser.js"),
                                 json.dumps(args)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=SOURCE_DIR, start_new_session=True)
        self.addCleanup(self._kill_group, proc.pid)
        try:
            out, err = proc.communicate(timeout=BROWSER_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill_group(proc.pid, signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
        err = err.decode("utf-8", "replace")
        if proc.returncode != 0:
            self.fail("the browser script failed (exit %r):\n%s\nsluice:\n%s" % (
                proc.returncode, err, s.stderr_tail(30)))
        return json.loads(out.decode().strip().splitlines()[-1])

    @staticmethod
    def _kill_group(pgid, sig=signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass

    def test_two_pages_chat_big_message_gets_1009_foreign_origin_refused(self):
        s = self.start_demo()
        report = self.run_browser(s)

        # Each page sees both messages, its own back from the room and the other's.
        said = [{"from": "alice", "text": "alice: hello from alice"},
                {"from": "bob", "text": "bob: hi alice, bob here"}]
        for name in ("alice", "bob"):
            page = report["exchanged"][name]
            self.assertEqual(page["state"], "open", page)
            self.assertEqual(page["chat"], said, page)

        # The 2 MiB message: 1009 in alice's page, the room never got it.
        alice, bob = report["big"]["alice"], report["big"]["bob"]
        self.assertEqual(alice["state"], "closed", alice)
        self.assertEqual(alice["close"]["code"], 1009, alice)
        self.assertIn("code 1009 (message too big)", alice["close"]["text"])
        self.assertIn("wasClean %s" % str(alice["close"]["clean"]).lower(),
                      alice["close"]["text"])
        self.assertEqual(bob["state"], "open", bob)
        self.assertEqual(bob["chat"], said, bob)
        line = s.wait_log(r"path=/chat .*close_code=1009")
        self.assertIn("closed_by=gateway", line)
        self.assertIn("status=101", line)
        bytes_c2u = int(re.search(r"bytes_c2u=(\d+)", line).group(1))
        self.assertLess(bytes_c2u, 1 << 20, line)  # only the two small messages went up
        self.assertTrue(os.path.getsize(SCREENSHOT) > 10000, SCREENSHOT)

        # The page from another origin: never open, 1006, and Sluice said 403.
        out = report["outsider"]
        self.assertEqual(out["state"], "closed", out)
        self.assertNotIn("open", out["events"], out)
        self.assertIn("error", out["events"], out)
        self.assertEqual(out["close"]["code"], 1006, out)
        self.assertFalse(out["close"]["clean"], out)
        # The status is only in the console: scripts never see why a handshake failed.
        self.assertTrue(any("response code: 403" in l for l in out["console"]), out["console"])
        s.wait_log(r"path=/chat .*status=403")
        s.wait_log(r'upgrade refused.* status=403 reason="origin not allowed"', stream="stderr")

        # bob leaves normally.
        bye = report["bye"]
        self.assertEqual(bye["close"], {"code": 1000, "reason": "bye", "clean": True,
                                        "text": bye["close"]["text"]}, bye)


if __name__ == "__main__":
    unittest.main()
