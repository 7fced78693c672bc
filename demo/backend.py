#!/usr/bin/python3
"""The demo backend that `make run` starts next to the gateway.

A small HTTP/1.1 origin server on 127.0.0.1:9000 (standard library only). It
serves the files of demo/static: `/` is the chat page (index.html and its
app.js), whose WebSocket goes through the gateway's /chat route to
demo/chat_server.js. `/headers` shows the request headers as they arrived
here, so a person can see what the gateway does to a request, including the
ones it added (X-Forwarded-For, Via, ...). Other paths: `/api/time` (JSON),
`/echo` (POST body echoed back), `/health` ("ok").

Every response carries Content-Length, so connections stay open between
requests and the gateway's keep-alive pool is exercised. This is a demo, not a
server to expose: it listens on loopback unless told otherwise.
"""

import argparse
import html
import json
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MAX_BODY_BYTES = 1 << 20  # /echo refuses larger bodies with 413

# The files of demo/static, served as they are (read on each request, so an
# edited page shows on reload). Only the names found there at start are
# served: a request path never reaches the file system.
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def static_files():
    """URL path -> (file path, content type) for each servable file of STATIC_DIR."""
    files = {}
    if not os.path.isdir(STATIC_DIR):
        return files
    for name in sorted(os.listdir(STATIC_DIR)):
        ctype = CONTENT_TYPES.get(os.path.splitext(name)[1])
        full = os.path.join(STATIC_DIR, name)
        if ctype and os.path.isfile(full):
            files["/" + name] = (full, ctype)
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files

# Headers a reverse proxy adds or rewrites; the page marks them so they stand out.
PROXY_HEADERS = frozenset(
    ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via", "forwarded", "x-real-ip")
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sluice demo backend</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 56rem; padding: 0 1rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }}
td {{ font-family: ui-monospace, monospace; word-break: break-all; }}
tr.proxy td {{ background: #fff6d5; }}
code {{ background: #f2f2f2; padding: 0 .2rem; }}
</style>
</head>
<body>
<h1>Sluice demo backend</h1>
<p>This page comes from the demo backend behind the Sluice gateway. Below is the request as it
reached the backend; the highlighted headers are the ones a reverse proxy adds
(<code>X-Forwarded-For</code>, <code>Via</code>, ...).</p>
<p><strong>{method} {target} {version}</strong> from {peer}</p>
<table>
<tr><th>Header</th><th>Value</th></tr>
{rows}
</table>
<p>Also here: <a href="/">the chat</a>, <a href="/api/time">/api/time</a> (JSON),
<code>POST /echo</code> (echoes the body), <a href="/health">/health</a>.</p>
</body>
</html>
"""


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response sets Content-Length
    server_version = "SluiceDemoBackend/1.0"
    # The head and the body go out in two writes; without TCP_NODELAY the body
    # waits for the peer's delayed ACK of the head (~40 ms) on a reused connection.
    disable_nagle_algorithm = True
    # An idle keep-alive connection (the gateway's pool keeps some) is closed
    # after this long, so its thread does not live forever.
    timeout = 300
    static = {}  # static_files(), set by main()

    def version_string(self):
        return self.server_version

    # -- methods ---------------------------------------------------------

    def do_GET(self):
        self._route(send_body=True)

    def do_HEAD(self):
        self._route(send_body=False)

    def do_POST(self):
        path = urlsplit(self.path).path
        if path != "/echo":
            self._discard_body()
            if path in ("/headers", "/api/time", "/health") or path in self.static:
                self._method_not_allowed("GET, HEAD")
            else:
                self._send_text(HTTPStatus.NOT_FOUND, "not found\n")
            return
        body = self._read_body()
        if body is None:
            return  # an error response was sent and the connection is closing
        ctype = self.headers.get("Content-Type", "application/octet-stream")
        self._send(HTTPStatus.OK, ctype, body, extra=(("X-Echo-Bytes", str(len(body))),))

    # -- routing ---------------------------------------------------------

    def _route(self, send_body):
        path = urlsplit(self.path).path
        if path in self.static:
            self._send_file(*self.static[path], send_body=send_body)
        elif path == "/headers":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", self._page(), send_body)
        elif path == "/api/time":
            now = time.time()
            doc = {
                "service": "sluice-demo-backend",
                "time": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"),
                "unix": round(now, 3),
            }
            body = (json.dumps(doc) + "\n").encode()
            self._send(HTTPStatus.OK, "application/json", body, send_body)
        elif path == "/health":
            self._send_text(HTTPStatus.OK, "ok\n", send_body)
        elif path == "/echo":
            self._method_not_allowed("POST", send_body)
        else:
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n", send_body)

    def _page(self):
        rows = []
        for name, value in self.headers.items():
            cls = ' class="proxy"' if name.lower() in PROXY_HEADERS else ""
            rows.append(
                "<tr%s><td>%s</td><td>%s</td></tr>" % (cls, html.escape(name), html.escape(value))
            )
        peer = "%s:%s" % self.client_address[:2]
        return PAGE.format(
            method=html.escape(self.command),
            target=html.escape(self.path),
            version=html.escape(self.request_version),
            peer=html.escape(peer),
            rows="\n".join(rows) or '<tr><td colspan="2">(none)</td></tr>',
        ).encode()

    # -- request bodies --------------------------------------------------

    def _read_body(self):
        """The whole request body, or None after answering with an error."""
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                self._fail(HTTPStatus.NOT_IMPLEMENTED, "only chunked transfer-encoding is supported\n")
                return None
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.isdigit():
            self._fail(HTTPStatus.BAD_REQUEST, "bad content-length\n")
            return None
        n = int(length)
        if n > MAX_BODY_BYTES:
            self._fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large\n")
            return None
        body = self.rfile.read(n)
        if len(body) != n:
            self.close_connection = True
            return None
        return body

    def _read_chunked(self):
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self._fail(HTTPStatus.BAD_REQUEST, "bad chunk size\n")
                return None
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                self._fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large\n")
                return None
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.read(2) != b"\r\n":
                self._fail(HTTPStatus.BAD_REQUEST, "bad chunk\n")
                return None
            parts.append(chunk)
        # Trailer section: header lines up to an empty line.
        while True:
            line = self.rfile.readline(8192)
            if line in (b"\r\n", b"\n", b""):
                break
        return b"".join(parts)

    def _discard_body(self):
        # Keeps the connection usable when a body we do not want arrives.
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") is not None:
            if self._read_chunked() is None:
                return
        elif length is not None and length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        elif length is not None:
            self.close_connection = True

    # -- responses -------------------------------------------------------

    def _send(self, status, content_type, body, send_body=True, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in extra:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _send_file(self, file_path, content_type, send_body=True):
        try:
            with open(file_path, "rb") as f:
                body = f.read()
        except OSError:
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n", send_body)
            return
        self._send(HTTPStatus.OK, content_type, body, send_body)

    def _send_text(self, status, text, send_body=True):
        self._send(status, "text/plain; charset=utf-8", text.encode(), send_body)

    def _method_not_allowed(self, allow, send_body=True):
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            b"method not allowed\n",
            send_body,
            extra=(("Allow", allow),),
        )

    def _fail(self, status, text):
        # The rest of the request body is unread, so the connection cannot be reused.
        self.close_connection = True
        self._send_text(status, text)

    def log_message(self, format, *args):
        # One short line per request on stderr.
        sys.stderr.write("backend: %s %s\n" % (self.client_address[0], format % args))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Sluice demo backend")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port to listen on (default 9000)")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error("--port must be in 1..65535")

    DemoHandler.static = static_files()
    ThreadingHTTPServer.daemon_threads = True  # idle keep-alive threads never block exit
    try:
        server = ThreadingHTTPServer((args.host, args.port), DemoHandler)
    except OSError as e:
        sys.stderr.write("backend: cannot listen on %s:%d: %s\n" % (args.host, args.port, e.strerror))
        return 1

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    # A program started in the background by a non-interactive shell inherits
    # SIGINT ignored (so Ctrl-C reaches only the foreground job, and the parent
    # stops it with SIGTERM afterwards); keep it that way. Otherwise Ctrl-C stops us.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, on_signal)

    # serve_forever() runs in a thread: shutdown() must not be called from the
    # thread that serves, and the main thread has to stay free for signals.
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    serving.start()
    sys.stderr.write("backend: listening on http://%s:%d/\n" % (args.host, args.port))
    while not stop.wait(3600):
        pass
    server.shutdown()
    serving.join()
    server.server_close()
    sys.stderr.write("backend: stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
