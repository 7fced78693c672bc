"""WebSocket over TLS, on either side of sluice.

Proves: a wss client (python3-websockets) reaches a plain ws upstream through
a TLS listener: text and binary messages up to 1 MiB echo intact, a close
code and reason come back, and the upstream's handshake says
X-Forwarded-Proto https; a ws client reaches a wss upstream whose certificate
is verified against the test CA with server_name checked, messages echo
intact; and a wss upstream whose certificate names another host gets 502,
with no 101 and nothing relayed.
"""

import os
import ssl
import sys
import unittest

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import LOOPBACK, SLOW, base_config, route, upstream  # noqa: E402
from tlsutil import (Pki, TlsSluice, UpstreamPki, cleanup_shared_pki, shared_pki,  # noqa: E402
                     tls_table)
from wscase import CLOSE_WAIT, ORIGIN, WsTestCase, run_async  # noqa: E402

WS_ROUTE = {"allow_missing_origin": True, "max_frame_bytes": "2MiB",
            "max_message_bytes": "2MiB"}
SIZES = (0, 125, 65536, 1 << 20)
RUN_TIMEOUT = 30.0 * SLOW

tearDownModule = cleanup_shared_pki


async def echo_all(uri, **options):
    """Sends each size as text and as binary and returns what came back,
    then closes with 4000 and returns the close code and reason seen."""
    got = []
    async with websockets.connect(uri, origin=ORIGIN, max_size=None, compression=None,
                                  ping_interval=None, open_timeout=10 * SLOW,
                                  close_timeout=CLOSE_WAIT, **options) as ws:
        for n in SIZES:
            for message in (os.urandom(n), "é" * (n // 2)):
                await ws.send(message)
                got.append((message, await ws.recv()))
        await ws.close(4000, "done")
        return got, ws.close_code, ws.close_reason


class WssClient(WsTestCase):
    """A TLS listener in front of a plain ws upstream."""

    def test_wss_client_to_plain_upstream(self):
        pki = shared_pki("site")
        echo = self.echo_server()
        doc = base_config([upstream("app", [echo])],
                          [route("app", path_prefix="/chat", websocket=WS_ROUTE)])
        s = TlsSluice(self.tmp, doc, [tls_table([pki.site()])])
        s.start()
        self.addCleanup(self._stop_sluice, s)
        ctx = ssl.create_default_context(cafile=pki.ca_pem)
        uri = "wss://%s:%d/chat" % (LOOPBACK, s.tls_port)
        got, code, reason = run_async(echo_all(uri, ssl=ctx, server_hostname=Pki.SITE_NAME),
                                      RUN_TIMEOUT)
        self.assertEqual(len(got), 2 * len(SIZES))
        for sent, back in got:
            self.assertEqual(sent, back)
        self.assertEqual((code, reason), (4000, "done"))
        self.assertEqual(len(echo.handshakes), 1)
        self.assertEqual(echo.handshakes[0][1].get("x-forwarded-proto"), "https")


class WssUpstream(WsTestCase):
    """A plain listener in front of a wss upstream, verified."""

    def setUp(self):
        super().setUp()
        self.pki = shared_pki("upstream")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki.api_pem, self.pki.api_key)
        self.echo = self.echo_server(ssl_context=ctx)

    def proxy(self, server_name):
        tls = {"enabled": True, "ca": self.pki.ca_pem, "server_name": server_name}
        doc = base_config([upstream("app", [self.echo], tls=tls)],
                          [route("app", path_prefix="/chat", websocket=WS_ROUTE)])
        s = TlsSluice(self.tmp, doc, [None])
        s.start()
        self.addCleanup(self._stop_sluice, s)
        return s

    def test_plain_client_to_verified_wss_upstream(self):
        s = self.proxy(UpstreamPki.API_NAME)
        got, code, reason = run_async(echo_all("ws://%s:%d/chat" % (LOOPBACK, s.plain_port)),
                                      RUN_TIMEOUT)
        for sent, back in got:
            self.assertEqual(sent, back)
        self.assertEqual(len(got), 2 * len(SIZES))
        self.assertEqual((code, reason), (4000, "done"))

    def test_upstream_certificate_for_another_name_is_502(self):
        s = self.proxy("other.internal")
        c = self.ws_client(s.plain_port)
        resp = c.handshake("/chat", origin=ORIGIN)
        self.assertEqual(resp.status, 502, resp)
        self.assertEqual(self.echo.handshakes, [])


if __name__ == "__main__":
    unittest.main()
