#!/usr/bin/python3
"""Gateway memory per idle WebSocket connection: Sluice and nginx.

    python3 bench/ws_idle.py [--connections N] [--sluice PATH] [--targets "sluice nginx"]
                             [--tools DIR] [--out FILE]

For each gateway it starts a fresh ws_echo upstream (pinned to --load-cpu)
and a fresh gateway (one worker, pinned to --proxy-cpu; Sluice on
bench/sluice-ws.toml.in, nginx on bench/nginx-ws-proxy.conf.in), then drives
ws_load in idle mode:

  1. warm-up: --warmup WebSocket connections opened, one echo each, closed
     (one-off setup: OpenSSL, pools, free lists);
  2. --baseline connections opened, one echo each, kept open, so that memory
     the warm-up freed is reused by them and not by the measured ones;
  3. the gateway's VmRSS is read (before);
  4. N more connections are opened through the gateway to the echo upstream
     and left silent: VmRSS read again (after open);
  5. one message is echoed on each of the N (ws_load checks every byte):
     VmRSS read once more (after one echo each), and the gateway must hold
     2 N more file descriptors than before (client and upstream side);
  6. everything is closed with close handshakes (1000), which must all end.

The figures are (after - before) / N. For nginx, VmRSS is the master's and
the worker's together. The client's and the upstream's memory are not in it,
nor is the kernel's socket memory.

File descriptors: the gateway holds two per connection. When its
RLIMIT_NOFILE hard limit (which this script may not be able to raise) is
too low for N + --baseline connections, N is lowered to what fits, in
hundreds, and the output says so. Everything runs on 127.0.0.1 (the client
may spread its source addresses over 127.0.0.1..K with --sources K), in one
temporary directory, bounded by --deadline; every process it starts is
stopped on exit. Prints a markdown table; --out FILE also writes one
key=value line per gateway (for bench/ws.sh).
"""
import argparse
import os
import queue
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from idle_memory import Failure, free_ports, open_fds, rss_kib, settled, wait_port  # noqa: E402  (bench/idle_memory.py)

TARGET_KIB = 4.0          # the target for Sluice
MAX_CONNECTIONS = 50000
FD_SLACK = 64             # listeners, loop, log, stdio


def log(msg):
    print(f"ws-idle: {msg}", file=sys.stderr, flush=True)


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self, cap):
        left = self.end - time.monotonic()
        if left <= 0:
            raise Failure("the run's --deadline passed")
        return min(left, cap)


# ---- processes

class Proc:
    """A pinned child with its output in workdir/NAME.log, stopped by pid."""

    def __init__(self, name, cpu, argv, workdir, nofile, stdin=None, stdout=None):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log_file = open(self.log_path, "wb")

        def limits():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(["taskset", "-c", str(cpu), *argv], stdin=stdin,
                                     stdout=stdout if stdout is not None else self.log_file,
                                     stderr=self.log_file, preexec_fn=limits, cwd=workdir)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def tail(self):
        self.log_file.flush()
        with open(self.log_path, "rb") as f:
            return b"".join(f.readlines()[-20:]).decode(errors="replace")

    def children(self):
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def stop(self):
        if self.proc.poll() is None:
            kids = self.children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {self.pid}) did not stop on SIGTERM; killing it")
                for kid in kids:  # an nginx master killed outright leaves its worker
                    try:
                        os.kill(kid, signal.SIGKILL)
                    except OSError:
                        pass
                self.proc.kill()
                self.proc.wait(5)
        self.log_file.close()


def wait_ready(proc, port, deadline):
    def check():
        if not proc.alive():
            raise Failure(f"{proc.name} exited before listening on 127.0.0.1:{port}:\n{proc.tail()}")

    wait_port(proc.name, port, time.monotonic() + deadline.left(10), check)


class IdleClient:
    """ws_load --mode idle, driven over its stdin and stdout."""

    def __init__(self, name, args, port, count, workdir, nofile, deadline):
        argv = [args.tools_ws_load, "--port", str(port), "--mode", "idle", "--connections", str(count),
                "--size", "64", "--hold", str(int(args.deadline) + 60), "--sources", str(args.sources),
                "--connect-timeout", "60"]
        self.name = name
        self.proc = Proc(name, args.load_cpu, argv, workdir, nofile, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines = queue.Queue()
        self.deadline = deadline
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.proc.stdout:
            self.lines.put(raw.decode(errors="replace").strip())
        self.lines.put(None)

    def expect(self, prefix, cap=90):
        try:
            line = self.lines.get(timeout=self.deadline.left(cap))
        except queue.Empty:
            raise Failure(f"{self.name}: no '{prefix}' line from ws_load within {cap} s:\n{self.proc.tail()}")
        if line is None or not line.startswith(prefix):
            raise Failure(f"{self.name}: expected '{prefix}...', got {line!r}:\n{self.proc.tail()}")
        return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)

    def send(self, command):
        self.proc.proc.stdin.write((command + "\n").encode())
        self.proc.proc.stdin.flush()

    def opened(self, count):
        ready = self.expect("ready")
        if int(ready["opened"]) != count:
            raise Failure(f"{self.name}: opened {ready['opened']} of {count} WebSocket connections "
                          f"({ready['failed']} failed):\n{self.proc.tail()}")

    def check(self, count):
        self.send("check")
        checked = self.expect("checked")
        if int(checked["ok"]) != count or checked["errors"] != "0":
            raise Failure(f"{self.name}: echo check: {checked['ok']} of {count} good, errors {checked['errors']}:\n"
                          f"{self.proc.tail()}")

    def close(self):
        """Close handshakes on every connection; the result must show no error."""
        self.send("close")
        result = self.expect("result", cap=30)
        self.proc.proc.wait(self.deadline.left(15))
        if result["errors"] != "0":
            raise Failure(f"{self.name}: {result['errors']} errors while closing: {result}")

    def stop(self):
        try:
            self.proc.proc.stdin.close()
        except OSError:
            pass
        self.proc.stop()


# ---- gateways

def gateway_pids(gw):
    return [gw.pid, *gw.children()]


def gateway_rss(gw):
    return sum(rss_kib(p) for p in gateway_pids(gw))


def gateway_fds(gw):
    return sum(open_fds(p) for p in gateway_pids(gw))


def fill(template, out, **values):
    with open(os.path.join(HERE, template)) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    with open(out, "w") as f:
        f.write(text)


def start_gateway(target, args, workdir, port, echo_port, nofile, need_fds):
    if target == "sluice":
        conf = os.path.join(workdir, "sluice.toml")
        fill("sluice-ws.toml.in", conf, PORT=port, ECHO_PORT=echo_port, MAX_CONNECTIONS=max(100000, need_fds))
        return Proc("sluice", args.proxy_cpu, [args.sluice, "-c", conf], workdir, nofile)
    ndir = os.path.join(workdir, "nginx")
    os.makedirs(ndir, exist_ok=True)
    # Twice what the run holds: nginx counts its upstream side too and warns
    # ("not enough, reusing connections") near the end of its free list. The
    # array is allocated at start, before the baseline is read.
    fill("nginx-ws-proxy.conf.in", os.path.join(ndir, "nginx.conf"), DIR=ndir, PORT=port, ECHO_PORT=echo_port,
         WORKER_CONNECTIONS=2 * need_fds)
    return Proc("nginx", args.proxy_cpu, [args.nginx, "-p", ndir, "-e", os.path.join(ndir, "error.log"),
                                          "-c", os.path.join(ndir, "nginx.conf")], workdir, nofile)


def gateway_log_tail(workdir):
    text = []
    for name in ("sluice.log", "nginx.log", os.path.join("nginx", "error.log")):
        try:
            with open(os.path.join(workdir, name), "rb") as f:
                text += [line.decode(errors="replace") for line in f.readlines()[-10:]]
        except OSError:
            pass
    return "".join(text) or "(nothing)\n"


def measure(target, args, n, nofile, deadline):
    workdir = tempfile.mkdtemp(prefix=f"sluice-ws-idle-{target}.")
    procs, clients = [], []
    try:
        echo_port, port = free_ports(2)
        echo = Proc("echo", args.load_cpu, [args.tools_ws_echo, "--port", str(echo_port), "--deadline",
                                            str(int(args.deadline) + 60)], workdir, nofile)
        procs.append(echo)
        wait_ready(echo, echo_port, deadline)
        gw = start_gateway(target, args, workdir, port, echo_port, nofile, 2 * (n + args.baseline) + FD_SLACK)
        procs.insert(0, gw)
        wait_ready(gw, port, deadline)

        warm = IdleClient("warm-up", args, port, args.warmup, workdir, nofile, deadline)
        clients.append(warm)
        warm.opened(args.warmup)
        warm.check(args.warmup)
        warm.close()

        held = IdleClient("baseline", args, port, args.baseline, workdir, nofile, deadline)
        clients.append(held)
        held.opened(args.baseline)
        held.check(args.baseline)

        fds_before = gateway_fds(gw)
        before = settled(lambda: gateway_rss(gw))
        t0 = time.monotonic()
        measured = IdleClient("measured", args, port, n, workdir, nofile, deadline)
        clients.append(measured)
        measured.opened(n)
        took = time.monotonic() - t0
        after_open = settled(lambda: gateway_rss(gw))
        measured.check(n)
        after_echo = settled(lambda: gateway_rss(gw))
        fds = gateway_fds(gw) - fds_before
        if not gw.alive():
            raise Failure(f"{target} died:\n{gw.tail()}")
        if fds < 2 * n:
            raise Failure(f"{target} holds {fds} more file descriptors, not 2 x {n}: connections were lost")
        measured.close()
        held.close()
        per_open = (after_open - before) / n
        per_echo = (after_echo - before) / n
        log(f"{target}: {n} idle WebSocket connections opened in {took:.1f}s; VmRSS {before} -> {after_open} "
            f"(open) -> {after_echo} KiB (one echo each): {per_open:.2f} / {per_echo:.2f} KiB per connection")
        return {"target": target, "connections": n, "before": before, "after_open": after_open,
                "after_echo": after_echo, "per_conn_open": round(per_open, 3), "per_conn_echo": round(per_echo, 3),
                "fds": fds, "open_seconds": round(took, 2)}
    except Failure as e:
        raise Failure(f"{target}: {e}\n{target}'s log ends:\n{gateway_log_tail(workdir)}") from None
    finally:
        for c in clients:
            c.stop()
        for p in procs:
            p.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", "-n", type=int, default=10000, help="idle connections measured (default 10000)")
    ap.add_argument("--baseline", type=int, default=200, help="connections held open before the baseline (default 200)")
    ap.add_argument("--warmup", type=int, default=200, help="connections opened and closed first (default 200)")
    ap.add_argument("--targets", default="sluice nginx", help='gateways to measure (default "sluice nginx")')
    ap.add_argument("--sluice", default=os.path.join(ROOT, "build", "sluice"), help="Sluice binary (default build/sluice)")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx", help="nginx binary")
    ap.add_argument("--tools", default=os.path.join(ROOT, "build", "bench"),
                    help="directory of ws_load and ws_echo (default build/bench)")
    ap.add_argument("--proxy-cpu", type=int, default=0, help="CPU of the gateway (default 0)")
    ap.add_argument("--load-cpu", type=int, default=1, help="CPU of ws_load and ws_echo (default 1)")
    ap.add_argument("--sources", type=int, default=1, help="spread client source addresses over 127.0.0.1..K")
    ap.add_argument("--deadline", type=float, default=300, help="seconds the whole run may take (default 300)")
    ap.add_argument("--out", help="also write one key=value line per gateway here")
    args = ap.parse_args()
    targets = args.targets.split()
    if not targets or any(t not in ("sluice", "nginx") for t in targets):
        ap.error("--targets: a list of sluice and nginx")
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        ap.error(f"--connections must be in 1..{MAX_CONNECTIONS}")
    if not 1 <= args.warmup <= 10000 or not 1 <= args.baseline <= 10000 or not 1 <= args.sources <= 254:
        ap.error("--warmup and --baseline must be in 1..10000, --sources in 1..254")
    args.tools_ws_load = os.path.join(os.path.abspath(args.tools), "ws_load")
    args.tools_ws_echo = os.path.join(os.path.abspath(args.tools), "ws_echo")
    for tool in (args.tools_ws_load, args.tools_ws_echo):
        if not os.access(tool, os.X_OK):
            ap.error(f"{tool}: missing (cmake --build build --target ws_load ws_echo, or run bench/ws.sh)")
    args.sluice = os.path.abspath(args.sluice)
    if "sluice" in targets and not os.access(args.sluice, os.X_OK):
        ap.error(f"{args.sluice}: no Sluice binary (make build, or --sluice PATH)")
    if "nginx" in targets and not os.access(args.nginx, os.X_OK):
        ap.error("nginx not found (apt-get install nginx-light)")
    if not shutil.which("taskset"):
        ap.error("taskset not found (util-linux)")

    # Every child gets the hard limit as its soft one; raise the hard limit
    # first where this process may (CAP_SYS_RESOURCE; a container can deny it
    # even to root).
    want = 2 * (args.connections + args.baseline) + FD_SLACK
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, want))
        except (ValueError, OSError):
            pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = hard
    n = args.connections
    note = ""
    if 2 * (n + args.baseline) + FD_SLACK > nofile:
        n = ((nofile - FD_SLACK) // 2 - args.baseline) // 100 * 100
        if n < 100:
            sys.exit(f"ws-idle: RLIMIT_NOFILE hard limit {nofile} leaves no room for idle connections")
        note = (f"{n} connections, not {args.connections}: the gateway holds two descriptors per connection "
                f"(client and upstream) and RLIMIT_NOFILE's hard limit here is {nofile}, which this process "
                f"may not raise; {args.baseline} baseline connections + {n} measured = "
                f"{2 * (n + args.baseline)} descriptors")
        log(f"note: {note}")

    deadline = Deadline(args.deadline)
    results = []
    try:
        for target in targets:
            results.append(measure(target, args, n, nofile, deadline))
    except Failure as e:
        sys.exit(f"ws-idle: {e}")

    print("| Gateway | Idle WebSocket connections | VmRSS before | after open | after one echo each "
          "| Per idle connection: open | after one echo each |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        name = "Sluice" if r["target"] == "sluice" else "nginx"
        print(f"| {name} | {r['connections']} | {r['before']} KiB | {r['after_open']} KiB | {r['after_echo']} KiB "
              f"| {r['per_conn_open']:.2f} KiB | **{r['per_conn_echo']:.2f} KiB** |")
    if note:
        print(f"\nNote: {note}.")
    for r in results:
        if r["target"] == "sluice":
            ok = max(r["per_conn_open"], r["per_conn_echo"]) <= TARGET_KIB
            log(f"Sluice: {r['per_conn_echo']:.2f} KiB per idle WebSocket connection (target {TARGET_KIB:g} KiB): "
                f"{'met' if ok else 'NOT met'}")
    if args.out:
        with open(args.out, "w") as f:
            for r in results:
                f.write(" ".join(f"{k}={v}" for k, v in r.items()) + "\n")
            if note:
                f.write(f"note {note}\n")


if __name__ == "__main__":
    main()
