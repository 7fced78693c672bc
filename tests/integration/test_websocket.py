"""WebSocket relaying, end to end: clients and upstreams on both sides of
sluice, with python3-websockets, Node's `ws` and raw sockets (wsframes.py,
wspeers.py).

Proves: messages of every size (0 to 16 MiB, text and binary, fragmented or
not) arrive intact both ways; an extension offer is stripped unless the route
passes extensions through, and an allowed subprotocol is negotiated end to
end; a Node broadcast room gets every message to every client in order per
sender; frames toward the upstream are re-masked with a fresh key per frame
and the upstream gets its own Sec-WebSocket-Key and the end-to-end headers;
pings are relayed and answered both ways; bytes sent right after either
side's head are relayed; a client that stops reading stalls the upstream
without growing sluice's memory; and one access-log line per session with
its counters.

What sluice refuses, limits, times out and closes is in test_ws_policy.py.
"""

import asyncio
import base64
import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, RssMonitor, route, rss_kib, sha256, upstream,  # noqa: E402
                     wait_stalled)
from wscase import (CLOSE_WAIT, ORIGIN, RawUpstreamCase, WsTestCase, run_async,  # noqa: E402
                    shape, ws_connect)
from wsframes import BINARY, CONT, PING, PONG, TEXT, accept_for, encode_frame  # noqa: E402
from wspeers import NodeScript, _aiter, fragments  # noqa: E402

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
        chat = NodeScript("chat_server.js")
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


class Masking(RawUpstreamCase):

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
