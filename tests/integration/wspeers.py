"""WebSocket peers for test_websocket.py, on both sides of sluice.

  - encode_frame / parse_frame: RFC 6455 frames built and read by hand, so a
    test can send exactly the bytes it means (bad ones included) and see
    exactly the bytes it got (mask keys included).
  - WsClient: a raw client socket (an httpwire.Client) that sends an upgrade
    request and then frames; reads frames with a deadline.
  - RawWsUpstream: a threaded upstream on plain sockets that answers the
    handshake itself (correctly, or wrongly on demand), records every frame
    it receives with its mask key, answers pings and closes, and can push
    data or drop its socket when told to.
  - WsEchoServer: python3-websockets (asyncio) echo server in a thread with
    its own event loop.
  - NodeChatServer: tests/node/chat_server.js (Node's `ws`), a broadcast room.

Every peer has `addr` ("127.0.0.1:port") for harness.upstream(), binds
loopback only, bounds every wait, and stops without hanging.
"""

import asyncio
import base64
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import threading
import time

import websockets

from httpwire import (IO_TIMEOUT, LOOPBACK, Client, ConnectionClosed, Headers, ProtocolError,
                      Stream, _read_head_lines, _split_header, build_request)

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OPCODE_NAMES = {CONT: "cont", TEXT: "text", BINARY: "binary", CLOSE: "close", PING: "ping",
                PONG: "pong"}
RSV1, RSV2, RSV3 = 4, 2, 1     # the `rsv` argument of encode_frame, as a 3-bit value

NODE_BIN = shutil.which("node") or "/usr/bin/node"
CHAT_SERVER_JS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "node",
                                              "chat_server.js"))
PAYLOAD_CAP = 1 << 20      # payload bytes a recorded frame keeps (its length and hash cover all)
POLL = 0.1                 # how often a peer thread looks at its stop flag


# ---------------------------------------------------------------------------
# frames

def accept_for(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + WS_GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def mask_bytes(data, key):
    """XORs data with the 4-byte key repeated (masking and unmasking alike)."""
    n = len(data)
    if n == 0:
        return b""
    k = (bytes(key) * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def encode_frame(opcode, payload=b"", fin=True, mask=None, rsv=0, length_form=None):
    """One frame. mask: None (unmasked), True (a random key) or 4 bytes.
    rsv: RSV1|RSV2|RSV3 bits. length_form 7, 16 or 64 forces a length
    encoding (a non-minimal one is a protocol error)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload)
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask is not None else 0
    if form == 7:
        head = struct.pack("!BB", b0, mbit | n)
    elif form == 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask is None:
        return head + payload
    if mask is True:
        mask = os.urandom(4)
    return head + bytes(mask) + mask_bytes(payload, mask)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    """A frame as received: payload unmasked (first PAYLOAD_CAP bytes kept)."""

    __slots__ = ("fin", "rsv", "opcode", "masked", "key", "payload", "length", "sha256")

    def __init__(self, fin, rsv, opcode, masked, key, payload, length, digest):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.key = key
        self.payload = payload
        self.length = length
        self.sha256 = digest

    @property
    def is_data(self):
        return self.opcode in (CONT, TEXT, BINARY)

    @property
    def close_code(self):
        """The close code, 1005 for a close frame without one (RFC 6455 7.1.5)."""
        if self.opcode != CLOSE:
            return None
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else 1005

    @property
    def close_reason(self):
        return self.payload[2:] if self.opcode == CLOSE else None

    def __repr__(self):
        extra = " code=%s reason=%r" % (self.close_code, self.close_reason) \
            if self.opcode == CLOSE else " %r" % self.payload[:40]
        return "<Frame %s%s%s len=%d%s%s>" % (
            OPCODE_NAMES.get(self.opcode, "op%x" % self.opcode), "" if self.fin else " !fin",
            " rsv=%d" % self.rsv if self.rsv else "", self.length,
            " key=%s" % self.key.hex() if self.masked else "", extra)


def parse_frame(buf):
    """Takes one complete frame off the front of the bytearray `buf`.
    Returns a Frame, or None (leaving `buf` alone) when it is incomplete."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n = b1 & 0x7F
    pos = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack_from("!H", buf, 2)[0]
        pos = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack_from("!Q", buf, 2)[0]
        pos = 10
    masked = bool(b1 & 0x80)
    key = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        key = bytes(buf[pos:pos + 4])
        pos += 4
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos:pos + n])
    del buf[:pos + n]
    if masked:
        payload = mask_bytes(payload, key)
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, key,
                 payload[:PAYLOAD_CAP], n, hashlib.sha256(payload).hexdigest())


def upgrade_request(target="/chat", key=None, origin="http://localhost", protocols=None,
                    headers=(), version="13", host="localhost"):
    """The bytes of a WebSocket upgrade request. origin None: no Origin."""
    items = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
             ("Sec-WebSocket-Key", key or new_key()), ("Sec-WebSocket-Version", version)]
    if origin is not None:
        items.append(("Origin", origin))
    if protocols:
        items.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
    items += list(headers)
    return build_request("GET", target, items, host=host)


class FrameReader:
    """Frames off a socket into `buf`, with deadlines. The socket's own
    timeout is left alone; each recv gets the time left."""

    def __init__(self, sock, buf=b""):
        self.sock = sock
        self.buf = bytearray(buf)
        self.eof = False
        self.reset = False

    def fill(self, timeout):
        """One recv. False at EOF or reset; raises socket.timeout."""
        if self.eof:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(max(0.01, timeout))
        try:
            data = self.sock.recv(1 << 18)
        except (ConnectionResetError, BrokenPipeError):
            self.eof = self.reset = True
            return False
        finally:
            self.sock.settimeout(old)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_frame(self, timeout):
        """The next frame; None at EOF (a frame cut short included); raises
        socket.timeout when none completes in time."""
        deadline = time.monotonic() + timeout
        while True:
            frame = parse_frame(self.buf)
            if frame is not None:
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete frame within %.1fs (%d bytes buffered)" % (
                    timeout, len(self.buf)))
            if not self.fill(left):
                return None

    def wait_eof(self, timeout):
        """True once the peer closed (or reset); the bytes before it are
        dropped. False if still open at the deadline."""
        deadline = time.monotonic() + timeout
        self.buf.clear()
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self.fill(left)
            except socket.timeout:
                return False
            self.buf.clear()
        return True


# ---------------------------------------------------------------------------
# client side

class WsClient(Client):
    """A raw client connection to sluice: an upgrade request, then frames.
    With `answer_pings`, read_frame answers pings itself (counting them in
    `pings`) instead of returning them, as a browser would."""

    def __init__(self, port, timeout=IO_TIMEOUT, rcvbuf=None, answer_pings=False):
        super().__init__(port, timeout, rcvbuf)
        self.key = None
        self.response = None
        self.reader = None
        self.answer_pings = answer_pings
        self.pings = []
        self.sent_keys = []

    def handshake(self, target="/chat", key=None, origin="http://localhost", protocols=None,
                  headers=(), version="13", extra=b""):
        """Sends the upgrade request and `extra` in one sendall; returns the
        response. After a 101, bytes that came with it stay for read_frame."""
        self.key = key or new_key()
        self.send(upgrade_request(target, self.key, origin, protocols, headers, version) + extra)
        self.response = self.read_response()
        self.reader = FrameReader(self.sock, self.stream.buf)
        self.stream.buf.clear()
        return self.response

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0, length_form=None):
        """Sends one frame (masked with a random key unless told otherwise);
        returns the key used."""
        key = os.urandom(4) if mask is True else mask
        if key is not None:
            self.sent_keys.append(bytes(key))
        self.send(encode_frame(opcode, payload, fin, key, rsv, length_form))
        return key

    def send_close(self, code=1000, reason=b""):
        self.send_frame(CLOSE, close_payload(code, reason))

    def read_frame(self, timeout=IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            frame = self.reader.read_frame(max(0.0, deadline - time.monotonic()))
            if frame is None or not (self.answer_pings and frame.opcode == PING):
                return frame
            self.pings.append(time.monotonic())
            self.send_frame(PONG, frame.payload)

    def read_until_close(self, timeout=IO_TIMEOUT):
        """Reads until a close frame. Returns (frames before it, the close
        frame or None when the connection ended without one)."""
        deadline = time.monotonic() + timeout
        frames = []
        while True:
            frame = self.read_frame(max(0.0, deadline - time.monotonic()))
            if frame is None or frame.opcode == CLOSE:
                return frames, frame
            frames.append(frame)

    def reply_close(self, frame):
        """Answers a close frame with the same code (RFC 6455 5.5.1); the
        peer may already have gone, which is not an error here."""
        try:
            self.send_frame(CLOSE, frame.payload[:2] if frame is not None else b"")
        except OSError:
            pass

    def wait_eof(self, timeout=IO_TIMEOUT):
        return self.reader.wait_eof(timeout)


# ---------------------------------------------------------------------------
# upstream side: a raw server

class UpstreamRequest:
    def __init__(self, method, target, headers, raw_head):
        self.method = method
        self.target = target
        self.headers = headers
        self.raw_head = raw_head

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def __repr__(self):
        return "<UpstreamRequest %s %s %r>" % (self.method, self.target, self.headers.items)


class UpstreamConn:
    """One connection accepted by a RawWsUpstream. `frames` is every frame
    received after the handshake, in order; `eof` is set when the peer
    closed (or reset) the connection."""

    def __init__(self, upstream, sock, cid):
        self.upstream = upstream
        self.sock = sock
        self.id = cid
        self.request = None
        self.frames = []
        self.eof = False
        self.sent_close = False
        self.closed = False
        self.bytes_sent = 0
        self.send_lock = threading.Lock()
        self.push_thread = None
        self.errors = []
        self.trailing = b""        # bytes after the last whole frame when the peer closed

    # -- sending

    def send(self, data):
        """All of `data`, unless the peer goes or the upstream stops; a
        sender blocked by backpressure keeps checking the stop flag.
        Returns False when not everything was sent."""
        view = memoryview(data)
        with self.send_lock:
            while view:
                if self.closed or self.upstream.closing.is_set():
                    return False
                try:
                    n = self.sock.send(view)
                except socket.timeout:
                    continue
                except OSError:
                    return False
                view = view[n:]
                self.bytes_sent += n
        return True

    def send_frame(self, opcode, payload=b"", fin=True, mask=None, rsv=0):
        if opcode == CLOSE:
            self.sent_close = True
        return self.send(encode_frame(opcode, payload, fin, mask, rsv))

    def send_close(self, code=1000, reason=b""):
        return self.send_frame(CLOSE, close_payload(code, reason))

    def push(self, total, frame_size=64 * 1024, opcode=BINARY):
        """Starts sending `total` payload bytes as frames of `frame_size`
        (each payload bytes(range(256)) repeated) from a thread. Progress is
        `bytes_sent` (frame headers included); `pushed_all` is set at the end."""
        block = bytes(range(256)) * (frame_size // 256 + 1)
        self.pushed_all = threading.Event()

        def run():
            sent = 0
            while sent < total:
                n = min(frame_size, total - sent)
                if not self.send_frame(opcode, block[:n]):
                    return
                sent += n
            self.pushed_all.set()
        self.push_thread = threading.Thread(target=run, daemon=True,
                                            name="%s-push%d" % (self.upstream.name, self.id))
        self.push_thread.start()

    def close(self):
        """FIN now (even while the reader thread is inside a recv), then close."""
        if not self.closed:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass

    def reset(self):
        """Closes with RST (SO_LINGER 0)."""
        if not self.closed:
            self.closed = True
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.sock.close()
            except OSError:
                pass

    # -- observation

    def wait(self, predicate, timeout, message):
        with self.upstream.cond:
            if not self.upstream.cond.wait_for(predicate, timeout):
                raise AssertionError("%s conn %d: timed out after %.1fs waiting for %s; "
                                     "frames %r, eof %s, trailing bytes %r" % (
                                         self.upstream.name, self.id, timeout, message,
                                         self.frames[-10:], self.eof, self.trailing[:64]))

    def wait_frames(self, n, timeout=IO_TIMEOUT):
        """Waits for `n` frames in all; returns a copy of the list."""
        self.wait(lambda: len(self.frames) >= n, timeout, "%d frames" % n)
        with self.upstream.cond:
            return list(self.frames)

    def wait_close(self, timeout=IO_TIMEOUT):
        """Waits for a close frame; returns it. Fails at once if the
        connection ends without one."""
        def closed():
            return self.eof or any(f.opcode == CLOSE for f in self.frames)
        self.wait(closed, timeout, "a close frame")
        with self.upstream.cond:
            close = next((f for f in self.frames if f.opcode == CLOSE), None)
            if close is None:
                raise AssertionError("%s conn %d: connection ended without a close frame; "
                                     "frames %r, trailing bytes %r" % (
                                         self.upstream.name, self.id, self.frames[-10:],
                                         self.trailing[:64]))
            return close

    def wait_eof(self, timeout=IO_TIMEOUT):
        self.wait(lambda: self.eof, timeout, "EOF")

    def snapshot(self):
        with self.upstream.cond:
            return list(self.frames)

    def data_frames(self):
        return [f for f in self.snapshot() if f.is_data]


class RawWsUpstream:
    """A WebSocket upstream on plain sockets, one thread per connection.

    The handshake answer is chosen at construction: `accept` True (the right
    Sec-WebSocket-Accept), a string (that value) or None (no header);
    `protocol` a Sec-WebSocket-Protocol to pick; `status` other than 101
    sends that status with `body` and closes; `after_101` bytes go in the
    same sendall as the 101 head. After a 101 every frame is recorded;
    pings are answered (answer_pings) and a close is answered with the same
    payload and the socket closed (echo_close)."""

    def __init__(self, name="raw", accept=True, protocol=None, status=101, body=b"",
                 after_101=b"", answer_pings=True, echo_close=True, sndbuf=None):
        self.name = name
        self.accept = accept
        self.protocol = protocol
        self.status = status
        self.body = body
        self.after_101 = after_101
        self.answer_pings = answer_pings
        self.echo_close = echo_close
        self.sndbuf = sndbuf
        self.listen_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listen_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listen_sock.bind((LOOPBACK, 0))
        self.listen_sock.settimeout(POLL)
        self.port = self.listen_sock.getsockname()[1]
        self.addr = "%s:%d" % (LOOPBACK, self.port)
        self.cond = threading.Condition()
        self.conns = []
        self.closing = threading.Event()
        self.threads = []

    def start(self):
        self.listen_sock.listen(64)
        t = threading.Thread(target=self._accept_loop, daemon=True, name="accept-" + self.name)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
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
        for t in list(self.threads):
            t.join(5)
        for c in conns:
            if c.push_thread:
                c.push_thread.join(5)
            c.close()

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

    def wait_upgraded(self, n=1, timeout=IO_TIMEOUT):
        """Waits until the n-th connection has had its request answered;
        returns that connection."""
        conn = self.wait_conns(n, timeout)[n - 1]
        conn.wait(lambda: conn.request is not None, timeout, "an upgrade request")
        return conn

    # -- serving

    def _accept_loop(self):
        cid = 0
        while not self.closing.is_set():
            try:
                sock, _ = self.listen_sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(IO_TIMEOUT)
            if self.sndbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
            conn = UpstreamConn(self, sock, cid)
            cid += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                 name="%s-conn%d" % (self.name, conn.id))
            with self.cond:
                self.conns.append(conn)
                self.threads.append(t)
                self.cond.notify_all()
            t.start()

    def _handshake_response(self, req):
        if self.status != 101:
            reasons = {401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}
            head = "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" \
                   "Connection: close\r\n\r\n" % (self.status, reasons.get(self.status, "Nope"),
                                                  len(self.body))
            return head.encode("latin-1") + self.body
        lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
                 "Connection: Upgrade"]
        accept = self.accept
        if accept is True:
            accept = accept_for(req.header("sec-websocket-key", ""))
        if accept is not None:
            lines.append("Sec-WebSocket-Accept: " + accept)
        if self.protocol is not None:
            lines.append("Sec-WebSocket-Protocol: " + self.protocol)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.after_101

    def _serve(self, conn):
        try:
            stream = Stream(conn.sock)
            start, lines, raw = _read_head_lines(stream, True)
            parts = start.decode("latin-1").rstrip("\r\n").split(" ")
            if len(parts) != 3:
                raise ProtocolError("bad request line %r" % start)
            req = UpstreamRequest(parts[0], parts[1], Headers(_split_header(l) for l in lines),
                                  raw)
            conn.send(self._handshake_response(req))
            with self.cond:
                conn.request = req
                self.cond.notify_all()
            if self.status != 101:
                return
            self._relay_frames(conn, FrameReader(conn.sock, stream.buf))
        except (OSError, ConnectionClosed, ProtocolError) as e:
            conn.errors.append(repr(e))
        finally:
            if conn.push_thread is None:
                conn.close()
            with self.cond:
                conn.eof = True
                self.cond.notify_all()

    def _relay_frames(self, conn, reader):
        while not self.closing.is_set() and not conn.closed:
            frame = parse_frame(reader.buf)
            if frame is None:
                try:
                    if not reader.fill(POLL):
                        conn.trailing = bytes(reader.buf)
                        return
                except socket.timeout:
                    pass
                continue
            with self.cond:
                conn.frames.append(frame)
                self.cond.notify_all()
            if frame.opcode == PING and self.answer_pings:
                conn.send_frame(PONG, frame.payload)
            elif frame.opcode == CLOSE and self.echo_close:
                if not conn.sent_close:
                    conn.send_frame(CLOSE, frame.payload[:2])
                # The server closes the TCP connection first (RFC 6455 7.1.1).
                return


# ---------------------------------------------------------------------------
# upstream side: python3-websockets echo server

def fragments(message, pieces=3):
    """A message cut into `pieces` fragments (at least one, possibly empty)."""
    step = max(1, -(-len(message) // pieces))
    parts = [message[i:i + step] for i in range(0, len(message), step)]
    return parts or [message]


async def _aiter(items):
    for item in items:
        yield item


class WsEchoServer:
    """python3-websockets on 127.0.0.1:<ephemeral> in a thread with its own
    event loop: echoes every message as one frame, or, under a path
    containing "/frag", as three fragments. Records (path, headers,
    subprotocol) of every handshake in `handshakes`."""

    def __init__(self, name="echo", subprotocols=None):
        self.name = name
        self.subprotocols = subprotocols
        self.port = None
        self.addr = None
        self.handshakes = []
        self.lock = threading.Lock()
        self.loop = None
        self.stop_future = None
        self.ready = threading.Event()
        self.error = None
        self.thread = None

    def start(self, timeout=IO_TIMEOUT):
        self.thread = threading.Thread(target=self._run, daemon=True, name="ws-" + self.name)
        self.thread.start()
        if not self.ready.wait(timeout) or self.error:
            raise AssertionError("%s: echo server did not start: %r" % (self.name, self.error))
        return self

    def stop(self):
        if self.loop is not None:
            def finish():
                if not self.stop_future.done():
                    self.stop_future.set_result(None)
            try:
                self.loop.call_soon_threadsafe(finish)
            except RuntimeError:  # the loop has already ended
                pass
        if self.thread is not None:
            self.thread.join(10)

    def _run(self):
        try:
            asyncio.run(self._main())
        except Exception as e:  # reported by start(); a thread has no caller
            self.error = e
        finally:
            self.ready.set()

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self.stop_future = self.loop.create_future()
        async with websockets.serve(self._handler, LOOPBACK, 0, max_size=None,
                                    subprotocols=self.subprotocols, ping_interval=None,
                                    close_timeout=2) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.addr = "%s:%d" % (LOOPBACK, self.port)
            self.ready.set()
            await self.stop_future

    async def _handler(self, ws):
        with self.lock:
            self.handshakes.append((ws.path, Headers(ws.request_headers.raw_items()),
                                    ws.subprotocol))
        try:
            async for message in ws:
                if "/frag" in ws.path:
                    await ws.send(_aiter(fragments(message)))
                else:
                    await ws.send(message)
        except websockets.ConnectionClosed:
            pass


# ---------------------------------------------------------------------------
# upstream side: Node `ws` chat room

class NodeChatServer:
    """tests/node/chat_server.js on a port it picks itself; ready when it
    prints "listening PORT". stdin is a pipe, so the process also ends when
    the test process does."""

    def __init__(self, name="chat"):
        self.name = name
        self.port = None
        self.addr = None
        self.proc = None
        self.lines = []
        self.cond = threading.Condition()
        self.reader = None

    def start(self, timeout=IO_TIMEOUT):
        self.proc = subprocess.Popen([NODE_BIN, CHAT_SERVER_JS, "0"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._drain, daemon=True, name="node-" + self.name)
        self.reader.start()
        with self.cond:
            self.cond.wait_for(lambda: self._listening() or self.proc.poll() is not None,
                               timeout)
            line = self._listening()
        if not line:
            self.stop()
            raise AssertionError("%s: node did not print 'listening' within %.0fs:\n%s" % (
                self.name, timeout, "\n".join(self.lines)))
        self.port = int(line.split()[1])
        self.addr = "%s:%d" % (LOOPBACK, self.port)
        return self

    def _listening(self):
        return next((l for l in self.lines if l.startswith("listening ")), None)

    def _drain(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        if self.reader is not None:
            self.reader.join(5)
