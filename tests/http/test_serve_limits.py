"""The edge limits of ``runkit serve`` (``runkit_contrib._limits``, docs/deploy.md).

End to end, against the installed ``runkit serve`` with a lowered open-file limit: more idle
connections than it may hold leave it answering and running runs (a newcomer closes the
connection waiting longest for a request head) and its log small; a client that trickles
a request head, or sends nothing, is closed by the header timeout (answered 408 when part
of a head came), also between two requests on one connection; an idle keep-alive
connection is closed after ``--keep-alive-timeout``; with every connection busy, a new one
is closed at once. Then the parts alone: the cap's formula, option checks, the open-file
limit, the gate, and the log filter.

Timings are generous bounds (a 2 s timeout must act within 30 s), never tight ones.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import AUTH

from runkit import ConfigurationError
from runkit.domain import inputs
from runkit_contrib import _body
from runkit_contrib._cli import add_serve_command
from runkit_contrib._limits import (
    MAX_CONNECTIONS_CEILING,
    ConnectionGate,
    RateLimitFilter,
    ServeLimits,
    accept_backlog,
    limit_log_volume,
    raise_open_file_limit,
    reserved_descriptors,
    uvicorn_options,
)

API_KEY = "rk_test_serve_limits"
DESCRIPTORS = 256  # the server's open-file limit, soft and hard: it cannot raise it
START_TIMEOUT = 60.0
ACT_WITHIN = 30.0  # how long a 2 s timeout (or a run of `noop`) may take on a busy machine
MAX_LOG_BYTES = 200_000


# ------------------------------------------------------------------ a server to probe ------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, output: Path) -> None:
        self.proc, self.port, self.output = proc, port, output
        self.base = f"http://127.0.0.1:{port}"

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{self.log()}"
            try:
                httpx.get(f"{self.base}/openapi.json", timeout=5)
                return
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"not answering:\n{self.log()}"
                time.sleep(0.1)


@contextmanager
def serving(tmp_path: Path, *options: str) -> Iterator[Server]:
    """``runkit serve`` (test kinds, one embedded worker, a SQLite file) with its open-file
    limit at :data:`DESCRIPTORS`, until it answers."""
    runkit = Path(sys.executable).with_name("runkit")
    assert runkit.exists(), f"no {runkit}: install runkit with its http extra"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNKIT_")}
    env.update(
        RUNKIT_API_KEYS=API_KEY,
        RUNKIT_ENABLE_TEST_KINDS="1",
        RUNKIT_DISABLE_PLUGIN_AUTOLOAD="1",
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
    )
    command = [str(runkit), "serve", "--port", str(port), "--workers", "1"]
    command += ["--database", f"sqlite:///{tmp_path / 'runkit.db'}", *options]

    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))

    output = tmp_path / "serve.log"
    with output.open("wb") as out:  # a file, not a pipe nobody reads
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=out, preexec_fn=lower_limit
        )
    try:
        server = Server(proc, port, output)
        server.wait_until_answering()
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            proc.kill()
            proc.wait(30)


def closed_within(sock: socket.socket, seconds: float, *, drip: bytes = b"") -> bytes | None:
    """What the server sent before closing ``sock``, or None if it was still open after
    ``seconds``. With ``drip``, one more byte of it is sent each second meanwhile."""
    received = b""
    deadline = time.monotonic() + seconds
    sock.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            if drip:
                try:
                    sock.sendall(drip[:1])
                except OSError:
                    return received
                drip = drip[1:] or drip
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    return None


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response with a Content-Length body."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head


REQUEST = b"GET /api/v1/action-runs HTTP/1.1\r\nHost: test\r\n\r\n"  # 401: no key, small


# ------------------------------------------------------------------ end to end ------------
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_more_idle_connections_than_descriptors(tmp_path: Path) -> None:
    # A long header timeout: only the cap can make room here, not a timer.
    with serving(tmp_path, "--header-timeout", "60") as server, ExitStack() as flood:
        pending = []
        for _ in range(400):  # more than the 256 descriptors the server has
            sock = flood.enter_context(closing(socket.socket()))
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            pending.append(sock)
        # Each sends the first byte of a request head and no more: a connection that sent
        # nothing can be lost to a full accept queue for good (with SYN cookies the client
        # thinks it is connected, the server never heard of it), while unacknowledged data
        # is sent again until the server takes the connection.
        flooded = time.monotonic() + 60
        while pending:
            assert time.monotonic() < flooded, f"{len(pending)} never connected"
            waiting = []
            for sock in pending:
                try:
                    sock.send(b"G")
                except OSError:  # still connecting
                    waiting.append(sock)
            pending = waiting
            time.sleep(0.05)
        while "connection limit reached" not in server.log():
            assert time.monotonic() < flooded, f"the cap was never reached:\n{server.log()}"
            time.sleep(0.2)

        headers = {"X-API-Key": API_KEY}
        with httpx.Client(base_url=server.base, headers=headers, timeout=10) as client:
            listed = client.get("/api/v1/action-runs")
            assert listed.status_code == 200, listed.text
            created = client.post(
                "/api/v1/action-runs?execute=true", json={"kind": "noop", "definition": {}}
            )
            assert created.status_code == 201, created.text
            run = f"/api/v1/action-runs/{created.json()['id']}"
            deadline = time.monotonic() + ACT_WITHIN
            while (status := client.get(run).json()["status"]) != "succeeded":
                assert status in {"queued", "running"}, f"{status}:\n{server.log()}"
                assert time.monotonic() < deadline, f"still {status}:\n{server.log()}"
                time.sleep(0.2)

        log = server.log()
        assert "Too many open files" not in log and "unable to open" not in log, log[-3000:]
        assert len(log.encode()) < MAX_LOG_BYTES
        assert server.proc.poll() is None


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that wants a request head within 2 s."""
    with serving(tmp_path_factory.mktemp("impatient"), "--header-timeout", "2") as server:
        yield server


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_trickled_request_head_is_answered_408_and_closed(impatient: Server) -> None:
    with closing(impatient.connect()) as sock:
        sock.sendall(b"GET /api/v1/kinds HTTP/1.1\r\nHost: test\r\n")
        started = time.monotonic()
        sent = closed_within(sock, ACT_WITHIN, drip=b"X-Slow: " + b"a" * 100)
        assert sent is not None, "still open: no header timeout"
        assert time.monotonic() - started >= 1.0  # the timeout, not a refusal
        assert sent.startswith(b"HTTP/1.1 408 "), sent


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_connection_that_sends_nothing_is_closed(impatient: Server) -> None:
    with closing(impatient.connect()) as sock:
        assert closed_within(sock, ACT_WITHIN) == b""  # nothing asked, nothing answered


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_head_timeout_runs_again_after_each_response(impatient: Server) -> None:
    with closing(impatient.connect()) as sock:
        for _ in range(2):  # keep-alive: a request, an answer, again
            sock.sendall(REQUEST)
            assert read_response(sock).startswith(b"HTTP/1.1 401 ")
        sock.sendall(b"GET /api/v1/kinds HTTP/1.1\r\n")  # half a head, then nothing
        sent = closed_within(sock, ACT_WITHIN)
        assert sent is not None, "still open: the head timer ran only once"
        assert sent.startswith(b"HTTP/1.1 408 "), sent


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(tmp_path: Path) -> None:
    options = ("--keep-alive-timeout", "10", "--header-timeout", "120")
    with serving(tmp_path, *options) as server, closing(server.connect()) as sock:
        sock.sendall(REQUEST)
        assert read_response(sock).startswith(b"HTTP/1.1 401 ")
        # Open past uvicorn's default (5 s): the option is what decides.
        assert closed_within(sock, 7.5) is None
        assert closed_within(sock, ACT_WITHIN) == b""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_at_the_cap_idle_connections_make_room_busy_ones_do_not(tmp_path: Path) -> None:
    with serving(tmp_path, "--max-connections", "2", "--header-timeout", "120") as server:
        base = server.base
        with closing(server.connect()) as oldest, closing(server.connect()) as newer:
            time.sleep(0.5)  # both are open on the server, oldest first
            assert httpx.get(f"{base}/api/v1/kinds", timeout=10).status_code == 401
            assert closed_within(oldest, ACT_WITHIN) == b""  # made room for the request
            assert closed_within(newer, 1.0) is None

        post = (
            b"POST /api/v1/action-runs HTTP/1.1\r\nHost: test\r\nContent-Type: "
            b"application/json\r\nContent-Length: 100\r\nX-API-Key: " + API_KEY.encode()
        )
        with closing(server.connect()) as first, closing(server.connect()) as second:
            for busy in (first, second):  # each a request under way: its body never ends
                busy.sendall(post + b"\r\n\r\n{")
            time.sleep(0.5)
            with closing(server.connect()) as refused:
                assert closed_within(refused, ACT_WITHIN) == b""
            assert closed_within(first, 1.0) is None  # the busy ones keep going
        deadline = time.monotonic() + ACT_WITHIN
        while True:  # room again once they left
            try:
                if httpx.get(f"{base}/api/v1/kinds", timeout=10).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        assert "connection limit reached (2 open, max 2)" in server.log()


# ------------------------------------------------------------------ the cap ---------------
def test_the_cap_leaves_descriptors_for_everything_else() -> None:
    limits = ServeLimits().resolve(1024, workers=4)
    assert limits.backlog == 64 == accept_backlog(1024)
    assert reserved_descriptors(4, 64) == 64 + 8 * 4 + 3 * 64
    assert limits.max_connections == 1024 - (64 + 32 + 192)
    small = ServeLimits().resolve(DESCRIPTORS, workers=1)
    assert (small.backlog, small.max_connections) == (16, 256 - (64 + 8 + 48))
    big = ServeLimits().resolve(65_536, workers=4)
    assert (big.backlog, big.max_connections) == (2048, MAX_CONNECTIONS_CEILING)
    assert ServeLimits().resolve(None, workers=4).max_connections == 1_000
    explicit = ServeLimits(max_connections=500, header_timeout=3).resolve(1024, workers=4)
    assert (explicit.max_connections, explicit.header_timeout) == (500, 3)


def test_limits_the_descriptors_cannot_hold_fail_at_start() -> None:
    with pytest.raises(ConfigurationError, match=r"at most 736"):
        ServeLimits(max_connections=737).resolve(1024, workers=4)
    with pytest.raises(ConfigurationError, match=r"open-file limit \(128\) leaves no room"):
        ServeLimits().resolve(128, workers=4)


def test_uvicorn_gets_the_limits() -> None:
    limits = ServeLimits(keep_alive_timeout=2.5).resolve(1024, workers=4)
    options = uvicorn_options(limits)
    assert options["backlog"] == 64 and options["timeout_keep_alive"] == 3
    assert options["limit_concurrency"] == 737  # never before the protocol's own cap
    assert options["h11_max_incomplete_event_size"] == 16 * 1024
    with pytest.raises(ValueError, match="resolve"):
        uvicorn_options(ServeLimits())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("header_timeout", 0),
        ("header_timeout", -1.0),
        ("header_timeout", math.nan),
        ("keep_alive_timeout", math.inf),
        ("max_connections", 0),
        ("max_head_bytes", 100),
        ("backlog", 0),
    ],
)
def test_limits_refuse_values_out_of_range(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        ServeLimits(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"), [("header_timeout", "10"), ("keep_alive_timeout", True), ("backlog", 1.5)]
)
def test_limits_refuse_values_of_the_wrong_type(field: str, value: Any) -> None:
    with pytest.raises(TypeError, match=field):
        ServeLimits(**{field: value})


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="runkit")
    add_serve_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["serve", *argv])


def test_serve_takes_the_limits_as_options() -> None:
    args = _parse("--max-connections", "50", "--header-timeout", "2.5")
    assert (args.max_connections, args.header_timeout) == (50, 2.5)
    defaults = _parse()
    assert defaults.max_connections is None
    assert (defaults.header_timeout, defaults.keep_alive_timeout) == (10.0, 5.0)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--max-connections", "0"),
        ("--max-connections", "many"),
        ("--header-timeout", "0"),
        ("--header-timeout", "nan"),
        ("--keep-alive-timeout", "-5"),
        ("--keep-alive-timeout", "soon"),
    ],
)
def test_serve_refuses_bad_limits(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        _parse(option, value)
    assert exit_.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 600:
        pytest.skip(f"hard open-file limit {hard} leaves no room to lower and raise")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))
        assert raise_open_file_limit(ceiling=500) == 500  # at most the ceiling
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 500
        assert raise_open_file_limit(ceiling=400) == 500  # never lowered
        if hard != resource.RLIM_INFINITY:
            assert raise_open_file_limit(ceiling=hard + 1) == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ------------------------------------------------------------------ the gate --------------
class _Timer:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback, self.cancelled = callback, False

    def cancel(self) -> None:
        self.cancelled = True


class _Loop:
    def __init__(self) -> None:
        self.timers: list[tuple[float, _Timer]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(callback)
        self.timers.append((delay, timer))
        return timer


class _Connection:
    def __init__(self) -> None:
        self.evicted = self.timed_out = False

    def evict(self) -> None:
        self.evicted = True

    def head_timed_out(self) -> None:
        self.timed_out = True


def test_at_the_cap_the_longest_waiting_connection_makes_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    gate = ConnectionGate(
        ServeLimits(max_connections=2, header_timeout=7).resolve(1024, workers=0),
        log_interval=60,
        clock=lambda: now[0],
    )
    loop: Any = _Loop()
    a, b, c, d = (_Connection() for _ in range(4))
    assert gate.admit(a, 0) and gate.admit(b, 1)
    gate.await_head(a, loop)
    gate.await_head(b, loop)
    assert [delay for delay, _ in loop.timers] == [7, 7]
    gate.await_head(a, loop)  # a's response ended: it waits anew, now after b
    assert loop.timers[0][1].cancelled and gate.waiting == 2
    with caplog.at_level(logging.WARNING, "runkit_contrib.serve"):
        assert gate.admit(c, 2) and b.evicted and not a.evicted
        gate.head_received(a)  # a's request came: busy, not to be evicted
        assert not gate.admit(d, 2)  # none waiting: the newcomer is refused
        assert not a.evicted and gate.waiting == 0
        now[0] = 61.0
        assert not gate.admit(_Connection(), 2)
    reports = [r.getMessage() for r in caplog.records]
    assert len(reports) == 2  # at most one an interval
    assert "1 waiting connections closed and 0 new ones refused" in reports[0]
    assert "0 waiting connections closed and 2 new ones refused" in reports[1]


def test_the_header_timer_calls_the_connection() -> None:
    gate = ConnectionGate(ServeLimits(max_connections=5).resolve(1024, workers=0))
    loop: Any = _Loop()
    connection = _Connection()
    gate.await_head(connection, loop)
    delay, timer = loop.timers[0]
    assert delay == 10.0
    timer.callback()
    assert connection.timed_out
    gate.head_received(connection)
    assert timer.cancelled and gate.waiting == 0


# ------------------------------------------------------------------ the log ---------------
class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_repeated_records_are_limited_then_counted() -> None:
    now = [0.0]
    handler = _Collect()
    handler.addFilter(RateLimitFilter(handler, burst=3, interval=10, clock=lambda: now[0]))
    log = logging.getLogger("test_serve_limits.flood")
    log.propagate = False
    log.addHandler(handler)
    try:
        for fd in range(100):
            log.error("accept() failed on fd %d\ntraceback...", fd)
        log.error("another problem")
        assert handler.lines[:3] == [f"accept() failed on fd {n}\ntraceback..." for n in range(3)]
        assert handler.lines[3:] == ["another problem"]
        now[0] = 10.5
        log.error("accept() failed on fd %d\ntraceback...", 100)
        assert handler.lines[4:] == [
            "suppressed 97 similar messages in the last 10 s: accept() failed on fd %d",
            "accept() failed on fd 100\ntraceback...",
        ]
    finally:
        log.removeHandler(handler)


def test_the_kinds_tracked_are_bounded() -> None:
    handler = _Collect()
    rate_limit = RateLimitFilter(handler, burst=1, interval=60, max_kinds=2)
    handler.addFilter(rate_limit)
    for n in range(3):
        for _ in range(2):
            handler.handle(logging.LogRecord("x", logging.ERROR, "", 0, f"kind {n}", (), None))
    assert handler.lines == [
        "kind 0",
        "kind 1",
        "suppressed 1 similar messages in the last 60 s: kind 0",
        "kind 2",
    ]


def test_the_filter_sits_on_handlers_so_child_loggers_are_limited_too() -> None:
    handler = _Collect()
    parent = logging.getLogger("test_serve_limits.parent")
    parent.propagate = False
    parent.addHandler(handler)
    try:
        added = limit_log_volume(["test_serve_limits.parent"], burst=2)
        assert len(added) == 1 and handler.filters == added
        assert limit_log_volume(["test_serve_limits.parent"]) == []  # once a handler
        child = logging.getLogger("test_serve_limits.parent.engine.worker")
        for _ in range(50):
            child.warning("unable to open database file")
        assert handler.lines == ["unable to open database file"] * 2
    finally:
        parent.removeHandler(handler)


# ------------------------------------------------------------------ big bodies ------------
@pytest.fixture
def threads_of(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The threads that parsed bodies and checked definition bounds, call by call."""
    seen: dict[str, list[int]] = {"parse": [], "bounds": []}
    parse, bounds = _body._parse_object, inputs.definition

    def spy_parse(raw: bytes) -> dict[str, Any]:
        seen["parse"].append(threading.get_ident())
        return parse(raw)

    def spy_bounds(value: Any, *args: Any) -> Any:
        seen["bounds"].append(threading.get_ident())
        return bounds(value, *args)

    monkeypatch.setattr(_body, "_parse_object", spy_parse)
    monkeypatch.setattr(inputs, "definition", spy_bounds)
    return seen


@pytest.mark.anyio
@pytest.mark.parametrize(("size", "off_the_loop"), [(1_000, False), (200_000, True)])
async def test_big_bodies_are_read_off_the_event_loop(
    client: httpx.AsyncClient, threads_of: dict[str, list[int]], size: int, off_the_loop: bool
) -> None:
    body = {"kind": "free", "definition": {"text": "x" * size}}
    response = await client.post("/api/v1/action-runs", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    loop = threading.get_ident()
    assert [t != loop for t in threads_of["parse"]] == [off_the_loop]
    assert [t != loop for t in threads_of["bounds"]] == [off_the_loop]  # checked once


@pytest.mark.anyio
@pytest.mark.parametrize("filler", [10, 100_000], ids=["small", "big"])
@pytest.mark.parametrize(
    ("definition", "loc", "type_"),
    [
        ('{"a": "nul\\u0000"}', ["body", "definition", "a"], "string_nul"),
        ('{"a": "\\ud800"}', ["body", "definition", "a"], "string_unicode"),
        ("[" * 70 + "]" * 70, ["body", "definition", *[0] * 64], "json_too_deep"),
        ('{"a": NaN}', ["body"], "json_invalid"),
        ('{"k": [' + ",".join(["1"] * 3000) + "]}", None, None),
    ],
    ids=["nul", "surrogate", "deep", "invalid", "fine"],
)
async def test_big_bodies_answer_as_small_ones(
    client: httpx.AsyncClient, filler: int, definition: str, loc: Any, type_: Any
) -> None:
    raw = f'{{"definition": {definition}, "actionId": "{"a" * 10}", "kind": "free", '
    raw += f'"idempotencyKey": "k-{filler}", "concurrencyKey": "{"c" * 10}"'
    raw += f', "x{"y" * filler}": 1}}' if loc is not None else "}"
    headers = {**AUTH, "Content-Type": "application/json"}
    response = await client.post("/api/v1/action-runs", content=raw.encode(), headers=headers)
    if loc is None:
        assert response.status_code == 201, response.text
        return
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert (detail["loc"], detail["type"]) == (loc, type_)


def test_is_large_looks_at_a_bounded_part() -> None:
    assert not inputs.is_large({"a": [1, 2, {"b": "c" * 1000}]})
    assert not inputs.is_large([0] * 10_000)  # not an object: the kind refuses it
    assert inputs.is_large({"s": "x" * (64 * 1024 + 1)})
    assert inputs.is_large({"k": list(range(2_001))})
    assert inputs.is_large({f"k{i}": {"v": i} for i in range(1_500)})
    assert inputs.is_large({"xs": [0] * 10_000_000})  # its length says so: no walk
