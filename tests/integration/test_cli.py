"""The command line: --version, --help, --check, and refusing a bad config.

Proves: --version and --help exit 0; `--check -c FILE` exits 0 on a valid
file and 2 on an invalid one, naming every problem at once as
`FILE:LINE:COL: key: message` with the right line; running on an invalid
file exits 2 without ever printing msg=ready.
"""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLUICE_BIN, SluiceTestCase, base_config, free_port, route,  # noqa: E402
                     to_toml, upstream)

VALID = to_toml(dict(base_config([upstream("app", ["127.0.0.1:9"])], [route("app")]),
                     listener=[{"address": "127.0.0.1:%d" % free_port()}]))

# Each bad value sits on a known line; the loader must report all of them.
INVALID = """\
[server]
workers = 1
[limits]
bogus_key = 5
[timeouts]
header = "soon"
[[listener]]
address = "127.0.0.1:70000"
[[route]]
path_prefix = "/"
upstream = "nope"
[[upstream]]
name = "app"
servers = ["127.0.0.1:9000"]
"""
# (what the key must mention, lines that may be blamed)
INVALID_EXPECT = [("bogus_key", {4}), ("header", {6}), ("address", {8}),
                  ("upstream", {9, 11})]


def run(args, timeout=20):
    return subprocess.run([SLUICE_BIN] + args, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


class CommandLine(SluiceTestCase):

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_version_and_help_exit_zero(self):
        for flag in ("--version", "--help"):
            r = run([flag])
            self.assertEqual(r.returncode, 0, (flag, r.stderr))
            self.assertTrue((r.stdout + r.stderr).strip(), "%s printed nothing" % flag)
        r = run(["--version"])
        self.assertRegex((r.stdout + r.stderr).decode(), r"\d+\.\d+\.\d+")

    def test_check_accepts_valid_config(self):
        path = self.write("ok.toml", VALID)
        r = run(["--check", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr.decode())

    def test_check_reports_every_problem_with_place(self):
        path = self.write("bad.toml", INVALID)
        r = run(["--check", "-c", path])
        self.assertEqual(r.returncode, 2, r.stderr.decode())
        err = r.stderr.decode()
        rx = re.compile(r"^%s:(\d+):(\d+): (\S+): (.+)$" % re.escape(path))
        found = [(int(m.group(1)), m.group(3)) for m in map(rx.match, err.splitlines()) if m]
        for key_part, lines in INVALID_EXPECT:
            hits = [(line, key) for line, key in found if key_part in key]
            self.assertTrue(hits, "no error naming %r in:\n%s" % (key_part, err))
            self.assertTrue(any(line in lines for line, _ in hits),
                            "%r blamed on %r, expected line %r:\n%s" % (key_part, hits, lines, err))

    def test_missing_file_is_an_error(self):
        r = run(["--check", "-c", os.path.join(self.tmp, "absent.toml")])
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip())

    def test_running_on_invalid_config_exits_2_without_starting(self):
        path = self.write("bad.toml", INVALID)
        r = run(["-c", path])
        self.assertEqual(r.returncode, 2, r.stderr.decode())
        self.assertNotIn(b"msg=ready", r.stderr)
        self.assertIn(b"bogus_key", r.stderr)


if __name__ == "__main__":
    unittest.main()
