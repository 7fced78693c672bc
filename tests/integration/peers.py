"""Peers for sluice to talk to: a controllable Python origin server
(Backend, on ThreadedServer, which wspeers.RawWsUpstream shares), a port
where connects time out (Blackhole), and a real nginx.

Backend threads record everything they receive and misbehave on demand;
every wait is bounded and stop() releases anything a handler is holding, so
a teardown never hangs.
"""

import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

from httpwire import (IO_TIMEOUT, LOOPBACK, ConnectionClosed, Headers, ProtocolError,
                      Stream, _BodySink, _read_chunked, _read_head_lines, _split_header,
                      chunked_body, free_port, port_accepts)

NGINX_BIN = "/usr/sbin/nginx"
NGINX_ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
BODY_CAP = 1 << 20         # bytes of a request body kept (the hash covers all)
ACCEPT_POLL = 0.1          # how often an accept loop looks at its stop flag


# ---------------------------------------------------------------------------
# backend (origin server) side

class BackendRequest:
    def __init__(self):
        self.conn = None
        self.index = 0             # 0-based position on its connection
        self.method = ""
        self.target = ""
        self.version = ""
        self.headers = Headers()
        self.raw_head = b""
        self.body = b""            # first BODY_CAP bytes
        self.body_len = 0
        self.body_sha256 = ""
        self.chunked = False
        self.trailers = []
        self.complete = False

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def __repr__(self):
        return "<BackendRequest conn=%s #%d %s %s %r>" % (
            self.conn.id if self.conn else "?", self.index, self.method, self.target,
            self.headers.items)


class ServerConn:
    """One connection a ThreadedServer accepted. close() and reset() each
    take effect once, whichever comes first."""

    def __init__(self, sock, cid):
        self.sock = sock
        self.id = cid
        self.closed = False
        self.errors = []

    def close(self):
        if not self.closed:
            self.closed = True
            self._close_socket()

    def reset(self):
        """Closes with RST (SO_LINGER 0)."""
        if not self.closed:
            self.closed = True
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            self._close_socket()

    def _close_socket(self):
        try:
            self.sock.close()
        except OSError:
            pass


class BackendConn(ServerConn):
    def __init__(self, backend, sock, cid):
        super().__init__(sock, cid)
        self.backend = backend
        self.stream = Stream(sock)
        self.requests = []

    @property
    def raw(self):
        return bytes(self.stream.raw)

    def send(self, data):
        """Sends, returning False if the peer has gone (that is often the point)."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False



def send_response(conn, status=200, body=b"", headers=(), reason=None, chunked=False,
                  trailers=(), head_only=False, version="1.1"):
    """Writes a well-formed response. With chunked=True the body is sent as
    two chunks (when long enough) plus `trailers`."""
    reasons = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content",
               304: "Not Modified", 404: "Not Found", 500: "Internal Server Error"}
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    names = {k.lower() for k, _ in items}
    lines = ["HTTP/%s %d %s" % (version, status, reason or reasons.get(status, "Whatever"))]
    for k, v in items:
        lines.append("%s: %s" % (k, v))
    bodyless = status in (204, 304) or 100 <= status < 200
    if not bodyless and "content-length" not in names and "transfer-encoding" not in names:
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append("Content-Length: %d" % len(body))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if head_only or bodyless:
        return conn.send(head)
    if chunked:
        half = len(body) // 2
        return conn.send(head + chunked_body([body[:half], body[half:]], trailers))
    return conn.send(head + body)


def default_handler(backend, conn, req):
    """200 with identifying headers. The body echoes the request body when
    there is one, otherwise names the backend, connection and target."""
    if req.body_len:
        body = req.body
    else:
        body = ("%s conn=%d %s %s\n" % (backend.name, conn.id, req.method, req.target)).encode()
    headers = [("Content-Type", "text/plain"), ("X-Backend", backend.name),
               ("X-Backend-Conn", str(conn.id)), ("X-Request-Index", str(req.index)),
               ("X-Target", req.target), ("X-Body-Sha256", req.body_sha256),
               ("X-Body-Length", str(req.body_len))]
    send_response(conn, 200, body, headers, head_only=req.method == "HEAD")


class ThreadedServer:
    """A listening socket on 127.0.0.1:<ephemeral port> with one thread per
    accepted connection: the scaffolding Backend and wspeers.RawWsUpstream
    share. The port is bound at construction and listens from start().

    A subclass gives `_make_conn(sock, cid)`, which sets the socket up and
    returns the connection (a ServerConn), and
    `_serve(conn)`, which runs on that connection's own thread. stop() sets
    `closing`, shuts every connection down both ways (which wakes a thread
    blocked in recv or send) and joins every thread, each for at most 5 s.
    """

    def __init__(self, name, host=LOOPBACK, port=0):
        self.name = name
        self.listen_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listen_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listen_sock.bind((host, port))
        self.listen_sock.settimeout(ACCEPT_POLL)
        self.port = self.listen_sock.getsockname()[1]
        self.addr = "%s:%d" % (host, self.port)
        self.cond = threading.Condition()
        self.conns = []
        self.closing = threading.Event()
        self.threads = []
        self.started = False

    def start(self):
        if self.started:
            return self
        self.started = True
        self.listen_sock.listen(128)
        t = threading.Thread(target=self._accept_loop, name="accept-" + self.name, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        """Returns the connections it shut down, for a subclass to finish."""
        self.closing.set()
        try:
            self.listen_sock.close()
        except OSError:
            pass
        with self.cond:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:      # a list: threads appended meanwhile are joined too
            t.join(timeout=5)
        return conns

    @property
    def conn_count(self):
        with self.cond:
            return len(self.conns)

    def wait_conns(self, n, timeout=IO_TIMEOUT):
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.conns) >= n, timeout):
                raise AssertionError("%s: expected %d connections, got %d" % (
                    self.name, n, len(self.conns)))
            return list(self.conns)

    def _accept_loop(self):
        cid = 0
        while not self.closing.is_set():
            try:
                sock, _ = self.listen_sock.accept()
            except socket.timeout:
                continue
            except OSError:         # closed by stop()
                return
            conn = self._make_conn(sock, cid)
            cid += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                 name="%s-conn%d" % (self.name, conn.id))
            with self.cond:
                self.conns.append(conn)
                self.threads.append(t)
                self.cond.notify_all()
            t.start()

    def _make_conn(self, sock, cid):
        raise NotImplementedError

    def _serve(self, conn):
        raise NotImplementedError


class Backend(ThreadedServer):
    """A threaded HTTP/1.1 origin on 127.0.0.1:<ephemeral port>.

    The port is bound at construction but only listens after start(), so an
    unstarted Backend is a port that refuses connections (and can later start
    listening to show whether anyone still tries it).

    `host` and `port` choose the address (any 127.0.0.0/8 address is
    loopback; port 0: an ephemeral one).

    `handler(backend, conn, req)` answers each complete request; it may send
    anything, reset or close `conn`, or wait on an Event via `backend.hold`.
    Requests are recorded in `requests` (all) and `conn.requests`.
    """

    def __init__(self, name="backend", handler=None, auto_continue=True, host=LOOPBACK, port=0):
        super().__init__(name, host, port)
        self.handler = handler or default_handler
        self.auto_continue = auto_continue
        self.requests = []
        self.heads = []              # every request head seen, complete or not
        self.request_started = threading.Event()   # set on the first head
        # Request-body flow control for backpressure tests: once a body has
        # `pause_body_at` bytes read, reading waits for `resume_body`.
        self.pause_body_at = None
        self.resume_body = threading.Event()
        self.body_progress = 0

    # -- life cycle

    def stop(self):
        self.resume_body.set()
        for c in super().stop():
            c.close()

    def hold(self, event, timeout=60):
        """Waits for `event`, or for the backend to stop (teardown never hangs)."""
        deadline = time.monotonic() + timeout
        while not event.is_set() and not self.closing.is_set():
            if time.monotonic() >= deadline:
                return False
            event.wait(0.05)
        return event.is_set()

    # -- observation

    def wait_requests(self, n, timeout=IO_TIMEOUT):
        """Waits until `n` complete requests were recorded; returns them."""
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.requests) >= n, timeout)
            if not ok:
                raise AssertionError("%s: expected %d requests, got %d: %r" % (
                    self.name, n, len(self.requests), self.requests))
            return list(self.requests)

    @property
    def request_count(self):
        with self.cond:
            return len(self.requests)

    def raw_bytes(self):
        """Everything every connection received, concatenated."""
        with self.cond:
            return b"".join(c.raw for c in self.conns)

    def targets(self):
        with self.cond:
            return [r.target for r in self.requests]

    # -- serving

    def _make_conn(self, sock, cid):
        sock.settimeout(30.0)
        return BackendConn(self, sock, cid)

    def _serve(self, conn):
        try:
            for index in range(100000):
                if conn.closed or self.closing.is_set():
                    break
                req = self._read_request(conn, index)
                if req is None:
                    break
                self.handler(self, conn, req)
        except (OSError, ConnectionClosed, ProtocolError) as e:
            conn.errors.append(repr(e))
        finally:
            conn.close()
            with self.cond:
                self.cond.notify_all()

    def _read_request(self, conn, index):
        try:
            start, lines, raw = _read_head_lines(conn.stream, True)
        except ConnectionClosed as e:
            if conn.stream.raw and conn.stream.buf:
                conn.errors.append(str(e))
            return None
        req = BackendRequest()
        req.conn = conn
        req.index = index
        req.raw_head = raw
        parts = start.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3:
            raise ProtocolError("bad request line %r" % start)
        req.method, req.target, req.version = parts
        req.headers = Headers(_split_header(l) for l in lines)
        with self.cond:
            self.heads.append(req)
            self.cond.notify_all()
        self.request_started.set()
        if self.auto_continue and "100-continue" in req.headers.tokens("expect"):
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        sink = _BodySink(BODY_CAP)
        sink.progress_cb = self._on_body_progress
        self.body_progress = 0
        te = req.headers.tokens("transfer-encoding")
        if te:
            req.chunked = True
            complete, req.trailers = _read_chunked(conn.stream, sink, BODY_CAP)
            if not complete:
                raise ConnectionClosed("request body cut short")
        elif req.headers.has("content-length"):
            remaining = int(req.headers.get_all("content-length")[0])
            while remaining > 0:
                data = conn.stream.read_some(min(remaining, 65536))
                if not data:
                    raise ConnectionClosed("request body cut short")
                sink(data)
                remaining -= len(data)
        req.body = bytes(sink.kept)
        req.body_len = sink.length
        req.body_sha256 = sink.hash.hexdigest()
        req.complete = True
        conn.requests.append(req)
        with self.cond:
            self.requests.append(req)
            self.cond.notify_all()
        return req

    def _on_body_progress(self, n):
        self.body_progress = n
        if self.pause_body_at is not None and n >= self.pause_body_at:
            self.hold(self.resume_body)


class Blackhole:
    """A port where TCP connects time out: a listener with backlog 0 whose one
    accept-queue slot is taken by the harness, so further SYNs are dropped."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.addr = "%s:%d" % (LOOPBACK, self.port)
        self.fillers = []
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(0.3)
            try:
                s.connect((LOOPBACK, self.port))
            except OSError:
                s.close()
                break
            self.fillers.append(s)

    def close(self):
        for s in self.fillers:
            s.close()
        self.sock.close()



# ---------------------------------------------------------------------------
# peers that are processes

def stop_process(proc, grace):
    """SIGTERM, and SIGKILL if it has not exited `grace` seconds later."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class OutputProcess:
    """A helper process whose stdout (and stderr, merged) is collected line by
    line in `lines`, for waiting on what it says and for failure messages.
    `stdin` is a pipe when `stdin_pipe` (the process also ends when the test
    process does, if it reads it), else /dev/null."""

    def __init__(self, name, argv, stdin_pipe=False, cwd=None):
        self.name = name
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd)
        self.reader = threading.Thread(target=self._drain, daemon=True, name=name)
        self.reader.start()

    def _drain(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, predicate, timeout):
        """The first line for which predicate(line) holds, waiting up to
        `timeout` (less if the process exits); None if there is none."""
        with self.cond:
            def found():
                return next((l for l in self.lines if predicate(l)), None)
            self.cond.wait_for(lambda: found() is not None or self.proc.poll() is not None, timeout)
            return found()

    def output(self, n=40):
        with self.cond:
            return "\n".join(self.lines[-n:])

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def stop(self, grace=5):
        stop_process(self.proc, grace)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        self.reader.join(5)


# ---------------------------------------------------------------------------
# nginx as a backend

class Nginx:
    """A real nginx on 127.0.0.1:<free port>, single process, everything under
    its own temp dir. Its access log records the connection serial number and
    the per-connection request count, and the forwarding headers it received.

    With `tls` (a dict: "cert", "key" PEM paths; optionally "client_ca",
    which turns on `ssl_verify_client on` against that CA, and "protocols",
    the `ssl_protocols` value, "TLSv1.2 TLSv1.3" unless given: nginx 1.22's
    own default stops at TLSv1.2) the port speaks TLS only, and the log also
    records the SNI name, the protocol and the client-certificate verdict
    (sni=, proto=, client_verify=, client_dn=).
    `name` is its directory under tmpdir, so one test can run several."""

    LOG_FORMAT = ('conn=$connection reqs=$connection_requests method=$request_method '
                  'uri=$request_uri status=$status '
                  'xff="$http_x_forwarded_for" xfp="$http_x_forwarded_proto" '
                  'xfh="$http_x_forwarded_host" via="$http_via" host="$http_host" '
                  'conn_hdr="$http_connection"')
    TLS_LOG_FORMAT = (' sni="$ssl_server_name" proto=$ssl_protocol '
                      'client_verify=$ssl_client_verify client_dn="$ssl_client_s_dn"')

    def __init__(self, tmpdir, files=None, extra_locations="", tls=None, name="nginx"):
        self.dir = os.path.join(tmpdir, name)
        self.tls = dict(tls) if tls else None
        os.makedirs(os.path.join(self.dir, "www"), exist_ok=True)
        for name, data in (files or {}).items():
            path = os.path.join(self.dir, "www", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        self.port = free_port()
        self.addr = "%s:%d" % (LOOPBACK, self.port)
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        d = self.dir
        self.has_echo = os.path.exists(NGINX_ECHO_MODULE)
        echo_load = "load_module %s;" % NGINX_ECHO_MODULE if self.has_echo else ""
        echo_location = ("location = /echo { client_body_buffer_size 4m; "
                         "echo_read_request_body; echo_request_body; }"
                         if self.has_echo else "")
        listen = self.addr
        log_format = self.LOG_FORMAT
        ssl_conf = ""
        if self.tls:
            listen += " ssl"
            log_format += self.TLS_LOG_FORMAT
            ssl_conf = "ssl_certificate %s; ssl_certificate_key %s; ssl_protocols %s;" % (
                self.tls["cert"], self.tls["key"], self.tls.get("protocols", "TLSv1.2 TLSv1.3"))
            if self.tls.get("client_ca"):
                ssl_conf += " ssl_verify_client on; ssl_client_certificate %s;" % (
                    self.tls["client_ca"])
        conf = echo_load + """
daemon off;
master_process off;
worker_processes 1;
error_log %(d)s/error.log info;
pid %(d)s/nginx.pid;
events { worker_connections 256; }
http {
    client_body_temp_path %(d)s/client_body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    log_format sluice '%(fmt)s';
    access_log %(d)s/access.log sluice;
    keepalive_requests 1000;
    keepalive_timeout 60s;
    client_max_body_size 200m;
    default_type application/octet-stream;
    sendfile on;
    etag on;
    server {
        listen %(listen)s;
        %(ssl)s
        root %(d)s/www;
        location = /hello { default_type text/plain; return 200 "hello from nginx\\n"; }
        location = /nothing { return 204; }
        location = /forwarded {
            default_type text/plain;
            return 200 "xff=$http_x_forwarded_for|xfp=$http_x_forwarded_proto|xfh=$http_x_forwarded_host|via=$http_via|host=$http_host\\n";
        }
        %(echo)s
        %(extra)s
        location / { }
    }
}
""" % {"d": d, "fmt": log_format, "listen": listen, "ssl": ssl_conf,
       "extra": extra_locations, "echo": echo_location}
        self.conf_path = os.path.join(d, "nginx.conf")
        with open(self.conf_path, "w") as f:
            f.write(conf)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([NGINX_BIN, "-c", self.conf_path, "-p", self.dir,
                                      "-e", self.error_log],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited %d: %s\n%s" % (
                    self.proc.returncode, self.proc.stderr.read().decode(), self.error_text()))
            if port_accepts(self.port, 0.2):
                return self
            time.sleep(0.02)
        self.stop()
        raise AssertionError("nginx did not listen on %d:\n%s" % (self.port, self.error_text()))

    def stop(self):
        if self.proc:
            stop_process(self.proc, 10)
            if self.proc.stderr:
                self.proc.stderr.close()

    def error_text(self):
        try:
            with open(self.error_log) as f:
                return f.read()
        except OSError:
            return ""

    def log_entries(self):
        """Parsed access-log lines: dicts of key -> value."""
        try:
            with open(self.access_log) as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            out.append({m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
                        for m in re.finditer(r'(\w+)=(?:"([^"]*)"|(\S*))', line)})
        return out

    def wait_log_entries(self, n, timeout=5.0):
        """nginx writes its access log as each request ends; polls for n lines."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.log_entries()
            if len(entries) >= n:
                return entries
            if time.monotonic() >= deadline:
                raise AssertionError("nginx access log has %d lines, expected %d" % (
                    len(entries), n))
            time.sleep(0.02)


