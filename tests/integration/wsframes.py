"""RFC 6455 on the wire, for the tests: frames built and read by hand, and a
raw client socket that speaks them.

  - encode_frame / parse_frame: frames built and read byte by byte, so a
    test can send exactly the bytes it means (bad ones included: reserved
    bits, non-minimal lengths, unmasked frames) and see exactly the bytes it
    got (mask keys included).
  - upgrade_request / accept_for: the handshake's request bytes and the
    Sec-WebSocket-Accept a key must get back.
  - FrameReader: frames off a socket, every read with a deadline.
  - WsClient: a raw client connection (an httpwire.Client) that sends an
    upgrade request and then frames.

Nothing here trusts a WebSocket library; parse_frame is pure (it only takes
whole frames off the front of the buffer it is given).
"""

import base64
import dataclasses
import hashlib
import os
import socket
import struct
import time

from httpwire import IO_TIMEOUT, Client, build_request

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OPCODE_NAMES = {CONT: "cont", TEXT: "text", BINARY: "binary", CLOSE: "close", PING: "ping",
                PONG: "pong"}
RSV1, RSV2, RSV3 = 4, 2, 1     # the `rsv` argument of encode_frame, as a 3-bit value
PAYLOAD_CAP = 1 << 20      # payload bytes a Frame keeps by default (its length and hash cover all)


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


@dataclasses.dataclass(slots=True, eq=False, repr=False)
class Frame:
    """A frame as received: payload unmasked (by default only its first
    PAYLOAD_CAP bytes kept). Frames compare by identity, as a received frame
    is one event however alike two are."""

    fin: bool
    rsv: int               # the 3-bit RSV field
    opcode: int
    masked: bool
    key: bytes             # the masking key, b"" when unmasked
    payload: bytes
    length: int            # the whole payload's length
    sha256: str            # the whole payload's hex digest

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


def parse_frame(buf, cap=PAYLOAD_CAP):
    """Takes one complete frame off the front of the bytearray `buf`.
    Returns a Frame that keeps the first `cap` payload bytes (None: all of
    them), or None (leaving `buf` alone) when the frame is incomplete."""
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
                 payload[:cap], n, hashlib.sha256(payload).hexdigest())


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
