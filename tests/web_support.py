"""Local HTTP servers for the web kinds' tests: each binds one loopback address (127.0.0.1,
127.0.0.2, ::1) and records every connection and request it gets, so a test can prove that
a refused destination received nothing. Nothing here reaches beyond this machine.

A plain module, not a package: ``tests/`` is not a package (see run_support.py).
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Release notes 2.4</title></head>
<body>
<nav><a href="/">Home</a> <a href="/docs/">Docs</a></nav>
<main><article>
<h1>What changed in 2.4</h1>
<p>Version 2.4 makes retries visible: every failed attempt now records its error, the time
of the next attempt and the reason the run gave up, so an operator can tell a flaky
dependency from a broken one without reading the worker's logs.</p>
<p>See the <a href="../guide/retries.html">retry guide</a>, the
<a href="changes.html#api">API changes</a> and the
<a href="https://example.org/upstream">upstream notes</a>.</p>
<p>Upgrading from 2.3 needs no migration; the new columns are added on start-up and filled
lazily, so a rolling upgrade keeps every worker serving while the fleet moves over.</p>
</article></main>
<footer><a href="mailto:team@example.org">Mail us</a> <a href="#top">Top</a></footer>
</body></html>
"""


@attrs.define
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _any(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = Seen(self.command, parts.path, parse_qs(parts.query), dict(self.headers), body)
        self.server.requests.append(seen)
        route = self.server.routes.get(parts.path) or _ROUTES.get(parts.path)
        if route is None:
            prefix = next((p for p in _PREFIX_ROUTES if parts.path.startswith(p)), None)
            route = _PREFIX_ROUTES[prefix] if prefix else _not_found
        route(self, seen)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

    def reply(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self.reply(status, json.dumps(value).encode(), "application/json", headers)


Route = Callable[[_Handler, Seen], None]


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str, routes: dict[str, Route] | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), _Handler)
        self.host = host
        self.routes = dict(routes or {})
        self.requests: list[Seen] = []
        self.connections = 0
        self.held = threading.Event()  # a /hold request arrived
        self.release = threading.Event()  # let held and endless responses finish
        self.counters: dict[str, int] = {}

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def get_request(self) -> tuple[socket.socket, Any]:
        conn = super().get_request()
        self.connections += 1
        return conn

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (cancel, size limit) is what several tests do

    def count(self, key: str) -> int:
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]


@contextmanager
def serving(host: str, routes: dict[str, Route] | None = None) -> Iterator[LocalServer]:
    server = LocalServer(host, routes)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- routes ----------------------------------------------------------------------------------
def _not_found(h: _Handler, seen: Seen) -> None:
    h.reply(404, b"not found")


def _json(h: _Handler, seen: Seen) -> None:
    h.reply_json(200, {"ok": True, "method": seen.method, "query": seen.query})


def _echo(h: _Handler, seen: Seen) -> None:
    """The request as JSON, headers included: a server that echoes secrets back."""
    h.reply_json(
        200,
        {"method": seen.method, "headers": seen.headers, "body": seen.body.decode()},
        headers={"Set-Cookie": "session=s3cr3t-session-value", "X-Api-Key": "echoed-key-123"},
    )


def _status(h: _Handler, seen: Seen) -> None:
    h.reply(int(seen.path.rsplit("/", 1)[1]), b"status")


def _flaky(h: _Handler, seen: Seen) -> None:
    """503 with ``Retry-After: 1`` on the first request, then 200."""
    if h.server.count("flaky") == 1:
        h.reply(503, b"busy", headers={"Retry-After": "1"})
    else:
        h.reply_json(200, {"ok": True, "attempt": h.server.counters["flaky"]})


def _big(h: _Handler, seen: Seen) -> None:
    h.reply(200, b"x" * (2 * 1024 * 1024), "application/octet-stream")


def _endless(h: _Handler, seen: Seen) -> None:
    """A chunked body that never ends (until the client hangs up): only a limit applied
    while reading returns."""
    h.send_response(200)
    h.send_header("Content-Type", "text/plain")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    chunk = b"y" * 4096
    try:
        while not h.server.release.is_set():
            h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            h.server.count("endless-chunks")
    except OSError:
        pass


def _drip(h: _Handler, seen: Seen) -> None:
    """Headers at once, then one byte every 0.1 s for 30 s."""
    h.send_response(200)
    h.send_header("Content-Type", "text/plain")
    h.send_header("Content-Length", "300")
    h.end_headers()
    try:
        for _ in range(300):
            if h.server.release.wait(0.1):
                return
            h.wfile.write(b".")
            h.wfile.flush()
    except OSError:
        pass


def _hold(h: _Handler, seen: Seen) -> None:
    """Holds the response until the test ends (or 30 s)."""
    h.server.held.set()
    h.server.release.wait(30)
    with suppress(OSError):  # the client gave up (cancelled) long ago
        h.reply(200, b"late")


def _bomb(h: _Handler, seen: Seen) -> None:
    """10 MiB of zeros in about 10 KiB of gzip."""
    h.reply(
        200,
        gzip.compress(b"\0" * (10 * 1024 * 1024)),
        "text/plain",
        {"Content-Encoding": "gzip"},
    )


def _gzip_json(h: _Handler, seen: Seen) -> None:
    body = gzip.compress(json.dumps({"compressed": True}).encode())
    h.reply(200, body, "application/json", {"Content-Encoding": "gzip"})


def _redirect(h: _Handler, seen: Seen) -> None:
    """302 to ``?to=`` (absolute or relative)."""
    h.reply(302, b"", headers={"Location": seen.query["to"][0]})


def _chain(h: _Handler, seen: Seen) -> None:
    """``/chain/N`` redirects to ``/chain/N-1``; ``/chain/0`` answers."""
    n = int(seen.path.rsplit("/", 1)[1])
    if n == 0:
        h.reply_json(200, {"arrived": True})
    else:
        h.reply(301, b"", headers={"Location": f"/chain/{n - 1}"})


def _page(h: _Handler, seen: Seen) -> None:
    h.reply(200, PAGE.encode(), "text/html; charset=utf-8")


def _text(h: _Handler, seen: Seen) -> None:
    h.reply(200, "plain words, ünïcode\n".encode(), "text/plain; charset=utf-8")


def _image(h: _Handler, seen: Seen) -> None:
    h.reply(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")


def _searxng(h: _Handler, seen: Seen) -> None:
    """The shape of SearXNG's ``/search?format=json`` answer."""
    if seen.query.get("format") != ["json"]:
        h.reply(403, b"format not allowed")
        return
    q = seen.query["q"][0]
    results = [
        {
            "url": f"https://example.org/{i}",
            "title": f"Result {i} for {q}",
            "content": f"Snippet {i}.",
            "engine": "duckduckgo",
            "score": 1.0 / (i + 1),
        }
        for i in range(8)
    ]
    results.insert(2, {"title": "no url: skipped"})
    h.reply_json(200, {"query": q, "number_of_results": 8, "results": results})


def _slow_ok(h: _Handler, seen: Seen) -> None:
    time.sleep(0.05)
    h.reply(200, b"ok")


_ROUTES: dict[str, Route] = {
    "/json": _json,
    "/echo": _echo,
    "/flaky": _flaky,
    "/big": _big,
    "/endless": _endless,
    "/drip": _drip,
    "/hold": _hold,
    "/bomb": _bomb,
    "/gzip-json": _gzip_json,
    "/redirect": _redirect,
    "/page": _page,
    "/docs/notes/2.4.html": _page,
    "/text": _text,
    "/image.png": _image,
    "/search": _searxng,
    "/slow": _slow_ok,
}
_PREFIX_ROUTES: dict[str, Route] = {"/status/": _status, "/chain/": _chain}


# Fixtures of the web tests: a server the policy allows, and one it must never reach.
@pytest.fixture
def server() -> Iterator[LocalServer]:
    with serving("127.0.0.1") as s:
        yield s


@pytest.fixture
def refused() -> Iterator[LocalServer]:
    with serving("127.0.0.2") as s:
        yield s
