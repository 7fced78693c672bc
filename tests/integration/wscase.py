"""What the WebSocket test scripts (test_websocket.py, test_ws_policy.py)
share; it holds no tests itself.

  - WsTestCase: a SluiceTestCase that starts WebSocket peers (wspeers.py) and
    raw clients (wsframes.WsClient) it tears down itself, puts sluice in
    front of one peer, opens a session through it, and asserts how a session
    ended on each side (the frames before the close, the close code, the
    masking, the TCP close).
  - RawUpstreamCase: a WsTestCase whose every test starts with a
    RawWsUpstream (`up`) behind sluice (`s`) on /chat.
  - ws_connect / run_async: a python3-websockets client through sluice, run
    under a deadline.
  - shape: received frames as (opcode, payload, fin), for comparing with what
    was sent.
"""

import asyncio

import websockets

from harness import LOOPBACK, SLOW, SluiceTestCase, route, upstream
from wsframes import WsClient, accept_for
from wspeers import RawWsUpstream, WsEchoServer

ORIGIN = "http://localhost"
CLOSE_WAIT = 5.0 * SLOW        # for a close frame or an EOF that is due now


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


class RawUpstreamCase(WsTestCase):

    def setUp(self):
        super().setUp()
        self.up = self.raw_upstream()
        self.s = self.ws_sluice(self.up)
