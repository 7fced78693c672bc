"""A raw-socket RFC 6455 client that runs conformance cases against a
WebSocket server, and the vocabulary the cases are written in.

Frames are built and read by hand with wsframes.py (nothing here trusts a
WebSocket library). A case
(ws_conformance_cases.py) is a list of steps (writes, waits); running it
against a port gives an Outcome: the messages and control frames the server
sent back, the close code it sent, and whether it closed the TCP connection.
judge() rates an outcome against the RFC the way Autobahn|Testsuite does
(OK, NON-STRICT, FAILED); Outcome.key() is what two runs must share to count
as the same behaviour (the fail-fast markers, that is when a server failed
the connection, are left out of it).

Every socket operation has a deadline; nothing here waits unbounded. Masking
keys are derived from the case id, so a case sends the same bytes every run.
"""

import base64
import hashlib
import select
import socket
import time

from wsframes import (BINARY, CLOSE, CONT, OPCODE_NAMES, PING, PONG, TEXT, accept_for,
                      close_payload, encode_frame, parse_frame, upgrade_request)

HEAD_CAP = 16 * 1024       # bytes of handshake response read at most


# ---------------------------------------------------------------------------
# a case: steps, and what the RFC expects

class F:
    """A frame as a case states it; masked with a per-case key when sent."""

    def __init__(self, opcode, payload=b"", fin=True, rsv=0, masked=True):
        self.opcode, self.payload, self.fin, self.rsv = opcode, payload, fin, rsv
        self.masked = masked


class Send:
    """Writes frames in one write, or in `chop`-byte writes `pause` apart."""

    def __init__(self, *frames, chop=None, pause=0.001):
        self.frames, self.chop, self.pause = frames, chop, pause


class Raw:
    """Writes part of an already built byte string (a frame cut in pieces)."""

    def __init__(self, data):
        self.data = data


class WaitOpen:
    """Waits up to `seconds` (times the slow factor) for the server to fail
    the connection; if it is still open, records ("open-after", label)."""

    def __init__(self, label, seconds=0.25):
        self.label, self.seconds = label, seconds


class Sync:
    """Waits until the server has sent `count` events in all (an echo or a
    pong), so that what follows is sent only after it: Autobahn's sync."""

    def __init__(self, count):
        self.count = count


class Expect:
    """What the RFC allows. `ok` is the event list of a strict server and
    `non_strict` alternatives it tolerates; `close` the codes the server's
    close frame may carry (None: a close frame without a code).
    fail=True: the server must fail the connection (Autobahn's
    requireClean=False: a close frame with one of `close` and a TCP close, or
    a TCP close alone)."""

    def __init__(self, ok=(), non_strict=(), close=(1000,), fail=False):
        self.ok = list(ok)
        self.non_strict = [list(x) for x in non_strict]
        self.close = set(close)
        self.fail = fail


class Case:
    def __init__(self, cid, title, steps, expect, closes=False, budget=3.0):
        self.id = cid
        self.title = title
        self.steps = steps
        self.expect = expect
        self.closes = closes    # the steps send a close; no closing handshake is added
        self.budget = budget    # seconds (times the slow factor) for the whole case

    def __repr__(self):
        return "<Case %s %s>" % (self.id, self.title)


def ok_echo(*events, close=(1000,)):
    return Expect(ok=events, close=close)


def failed(code, ok=(), non_strict=()):
    return Expect(ok=ok, non_strict=non_strict, close=(code,), fail=True)


def text(s):
    return ("text", s if isinstance(s, bytes) else s.encode("utf-8"))


def binary(b):
    return ("binary", b)


def pong(b=b""):
    return ("pong", b)


# ---------------------------------------------------------------------------
# outcome and verdict

class Outcome:
    def __init__(self, case):
        self.case = case
        self.events = []            # ("text"|"binary"|"ping"|"pong"|"open-after"|"bad", bytes|str)
        self.close_code = None      # from the server's close frame; 1005 = it had no code
        self.close_reason = b""
        self.close_received = False
        self.closed = False         # the server closed TCP (FIN or RST) within the budget
        self.sent = bytearray()     # the case's own bytes, masked as on the wire
        self.client_close = None    # the close code our closing handshake sent
        self.send_failed = False
        self.note = ""

    def key(self):
        """What must be the same for two runs to be the same behaviour."""
        events = tuple(e for e in self.events if e[0] != "open-after")
        reason = self.close_reason if not self.case.expect.fail else None
        return (events, self.close_code if self.close_received else None, reason, self.closed)

    def describe(self):
        evs = ", ".join(_event_text(e) for e in self.events) or "none"
        if self.close_received:
            close = "close %s%s" % (
                "(no code)" if self.close_code == 1005 else self.close_code,
                " %r" % self.close_reason[:40] if self.close_reason else "")
        else:
            close = "no close frame"
        tcp = "TCP closed" if self.closed else "TCP still open at the deadline"
        extra = "; " + self.note if self.note else ""
        return "events: %s; %s; %s%s" % (evs, close, tcp, extra)

    def describe_sent(self, cap=160):
        ours = ("" if self.client_close is None else
                ", then our close %s" % ("(no code)" if self.client_close == 1005
                                         else self.client_close))
        return hexdump(bytes(self.sent), cap) + ours


def _event_text(e):
    kind, data = e
    if isinstance(data, str):
        return "%s %s" % (kind, data)
    if len(data) <= 24:
        return "%s %r" % (kind, data)
    return "%s %d bytes sha256:%s" % (kind, len(data), hashlib.sha256(data).hexdigest()[:12])


def judge(outcome):
    """("OK" | "NON-STRICT" | "FAILED", why) against the RFC."""
    exp = outcome.case.expect
    events = outcome.events
    if any(e[0] == "bad" for e in events):
        return "FAILED", "the server sent an invalid frame"
    if not outcome.closed:
        return "FAILED", "the server did not close the TCP connection"
    code = outcome.close_code if outcome.close_received else None
    if outcome.close_received:
        shown = None if code == 1005 else code
        if shown not in exp.close:
            return "FAILED", "close code %r, expected one of %s" % (
                shown, sorted(exp.close, key=lambda c: -1 if c is None else c))
    elif not exp.fail:
        return "FAILED", "no close frame in reply to ours"
    if events == exp.ok:
        return "OK", ""
    if events in exp.non_strict:
        return "NON-STRICT", ""
    return "FAILED", "events %s, expected %s" % (
        [_event_text(e) for e in events], [_event_text(e) for e in exp.ok])


# ---------------------------------------------------------------------------
# the client

class HandshakeError(AssertionError):
    pass


class _ServerFrames:
    """Reassembles what the server sends into events; records anything a
    server must not send as a ("bad", why) event."""

    def __init__(self, outcome):
        self.out = outcome
        self.buf = bytearray()
        self.msg_opcode = None
        self.msg = bytearray()
        self.count = 0             # events recorded (markers excluded)

    def feed(self, data):
        self.buf += data
        pings = []
        while True:
            got = self._one()
            if got is None:
                return pings
            if got[0] == PING:
                pings.append(got[1])

    def _bad(self, why):
        self.out.events.append(("bad", why))
        self.count += 1

    def _one(self):
        f = parse_frame(self.buf, cap=None)
        if f is None:
            return None
        opcode, payload = f.opcode, f.payload
        if f.masked:
            self._bad("masked frame from the server")
        if f.rsv:
            self._bad("RSV bits %d from the server" % f.rsv)
        if self.out.close_received:
            self._bad("%s frame after the server's close" % OPCODE_NAMES.get(opcode, opcode))
            return (opcode, payload)
        if opcode & 0x8:
            if not f.fin or f.length > 125:
                self._bad("control frame fragmented or over 125 bytes")
            if opcode == CLOSE:
                self.out.close_received = True
                self.out.close_code = f.close_code
                self.out.close_reason = f.close_reason
            elif opcode in (PING, PONG):
                self.out.events.append((OPCODE_NAMES[opcode], payload))
                self.count += 1
            else:
                self._bad("reserved control opcode %d" % opcode)
            return (opcode, payload)
        if opcode == CONT:
            if self.msg_opcode is None:
                self._bad("continuation with no message open")
                return (opcode, payload)
        elif opcode in (TEXT, BINARY):
            if self.msg_opcode is not None:
                self._bad("new message inside a fragmented one")
            self.msg_opcode = opcode
            self.msg = bytearray()
        else:
            self._bad("reserved data opcode %d" % opcode)
            return (opcode, payload)
        self.msg += payload
        if f.fin:
            self.out.events.append((OPCODE_NAMES[self.msg_opcode], bytes(self.msg)))
            self.count += 1
            self.msg_opcode = None
            self.msg = bytearray()
        return (opcode, payload)


class _Run:
    """One case on one connection."""

    def __init__(self, port, case, slow):
        self.port = port
        self.case = case
        self.slow = slow
        self.out = Outcome(case)
        self.frames = _ServerFrames(self.out)
        self.deadline = time.monotonic() + case.budget * slow
        self.sock = None
        self.eof = False
        self.close_sent = False
        self.nframe = 0

    # -- wire

    def key(self):
        self.nframe += 1
        return hashlib.sha256(("%s/%d" % (self.case.id, self.nframe)).encode()).digest()[:4]

    def build(self, f):
        key = self.key()        # drawn for unmasked frames too: keys stay the same per case
        return encode_frame(f.opcode, f.payload, f.fin, key if f.masked else None, f.rsv)

    def write(self, data, ours=True):
        """Sends; `ours`: bytes of the case itself (kept for the report),
        not a pong or a closing handshake of the client's own."""
        if self.out.send_failed or self.eof:
            return False
        try:
            self.sock.settimeout(max(0.05, self.deadline - time.monotonic()))
            self.sock.sendall(data)
        except OSError as e:
            self.out.send_failed = True
            self.out.note = "a write failed (%s)" % e.__class__.__name__
            return False
        if ours:
            self.out.sent += data
        return True

    def send_close(self, code):
        """The client's side of a closing handshake (1005: no code)."""
        self.close_sent = True
        self.out.client_close = code
        payload = close_payload(None if code == 1005 else code)
        self.write(encode_frame(CLOSE, payload, mask=self.key()), ours=False)

    def pump(self, until, limit):
        """Reads until until() or EOF or `limit` (monotonic) or the case's
        deadline, whichever is first."""
        end = min(limit, self.deadline)
        while not self.eof and not until():
            # A limit already past still polls once: what has arrived counts.
            left = max(0.0, end - time.monotonic())
            if not select.select([self.sock], [], [], left)[0]:
                return
            try:
                data = self.sock.recv(1 << 18)
            except OSError:
                data = b""
            if not data:
                self.eof = True
                return
            for payload in self.frames.feed(data):
                # A client answers a ping; the echo server never sends one.
                if not self.close_sent:
                    self.write(encode_frame(PONG, payload, mask=self.key()), ours=False)
            if self.out.close_received and not self.close_sent:
                # The server closed: echo its code, as an endpoint must.
                self.send_close(self.out.close_code)

    def closing(self):
        return self.eof or self.out.close_received

    # -- phases

    def handshake(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=3.0 * self.slow)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wskey = base64.b64encode(hashlib.sha256(self.case.id.encode()).digest()[:16]).decode()
        self.sock.sendall(upgrade_request("/conformance/" + self.case.id, wskey, origin=None,
                                          host="127.0.0.1:%d" % self.port))
        head = bytearray()
        while b"\r\n\r\n" not in head:
            left = self.deadline - time.monotonic()
            if left <= 0 or len(head) > HEAD_CAP:
                raise HandshakeError("no complete handshake response: %r" % bytes(head[:300]))
            self.sock.settimeout(left)
            data = self.sock.recv(4096)
            if not data:
                raise HandshakeError("closed during the handshake: %r" % bytes(head[:300]))
            head += data
        end = head.index(b"\r\n\r\n") + 4
        lines = bytes(head[:end]).decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise HandshakeError("handshake answered %r, not 101" % lines[0])
        accept = accept_for(wskey)
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        if fields.get("sec-websocket-accept") != accept:
            raise HandshakeError("Sec-WebSocket-Accept %r, expected %r" % (
                fields.get("sec-websocket-accept"), accept))
        if fields.get("sec-websocket-extensions"):
            raise HandshakeError("an extension was negotiated unasked: %r" %
                                 fields["sec-websocket-extensions"])
        rest = bytes(head[end:])
        if rest:
            self.frames.feed(rest)

    def step(self, s):
        now = time.monotonic
        if isinstance(s, Send):
            data = b"".join(self.build(f) for f in s.frames)
            if s.chop is None:
                self.write(data)
                return
            for i in range(0, len(data), s.chop):
                if self.closing() or not self.write(data[i:i + s.chop]):
                    return
                if s.pause:
                    self.pump(self.closing, now() + s.pause)
        elif isinstance(s, Raw):
            self.write(s.data)
        elif isinstance(s, WaitOpen):
            self.pump(self.closing, now() + s.seconds * self.slow)
            if not self.closing():
                self.out.events.append(("open-after", s.label))
        elif isinstance(s, Sync):
            self.pump(lambda: self.closing() or self.frames.count >= s.count,
                      now() + 2.0 * self.slow)
        else:
            raise TypeError(s)

    def run(self):
        try:
            self.handshake()
            for s in self.case.steps:
                if self.closing() or self.out.send_failed:
                    break
                if isinstance(s, Send) and any(f.opcode == CLOSE for f in s.frames):
                    self.close_sent = True
                self.step(s)
                # Notice a failure as soon as it is there, as Autobahn does.
                self.pump(self.closing, time.monotonic())
            if not self.case.closes and not self.closing() and not self.close_sent:
                self.send_close(1000)
            # Everything the server sends up to its TCP close.
            self.pump(lambda: False, self.deadline)
            self.out.closed = self.eof
        finally:
            if self.sock is not None:
                self.sock.close()
        return self.out


def run_case(port, case, slow=1.0):
    """Runs one case against 127.0.0.1:port; returns its Outcome. Raises
    HandshakeError if the upgrade is not accepted."""
    return _Run(port, case, slow).run()


def hexdump(data, cap=160):
    """Bytes as hex for a report, the first `cap` of them."""
    shown = data[:cap].hex(" ")
    return shown + (" ... (%d bytes in all)" % len(data) if len(data) > cap else "")
