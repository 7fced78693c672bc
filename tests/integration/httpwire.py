"""HTTP/1.1 on the wire, for the tests: a buffered socket reader, message
heads, a response reader that understands Content-Length, chunked and
close-delimited bodies, request builders, and a raw-socket client.

Lenient where the tests need to observe what a peer sent (bare LF is read as
a line end), strict where a framing mistake would hide a proxy bug (a body
cut short is reported as incomplete, never as a response).
"""

import hashlib
import re
import socket
import time

IO_TIMEOUT = 10.0          # every client/backend socket operation
RAW_CAP = 1 << 20          # bytes of raw traffic kept per connection
LOOPBACK = "127.0.0.1"


def free_port():
    """A port nothing listens on right now (bind to 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_accepts(port, timeout=0.5):
    """True when something accepts connections on 127.0.0.1:port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class ConnectionClosed(Exception):
    """The peer closed (or reset) the connection before a complete message head."""


class ProtocolError(Exception):
    """Bytes that are not a well-formed HTTP/1.1 message."""


class Stream:
    """Buffered reads over a socket with a timeout; keeps a capped copy of
    everything read in `raw`."""

    def __init__(self, sock, raw_cap=RAW_CAP):
        self.sock = sock
        self.buf = bytearray()
        self.raw = bytearray()
        self.raw_cap = raw_cap
        self.eof = False
        self.reset = False

    def _fill(self):
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            self.eof = True
            self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        room = self.raw_cap - len(self.raw)
        if room > 0:
            self.raw += data[:room]
        return True

    def read_line(self, limit=1 << 20):
        """One line including its terminator (b"\\n"); a partial line at EOF
        is returned as is; b"" at EOF."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            start = len(self.buf)
            if len(self.buf) > limit:
                raise ProtocolError("line longer than %d bytes" % limit)
            if not self._fill():
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def read_exact(self, n):
        """Up to n bytes; fewer only at EOF."""
        while len(self.buf) < n:
            if not self._fill():
                break
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_some(self, n=65536):
        if not self.buf:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_to_eof(self, cap=64 << 20):
        while len(self.buf) < cap and self._fill():
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data


def _split_header(line):
    text = line.decode("latin-1").rstrip("\r\n")
    if ":" not in text:
        raise ProtocolError("header line without colon: %r" % text)
    name, value = text.split(":", 1)
    return name, value.strip(" \t")


class Headers:
    """An ordered multi-map with case-insensitive lookup."""

    def __init__(self, items=()):
        self.items = list(items)

    def get_all(self, name):
        n = name.lower()
        return [v for k, v in self.items if k.lower() == n]

    def get(self, name, default=None):
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def has(self, name):
        return bool(self.get_all(name))

    def names(self):
        return [k.lower() for k, _ in self.items]

    def tokens(self, name):
        """Comma-separated tokens of a list-valued header, lower-cased."""
        out = []
        for v in self.get_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def __contains__(self, name):
        return self.has(name)

    def __repr__(self):
        return "Headers(%r)" % (self.items,)


def _read_head_lines(stream, first_line_required):
    """Reads a start line and header lines up to the blank line. Returns
    (start_line_bytes, [header line bytes], raw_head_bytes)."""
    raw = bytearray()
    line = stream.read_line()
    # Tolerate blank lines before a message (RFC 9112 2.2).
    for _ in range(4):
        if line in (b"\r\n", b"\n"):
            raw += line
            line = stream.read_line()
        else:
            break
    if not line:
        raise ConnectionClosed("connection closed before a message"
                               + (" (reset)" if stream.reset else ""))
    raw += line
    if not line.endswith(b"\n"):
        raise ConnectionClosed("connection closed inside the start line: %r" % line)
    start = line
    lines = []
    for _ in range(10000):
        line = stream.read_line()
        raw += line
        if not line.endswith(b"\n"):
            raise ConnectionClosed("connection closed inside the head: %r" % bytes(raw[-200:]))
        if line in (b"\r\n", b"\n"):
            return start, lines, bytes(raw)
        lines.append(line)
    raise ProtocolError("too many header lines")


def _read_chunked(stream, sink, max_keep):
    """Reads a chunked body into `sink(data)`. Returns (complete, trailers,
    framing_bytes_ok)."""
    trailers = []
    for _ in range(10_000_000):
        size_line = stream.read_line(limit=4096)
        if not size_line.endswith(b"\n"):
            return False, trailers
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError("bad chunk size line %r" % size_line)
        if size == 0:
            for _ in range(1000):
                line = stream.read_line()
                if not line.endswith(b"\n"):
                    return False, trailers
                if line in (b"\r\n", b"\n"):
                    return True, trailers
                trailers.append(_split_header(line))
            raise ProtocolError("too many trailer lines")
        remaining = size
        while remaining > 0:
            data = stream.read_some(min(remaining, 65536))
            if not data:
                return False, trailers
            sink(data)
            remaining -= len(data)
        crlf = stream.read_line(limit=16)
        if crlf not in (b"\r\n", b"\n"):
            if not crlf.endswith(b"\n"):
                return False, trailers
            raise ProtocolError("chunk not followed by CRLF: %r" % crlf)
    raise ProtocolError("too many chunks")


class _BodySink:
    """Keeps the first `cap` bytes of a body and hashes all of it."""

    def __init__(self, cap):
        self.cap = cap
        self.kept = bytearray()
        self.length = 0
        self.hash = hashlib.sha256()
        self.progress_cb = None

    def __call__(self, data):
        self.length += len(data)
        self.hash.update(data)
        room = self.cap - len(self.kept)
        if room > 0:
            self.kept += data[:room]
        if self.progress_cb:
            self.progress_cb(self.length)


# -- client side

class Response:
    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = Headers()
        self.body = b""
        self.body_len = 0
        self.body_sha256 = ""
        self.raw_head = b""
        self.complete = False      # body ended where its framing said it ends
        self.framing = ""          # "none", "length", "chunked", "close"
        self.trailers = []
        self.interim = []          # 1xx responses seen before this one

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def closes(self):
        return "close" in self.headers.tokens("connection")

    def __repr__(self):
        return "<Response %s %d %s headers=%r body=%r%s>" % (
            self.version, self.status, self.reason, self.headers.items,
            self.body[:200], "" if self.complete else " INCOMPLETE")


def build_request(method="GET", target="/", headers=(), body=None, version="1.1",
                  host="localhost"):
    """Request bytes. `headers` is a list of (name, value) or a dict. A
    Content-Length is added for a body unless the headers frame it already."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    lines = ["%s %s HTTP/%s" % (method, target, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    names = {k.lower() for k, _ in items}
    for k, v in items:
        lines.append("%s: %s" % (k, v))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


def chunked_body(chunks, trailers=()):
    out = bytearray()
    for c in chunks:
        if c:
            out += b"%x\r\n" % len(c) + c + b"\r\n"
    out += b"0\r\n"
    for k, v in trailers:
        out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
    out += b"\r\n"
    return bytes(out)


def read_response(stream, method="GET", body_cap=64 << 20, progress_cb=None,
                  stop_at_interim=False):
    """Reads one final response (1xx interim responses are collected on it);
    with stop_at_interim, returns the first 1xx response itself."""
    interim = []
    for _ in range(20):
        resp = Response()
        start, lines, raw = _read_head_lines(stream, True)
        resp.raw_head = raw
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?\r?\n$", start)
        if not m:
            raise ProtocolError("bad status line %r" % start)
        resp.version = m.group(1).decode()
        resp.status = int(m.group(2))
        resp.reason = (m.group(3) or b"").decode("latin-1")
        resp.headers = Headers(_split_header(l) for l in lines)
        if 100 <= resp.status < 200 and resp.status != 101:
            resp.complete = True
            resp.framing = "none"
            if stop_at_interim:
                return resp
            interim.append(resp)
            continue
        break
    else:
        raise ProtocolError("too many interim responses")
    resp.interim = interim
    sink = _BodySink(body_cap)
    sink.progress_cb = progress_cb
    te = resp.headers.tokens("transfer-encoding")
    if method == "HEAD" or resp.status in (204, 304) or resp.status == 101:
        resp.framing = "none"
        resp.complete = True
    elif te:
        if te[-1] != "chunked":
            raise ProtocolError("response transfer-encoding %r" % te)
        resp.framing = "chunked"
        resp.complete, resp.trailers = _read_chunked(stream, sink, body_cap)
    elif resp.headers.has("content-length"):
        resp.framing = "length"
        values = {v.strip() for v in resp.headers.tokens("content-length")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise ProtocolError("bad response content-length %r" % values)
        remaining = int(values.pop())
        while remaining > 0:
            data = stream.read_some(min(remaining, 65536))
            if not data:
                break
            sink(data)
            remaining -= len(data)
        resp.complete = remaining == 0
    else:
        resp.framing = "close"
        while True:
            data = stream.read_some()
            if not data:
                break
            sink(data)
        resp.complete = True
    resp.body = bytes(sink.kept)
    resp.body_len = sink.length
    resp.body_sha256 = sink.hash.hexdigest()
    return resp


class Client:
    """A raw HTTP client connection to 127.0.0.1:port."""

    def __init__(self, port, timeout=IO_TIMEOUT, rcvbuf=None):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((LOOPBACK, port))
        self.stream = Stream(self.sock)
        self.closed = False

    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method="GET", target="/", headers=(), body=None, version="1.1",
                host="localhost"):
        self.send(build_request(method, target, headers, body, version, host))

    def read_response(self, method="GET", **kw):
        return read_response(self.stream, method, **kw)

    def roundtrip(self, method="GET", target="/", headers=(), body=None, version="1.1",
                  host="localhost"):
        self.request(method, target, headers, body, version, host)
        return self.read_response(method)

    def wait_closed(self, timeout=5.0):
        """Waits for EOF or reset. Returns (closed, extra_bytes_received)."""
        extra = bytearray(self.stream.buf)
        self.stream.buf.clear()
        if self.stream.eof:
            return True, bytes(extra)
        deadline = time.monotonic() + timeout
        old = self.sock.gettimeout()
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    break
                except (ConnectionResetError, BrokenPipeError):
                    return True, bytes(extra)
                if not data:
                    return True, bytes(extra)
                extra += data
            return False, bytes(extra)
        finally:
            self.sock.settimeout(old)

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


