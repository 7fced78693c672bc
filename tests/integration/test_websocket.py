"""WebSocket relaying, end to end: clients and upstreams on both sides of
sluice, with python3-websockets, Node's `ws` and raw sockets (wspeers.py).

Proves: messages of every size (0 to 16 MiB, text and binary, fragmented or
not) arrive intact both ways; a Node broadcast room gets every message to
every client in order per sender; frames toward the upstream are re-masked
with a fresh key per frame and the upstream gets its own Sec-WebSocket-Key;
bytes sent right after either side's head are relayed; each protocol
violation, size limit and UTF-8 error closes the sender with its code
(1002, 1009, 1007) and the other side with 1001, forwarding nothing of the
offending frame; refused or failed handshakes (403 with no upstream
connection, 426, 501, a bad 101 -> 502, an unreachable upstream -> 502) and
a non-101 answer relayed as is; idle and ping timeouts; close frames
relayed with code and reason; an upstream that drops its socket (1011), a
client that vanishes (1001 upstream) and SIGTERM (1001); a client that stops
reading stalls the upstream without growing sluice's memory; and one
access-log line per session with its counters.
"""

import asyncio
import base64
import json
import os
import re
import signal
import socket
import sys
import time
import unittest

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOOPBACK, SLOW, RssMonitor, SluiceTestCase,  # noqa: E402
                     free_port, route, rss_kib, sha256, upstream, wait_stalled)
from wspeers import (BINARY, CLOSE, CONT, PING, PONG, RSV1, RSV2, RSV3, TEXT,  # noqa: E402
                     NodeChatServer, RawWsUpstream, WsClient, WsEchoServer, _aiter,
                     accept_for, close_payload, encode_frame, fragments)

ORIGIN = "http://localhost"
CLOSE_WAIT = 5.0 * SLOW        # for a close frame or an EOF that is due now
SIZES = (0, 1, 125, 126, 65535, 65536, 1 << 20)
BIG = 16 << 20
BIG_LIMITS = {"max_frame_bytes": "32MiB", "max_message_bytes": "32MiB"}


def text_of(n, seed=0):
    """A str whose UTF-8 form is exactly n bytes, with 1- to 4-byte code points."""
    unit = "aé€😀%d" % seed
    encoded = (unit * (n // len(unit.encode()) + 1)).encode()[:n]
    s = encoded.decode("utf-8", "ignore")
    return s + "z" * (n - len(s.encode()))


def binary_of(n, seed=0):
    block = os.urandom(4096) + bytes([seed & 0xFF])
    return (block * (n // len(block) + 1))[:n]


def run_async(coro, timeout):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def ws_connect(port, path="/chat", **options):
    """A python3-websockets client connection through sluice."""
    kw = dict(origin=ORIGIN, max_size=None, compression=None, ping_interval=None,
              open_timeout=10 * SLOW, close_timeout=CLOSE_WAIT)
    kw.update(options)
    return websockets.connect("ws://%s:%d%s" % (LOOPBACK, port, path), **kw)


def shape(frames):
    return [(f.opcode, f.payload, f.fin) for f in frames]


class WsTestCase(SluiceTestCase):

    def raw_upstream(self, name="raw", **kw):
        u = RawWsUpstream(name, **kw).start()
        self.addCleanup(u.stop)
        return u

    def echo_server(self, **kw):
        e = WsEchoServer(**kw)
        self.addCleanup(e.stop)
        return e.start()

    def ws_client(self, port, **kw):
        c = WsClient(port, **kw)
        self._clients.append(c)
        self.addCleanup(c.close)
        return c

    def ws_sluice(self, peer, websocket=None, path_prefix="/chat", **sections):
        routes = [route("app", path_prefix=path_prefix, websocket=dict(websocket or {}))]
        return self.sluice([upstream("app", [peer])], routes=routes, **sections)

    def open_session(self, port, up, target="/chat", **kw):
        """A raw client upgraded through sluice, and the upstream's side of it."""
        n = up.conn_count + 1
        c = self.ws_client(port)
        resp = c.handshake(target, **kw)
        self.assertEqual(resp.status, 101, resp)
        self.assertEqual(resp.header("sec-websocket-accept"), accept_for(c.key), resp)
        return c, up.wait_upgraded(n)

    def assertClientClosed(self, c, code, frames=(), finish=True):
        """The client gets `frames` ((opcode, payload, fin)), then an unmasked
        close with `code` (or one of a tuple of codes); after its answer the
        TCP connection closes."""
        got, close = c.read_until_close(CLOSE_WAIT)
        self.assertIsNotNone(close, "client: connection ended without a close frame after "
                                    "%r; trailing bytes %r" % (got, bytes(c.reader.buf[:64])))
        self.assertEqual(shape(got), list(frames))
        if isinstance(code, tuple):
            self.assertIn(close.close_code, code, close)
        else:
            self.assertEqual(close.close_code, code, close)
        self.assertFalse(close.masked, close)
        if finish:
            c.reply_close(close)
            self.assertTrue(c.wait_eof(CLOSE_WAIT), "client: TCP still open after the close")
        return close

    def assertUpstreamClosed(self, conn, code, frames=()):
        """The upstream got exactly `frames` and then a close with `code`."""
        close = conn.wait_close(CLOSE_WAIT)
        got = conn.snapshot()
        self.assertEqual(shape(got[:got.index(close)]), list(frames))
        self.assertEqual(close.close_code, code, close)
        self.assertTrue(close.masked, close)
        return close


class Echo(WsTestCase):
    """python3-websockets on both sides; the upstream echoes (under /frag as
    three fragments)."""

    def setUp(self):
        super().setUp()
        self.echo = self.echo_server(subprotocols=["chat.v2"])
        routes = [route("app", path_prefix="/proto",
                        websocket=dict(BIG_LIMITS, subprotocols=["chat.v2"])),
                  route("app", path_prefix="/deflate",
                        websocket=dict(BIG_LIMITS, extensions="passthrough")),
                  route("app", path_prefix="/", websocket=BIG_LIMITS)]
        self.s = self.sluice([upstream("app", [self.echo])], routes=routes)

    async def roundtrips(self, path, messages, fragmented):
        async with ws_connect(self.s.port, path) as ws:
            for m in messages:
                await ws.send(_aiter(fragments(m)) if fragmented else m)
                got = await ws.recv()
                self.assertIs(type(got), type(m), (path, len(m), fragmented))
                self.assertEqual((len(got), sha256(got.encode() if isinstance(got, str) else got)),
                                 (len(m), sha256(m.encode() if isinstance(m, str) else m)),
                                 "%s %s of %d bytes, fragmented=%s" % (
                                     path, type(m).__name__, len(m), fragmented))

    def test_messages_of_every_size_echo_intact(self):
        messages = [f(n, i) for i, n in enumerate(SIZES) for f in (text_of, binary_of)]
        for path in ("/chat", "/frag/chat"):
            for fragmented in (False, True):
                with self.subTest(path=path, fragmented=fragmented):
                    run_async(self.roundtrips(path, messages, fragmented), 30 * SLOW)

    def test_sixteen_mib_messages_echo_intact(self):
        big = [text_of(BIG), binary_of(BIG)]
        run_async(self.roundtrips("/chat", big, False), 30 * SLOW)
        run_async(self.roundtrips("/frag/chat", big, True), 30 * SLOW)

    def test_extension_offer_is_stripped(self):
        async def scenario():
            async with ws_connect(self.s.port, "/chat", compression="deflate") as ws:
                self.assertEqual(ws.extensions, [])
                await ws.send("x" * 1000)
                self.assertEqual(await ws.recv(), "x" * 1000)
        run_async(scenario(), 10 * SLOW)
        _, headers, _ = self.echo.handshakes[-1]
        self.assertNotIn("sec-websocket-extensions", headers.names())

    def test_extensions_pass_through_where_configured(self):
        messages = [text_of(n, 1) for n in (0, 100, 70000)] + [binary_of(70000, 2)]

        async def scenario():
            async with ws_connect(self.s.port, "/deflate", compression="deflate") as ws:
                self.assertEqual([e.name for e in ws.extensions], ["permessage-deflate"])
                for m in messages:
                    await ws.send(m)
                    self.assertEqual(await ws.recv(), m)
        run_async(scenario(), 10 * SLOW)
        _, headers, _ = self.echo.handshakes[-1]
        self.assertIn("permessage-deflate", headers.get("sec-websocket-extensions", ""))

    def test_allowed_subprotocol_is_negotiated_end_to_end(self):
        async def scenario():
            offer = ["chat.v1", "chat.v2"]
            async with ws_connect(self.s.port, "/proto", subprotocols=offer) as ws:
                self.assertEqual(ws.subprotocol, "chat.v2")
                await ws.send("hi")
                self.assertEqual(await ws.recv(), "hi")
        run_async(scenario(), 10 * SLOW)
        self.assertEqual(self.echo.handshakes[-1][2], "chat.v2")


class Chat(WsTestCase):

    def test_broadcast_reaches_every_client_in_order_per_sender(self):
        chat = NodeChatServer()
        self.addCleanup(chat.stop)
        chat.start()
        s = self.ws_sluice(chat, path_prefix="/")
        per_client = 40

        async def wait_room(ws):
            while json.loads(await ws.recv()).get("joined", 0) < 3:
                pass

        async def talk(i, ws):
            for seq in range(per_client):
                text = json.dumps({"from": i, "seq": seq, "pad": "é" * seq,
                                   "binary": seq % 5 == 0})
                await ws.send(text.encode() if seq % 5 == 0 else text)

        async def listen(ws):
            got = []
            while len(got) < 3 * per_client:
                m = await ws.recv()
                msg = json.loads(m)
                self.assertEqual(isinstance(m, bytes), msg["binary"], msg)
                got.append(msg)
            return got

        async def scenario():
            clients = [await ws_connect(s.port, "/room") for _ in range(3)]
            try:
                await asyncio.gather(*(wait_room(ws) for ws in clients))
                results = await asyncio.gather(*(talk(i, ws) for i, ws in enumerate(clients)),
                                               *(listen(ws) for ws in clients))
                return results[3:]
            finally:
                for ws in clients:
                    await ws.close()

        for who, got in enumerate(run_async(scenario(), 30 * SLOW)):
            for sender in range(3):
                self.assertEqual([m["seq"] for m in got if m["from"] == sender],
                                 list(range(per_client)),
                                 "client %d: messages from %d out of order" % (who, sender))


class Masking(WsTestCase):

    def setUp(self):
        super().setUp()
        self.up = self.raw_upstream()
        self.s = self.ws_sluice(self.up)

    def test_upstream_gets_a_fresh_key_and_end_to_end_headers(self):
        c = self.ws_client(self.s.port)
        resp = c.handshake("/chat", headers=[("X-Custom", "kept"), ("Cookie", "a=1"),
                                             ("Sec-WebSocket-Extensions", "permessage-deflate")])
        self.assertEqual(resp.status, 101, resp)
        self.assertEqual(resp.header("sec-websocket-accept"), accept_for(c.key))
        self.assertEqual(resp.header("upgrade", "").lower(), "websocket")
        self.assertIn("upgrade", resp.headers.tokens("connection"))
        self.assertNotIn("sec-websocket-extensions", resp.headers.names())
        req = self.up.wait_upgraded().request
        key = req.header("sec-websocket-key", "")
        self.assertEqual(len(base64.b64decode(key, validate=True)), 16, req)
        self.assertNotEqual(key, c.key, "the client's Sec-WebSocket-Key went upstream")
        self.assertEqual((req.method, req.target), ("GET", "/chat"))
        self.assertEqual(req.header("sec-websocket-version"), "13")
        self.assertEqual(req.header("upgrade", "").lower(), "websocket")
        self.assertIn("upgrade", req.headers.tokens("connection"))
        self.assertEqual(req.header("origin"), ORIGIN)
        self.assertEqual(req.header("x-custom"), "kept")
        self.assertEqual(req.header("cookie"), "a=1")
        self.assertEqual(req.header("x-forwarded-for"), "127.0.0.1")
        self.assertNotIn("sec-websocket-extensions", req.headers.names())

    def test_frames_toward_the_upstream_are_remasked_with_fresh_keys(self):
        c, conn = self.open_session(self.s.port, self.up)
        same = os.urandom(4)
        sent = []
        for i in range(40):
            key = same if i < 20 else b"\0\0\0\0" if i < 30 else True
            opcode, payload, fin = (TEXT, b"frame %d" % i, True) if i % 2 else \
                (BINARY, os.urandom(i * 7), True)
            if i == 10:
                opcode, payload, fin = TEXT, "fragmented ".encode(), False
            elif i == 11:
                opcode, payload, fin = CONT, "message €".encode(), True
            c.send_frame(opcode, payload, fin, mask=key)
            sent.append((opcode, payload, fin))
        got = conn.wait_frames(len(sent), CLOSE_WAIT)
        self.assertEqual(shape(got), sent)
        self.assertTrue(all(f.masked for f in got), "unmasked frame toward the upstream")
        keys = [f.key for f in got]
        self.assertEqual(len(set(keys)), len(keys), "a masking key was reused: %r" % keys)
        self.assertFalse(set(keys) & set(c.sent_keys), "a client's key went upstream")
        conn.send_frame(BINARY, b"down")
        frame = c.read_frame(CLOSE_WAIT)
        self.assertEqual((frame.opcode, frame.payload, frame.masked), (BINARY, b"down", False))

    def test_pings_are_relayed_and_answered_both_ways(self):
        c, conn = self.open_session(self.s.port, self.up)
        conn.send_frame(PING, b"from upstream")
        ping = c.read_frame(CLOSE_WAIT)
        self.assertEqual((ping.opcode, ping.payload, ping.masked), (PING, b"from upstream", False))
        c.send_frame(PONG, ping.payload)
        c.send_frame(PING, b"from client")
        got = conn.wait_frames(2, CLOSE_WAIT)
        self.assertEqual(shape(got), [(PONG, b"from upstream", True),
                                      (PING, b"from client", True)])
        pong = c.read_frame(CLOSE_WAIT)
        self.assertEqual((pong.opcode, pong.payload), (PONG, b"from client"))


def msb_length_frame():
    """A binary frame header whose 64-bit length has the top bit set."""
    return bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5]) + os.urandom(4)


PART = [(TEXT, b"part", False)]
WHOLE = [(TEXT, b"whole", True)]
VIOLATIONS = [
    # (name, valid frames first, the bad bytes[, the close codes allowed: 1002 unless given])
    ("unmasked frame", WHOLE, lambda: encode_frame(TEXT, b"plain")),
    ("RSV1 without an extension", WHOLE, lambda: encode_frame(TEXT, b"x", mask=True, rsv=RSV1)),
    ("RSV2", WHOLE, lambda: encode_frame(BINARY, b"x", mask=True, rsv=RSV2)),
    ("RSV3", WHOLE, lambda: encode_frame(PING, b"x", mask=True, rsv=RSV3)),
    ("reserved data opcode 3", WHOLE, lambda: encode_frame(0x3, b"x", mask=True)),
    ("reserved control opcode 0xB", WHOLE, lambda: encode_frame(0xB, b"x", mask=True)),
    ("ping over 125 bytes", WHOLE, lambda: encode_frame(PING, b"p" * 126, mask=True)),
    ("fragmented ping", WHOLE, lambda: encode_frame(PING, b"p", fin=False, mask=True)),
    ("continuation with no message", WHOLE, lambda: encode_frame(CONT, b"x", mask=True)),
    ("new message while one is open", PART, lambda: encode_frame(TEXT, b"new", mask=True)),
    ("close with a 1-byte payload", WHOLE, lambda: encode_frame(CLOSE, b"\x03", mask=True)),
    ("close code 999", WHOLE, lambda: encode_frame(CLOSE, close_payload(999), mask=True)),
    ("close code 1005", WHOLE, lambda: encode_frame(CLOSE, close_payload(1005), mask=True)),
    ("close code 1015", WHOLE, lambda: encode_frame(CLOSE, close_payload(1015), mask=True)),
    # RFC 6455 8.1 fails the connection on any invalid UTF-8, and 7.4.1 names
    # 1007 for data inconsistent with its type; a close reason is both, and
    # the issue asks for 1007 in the UTF-8 cases.
    ("close reason not UTF-8", WHOLE,
     lambda: encode_frame(CLOSE, close_payload(1000, b"\xff\xfe"), mask=True), 1007),
    ("non-minimal 16-bit length", WHOLE,
     lambda: encode_frame(TEXT, b"short", mask=True, length_form=16)),
    ("64-bit length with the top bit set", WHOLE, msb_length_frame),
]


class ProtocolViolations(WsTestCase):

    def setUp(self):
        super().setUp()
        self.up = self.raw_upstream()
        self.s = self.ws_sluice(self.up)

    def test_client_violations_close_the_client_1002_and_the_upstream_1001(self):
        for name, valid, bad, *codes in VIOLATIONS:
            with self.subTest(name):
                c, conn = self.open_session(self.s.port, self.up)
                for opcode, payload, fin in valid:
                    c.send_frame(opcode, payload, fin)
                conn.wait_frames(len(valid), CLOSE_WAIT)
                c.send(bad())
                self.assertClientClosed(c, codes[0] if codes else 1002)
                self.assertUpstreamClosed(conn, 1001, valid)

    def test_masked_frame_from_the_upstream_closes_it_1002_and_the_client_1001(self):
        c, conn = self.open_session(self.s.port, self.up)
        conn.send_frame(TEXT, b"fine")
        conn.send_frame(TEXT, b"masked", mask=True)
        self.assertUpstreamClosed(conn, 1002)
        self.assertClientClosed(c, 1001, [(TEXT, b"fine", True)])


class Limits(WsTestCase):

    def setUp(self):
        super().setUp()
        self.up = self.raw_upstream()
        limits = {"max_frame_bytes": "1KiB", "max_message_bytes": "4KiB"}
        routes = [route("app", path_prefix="/chat", websocket=limits),
                  route("app", path_prefix="/lax", websocket=dict(limits, validate_utf8=False))]
        self.s = self.sluice([upstream("app", [self.up])], routes=routes)

    def violation(self, valid, bad, code, target="/chat"):
        c, conn = self.open_session(self.s.port, self.up, target)
        for opcode, payload, fin in valid:
            c.send_frame(opcode, payload, fin)
        conn.wait_frames(len(valid), CLOSE_WAIT)
        c.send_frame(*bad)
        self.assertClientClosed(c, code)
        self.assertUpstreamClosed(conn, 1001, valid)

    def passes(self, frames, target="/chat"):
        c, conn = self.open_session(self.s.port, self.up, target)
        for opcode, payload, fin in frames:
            c.send_frame(opcode, payload, fin)
        self.assertEqual(shape(conn.wait_frames(len(frames), CLOSE_WAIT)), list(frames))
        c.send_close(1000)
        self.assertClientClosed(c, 1000)

    def test_frame_over_max_frame_bytes_is_1009_and_not_forwarded(self):
        self.passes([(BINARY, b"a" * 1024, True)])
        self.violation(WHOLE, (BINARY, b"a" * 1025, True), 1009)

    def test_fragmented_message_over_max_message_bytes_is_1009(self):
        self.passes([(TEXT, b"m" * 1024, False)] + [(CONT, b"m" * 1024, False)] * 2
                    + [(CONT, b"m" * 1024, True)])
        first = [(BINARY, b"m" * 1000, False)] + [(CONT, b"m" * 1000, False)] * 3
        self.violation(first, (CONT, b"m" * 1000, True), 1009)

    def test_invalid_utf8_is_1007(self):
        self.violation(WHOLE, (TEXT, b"caf\xc3\x28", True), 1007)

    def test_code_point_split_across_fragments(self):
        euro = "€".encode()
        self.passes([(TEXT, b"price " + euro[:1], False), (CONT, euro[1:] + b" 5", True)])
        first = [(TEXT, b"price " + euro[:2], False)]
        self.violation(first, (CONT, b"\x28 5", True), 1007)

    def test_utf8_is_not_checked_where_validate_utf8_is_false(self):
        self.passes([(TEXT, b"caf\xc3\x28", True)], target="/lax")

    def test_frame_over_max_frame_bytes_from_the_upstream_is_1009(self):
        c, conn = self.open_session(self.s.port, self.up)
        conn.send_frame(TEXT, b"fine")
        conn.send_frame(BINARY, b"u" * 2000)
        self.assertUpstreamClosed(conn, 1009)
        self.assertClientClosed(c, 1001, [(TEXT, b"fine", True)])

    def test_invalid_utf8_from_the_upstream_is_1007(self):
        c, conn = self.open_session(self.s.port, self.up)
        conn.send_frame(TEXT, b"fine")
        conn.send_frame(TEXT, b"\xc0\xaf")
        self.assertUpstreamClosed(conn, 1007)
        self.assertClientClosed(c, 1001, [(TEXT, b"fine", True)])


class Handshakes(WsTestCase):

    def setUp(self):
        super().setUp()
        peers = {
            "good": self.raw_upstream("good"),
            "wrong_accept": self.raw_upstream("wrong_accept", accept=accept_for("x" * 24)),
            "no_accept": self.raw_upstream("no_accept", accept=None),
            "odd_protocol": self.raw_upstream("odd_protocol", protocol="chat.evil"),
            "not_found": self.raw_upstream("not_found", status=404, body=b"no such room\n"),
        }
        self.peers = peers
        ups = [upstream(n, [p]) for n, p in peers.items()]
        ups.append(upstream("down", ["%s:%d" % (LOOPBACK, free_port())]))
        routes = [route(n, path_prefix="/" + n) for n in list(peers) + ["down"]]
        routes[0]["websocket"] = {"allowed_origins": ["http://app.example"]}
        self.s = self.sluice(ups, routes=routes)

    def answer(self, target, **kw):
        c = self.ws_client(self.s.port)
        return c.handshake(target, **kw)

    def test_refused_origin_is_403_and_opens_no_upstream_connection(self):
        good = self.peers["good"]
        self.assertErrorResponse(self.answer("/good", origin="http://evil.example"), 403)
        self.assertErrorResponse(self.answer("/good", version="8", origin="http://app.example"),
                                 426)
        self.assertEqual(good.conn_count, 0, "an upstream connection for a refused upgrade")
        self.assertEqual(self.answer("/good", origin="http://app.example").status, 101)
        good.wait_upgraded(1)
        self.assertEqual(good.conn_count, 1)

    def test_wrong_version_is_426_naming_13(self):
        resp = self.answer("/good", version="8", origin="http://app.example")
        self.assertErrorResponse(resp, 426)
        self.assertEqual(resp.header("sec-websocket-version"), "13")

    def test_h2c_upgrade_is_501_and_not_tunnelled(self):
        c = self.ws_client(self.s.port)
        c.request("GET", "/good", [("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings"),
                                   ("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")])
        self.assertErrorResponse(c.read_response(), 501)
        self.assertEqual(self.peers["good"].conn_count, 0)

    def test_bad_101_from_the_upstream_is_502(self):
        for target in ("/wrong_accept", "/no_accept", "/odd_protocol"):
            for protocols in (None, ["chat.v1"]):
                with self.subTest(target=target, protocols=protocols):
                    self.assertErrorResponse(self.answer(target, protocols=protocols), 502)
        for name in ("wrong_accept", "no_accept", "odd_protocol"):
            self.assertGreater(self.peers[name].conn_count, 0)

    def test_non_101_answer_is_relayed_as_a_response(self):
        resp = self.answer("/not_found")
        self.assertEqual((resp.status, resp.body, resp.complete), (404, b"no such room\n", True))

    def test_unreachable_upstream_is_502(self):
        self.assertErrorResponse(self.answer("/down"), 502)


class Timeouts(WsTestCase):

    def test_idle_session_is_closed_1001_both_ways_and_pings_do_not_count(self):
        up = self.raw_upstream()
        s = self.ws_sluice(up, {"idle_timeout": "1s"})
        c, conn = self.open_session(s.port, up)
        started = time.monotonic()
        pongs, frame = 0, None
        for i in range(int((1 + 3 * SLOW) / 0.25)):   # a ping every 250 ms
            c.send_frame(PING, b"%d" % i)
            tick = time.monotonic() + 0.25
            try:
                while True:
                    frame = c.read_frame(max(0.0, tick - time.monotonic()))
                    if frame is None or frame.opcode != PONG:
                        break
                    pongs += 1
            except socket.timeout:
                continue
            break
        elapsed = time.monotonic() - started
        self.assertIsNotNone(frame, "connection ended without a close frame")
        self.assertEqual(frame.close_code, 1001, frame)
        self.assertGreaterEqual(pongs, 2, "pings were not relayed and answered")
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 1 + 2 * SLOW, "idle_timeout of 1s took %.1fs" % elapsed)
        self.assertEqual(conn.wait_close(CLOSE_WAIT).close_code, 1001)

    def test_data_frames_keep_a_session_alive(self):
        up = self.raw_upstream()
        s = self.ws_sluice(up, {"idle_timeout": "1s"})
        c, conn = self.open_session(s.port, up)
        for i in range(5):         # 1.75 s of traffic, one direction at a time
            if i % 2:
                c.send_frame(TEXT, b"c%d" % i)
            else:
                conn.send_frame(TEXT, b"u%d" % i)
            with self.assertRaises(socket.timeout, msg="closed while data was flowing"):
                while True:
                    frame = c.read_frame(0.35)
                    self.assertIsNotNone(frame, "connection ended while data was flowing")
                    self.assertEqual(frame.opcode, TEXT, frame)
        self.assertEqual([f.payload for f in conn.data_frames()], [b"c1", b"c3"])

    def test_gateway_pings_are_answered_and_never_reach_the_upstream(self):
        up = self.raw_upstream()
        s = self.ws_sluice(up, {"ping_interval": "200ms"})

        async def library_client():
            async with ws_connect(s.port) as ws:
                with self.assertRaises(asyncio.TimeoutError):
                    await asyncio.wait_for(ws.recv(), 1.0)
                await ws.send("still here")
        run_async(library_client(), 10 * SLOW)
        self.assertEqual(up.wait_upgraded(1).data_frames()[0].payload, b"still here")

        c, conn = self.open_session(s.port, up)
        c.answer_pings = True
        with self.assertRaises(socket.timeout):
            c.read_frame(1.0)
        self.assertGreaterEqual(len(c.pings), 3, "the gateway did not ping every 200ms")
        c.send_frame(TEXT, b"raw here")
        conn.wait_frames(1, CLOSE_WAIT)
        for n, conn in enumerate(up.wait_conns(2)):
            kinds = [f.opcode for f in conn.snapshot()]
            self.assertNotIn(PING, kinds, "conn %d: the gateway's ping went upstream" % n)
            self.assertNotIn(PONG, kinds, "conn %d: the client's pong went upstream" % n)

    def test_unanswered_ping_closes_1001_both_ways(self):
        up = self.raw_upstream()
        s = self.ws_sluice(up, {"ping_interval": "300ms"})
        c, conn = self.open_session(s.port, up)
        started = time.monotonic()
        frames, close = c.read_until_close(2 + 2 * SLOW)
        elapsed = time.monotonic() - started
        self.assertIsNotNone(close, "no close frame after unanswered pings")
        self.assertEqual(close.close_code, 1001, close)
        self.assertTrue(frames and all(f.opcode == PING for f in frames), frames)
        self.assertLess(elapsed, 0.6 + 2 * SLOW)
        self.assertEqual(conn.wait_close(CLOSE_WAIT).close_code, 1001)


class Closing(WsTestCase):

    def setUp(self):
        super().setUp()
        self.up = self.raw_upstream()
        self.s = self.ws_sluice(self.up)

    def test_client_close_is_relayed_with_code_and_reason(self):
        c, conn = self.open_session(self.s.port, self.up)
        c.send_close(4000, "done")
        close = conn.wait_close(CLOSE_WAIT)
        self.assertEqual((close.close_code, close.close_reason), (4000, b"done"))
        self.assertClientClosed(c, 4000, finish=False)
        self.assertTrue(c.wait_eof(CLOSE_WAIT), "client: TCP still open after the close handshake")
        conn.wait_eof(CLOSE_WAIT)

    def test_upstream_close_is_relayed_with_code_and_reason(self):
        c, conn = self.open_session(self.s.port, self.up)
        conn.send_close(4001, "bye")
        close = self.assertClientClosed(c, 4001)
        self.assertEqual(close.close_reason, b"bye")
        self.assertEqual(conn.wait_close(CLOSE_WAIT).close_code, 4001)
        conn.wait_eof(CLOSE_WAIT)

    def test_upstream_dropping_its_socket_is_1011_to_the_client(self):
        c, conn = self.open_session(self.s.port, self.up)
        conn.send_frame(TEXT, b"last words")
        conn.close()
        self.assertClientClosed(c, 1011, [(TEXT, b"last words", True)])

    def test_client_vanishing_is_1001_to_the_upstream(self):
        c, conn = self.open_session(self.s.port, self.up)
        c.send_frame(TEXT, b"bye")
        c.close()
        self.assertUpstreamClosed(conn, 1001, [(TEXT, b"bye", True)])

    def test_sigterm_closes_sessions_1001(self):
        c, conn = self.open_session(self.s.port, self.up)
        self.s.signal(signal.SIGTERM)
        self.assertClientClosed(c, 1001)
        self.assertEqual(conn.wait_close(CLOSE_WAIT).close_code, 1001)
        self.assertIsNotNone(self.s.wait_exit(CLOSE_WAIT), "sluice still running after SIGTERM")
        self.s.assert_clean_exit()


class EarlyBytes(WsTestCase):

    def test_frames_in_the_same_packet_as_either_head_are_relayed(self):
        up = self.raw_upstream(after_101=encode_frame(TEXT, b"welcome")
                               + encode_frame(BINARY, b"\x00\x01"))
        s = self.ws_sluice(up)
        c = self.ws_client(s.port)
        early = encode_frame(TEXT, b"hello", mask=True) + encode_frame(PING, b"p", mask=True)
        resp = c.handshake("/chat", extra=early)
        self.assertEqual(resp.status, 101, resp)
        conn = up.wait_upgraded()
        self.assertEqual(shape(conn.wait_frames(2, CLOSE_WAIT)), [(TEXT, b"hello", True),
                                                                  (PING, b"p", True)])
        got = [c.read_frame(CLOSE_WAIT) for _ in range(3)]
        self.assertEqual(shape(got), [(TEXT, b"welcome", True), (BINARY, b"\x00\x01", True),
                                      (PONG, b"p", True)])


class Backpressure(WsTestCase):

    def test_client_that_stops_reading_stalls_the_upstream_not_memory(self):
        total = 64 << 20
        up = self.raw_upstream()
        s = self.ws_sluice(up, {"max_message_bytes": "1MiB", "idle_timeout": "60s"})
        c = self.ws_client(s.port, rcvbuf=64 * 1024)
        self.assertEqual(c.handshake("/chat").status, 101)
        conn = up.wait_upgraded()
        baseline = rss_kib(s.pid)
        monitor = RssMonitor(s.pid).start()
        conn.push(total)
        stalled_at = wait_stalled(lambda: conn.bytes_sent, quiet=0.5 * SLOW, timeout=20 * SLOW)
        peak = monitor.stop()
        self.assertIsNotNone(stalled_at, "the upstream's writes never stalled")
        self.assertLess(stalled_at, total // 2, "the upstream pushed %d bytes" % stalled_at)
        self.assertLess(peak - baseline, 8 << 10, "RSS grew %d KiB while the upstream pushed %d "
                                                "bytes to a client that does not read" % (
                                                    peak - baseline, stalled_at))
        received = 0
        expected = bytes(range(256)) * 256
        deadline = time.monotonic() + 30 * SLOW
        while received < total and time.monotonic() < deadline:
            frame = c.read_frame(CLOSE_WAIT)
            self.assertIsNotNone(frame, "connection ended after %d bytes" % received)
            self.assertEqual((frame.opcode, frame.payload), (BINARY, expected[:frame.length]))
            received += frame.length
        self.assertEqual(received, total)


class AccessLog(WsTestCase):

    def fields(self, line):
        return dict(re.findall(r"(\w+)=(\S+)", line))

    def test_one_line_per_session_with_its_counters(self):
        up = self.raw_upstream()
        s = self.ws_sluice(up)
        c, conn = self.open_session(s.port, up, "/chat/room1")
        c.send_frame(TEXT, b"hello")
        c.send_frame(BINARY, b"12345", fin=False)
        c.send_frame(CONT, b"67890")
        c.send_frame(PING, b"not counted")
        conn.wait_frames(4, CLOSE_WAIT)
        for payload in (b"a", b"bb", b"ccc"):
            conn.send_frame(TEXT, payload)
        self.assertEqual(len([c.read_frame(CLOSE_WAIT) for _ in range(4)]), 4)
        c.send_close(1000, "done")
        self.assertClientClosed(c, 1000, finish=False)
        f = self.fields(s.wait_log(r"status=101", timeout=CLOSE_WAIT))
        expected = {"status": "101", "route": "/chat", "upstream": up.addr, "msgs_c2u": "2",
                    "msgs_u2c": "3", "bytes_c2u": "15", "bytes_u2c": "6",
                    "close_code": "1000", "closed_by": "client"}
        self.assertEqual({k: f.get(k) for k in expected}, expected, f)
        self.assertGreaterEqual(float(f.get("duration_ms", "-1")), 0.0, f)

        c, conn = self.open_session(s.port, up)
        conn.send_close(4001, "bye")
        self.assertClientClosed(c, 4001)
        line = s.wait_log(r"status=101.*closed_by=upstream", timeout=CLOSE_WAIT)
        self.assertEqual(self.fields(line)["close_code"], "4001", line)

        c, conn = self.open_session(s.port, up)
        c.send_frame(TEXT, b"x", mask=None)
        self.assertClientClosed(c, 1002)
        line = s.wait_log(r"status=101.*closed_by=gateway", timeout=CLOSE_WAIT)
        self.assertRegex(self.fields(line)["close_code"], r"^\d{4}$", line)
        self.assertEqual(len([l for l in s.access_lines() if "status=101" in l]), 3)


if __name__ == "__main__":
    unittest.main()
