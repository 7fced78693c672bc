"""Integration harness: the real sluice binary over loopback, against real peers.

Test scripts do `from harness import *` and get, in the order a test uses it:
  - SluiceTestCase: a unittest.TestCase that owns every peer a test starts and
    tears them down newest first; stopping sluice with SIGTERM and asserting a
    clean exit (code 0, no "handle leak", no sanitizer report) is part of
    every test.
  - Sluice: writes a TOML config, runs `sluice -c FILE`, waits for `msg=ready`
    on stderr and keeps draining stdout (access log) and stderr in threads.
  - Backend, Blackhole, Nginx (peers.py): a controllable origin in threads, a
    port where connects time out, and a real nginx.
  - Client, read_response, build_request (httpwire.py): exact bytes on a raw
    socket and a response reader that tells a complete body from a cut one.
  - curl(), RssMonitor, wait_until, wait_stalled and small helpers.

Rules the harness keeps so a broken proxy fails a test instead of hanging it:
every socket has a timeout, every wait has a deadline, and every loop is
bounded in count and time. Only loopback addresses are used. Standard library
only; run with /usr/bin/python3.
"""

import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from httpwire import *  # noqa: E402,F401,F403  (re-exported for the test scripts)
from httpwire import LOOPBACK, Client, free_port, port_accepts  # noqa: E402,F401
from peers import *  # noqa: E402,F401,F403
from peers import Backend, Blackhole, Nginx  # noqa: E402

SOURCE_DIR = os.environ.get(
    "SLUICE_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SLUICE_BIN = os.environ.get("SLUICE_BIN") or os.path.join(SOURCE_DIR, "build", "sluice")
CURL_BIN = shutil.which("curl") or "/usr/bin/curl"

READY_TIMEOUT = 20.0       # sluice start-up (ASan builds start slowly)
STOP_TIMEOUT = 20.0        # on top of the configured drain_timeout


def _is_sanitized_binary(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"libasan" in data


SANITIZED = _is_sanitized_binary(SLUICE_BIN)
# Upper bounds on "how long may this take" assertions scale with the build.
SLOW = 3.0 if SANITIZED else 1.0


# ---------------------------------------------------------------------------
# small helpers

def wait_until(predicate, timeout, interval=0.02, message="condition"):
    """Polls `predicate` until true or the deadline; for states with no event
    to await (a process exiting, a port refusing). Returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, message))
        time.sleep(interval)


def wait_stalled(progress, quiet=0.5, timeout=20.0):
    """Waits until `progress()` has not changed for `quiet` seconds (a sender
    blocked by backpressure has no event to await). Returns the value it
    settled at, or None if it never settled within `timeout`."""
    deadline = time.monotonic() + timeout
    last = progress()
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now_value = progress()
        if now_value != last:
            last = now_value
            since = time.monotonic()
        elif time.monotonic() - since >= quiet:
            return last
    return None


def connect_refused(port, timeout=1.0):
    """True if a TCP connect to 127.0.0.1:port is refused right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((LOOPBACK, port))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()
    return False


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def pattern_block(index, size=1 << 20, _base={}):
    """Deterministic, incompressible 1 MiB blocks: one random base, each block
    stamped with its index so reordered or repeated blocks change the hash."""
    if size not in _base:
        _base[size] = os.urandom(size)
    return struct.pack(">Q", index) + _base[size][8:]


# ---------------------------------------------------------------------------
# TOML config

def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table: websocket = { enabled = false }
        return "{ " + ", ".join("%s = %s" % (k, _toml_value(x)) for k, x in v.items()) + " }"
    raise TypeError("no TOML form for %r" % (v,))


def to_toml(doc):
    """dict of section -> dict (a [table]) or list of dicts ([[tables]])."""
    out = []
    for section, body in doc.items():
        if isinstance(body, dict):
            out.append("[%s]" % section)
            for k, v in body.items():
                out.append("%s = %s" % (k, _toml_value(v)))
            out.append("")
        else:
            for item in body:
                out.append("[[%s]]" % section)
                for k, v in item.items():
                    out.append("%s = %s" % (k, _toml_value(v)))
                out.append("")
    return "\n".join(out)


def upstream(name, servers, **options):
    """An [[upstream]] entry; servers are "host:port" strings or objects with
    an `addr` attribute (Backend, Nginx, Blackhole)."""
    entry = {"name": name,
             "servers": [s if isinstance(s, str) else s.addr for s in servers]}
    entry.update(options)
    return entry


def route(upstream_name, host="*", path_prefix="/", **options):
    entry = {"host": host, "path_prefix": path_prefix, "upstream": upstream_name}
    entry.update(options)
    return entry


# ---------------------------------------------------------------------------
# sluice process

class SluiceError(AssertionError):
    pass


class Sluice:
    """One `sluice -c FILE` process. `doc` is the config without listeners;
    start() adds `listeners` listeners on free loopback ports."""

    def __init__(self, tmpdir, doc, listeners=1):
        self.tmpdir = tmpdir
        self.doc = doc
        self.nlisteners = listeners
        self.ports = []
        self.proc = None
        self.returncode = None
        self.stderr_lines = []
        self.stdout_lines = []
        self.cond = threading.Condition()
        self.config_path = os.path.join(tmpdir, "sluice.toml")
        self.readers = []
        self.hosts_file = None  # set: sluice runs with this file as its /etc/hosts

    @property
    def port(self):
        return self.ports[0]

    @property
    def pid(self):
        return self.proc.pid

    def config_text(self):
        doc = dict(self.doc)
        doc["listener"] = [{"address": "%s:%d" % (LOOPBACK, p)} for p in self.ports]
        return to_toml(doc)

    def start(self):
        for attempt in range(3):
            self.ports = [free_port() for _ in range(self.nlisteners)]
            with open(self.config_path, "w") as f:
                f.write(self.config_text())
            if self._spawn():
                return self
            err = self.stderr_text()
            if "in use" not in err.lower() or attempt == 2:
                raise SluiceError("sluice did not become ready (exit %r):\n%s\nconfig:\n%s" % (
                    self.returncode, err, self.config_text()))
        return self

    def _spawn(self):
        if not os.access(SLUICE_BIN, os.X_OK):
            raise SluiceError("no sluice binary at %s (set SLUICE_BIN)" % SLUICE_BIN)
        self.stderr_lines = []
        self.stdout_lines = []
        self.returncode = None
        command = [SLUICE_BIN, "-c", self.config_path]
        if self.hosts_file is not None:
            # A private mount namespace (root only) in which the test's file
            # is /etc/hosts: glibc reads it again on every lookup, so a test
            # steers name resolution by rewriting the file (in place: the bind
            # mount follows the inode).
            command = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                       'mount --bind "$0" /etc/hosts && exec "$@"', self.hosts_file] + command
        self.proc = subprocess.Popen(command,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=self.tmpdir)
        self.readers = []
        for pipe, sink in ((self.proc.stdout, self.stdout_lines),
                           (self.proc.stderr, self.stderr_lines)):
            t = threading.Thread(target=self._drain, args=(pipe, sink), daemon=True)
            t.start()
            self.readers.append(t)
        # Waited in slices: a process that exits (a rejected config) notifies
        # nobody once its pipes are drained, and should not cost READY_TIMEOUT.
        deadline = time.monotonic() + READY_TIMEOUT
        with self.cond:
            while True:
                ready = self.cond.wait_for(
                    lambda: any("msg=ready" in l for l in self.stderr_lines)
                    or self.proc.poll() is not None, 0.1)
                if ready or time.monotonic() >= deadline:
                    break
            if ready and any("msg=ready" in l for l in self.stderr_lines):
                return True
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
            raise SluiceError("sluice printed no msg=ready within %.0fs:\n%s" % (
                READY_TIMEOUT, self.stderr_text()))
        for t in self.readers:
            t.join(5)
        self.returncode = self.proc.returncode
        return False

    def _drain(self, pipe, sink):
        for line in iter(pipe.readline, b""):
            with self.cond:
                sink.append(line.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        pipe.close()

    # -- logs

    def stderr_text(self):
        with self.cond:
            return "\n".join(self.stderr_lines)

    def access_lines(self):
        with self.cond:
            return list(self.stdout_lines)

    def wait_log(self, pattern, stream="stdout", timeout=5.0):
        """Waits for a log line matching the regex; returns it."""
        rx = re.compile(pattern)
        lines = self.stdout_lines if stream == "stdout" else self.stderr_lines
        with self.cond:
            found = []

            def match():
                found[:] = [l for l in lines if rx.search(l)]
                return bool(found)
            if not self.cond.wait_for(match, timeout):
                raise AssertionError("no %s line matching %r in:\n%s" % (
                    stream, pattern, "\n".join(lines[-50:])))
            return found[0]

    # -- reloading

    def reload(self, doc=None, ports=None, text=None, timeout=10.0):
        """Rewrites the config file (from `doc`, or the raw `text`), with
        listeners on `ports` (default: the current ones), sends SIGHUP, and
        waits until every worker has applied the new generation. Returns its
        number. A reload that fails raises, with sluice's error lines."""
        return self._reload(doc, ports, text, timeout, expect_ok=True)

    def reload_fails(self, doc=None, ports=None, text=None, timeout=10.0):
        """Like reload(), for a config sluice must refuse: waits for the
        "reload failed" line and returns the config error lines logged."""
        return self._reload(doc, ports, text, timeout, expect_ok=False)

    def _reload(self, doc, ports, text, timeout, expect_ok):
        if doc is not None:
            self.doc = doc
        if ports is not None:
            self.ports = list(ports)
        with open(self.config_path, "w") as f:
            f.write(text if text is not None else self.config_text())
        with self.cond:
            ok_before = sum("msg=reloaded" in l for l in self.stderr_lines)
            failed_before = sum("reload failed" in l for l in self.stderr_lines)
            start = len(self.stderr_lines)
        self.signal(signal.SIGHUP)
        with self.cond:
            def outcome():
                ok = sum("msg=reloaded" in l for l in self.stderr_lines) > ok_before
                bad = sum("reload failed" in l for l in self.stderr_lines) > failed_before
                return ok or bad
            if not self.cond.wait_for(outcome, timeout):
                raise SluiceError("no reload outcome within %.0fs:\n%s" % (timeout, self.stderr_tail()))
            new = self.stderr_lines[start:]
        failed = [l for l in new if "reload failed" in l]
        if expect_ok and failed:
            raise SluiceError("reload failed:\n%s" % "\n".join(new))
        if not expect_ok:
            if not failed:
                raise SluiceError("reload was accepted:\n%s" % "\n".join(new))
            return [l for l in new if "config error" in l or "reload failed" in l]
        generation = int(re.search(r"generation=(\d+)", [l for l in new if "msg=reloaded" in l][0]).group(1))
        workers = self.doc.get("server", {}).get("workers", 1)
        applied = re.compile(r'msg="config applied" generation=%d\b' % generation)
        with self.cond:
            if not self.cond.wait_for(
                    lambda: sum(bool(applied.search(l)) for l in self.stderr_lines) >= workers, timeout):
                raise SluiceError("not every worker applied generation %d:\n%s" % (
                    generation, self.stderr_tail()))
        return generation

    # -- stopping

    def signal(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self.readers:
            t.join(5)
        self.returncode = self.proc.returncode
        return self.returncode

    def stop(self, timeout=None):
        """SIGTERM, wait, and assert a clean exit: code 0, no handle leak, no
        sanitizer report."""
        if self.proc is None:
            return
        if timeout is None:
            timeout = STOP_TIMEOUT * SLOW
        if self.returncode is None:
            self.signal(signal.SIGTERM)
            if self.wait_exit(timeout) is None:
                self.proc.kill()
                self.wait_exit(10)
                raise SluiceError("sluice did not exit within %.0fs of SIGTERM:\n%s" % (
                    timeout, self.stderr_tail()))
        self.assert_clean_exit()

    def assert_clean_exit(self):
        err = self.stderr_text()
        problems = []
        if self.returncode != 0:
            problems.append("exit code %r" % self.returncode)
        for marker in ("handle leak", "AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if marker in err:
                problems.append("stderr mentions %r" % marker)
        if problems:
            raise SluiceError("unclean sluice exit: %s\n%s" % (", ".join(problems),
                                                              self.stderr_tail()))

    def stderr_tail(self, n=80):
        with self.cond:
            return "\n".join(self.stderr_lines[-n:])


# ---------------------------------------------------------------------------
# other clients

def curl(args, timeout=30):
    """Runs curl with sane defaults; returns CompletedProcess (bytes)."""
    cmd = [CURL_BIN, "-sS", "--noproxy", "*", "--max-time", str(int(timeout - 5))] + list(args)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=env)


class RssMonitor:
    """Samples a process's VmRSS in a thread and keeps the peak (KiB)."""

    def __init__(self, pid, interval=0.02):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_event.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
                self.samples += 1
            except OSError:
                return
            self.stop_event.wait(self.interval)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(5)
        return self.peak


# ---------------------------------------------------------------------------
# the test case base

# ---------------------------------------------------------------------------
# the admin endpoint

def admin_get(port, path, method="GET"):
    """(status, content type, body text) of one admin request."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10 * SLOW)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.getheader("content-type"), r.read().decode()
    finally:
        conn.close()


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value}; asserts the text format."""
    samples = {}
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})? (-?[0-9.e+]+|\+Inf)', line)
        assert m, "not a Prometheus sample line: %r" % line
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, "sample before its TYPE: %r" % line
        pairs = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', labels))
        samples[(name, pairs)] = float(value)
    return samples


def metric_value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def base_config(upstreams, routes=None, server=None, limits=None, timeouts=None, log=None):
    """A config document (without listeners). Short drain so teardown is quick."""
    doc = {
        "server": {"workers": 1, "drain_timeout": "5s"},
        "limits": {},
        "timeouts": {},
        "log": {"level": "info", "access": "stdout"},
    }
    doc["server"].update(server or {})
    doc["limits"].update(limits or {})
    doc["timeouts"].update(timeouts or {})
    doc["log"].update(log or {})
    for section in ("limits", "timeouts"):
        if not doc[section]:
            del doc[section]
    if routes is None:
        routes = [route(upstreams[0]["name"])]
    doc["route"] = routes
    doc["upstream"] = upstreams
    return doc


class SluiceTestCase(unittest.TestCase):
    """Owns the peers a test starts; tears them down newest first. Clients are
    closed and held backends released before sluice is stopped, and a clean
    sluice exit is asserted for every test."""

    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self._backends = []
        self._clients = []

    def backend(self, name="backend", handler=None, start=True, **kw):
        b = Backend(name, handler, **kw)
        if start:
            b.start()
        self._backends.append(b)
        self.addCleanup(b.stop)
        return b

    def blackhole(self):
        b = Blackhole()
        self.addCleanup(b.close)
        return b

    def nginx(self, files=None, extra_locations=""):
        n = Nginx(self.tmp, files, extra_locations)
        self.addCleanup(n.stop)
        n.start()
        return n

    def with_admin(self, doc):
        """Adds an [admin] table on a free loopback port (self.admin_port) to `doc`."""
        self.admin_port = free_port()
        doc["admin"] = {"address": "%s:%d" % (LOOPBACK, self.admin_port)}
        return doc

    def metrics(self):
        """The samples of sluice's /metrics (see with_admin)."""
        status, ctype, body = admin_get(self.admin_port, "/metrics")
        self.assertEqual(status, 200, body)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        return parse_metrics(body)

    def sluice(self, upstreams, routes=None, listeners=1, **sections):
        """Starts sluice on `base_config(...)`; stopping it cleanly is a
        cleanup step that fails the test if the exit is not clean."""
        s = Sluice(self.tmp, base_config(upstreams, routes, **sections), listeners)
        s.start()
        self.addCleanup(self._stop_sluice, s)
        return s

    def _stop_sluice(self, s):
        for c in self._clients:
            c.close()
        for b in self._backends:
            b.closing.set()
            b.resume_body.set()
        s.stop()

    def client(self, port, **kw):
        c = Client(port, **kw)
        self._clients.append(c)
        self.addCleanup(c.close)
        return c

    def get(self, port, target="/", **kw):
        """One request on a fresh connection; returns the response."""
        c = self.client(port)
        return c.roundtrip(target=target, **kw)

    # -- assertions

    def assertErrorResponse(self, resp, status, closes=None):
        """An error made by sluice: the status, a small plain-text body framed
        by Content-Length, and Connection: close when `closes` is True."""
        self.assertEqual(resp.status, status, resp)
        self.assertTrue(resp.complete, resp)
        ctype = resp.header("content-type", "")
        self.assertTrue(ctype.lower().startswith("text/plain"),
                        "error response without a text/plain body: %r" % resp)
        self.assertTrue(0 < resp.body_len <= 1024, "error body not small plain text: %r" % resp)
        if closes is True:
            self.assertTrue(resp.closes(), "expected Connection: close on %r" % resp)

    def assertClosed(self, client, timeout=5.0, allow_extra=False):
        closed, extra = client.wait_closed(timeout * SLOW)
        self.assertTrue(closed, "connection still open after %.1fs (got %r)" % (timeout, extra))
        if not allow_extra:
            self.assertEqual(extra, b"", "bytes after the response before close")

    def assertConnectionConsistent(self, client, resp, port_target="/"):
        """A response without Connection: close leaves a usable connection; one
        with it is followed by a close."""
        if resp.closes():
            self.assertClosed(client)
        else:
            again = client.roundtrip(target=port_target)
            self.assertNotEqual(again.status, 0)

