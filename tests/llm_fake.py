"""A scripted fake of the OpenAI-compatible chat completions API, served on 127.0.0.1 only,
for the tests of the kinds that ask a language model. No real model, no traffic elsewhere.

A plain module, not a package: ``tests/`` is not a package (see run_support.py).

Serve it and script what it answers, one reply per ``POST /v1/chat/completions``, in order::

    from llm_fake import FakeLlm, serving_llm, status, text, tool_calls

    with serving_llm() as llm:                      # or the ``fake_llm`` fixture below
        llm.script(
            status(429, retry_after=0.2),           # a rate limit, then
            text('{"sql": "SELECT 1"}', usage=(120, 14), pieces=4),  # a streamed answer
        )
        configure_llm(LlmSettings(base_url=llm.base_url, api_key="k", model="fake-model"))
        ...                                         # run the kind
        assert llm.requests[1].body["messages"][0]["role"] == "system"

Replies (module functions; each returns a :class:`Reply`):

``text(content, usage=(prompt, completion), pieces=3, finish="stop")``
    The assistant's ``content``. A request with ``"stream": true`` gets it as server-sent
    events in ``pieces`` chunks (the role in the first, ``finish_reason`` in the last, then,
    when the request set ``stream_options.include_usage``, a chunk with empty ``choices``
    and ``usage``, then ``data: [DONE]``); otherwise one ``chat.completion`` JSON body.
``tool_calls(*calls, content="", usage=..., pieces=3)``
    Tool calls: each call a ``(name, arguments)`` pair, ``arguments`` a dict (sent as its
    JSON) or a raw string (malformed on purpose, say). Streamed like the real API: the id
    and name once per call index, the arguments split into ``pieces`` parts; the finish
    reason ``tool_calls``.
``status(code, message="...", retry_after=None)``
    An error answer (429, 500, 503, 400, 401...) with OpenAI's error body and, if given,
    a ``Retry-After`` header (seconds).
``endless(piece="SELECT ", interval=0.05)``
    A stream that never ends: a content chunk every ``interval`` seconds until the client
    hangs up, when :attr:`FakeLlm.hung_up` is set (and :attr:`FakeLlm.hung_up_at` noted).
``raw(status, body, content_type)``
    Any bytes, for answers no real server sends.
A callable ``(seen) -> Reply``
    Chooses from the request (a :class:`Seen`): scripted behaviour that reads the prompt.

When the script runs out, the server answers 400 ``"fake LLM: script exhausted"`` (never
retried) and counts it in :attr:`FakeLlm.exhausted`: a test that asked the model more often
than it scripted fails rather than hanging. Every request is kept in :attr:`FakeLlm.requests`
(method, path, headers, JSON body) so a test can read the prompts and the credentials sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import pytest

MODEL = "fake-model"
CHAT_PATH = "/v1/chat/completions"


@attrs.define
class Seen:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the JSON body (None if it was not JSON)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages") or [])

    @property
    def prompt(self) -> str:
        """Every message's text content, joined: what a test greps for."""
        return "\n".join(str(m.get("content") or "") for m in self.messages)

    @property
    def streamed(self) -> bool:
        return bool((self.body or {}).get("stream"))


@attrs.frozen
class Reply:
    """One scripted answer: ``kind`` is text, tools, status, endless or raw."""

    kind: str
    content: str = ""
    calls: tuple[tuple[str, str], ...] = ()
    usage: tuple[int, int] | None = (10, 5)
    pieces: int = 3
    finish: str = "stop"
    code: int = 200
    retry_after: float | None = None
    interval: float = 0.05
    body: bytes = b""
    content_type: str = "application/json"


def text(
    content: str, *, usage: tuple[int, int] | None = (10, 5), pieces: int = 3, finish: str = "stop"
) -> Reply:
    return Reply("text", content=content, usage=usage, pieces=max(1, pieces), finish=finish)


def tool_calls(
    *calls: tuple[str, Any],
    content: str = "",
    usage: tuple[int, int] | None = (10, 5),
    pieces: int = 3,
) -> Reply:
    encoded = tuple((name, a if isinstance(a, str) else json.dumps(a)) for name, a in calls)
    return Reply(
        "tools",
        content=content,
        calls=encoded,
        usage=usage,
        pieces=max(1, pieces),
        finish="tool_calls",
    )


def status(code: int, message: str = "", *, retry_after: float | None = None) -> Reply:
    return Reply(
        "status", content=message or f"fake LLM error {code}", code=code, retry_after=retry_after
    )


def endless(piece: str = "SELECT ", *, interval: float = 0.05) -> Reply:
    return Reply("endless", content=piece, interval=interval)


def raw(code: int, body: bytes, content_type: str = "application/json") -> Reply:
    return Reply("raw", code=code, body=body, content_type=content_type)


Script = Reply | Callable[[Seen], Reply]


def _split(value: str, pieces: int) -> list[str]:
    """``value`` in ``pieces`` parts (fewer when it is shorter), joined back exactly."""
    if not value:
        return [""]
    size = max(1, -(-len(value) // pieces))
    return [value[i : i + size] for i in range(0, len(value), size)]


def _usage(usage: tuple[int, int]) -> dict[str, int]:
    return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeLlm

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        try:
            body = json.loads(data) if data else None
        except ValueError:
            body = None
        seen = Seen(self.command, self.path, dict(self.headers), body)
        self.server.requests.append(seen)
        if self.path.split("?")[0] != CHAT_PATH:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        reply = self.server.next_reply(seen)
        if reply is None:
            self.server.exhausted += 1
            error = {"message": "fake LLM: script exhausted", "type": "invalid_request_error"}
            self._json(400, {"error": error})
            return
        if reply.kind == "status":
            headers = {} if reply.retry_after is None else {"Retry-After": f"{reply.retry_after:g}"}
            error = {"message": reply.content, "type": "fake_error", "code": str(reply.code)}
            self._json(reply.code, {"error": error}, headers)
        elif reply.kind == "raw":
            self._send(reply.code, reply.body, reply.content_type)
        elif reply.kind == "endless":
            self._endless(seen, reply)
        elif seen.streamed:
            self._stream(seen, reply)
        else:
            self._json(200, self._completion(reply))

    do_GET = do_POST

    # --- answers --------------------------------------------------------------------------
    def _send(
        self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(value).encode(), "application/json", headers)

    def _completion(self, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
        if reply.calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
                for i, (n, a) in enumerate(reply.calls)
            ]
        answer: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish}],
        }
        if reply.usage is not None:
            answer["usage"] = _usage(reply.usage)
        return answer

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _event(self, value: Any) -> None:
        data = b"data: " + (value if isinstance(value, bytes) else json.dumps(value).encode())
        data += b"\n\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def _stream(self, seen: Seen, reply: Reply) -> None:
        self._start_stream()
        with suppress(OSError):  # a client that hung up mid-answer
            self._event(self._chunk({"role": "assistant", "content": ""}))
            for piece in _split(reply.content, reply.pieces) if reply.content else []:
                self._event(self._chunk({"content": piece}))
            for index, (name, arguments) in enumerate(reply.calls):
                first = {"index": index, "id": f"call_{index}", "type": "function"}
                first["function"] = {"name": name, "arguments": ""}
                self._event(self._chunk({"tool_calls": [first]}))
                for part in _split(arguments, reply.pieces):
                    more = {"index": index, "function": {"arguments": part}}
                    self._event(self._chunk({"tool_calls": [more]}))
            self._event(self._chunk({}, reply.finish))
            options = (seen.body or {}).get("stream_options") or {}
            if reply.usage is not None and options.get("include_usage"):
                last = self._chunk({})
                last["choices"], last["usage"] = [], _usage(reply.usage)
                self._event(last)
            self._event(b"[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def _endless(self, seen: Seen, reply: Reply) -> None:
        self._start_stream()
        self.server.streaming.set()
        try:
            self._event(self._chunk({"role": "assistant", "content": ""}))
            while not self.server.closing.is_set():
                self._event(self._chunk({"content": reply.content}))
                self.server.pieces_sent += 1
                time.sleep(reply.interval)
        except OSError:
            self.server.hung_up_at = time.monotonic()
            self.server.hung_up.set()
        self.close_connection = True


class FakeLlm(ThreadingHTTPServer):
    """The fake server; :attr:`base_url` is what ``RUNKIT_LLM_BASE_URL`` is set to."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), _Handler)
        self.host = host
        self.requests: list[Seen] = []
        self.exhausted = 0
        self._script: deque[Script] = deque()
        self._lock = threading.Lock()
        #: An endless stream started / its client hung up (and when, time.monotonic()).
        self.streaming = threading.Event()
        self.hung_up = threading.Event()
        self.hung_up_at: float | None = None
        self.pieces_sent = 0
        self.closing = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def script(self, *replies: Script) -> None:
        """Append ``replies`` to what the server answers, one per chat request."""
        with self._lock:
            self._script.extend(replies)

    def next_reply(self, seen: Seen) -> Reply | None:
        with self._lock:
            if not self._script:
                return None
            item = self._script.popleft()
        return item(seen) if callable(item) else item

    @property
    def remaining(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._script)

    @property
    def chat_requests(self) -> list[Seen]:
        return [s for s in self.requests if s.path.split("?")[0] == CHAT_PATH]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up is what the cancel tests do


@contextmanager
def serving_llm(host: str = "127.0.0.1") -> Iterator[FakeLlm]:
    server = FakeLlm(host)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def fake_llm() -> Iterator[FakeLlm]:
    with serving_llm() as server:
        yield server
