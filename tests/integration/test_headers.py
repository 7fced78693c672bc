"""Header rules and refused upgrades.

Proves: hop-by-hop headers (Connection and the headers it names,
Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade) never reach the
upstream, while Proxy-Authorization and end-to-end headers (repeated ones
included, in order) do; X-Forwarded-For from a client that is not in
server.trusted_proxies is replaced by its address, and from one that is it
is appended to (", 127.0.0.1", repeated lines joined in order);
X-Forwarded-Proto is http, X-Forwarded-Host is the client's Host, Via gains
"1.1 sluice", Host is kept; hop-by-hop headers of the upstream's response do
not reach the client; upgrades to anything but websocket (h2c) are 501 and
never forwarded; WebSocket handshakes that fail the route's policy are
refused before anything goes upstream, and valid ones go upstream with
Sluice's own Sec-WebSocket-Key (an upstream that answers without switching
is relayed as an ordinary response).
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SluiceTestCase, route, send_response, upstream)  # noqa: E402

HOP_BY_HOP = ("keep-alive", "proxy-connection", "te", "trailer", "upgrade")


class RequestHeaders(SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.app = self.backend("app")
        self.s = self.sluice([upstream("app", [self.app])])

    def forward(self, headers, host="localhost", target="/h", port=None):
        c = self.client(port or self.s.port)
        resp = c.roundtrip(target=target, headers=headers, host=host)
        self.assertEqual(resp.status, 200, resp)
        return self.app.wait_requests(self.app.request_count)[-1]

    def test_hop_by_hop_headers_are_removed(self):
        req = self.forward([
            ("Connection", "keep-alive, X-Hop-Named, x-other-named"),
            ("X-Hop-Named", "secret"),
            ("X-Other-Named", "secret2"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
            ("X-End-To-End", "kept"),
        ])
        names = req.headers.names()
        for name in HOP_BY_HOP + ("x-hop-named", "x-other-named"):
            self.assertNotIn(name, names, "%s reached the upstream: %r" % (name, req.headers))
        for token in req.headers.tokens("connection"):
            self.assertIn(token, ("keep-alive", "close"),
                          "client's Connection tokens forwarded: %r" % req.headers)
        self.assertEqual(req.header("proxy-authorization"), "Basic dXNlcjpwYXNz")
        self.assertEqual(req.header("x-end-to-end"), "kept")

    def test_end_to_end_headers_kept_in_order(self):
        req = self.forward([("X-Multi", "one"), ("Cookie", "a=1"), ("X-Multi", "two"),
                            ("Authorization", "Bearer T0k3n"), ("X-Case", "MiXeD value")])
        self.assertEqual(req.headers.get_all("x-multi"), ["one", "two"])
        self.assertEqual(req.header("cookie"), "a=1")
        self.assertEqual(req.header("authorization"), "Bearer T0k3n")
        self.assertEqual(req.header("x-case"), "MiXeD value")

    def test_forwarding_headers_are_set(self):
        req = self.forward([], host="shop.example.com:8080")
        self.assertEqual(req.header("x-forwarded-for"), "127.0.0.1")
        self.assertEqual(req.header("x-forwarded-proto"), "http")
        self.assertEqual(req.header("x-forwarded-host"), "shop.example.com:8080")
        self.assertEqual(req.header("host"), "shop.example.com:8080")
        self.assertIn("1.1 sluice", [v.strip() for v in req.header("via", "").split(",")])

    def test_untrusted_forwarded_for_is_replaced_and_via_appended_to(self):
        req = self.forward([("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-For", "10.0.0.2"),
                            ("Via", "1.0 fred")])
        self.assertEqual(req.headers.get_all("x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual([v.strip() for v in req.header("via").split(",")],
                         ["1.0 fred", "1.1 sluice"])

    def test_trusted_proxy_forwarded_for_lines_are_kept_in_order_and_appended_to(self):
        trusting = self.sluice([upstream("app", [self.app])],
                               server={"trusted_proxies": ["10.9.0.0/16", "127.0.0.0/8"]})
        req = self.forward([("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-For", "10.0.0.2")],
                           port=trusting.port)
        chain = [v.strip() for v in req.header("x-forwarded-for").split(",")]
        self.assertEqual(chain, ["10.0.0.1", "10.0.0.2", "127.0.0.1"])
        # After a reload that no longer trusts 127.0.0.0/8: replaced.
        trusting.reload(dict(trusting.doc, server=dict(trusting.doc["server"],
                                                       trusted_proxies=["10.9.0.0/16"])))
        req = self.forward([("X-Forwarded-For", "10.0.0.1")], port=trusting.port)
        self.assertEqual(req.headers.get_all("x-forwarded-for"), ["127.0.0.1"])

    def test_client_cannot_spoof_proto_or_host(self):
        req = self.forward([("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.test")],
                           host="real.example")
        self.assertEqual(req.headers.get_all("x-forwarded-proto"), ["http"])
        self.assertEqual(req.headers.get_all("x-forwarded-host"), ["real.example"])


class ResponseHeaders(SluiceTestCase):

    def test_upstream_hop_by_hop_headers_do_not_reach_the_client(self):
        def handler(backend, conn, req):
            send_response(conn, 200, b"body", [("Connection", "X-Up-Hop"), ("X-Up-Hop", "1"),
                                               ("Keep-Alive", "timeout=5"),
                                               ("Proxy-Connection", "keep-alive"),
                                               ("X-Up-End", "kept")])
        app = self.backend("app", handler)
        s = self.sluice([upstream("app", [app])])
        resp = self.get(s.port, "/r")
        self.assertEqual((resp.status, resp.body), (200, b"body"))
        names = resp.headers.names()
        for name in ("x-up-hop", "keep-alive", "proxy-connection"):
            self.assertNotIn(name, names, "%s reached the client: %r" % (name, resp.headers))
        self.assertNotIn("x-up-hop", resp.headers.tokens("connection"))
        self.assertEqual(resp.header("x-up-end"), "kept")


WS_HANDSHAKE = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13")]


def without(headers, name):
    return [(k, v) for k, v in headers if k.lower() != name.lower()]


class Upgrades(SluiceTestCase):
    """Upgrade requests are checked against the handshake rules and the
    route's policy; only valid WebSocket handshakes are forwarded (the
    WebSocket relay itself is tested in test_websocket.py and
    test_ws_policy.py)."""

    def setUp(self):
        super().setUp()
        self.app = self.backend("app")
        routes = [route("app"),
                  route("app", path_prefix="/strict",
                        websocket={"allowed_origins": ["https://chat.example.com"],
                                   "subprotocols": ["chat.v2"]}),
                  route("app", path_prefix="/off", websocket={"enabled": False}),
                  route("app", path_prefix="/bots", websocket={"allow_missing_origin": True})]
        self.s = self.sluice([upstream("app", [self.app])], routes=routes)

    def refused(self, target, headers, status, method="GET"):
        c = self.client(self.s.port)
        c.request(method=method, target=target, headers=headers)
        resp = c.read_response(method)
        self.assertErrorResponse(resp, status)
        self.assertConnectionConsistent(c, resp, "/after")
        self.assertNotIn(target, [h.target for h in self.app.heads],
                         "upgrade request forwarded")
        self.assertNotIn(b"upgrade:", self.app.raw_bytes().lower())
        return resp

    def forwarded(self, target, headers):
        """A valid handshake goes upstream with the gateway's own key; the
        backend (plain HTTP) answers 200, which reaches the client as is,
        and the connection then closes (what follows an upgrade request is
        not HTTP)."""
        c = self.client(self.s.port)
        c.request(target=target, headers=headers)
        resp = c.read_response()
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("connection"), "close")
        self.assertClosed(c)
        req = [r for r in self.app.heads if r.target == target][-1]
        self.assertEqual(req.header("upgrade"), "websocket")
        self.assertEqual(req.header("sec-websocket-version"), "13")
        key = req.header("sec-websocket-key")
        self.assertIsNotNone(key)
        self.assertNotEqual(key, dict(WS_HANDSHAKE)["Sec-WebSocket-Key"])
        self.assertEqual(len(key), 24)
        return req

    def test_valid_websocket_handshake_goes_upstream_with_a_fresh_key(self):
        self.forwarded("/chat", WS_HANDSHAKE + [("Origin", "http://localhost")])
        self.forwarded("/chat2", WS_HANDSHAKE + [("Origin", "http://localhost")])
        keys = {r.header("sec-websocket-key") for r in self.app.heads}
        self.assertEqual(len(keys), 2, "a key was reused")

    def test_upgrade_without_connection_upgrade_is_a_plain_request(self):
        c = self.client(self.s.port)
        resp = c.roundtrip(target="/plain", headers=[("Upgrade", "websocket")])
        self.assertEqual(resp.status, 200, resp)
        req = [r for r in self.app.heads if r.target == "/plain"][-1]
        self.assertIsNone(req.header("upgrade"))

    def test_h2c_upgrade_is_501(self):
        self.refused("/h2c", [("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings"),
                              ("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")], 501)

    def test_wrong_version_is_426_naming_13(self):
        headers = without(WS_HANDSHAKE, "sec-websocket-version") + [
            ("Sec-WebSocket-Version", "8"), ("Origin", "http://localhost")]
        resp = self.refused("/chat", headers, 426)
        self.assertEqual(resp.header("sec-websocket-version"), "13")

    def test_bad_key_is_400(self):
        for key in ("short", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZXg="):
            with self.subTest(key=key):
                headers = without(WS_HANDSHAKE, "sec-websocket-key") + [
                    ("Sec-WebSocket-Key", key), ("Origin", "http://localhost")]
                self.refused("/chat", headers, 400)

    def test_post_upgrade_is_400(self):
        self.refused("/chat", WS_HANDSHAKE + [("Origin", "http://localhost")], 400, method="POST")

    def test_missing_origin_is_403_unless_the_route_allows_it(self):
        self.refused("/chat", WS_HANDSHAKE, 403)
        self.forwarded("/bots", WS_HANDSHAKE)

    def test_origin_not_in_the_allowlist_is_403(self):
        offer = WS_HANDSHAKE + [("Sec-WebSocket-Protocol", "chat.v2")]
        self.refused("/strict", offer + [("Origin", "https://evil.example.com")], 403)
        req = self.forwarded("/strict", offer + [("Origin", "https://chat.example.com")])
        self.assertEqual(req.header("sec-websocket-protocol"), "chat.v2")

    def test_only_allowed_subprotocols_are_offered_upstream(self):
        req = self.forwarded("/strict", WS_HANDSHAKE + [
            ("Origin", "https://chat.example.com"),
            ("Sec-WebSocket-Protocol", "chat.v1, chat.v2"), ("Sec-WebSocket-Protocol", "x")])
        self.assertEqual(req.header("sec-websocket-protocol"), "chat.v2")

    def test_extensions_are_stripped_by_default(self):
        req = self.forwarded("/bots", WS_HANDSHAKE + [
            ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
        self.assertIsNone(req.header("sec-websocket-extensions"))

    def test_websocket_upgrade_with_a_body_is_400(self):
        c = self.client(self.s.port)
        c.request(target="/chat", headers=WS_HANDSHAKE + [("Origin", "http://localhost")],
                  body=b"hello")
        self.assertErrorResponse(c.read_response(), 400)
        self.assertNotIn("/chat", [h.target for h in self.app.heads])

    def test_only_refused_subprotocols_offered_is_403(self):
        self.refused("/strict", WS_HANDSHAKE + [("Origin", "https://chat.example.com"),
                                                ("Sec-WebSocket-Protocol", "chat.v1, other")], 403)

    def test_websocket_disabled_on_the_route_is_403(self):
        self.refused("/off", WS_HANDSHAKE + [("Origin", "http://localhost")], 403)


if __name__ == "__main__":
    unittest.main()
