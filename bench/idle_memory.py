#!/usr/bin/python3
"""Idle memory per connection in Sluice, plain and TLS.

    python3 bench/idle_memory.py [--connections N] [--sluice PATH] [--no-write]

For each kind of connection it starts a fresh Sluice (one worker, access log
off, a plain and a TLS listener on 127.0.0.1, idle and header timeouts 1h) in front of a
small Python backend, warms it up (--warmup connections opened, used and
closed), opens --baseline connections and keeps them, reads Sluice's VmRSS
from /proc/PID/status, opens N more connections of that kind -- each one
completes its TLS handshake (TLS 1.3, ECDSA P-256 certificate made at run
time with the openssl CLI), sends one keep-alive GET and reads the whole
response, then stays open and silent -- and reads VmRSS again. The figure is
(VmRSS after - VmRSS before) / N: the gateway's own memory for each further
idle, fully set-up connection. The client's memory (this script) does not
count, nor does the kernel's socket memory (not part of any RSS). For
comparison it also measures connections that are only accepted (plain) or
only through the handshake (TLS), with no request.

A fresh Sluice per kind, so that memory freed by one kind cannot be reused by
the next and make it look cheaper; connections held open before the baseline,
so that memory freed by the warm-up cannot either. The targets (DESIGN.md):
at most 2 KiB per idle plain connection, 12 KiB per idle TLS one.

It raises its own RLIMIT_NOFILE (it needs N + --baseline client sockets) and
Sluice's (set in the child before exec: 65536, or the hard limit when it may
not raise that). Everything is on loopback,
in one temporary directory, bounded in time (--deadline, default 240 s); every
process it starts is stopped on exit. The result is written as the
"idle-memory" section of bench/RESULTS-tls.md (see results_section.py).
"""
import argparse
import concurrent.futures
import datetime
import http.server
import os
import platform
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import results_section  # noqa: E402  (bench/results_section.py)

BODY = b"idle memory probe\n"
MAX_CONNECTIONS = 50000
TARGET_KIB = {"plain": 2.0, "tls": 12.0}
# The two figures that count (idle after one request: fully set up), then the
# same without the request, which shows what the first request leaves behind.
PHASES = (
    {"name": "plain", "kind": "plain", "request": True, "label": "plain HTTP, after one request"},
    {"name": "tls", "kind": "tls", "request": True, "label": "TLS 1.3, after one request"},
    {"name": "plain-accepted", "kind": "plain", "request": False, "label": "plain HTTP, accepted only"},
    {"name": "tls-handshake", "kind": "tls", "request": False, "label": "TLS 1.3, handshake only"},
)


def log(msg):
    print(f"idle-memory: {msg}", file=sys.stderr, flush=True)


class Failure(Exception):
    pass


# ---- the backend: HTTP/1.1 keep-alive, a fixed small body

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802  (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


def start_backend():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---- Sluice

CONFIG = """[server]
workers = 1

[log]
access = "off"
level = "warn"

[limits]
max_connections = {max_conns}

[timeouts]
idle = "1h"
header = "1h"   # the comparison rows never send a request: opening 10,000 of them can outlast 10 s

[[listener]]
address = "127.0.0.1:{plain_port}"

[[listener]]
address = "127.0.0.1:{tls_port}"

[listener.tls]
certificates = [ {{ cert = "{cert}", key = "{key}" }} ]

[[route]]
path_prefix = "/"
upstream = "backend"

[[upstream]]
name = "backend"
servers = ["127.0.0.1:{backend_port}"]
"""


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Failure(f"no VmRSS for pid {pid}")


def open_fds(pid):
    """Descriptors the process holds, each descriptor table counted once:
    Sluice's worker threads have tables of their own, which /proc/PID/fd (the
    main thread's) does not show, and threads that share a table list the
    same descriptors."""
    tables = set()
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        d = f"/proc/{pid}/task/{tid}/fd"
        entries = []
        try:
            for fd in os.listdir(d):
                try:
                    entries.append((fd, os.readlink(f"{d}/{fd}")))
                except OSError:
                    pass  # closed meanwhile
        except OSError:
            continue  # the thread is gone
        table = frozenset(entries)
        if table not in tables:
            tables.add(table)
            total += len(entries)
    return total


def settled(read, seconds=1.0):
    """read() (a VmRSS) once it has stopped moving (at most a few seconds)."""
    time.sleep(seconds)
    last = read()
    for _ in range(10):
        time.sleep(0.3)
        now = read()
        if now == last:
            return now
        last = now
    return last


def wait_port(name, port, end, check):
    """Returns once 127.0.0.1:PORT accepts a connection. check() runs before
    each try and raises Failure when the server NAME is gone; Failure too once
    time.monotonic() passes end, which the callers set at most 10 s ahead."""
    while True:
        check()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > end:
                raise Failure(f"{name} did not listen on 127.0.0.1:{port} within 10 s")
            time.sleep(0.1)


class Sluice:
    def __init__(self, binary, config_path, workdir, nofile, ports):
        self.log_path = os.path.join(workdir, "sluice.log")
        self.log_file = open(self.log_path, "wb")

        def limits():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen([binary, "-c", config_path], stdout=self.log_file,
                                     stderr=subprocess.STDOUT, preexec_fn=limits, cwd=workdir)
        deadline = time.monotonic() + 10
        for port in ports:
            wait_port("sluice", port, deadline, self.check_running)

    def check_running(self):
        if self.proc.poll() is not None:
            raise Failure(f"sluice exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self):
        with open(self.log_path, "rb") as f:
            return b"".join(f.readlines()[-20:]).decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log(f"sluice pid {self.proc.pid} did not stop on SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait(5)
        self.log_file.close()


# ---- the client side

def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the run's own self-signed certificate
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: idle-memory\r\n\r\n"


def read_response(sock):
    """Reads one response with a Content-Length body; returns its status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise Failure("connection closed before the response head")
        data += chunk
        if len(data) > 65536:
            raise Failure("response head too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"connection" and b"close" in value.lower():
            raise Failure("the gateway answered Connection: close")
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise Failure("connection closed in the response body")
        rest += chunk
    return status


def open_connection(port, ctx, request=True):
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        if request:
            sock.sendall(REQUEST)
            status = read_response(sock)
            if status != 200:
                raise Failure(f"status {status}")
        return sock
    except BaseException:
        sock.close()
        raise


def open_many(n, port, ctx, threads, deadline, request=True):
    socks = []
    errors = []
    lock = threading.Lock()
    per_thread = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

    def work(count):
        for _ in range(count):
            if errors or time.monotonic() > deadline:
                return
            try:
                s = open_connection(port, ctx, request)
            except (OSError, Failure, ValueError) as e:
                with lock:
                    errors.append(repr(e))
                return
            with lock:
                socks.append(s)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, per_thread))
    return socks, errors


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# ---- one measurement

def measure(phase, args, workdir, config_path, nofile, ports, port, deadline):
    kind = phase["kind"]
    ctx = client_context() if kind == "tls" else None
    sluice = Sluice(args.sluice, config_path, workdir, nofile, ports)
    socks = []
    try:
        # Warm up: lazy setup (OpenSSL, the block pool, the upstream pool)
        # belongs in the baseline.
        warm, errors = open_many(args.warmup, port, ctx, min(args.threads, args.warmup), deadline)
        close_all(warm)
        if errors:
            raise Failure(f"{kind}: warm-up failed: {errors[0]}")
        # The baseline is taken with --baseline connections of this kind
        # already open and idle: memory the warm-up freed is reused by them,
        # not by the measured ones, so the figure is the cost of one more
        # idle connection.
        held, errors = open_many(args.baseline, port, ctx, args.threads, deadline, phase["request"])
        socks.extend(held)
        if errors or len(held) != args.baseline:
            raise Failure(f"{phase['name']}: opening the baseline connections failed: {errors[:1]}")
        time.sleep(1.0)
        fds_before = open_fds(sluice.proc.pid)
        before = settled(lambda: rss_kib(sluice.proc.pid))
        t0 = time.monotonic()
        measured, errors = open_many(args.connections, port, ctx, args.threads, deadline, phase["request"])
        socks.extend(measured)
        took = time.monotonic() - t0
        if errors:
            raise Failure(f"{phase['name']}: {len(errors)} connection(s) failed after {len(measured)} opened; first: {errors[0]}")
        if len(measured) != args.connections:
            raise Failure(f"{phase['name']}: only {len(measured)} of {args.connections} connections opened before the deadline")
        if not phase["request"]:
            # Nothing answered: wait until the gateway has accepted them all.
            wait_until = min(deadline, time.monotonic() + 15)
            while open_fds(sluice.proc.pid) - fds_before < args.connections and time.monotonic() < wait_until:
                time.sleep(0.2)
        after = settled(lambda: rss_kib(sluice.proc.pid))
        fds_after = open_fds(sluice.proc.pid)
        if not sluice.alive():
            raise Failure(f"sluice died:\n{sluice.tail()}")
        # Every connection must still be open on the gateway's side.
        if fds_after - fds_before < args.connections:
            raise Failure(f"{phase['name']}: sluice holds {fds_after - fds_before} more fds, not {args.connections}")
        per_conn = (after - before) / args.connections
        log(f"{phase['name']}: {args.connections} connections in {took:.1f}s; VmRSS {before} -> {after} KiB; "
            f"{per_conn:.2f} KiB per idle connection")
        return {**phase, "before": before, "after": after, "per_conn": per_conn,
                "fds": fds_after - fds_before, "seconds": took}
    finally:
        close_all(socks)
        sluice.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", "-n", type=int, default=10000,
                    help=f"idle connections per kind (default 10000, at most {MAX_CONNECTIONS})")
    ap.add_argument("--sluice", default=os.path.join(ROOT, "build", "sluice"),
                    help="the Sluice binary (default build/sluice)")
    ap.add_argument("--threads", type=int, default=16, help="client threads opening connections (default 16)")
    ap.add_argument("--warmup", type=int, default=200, help="connections opened and closed before the baseline (default 200)")
    ap.add_argument("--baseline", type=int, default=1000,
                    help="connections opened and kept before the baseline is read (default 1000)")
    ap.add_argument("--deadline", type=float, default=240, help="seconds the whole run may take (default 240)")
    ap.add_argument("--results", default=os.path.join(HERE, "RESULTS-tls.md"),
                    help="results file whose idle-memory section is replaced (default bench/RESULTS-tls.md)")
    ap.add_argument("--no-write", action="store_true", help="print the result only")
    ap.add_argument("--note", default="", help="a sentence for the report")
    args = ap.parse_args()
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        ap.error(f"--connections must be in 1..{MAX_CONNECTIONS}")
    if not 1 <= args.threads <= 256 or not 1 <= args.warmup <= 10000 or not 0 <= args.baseline <= 10000:
        ap.error("--threads must be in 1..256, --warmup in 1..10000, --baseline in 0..10000")
    args.sluice = os.path.abspath(args.sluice)
    if not os.access(args.sluice, os.X_OK):
        ap.error(f"{args.sluice}: no Sluice binary (make build, or --sluice PATH)")
    openssl = shutil.which("openssl")
    if not openssl:
        ap.error("openssl not found (apt-get install openssl)")

    deadline = time.monotonic() + args.deadline
    # File descriptors: N client sockets here, N accepted ones in Sluice, plus
    # slack. Raising the hard limit needs CAP_SYS_RESOURCE, which a container
    # may withhold even from root: then both stay within the hard limit.
    need = args.connections + args.baseline + args.warmup + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(need, hard)))
        except (ValueError, OSError) as e:
            sys.exit(f"idle-memory: cannot raise RLIMIT_NOFILE to {need} (hard limit {hard}: {e}); "
                     "run as root or use fewer --connections")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    sluice_nofile = max(65536, 2 * need)
    try:
        # Try in the parent first, so the child's preexec_fn cannot fail.
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, max(hard, sluice_nofile)))
    except (ValueError, OSError):
        sluice_nofile = hard
    if sluice_nofile < need:
        sys.exit(f"idle-memory: Sluice would get RLIMIT_NOFILE {sluice_nofile}, fewer than {need}; use fewer --connections")

    load_before = open("/proc/loadavg").read().split()[:3]
    started_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    workdir = tempfile.mkdtemp(prefix="sluice-idle-memory.")
    backend = None
    try:
        cert = os.path.join(workdir, "cert.pem")
        key = os.path.join(workdir, "key.pem")
        r = subprocess.run([openssl, "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-noenc", "-sha256", "-days", "2",
                            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                            "-keyout", key, "-out", cert], capture_output=True, timeout=30)
        if r.returncode != 0:
            raise Failure("openssl req failed:\n" + r.stderr.decode(errors="replace"))
        backend = start_backend()
        plain_port, tls_port = free_ports(2)
        config_path = os.path.join(workdir, "sluice.toml")
        with open(config_path, "w") as f:
            f.write(CONFIG.format(max_conns=2 * need, plain_port=plain_port, tls_port=tls_port,
                                  cert=cert, key=key, backend_port=backend.server_address[1]))
        results = []
        for phase in PHASES:
            port = plain_port if phase["kind"] == "plain" else tls_port
            results.append(measure(phase, args, workdir, config_path, sluice_nofile,
                                   (plain_port, tls_port), port, deadline))
    except Failure as e:
        sys.exit(f"idle-memory: {e}")
    finally:
        if backend is not None:
            backend.shutdown()
            backend.server_close()
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = open("/proc/loadavg").read().split()[:3]

    version = subprocess.run([args.sluice, "--version"], capture_output=True, timeout=5).stdout.decode().strip()
    tree = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True).stdout.decode().strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"], capture_output=True).stdout.strip()
    tree = (tree or "no commit yet") + (" + uncommitted changes" if dirty else "")

    rows = []
    verdicts = []
    for r in results:
        target = TARGET_KIB[r["kind"]]
        ok = r["per_conn"] <= target
        if r["request"]:
            rows.append(f"| {r['label']} | {args.connections} | {r['before']} KiB | {r['after']} KiB | "
                        f"**{r['per_conn']:.2f} KiB** | ≤ {target:g} KiB | {'met' if ok else 'not met'} |")
            verdicts.append(f"{r['label']}: {r['per_conn']:.2f} KiB per idle connection, target {target:g} KiB: "
                            f"{'met' if ok else 'NOT met'}")
        else:
            rows.append(f"| {r['label']} (for comparison) | {args.connections} | {r['before']} KiB | {r['after']} KiB | "
                        f"{r['per_conn']:.2f} KiB | | |")
    shown_cmd = "python3 bench/idle_memory.py"
    if args.connections != 10000:
        shown_cmd += f" --connections {args.connections}"
    if args.sluice != os.path.join(ROOT, "build", "sluice"):
        shown_cmd += f" --sluice {os.path.relpath(args.sluice, ROOT) if args.sluice.startswith(ROOT) else args.sluice}"
    text = "\n".join([
        "## Idle memory per connection",
        "",
        f"Written by `bench/idle_memory.py` on {started_at}.",
        "",
        "| Idle connections | Count | Sluice VmRSS before | after | Per idle connection | Target (DESIGN.md) | |",
        "|---|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        "Per idle connection = (VmRSS after − VmRSS before) / count, Sluice's own VmRSS from /proc/PID/status;",
        "the client's memory and the kernel's socket buffers are not in it. Each connection was fully set up",
        "before it went idle: TCP connect, for TLS the full handshake (TLS 1.3, ECDSA P-256, X25519, session",
        "tickets on as in the default configuration), then one keep-alive `GET /` proxied to the backend and",
        "its whole response read; then nothing more was sent. The two rows \"for comparison\" leave out the request",
        "(and, for plain HTTP, everything after the accept): the difference is what a connection keeps after its",
        "first request. Every connection was still open on the gateway when VmRSS was read (Sluice held that",
        "many more file descriptors).",
        "",
        "Setup: a fresh Sluice for each kind (so memory freed by one kind is not reused by the other), one",
        "worker, access log off, idle and header timeouts 1h, a plain and a TLS listener on 127.0.0.1, RLIMIT_NOFILE",
        f"{sluice_nofile}; upstream: a Python `http.server` backend in the script. Before the baseline,",
        f"{args.warmup} connections of the same kind are opened, used and closed (warm-up: one-off setup such as",
        f"OpenSSL's and the pools'), then {args.baseline} more are opened and kept idle, so that memory freed by",
        "the warm-up is reused by them and not by the measured ones: the figure is the cost of each further idle",
        "connection. The client is the script itself",
        f"({args.threads} threads, Python `ssl`).",
        "",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, kernel {platform.system()} {platform.release()};"
        f" load average before {' '.join(load_before)}, after {' '.join(load_after)}",
        f"- Versions: {version}, tree {tree}; Python {platform.python_version()}, {ssl.OPENSSL_VERSION}",
        *([f"- Note: {args.note}"] if args.note else []),
        "",
        "Command:",
        "",
        "```sh",
        shown_cmd,
        "```",
    ])
    print(text)
    for v in verdicts:
        log(v)
    if not args.no_write:
        results_section.write_section(args.results, "idle-memory", text)
        log(f"written to {args.results} (section \"idle-memory\")")


if __name__ == "__main__":
    main()
