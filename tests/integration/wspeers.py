"""WebSocket peers for the WebSocket tests, on the upstream side of sluice.

  - RawWsUpstream: a threaded upstream on plain sockets that answers the
    handshake itself (correctly, or wrongly on demand), records every frame
    it receives with its mask key (as wsframes.Frame), answers pings and
    closes, and can push data or drop its socket when told to.
  - WsEchoServer: python3-websockets (asyncio) echo server in a thread with
    its own event loop.
  - NodeScript: a Node `ws` peer from tests/node (chat_server.js, a
    broadcast room; echo_server.js, the conformance test's echo server).

Frames are built and read with wsframes.py; the client side is
wsframes.WsClient. Every peer has `addr` ("127.0.0.1:port") for
harness.upstream(), binds loopback only, bounds every wait, and stops
without hanging.
"""

import asyncio
import os
import shutil
import socket
import subprocess
import threading

import websockets

from httpwire import (IO_TIMEOUT, LOOPBACK, ConnectionClosed, Headers, ProtocolError, Stream,
                      _read_head_lines, _split_header)
from peers import OutputProcess, ServerConn, ThreadedServer
from wsframes import (BINARY, CLOSE, PING, PONG, FrameReader, accept_for, close_payload,
                      encode_frame, parse_frame)

NODE_BIN = shutil.which("node") or "/usr/bin/node"
NODE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "node"))
POLL = 0.1                 # how often a reader thread looks at its stop flag


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


class UpstreamConn(ServerConn):
    """One connection accepted by a RawWsUpstream. `frames` is every frame
    received after the handshake, in order; `eof` is set when the peer
    closed (or reset) the connection."""

    def __init__(self, upstream, sock, cid):
        super().__init__(sock, cid)
        self.upstream = upstream
        self.request = None
        self.frames = []
        self.eof = False
        self.sent_close = False
        self.bytes_sent = 0
        self.send_lock = threading.Lock()
        self.push_thread = None
        self.trailing = b""        # bytes after the last whole frame when the peer closed
        self.reading = threading.Event()  # cleared: the reader stops reading (backpressure)
        self.reading.set()

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
            self._close_socket()

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


class RawWsUpstream(ThreadedServer):
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
        super().__init__(name)
        self.accept = accept
        self.protocol = protocol
        self.status = status
        self.body = body
        self.after_101 = after_101
        self.answer_pings = answer_pings
        self.echo_close = echo_close
        self.sndbuf = sndbuf

    def stop(self):
        """A pushing thread sees the stop flag and ends before its socket closes."""
        for c in super().stop():
            if c.push_thread:
                c.push_thread.join(5)
            c.close()

    def wait_upgraded(self, n=1, timeout=IO_TIMEOUT):
        """Waits until the n-th connection has had its request answered;
        returns that connection."""
        conn = self.wait_conns(n, timeout)[n - 1]
        conn.wait(lambda: conn.request is not None, timeout, "an upgrade request")
        return conn

    # -- serving

    def _make_conn(self, sock, cid):
        sock.settimeout(IO_TIMEOUT)
        if self.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        return UpstreamConn(self, sock, cid)

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
                if not conn.reading.wait(POLL):
                    continue
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
    event loop (wss with an ssl_context): echoes every message as one frame,
    or, under a path containing "/frag", as three fragments. Records (path, headers,
    subprotocol) of every handshake in `handshakes`."""

    def __init__(self, name="echo", subprotocols=None, ssl_context=None):
        self.name = name
        self.subprotocols = subprotocols
        self.ssl_context = ssl_context  # set: wss
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
                                    close_timeout=2, ssl=self.ssl_context) as server:
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
# upstream side: Node `ws` peers in tests/node

class NodeScript:
    """`node tests/node/SCRIPT 0` (chat_server.js, echo_server.js): a Node `ws`
    peer on a port it picks itself, ready when it prints "listening PORT".
    Its output is kept for failure messages; stdin is a pipe, so the process
    also ends when the test process does."""

    def __init__(self, script, name=None):
        self.script = os.path.join(NODE_DIR, script)
        self.name = name or os.path.splitext(script)[0]
        self.port = None
        self.addr = None
        self.process = None

    def start(self, timeout=IO_TIMEOUT):
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ws")):
            raise AssertionError("Node's ws is not installed in tests/node (make test-deps)")
        self.process = OutputProcess("node-" + self.name, [NODE_BIN, self.script, "0"],
                                     stdin_pipe=True)
        line = self.process.wait_line(lambda l: l.startswith("listening "), timeout)
        if not line:
            self.stop()
            raise AssertionError("%s: node did not print 'listening' within %.0fs:\n%s" % (
                self.name, timeout, self.process.output()))
        self.port = int(line.split()[1])
        self.addr = "%s:%d" % (LOOPBACK, self.port)
        return self

    @property
    def lines(self):
        return self.process.lines if self.process else []

    def stop(self):
        if self.process is not None:
            self.process.stop()