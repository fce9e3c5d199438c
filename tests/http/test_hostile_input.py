"""Hostile input through the HTTP API, on every store: whatever a client sends, the answer
is never a 5xx (nothing reaches the database that it cannot hold), a refusal is a small
4xx that says where the fault is, and no storage error writes a statement's parameters.

Each test runs on memory, SQLite and PostgreSQL. The client is synchronous (a blocking
portal holds the Runkit and an ASGI client open) so hypothesis can drive it.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from anyio.from_thread import start_blocking_portal
from api_support import API_KEY, AUTH, BASE, KINDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runkit import Cursor, Runkit
from runkit.domain import inputs
from runkit.domain.cursor import MAX_SEQ
from runkit.storage.sql.engine import build_engine
from runkit_contrib import ApiKeys, asgi_app

Call = Callable[..., httpx.Response]
KEY_HEADER = [(b"x-api-key", API_KEY.encode())]
HOSTILE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@asynccontextmanager
async def _client(url: str, max_body_bytes: int) -> AsyncIterator[httpx.AsyncClient]:
    async with Runkit(url, kinds=KINDS, autoload_plugins=False) as rk:
        app = asgi_app(rk, auth=ApiKeys({"tester": API_KEY}), max_body_bytes=max_body_bytes)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@contextmanager
def _served(url: str, max_body_bytes: int = 1 << 20) -> Iterator[Call]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(_client(url, max_body_bytes)) as client,
    ):

        def call(method: str, path: str, **kw: Any) -> httpx.Response:
            if "headers" not in kw:
                kw["headers"] = AUTH
            return portal.call(functools.partial(client.request, method, path, **kw))

        yield call


@pytest.fixture
def api(store_url: str, caplog: pytest.LogCaptureFixture) -> Iterator[Call]:
    """The API on the store; at teardown, no unhandled error was logged."""
    with _served(store_url) as call:
        yield call
    unhandled = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert unhandled == [], [r.getMessage() for r in unhandled]


def _create(api: Call, body: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
    return api("POST", BASE, json=body or {"kind": "free"}, **kw)


def _run(api: Call) -> tuple[str, str]:
    """A new run's id and the prefix of its cursors."""
    run_id = _create(api).json()["id"]
    return run_id, run_id.replace("-", "")[:8]


def _locs(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [d["loc"] for d in response.json()["detail"]]


def _not_5xx(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert len(response.content) < 20_000, response.content[:500]


# ------------------------------------------------------------------ stored fields ---------
def test_every_stored_string_is_bounded_at_create(api: Call) -> None:
    wide = "\U0001f600"  # 4 bytes in UTF-8: the bound is characters, the index holds bytes
    for field in ("actionId", "idempotencyKey", "concurrencyKey"):
        at = _create(api, {"kind": "free", field: wide * inputs.MAX_KEY_LENGTH})
        assert at.status_code == 201, (field, at.text)
        assert at.json()[field] == wide * inputs.MAX_KEY_LENGTH
        beyond = _create(api, {"kind": "free", field: "a" * 3000})
        assert _locs(beyond) == [["body", field]]
    kind = _create(api, {"kind": "k" * 3000})
    assert _locs(kind) == [["body", "kind"]] and len(kind.content) < 500


def test_definition_bounds(api: Call) -> None:
    deep: Any = 1
    for _ in range(inputs.MAX_DEFINITION_DEPTH - 1):
        deep = [deep]
    assert _create(api, {"kind": "free", "definition": {"d": deep}}).status_code == 201
    too_deep = _create(api, {"kind": "free", "definition": {"d": [deep]}})
    assert too_deep.json()["detail"][0]["type"] == "json_too_deep", too_deep.text

    keys = {str(i): 0 for i in range(inputs.MAX_DEFINITION_KEYS)}
    assert _create(api, {"kind": "free", "definition": keys}).status_code == 201
    many = _create(api, {"kind": "free", "definition": {**keys, "one more": 0}})
    assert _locs(many) == [["body", "definition"]]
    assert many.json()["detail"][0]["type"] == "too_many_keys"

    key = "k" * inputs.MAX_DEFINITION_KEY_LENGTH
    assert _create(api, {"kind": "free", "definition": {key: 1}}).status_code == 201
    long_key = _create(api, {"kind": "free", "definition": {key + "k": 1}})
    assert long_key.json()["detail"][0]["type"] == "key_too_long"


def test_definition_size_is_bounded_below_the_body_limit(store_url: str) -> None:
    """With a larger body limit the host chose, the definition's own bound still holds."""
    with _served(store_url, max_body_bytes=8 << 20) as api:
        wrapper = len('{"s":""}')
        fits = {"s": "a" * (inputs.MAX_DEFINITION_BYTES - wrapper)}
        assert _create(api, {"kind": "free", "definition": fits}).status_code == 201
        over = {"s": "é" * (inputs.MAX_DEFINITION_BYTES // 2)}  # 2 bytes each: just over
        response = _create(api, {"kind": "free", "definition": over})
        assert _locs(response) == [["body", "definition"]]
        assert response.json()["detail"][0]["type"] == "too_large"


def test_a_hundred_thousand_keys_answer_a_small_422(api: Call) -> None:
    body = {"kind": "echo", "definition": {str(i): 0 for i in range(100_000)}}
    started = time.monotonic()
    response = _create(api, body)
    assert _locs(response) == [["body", "definition"]]
    assert len(response.content) < 500 and time.monotonic() - started < 10


def test_many_faults_answer_at_most_fifty_and_a_count(api: Call) -> None:
    definition = {"seconds": 0, **{f"x{i}": 0 for i in range(5000)}}
    response = _create(api, {"kind": "echo", "definition": definition})
    detail = response.json()["detail"]
    assert response.status_code == 422 and len(detail) == 51, response.text[:300]
    assert detail[-1] == {
        "loc": ["body"],
        "msg": "and 4950 more problems",
        "type": "too_many_errors",
    }
    assert len(response.content) < 10_000


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_storage_errors_never_carry_parameters(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    engine = build_engine(url, busy_timeout=5, synchronous="NORMAL", pool_size=1)
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as info:
            conn.execute(sa.text("SELECT * FROM no_such_table WHERE x = :v"), {"v": "s3cret"})
        assert "s3cret" not in str(info.value)
        assert "parameters hidden" in str(info.value)
    finally:
        engine.dispose()


# ------------------------------------------------------------------ cursors ---------------
def test_cursor_numbers_stop_at_what_the_store_holds(api: Call) -> None:
    run_id, prefix = _run(api)
    logs = f"{BASE}/{run_id}/logs"
    last = api("GET", logs, params={"after": f"{prefix}-{MAX_SEQ}"})
    assert last.status_code == 200 and last.json()["entries"] == []
    for number in (str(MAX_SEQ + 1), "999999999999999999", "9" * 40):
        beyond = f"{prefix}-{number}"
        assert _locs(api("GET", logs, params={"after": beyond})) == [["query", "after"]]
        stream = api("GET", logs + "/stream", params={"after": beyond})
        assert _locs(stream) == [["query", "after"]]
        header = [*KEY_HEADER, (b"last-event-id", beyond.encode())]
        assert _locs(api("GET", logs + "/stream", headers=header)) == [["header", "last-event-id"]]


@pytest.mark.parametrize("digits", ["\u00b2", "\u0661\u0662", "\uff11", "\u09e7", "1\u00b2"])
def test_cursors_take_only_ascii_digits(api: Call, digits: str) -> None:
    run_id, prefix = _run(api)
    logs = f"{BASE}/{run_id}/logs"
    cursor = f"{prefix}-{digits}"
    assert _locs(api("GET", logs, params={"after": cursor})) == [["query", "after"]]
    for raw in (cursor.encode(), cursor.encode("utf-8").decode("latin-1").encode("latin-1")):
        header = [*KEY_HEADER, (b"last-event-id", raw)]
        assert _locs(api("GET", logs + "/stream", headers=header)) == [["header", "last-event-id"]]


@given(number=st.integers(min_value=0, max_value=2**70), zeros=st.integers(0, 2))
def test_cursor_pattern_and_parse_agree(number: int, zeros: int) -> None:
    from uuid import UUID

    run = UUID(int=number % 2**128)
    text = f"{run.hex[:8]}-{'0' * zeros}{number}"
    matches = re.fullmatch(Cursor.PATTERN, text) is not None
    assert matches == (number <= MAX_SEQ and zeros == 0)
    try:
        parsed = Cursor.parse(text, run)
    except Exception:
        assert not matches
    else:
        assert matches and parsed.seq == number and str(parsed) == text


@pytest.fixture
def run(api: Call) -> tuple[str, str]:
    return _run(api)


@HOSTILE
@given(text=st.text(max_size=40))
def test_any_cursor_text_is_answered(api: Call, run: tuple[str, str], text: str) -> None:
    run_id, prefix = run
    for after in (text, f"{prefix}-{text}"):
        response = api("GET", f"{BASE}/{run_id}/logs", params={"after": after})
        _not_5xx(response)
        shaped = re.fullmatch(Cursor.PATTERN, after) is not None
        accepted = after == "" or (shaped and after.startswith(prefix + "-"))
        assert (response.status_code == 200) == accepted, (after, response.text)


# ------------------------------------------------------------------ idempotency header ----
def test_idempotency_key_header_must_be_ascii(api: Call) -> None:
    for raw in ("clé".encode(), "clé".encode("latin-1"), b"a\x01b"):
        headers = [*KEY_HEADER, (b"idempotency-key", raw)]
        response = _create(api, {"kind": "free"}, headers=headers)
        assert _locs(response) == [["header", "idempotency-key"]]
        both = _create(api, {"kind": "free", "idempotencyKey": "clé"}, headers=headers)
        assert _locs(both) == [["header", "idempotency-key"]]
    long = [*KEY_HEADER, (b"idempotency-key", b"k" * 256)]
    assert _locs(_create(api, {"kind": "free"}, headers=long)) == [["header", "idempotency-key"]]
    # Non-ASCII keys go in the body, and are kept as sent.
    body = _create(api, {"kind": "free", "idempotencyKey": "clé"})
    assert body.status_code == 201 and body.json()["idempotencyKey"] == "clé"


def test_the_same_key_in_header_and_body_is_one_key(api: Call) -> None:
    headers = [*KEY_HEADER, (b"idempotency-key", b"order-1042")]
    first = _create(api, {"kind": "free", "idempotencyKey": "order-1042"}, headers=headers)
    assert first.status_code == 201, first.text
    by_header = _create(api, {"kind": "free"}, headers=headers)
    by_body = _create(api, {"kind": "free", "idempotencyKey": "order-1042"})
    for again in (by_header, by_body):
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    differs = _create(api, {"kind": "free", "idempotencyKey": "other"}, headers=headers)
    assert _locs(differs) == [["header", "idempotency-key"]]


# ------------------------------------------------------------------ the corpus ------------
_JSON = {"Content-Type": "application/json", **AUTH}


def _corpus(run_id: str, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    one = f"{BASE}/{run_id}"
    cases: list[tuple[str, str, dict[str, Any]]] = []
    for bad in (
        "not-a-uuid",
        "0" * 36,
        "00000000-0000-0000-0000-00000000000g",
        "x" * 5000,
        "%00",
        "%C3%A9",
        "%FF",
        "{00000000-0000-0000-0000-000000000000}",
        "\u0661" * 32,
    ):
        for suffix in ("", "/logs", "/logs/stream", "/cancel", "/approve"):
            method = "POST" if suffix in ("/cancel", "/approve") else "GET"
            cases.append((method, f"{BASE}/{bad}{suffix}", {}))
        cases.append(("DELETE", f"{BASE}/{bad}", {}))
    for name in ("limit", "offset"):
        for value in (
            "-1",
            "0",
            "-0",
            "+5",
            " 5 ",
            "1e3",
            "abc",
            "",
            "9" * 18,
            "9" * 19,
            "9" * 5000,
            "\u0665",
            "²",
            "0x10",
            "5.0",
            "\x00",
        ):
            cases.append(("GET", BASE, {"params": {name: value}}))
            cases.append(("GET", one + "/logs", {"params": {name: value}}))
    for name in ("kind", "status", "action_id", "parent_action_run_id", "execute"):
        for value in ("x" * 5000, "\x00", "é", "  ", "running,failed"):
            cases.append(("GET", BASE, {"params": {name: value}}))
        for raw in ("%ED%A0%80", "%FF", "%00", "%C3", "%"):  # a surrogate, bad UTF-8, NUL
            cases.append(("GET", f"{BASE}?{name}={raw}", {}))
    for after in (
        f"{prefix}-",
        f"{prefix}--1",
        f"{prefix}-+1",
        f"{prefix}-1.0",
        "-1",
        f"{prefix.upper()}-1",
        f"{prefix}-1 ",
        f" {prefix}-1",
        f"{prefix}-1\n",
        f"{prefix}-00",
        f"{prefix}-{2**63}",
        f"{prefix}-{'9' * 5000}",
        "\x00",
        f"00000000-{MAX_SEQ + 1}",
        f"{prefix}-{-(2**31)}",
    ):
        cases.append(("GET", one + "/logs", {"params": {"after": after}}))
        cases.append(("GET", one + "/logs/stream", {"params": {"after": after}}))
    bodies: list[bytes] = [
        b"\xff\xfe{}",
        b'{"kind": "free\xff"}',
        b"\xef\xbb\xbf{}",
        b"[]",
        b'"free"',
        b"null",
        b'{"kind": "free", "kind": "echo"}',
        b'{"kind": "free", "definition": {"a": NaN}}',
        b'{"kind": "free", "definition": {"a": Infinity}}',
        b'{"kind": "free", "definition": {"a": -Infinity}}',
        b'{"kind": "free", "definition": {"a": 1e400}}',
        b'{"kind": "free", "definition": {"a": ' + b"9" * 5000 + b"}}",
        b'{"kind": "free", "definition": {"a": -' + b"9" * 30 + b"}}",
        b'{"kind": "free", "definition": {"a": "\\u0000"}}',
        b'{"kind": "free", "definition": {"\\u0000": 1}}',
        b'{"kind": "free", "definition": {"a": "\\ud800"}}',
        b'{"kind": "free", "actionId": "a\\u0000b"}',
        b'{"kind": "free\\u0000"}',
        b'{"kind": "free", "definition": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"kind": "free", "definition": [1, 2]}',
        b'{"kind": "free", "definition": "x"}',
        b'{"kind": "free", "definition": 1}',
        b'{"kind": 1}',
        b'{"kind": null}',
        b"{}",
        b'{"kind": "echo", "definition": {"seconds": 1e300}}',
        b'{"kind": "echo", "definition": {"seconds": -1}}',
        b'{"kind": "echo", "definition": {"seconds": ' + str(2**64).encode() + b"}}",
        b'{"kind": "free", "parentActionRunId": "nope"}',
        b'{"kind": "free", "parentActionRunId": "00000000-0000-0000-0000-000000000000"}',
        b'{"kind": "free", "concurrencyKey": ""}',
        b'{"kind": "free", "idempotencyKey": 5}',
        b'{"kind": "free", "extra": 1}',
        b"{" * 100_000,
        b" ",
        b"\x00",
    ]
    for body in bodies:
        cases.append(("POST", BASE, {"content": body, "headers": _JSON}))
        cases.append(("POST", BASE + "?execute=maybe", {"content": body, "headers": _JSON}))
    for ctype in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/json; charset=latin-1",
        "application/jsonx",
        "",
        "*/*",
    ):
        headers = {"Content-Type": ctype, **AUTH}
        cases.append(("POST", BASE, {"content": b'{"kind": "free"}', "headers": headers}))
    for reason in ("r" * (inputs.MAX_REASON_LENGTH + 1), "\x00", None):
        cases.append(("POST", one + "/reject", {"json": {"reason": reason}}))
    cases.append(("POST", one + "/approve", {"content": b"\xff", "headers": _JSON}))
    for value in (b"\xb2", "²".encode(), b"-1", b"9" * 40, b"1, 2"):
        headers = [*KEY_HEADER, (b"content-length", value), (b"content-type", b"application/json")]
        cases.append(("POST", BASE, {"content": b'{"kind": "free"}', "headers": headers}))
    for value in (b"\xff", b"", b"x" * 10_000):
        headers = [*KEY_HEADER, (b"last-event-id", value)]
        cases.append(("GET", one + "/logs/stream", {"headers": headers}))
    return cases


def test_hostile_corpus_never_answers_5xx(api: Call) -> None:
    run_id, prefix = _run(api)
    api("POST", f"{BASE}/{run_id}/cancel")  # terminal: a valid stream ends at once
    failures = []
    for method, path, kw in _corpus(run_id, prefix):
        try:
            response = api(method, path, **kw)
        except httpx.HTTPError as exc:  # the client refused to send it: nothing to answer
            assert isinstance(exc, httpx.LocalProtocolError | httpx.InvalidURL), exc
            continue
        if response.status_code >= 500 or (
            response.status_code >= 400 and len(response.content) > 20_000
        ):
            failures.append((method, path[:80], repr(kw)[:120], response.status_code))
    assert failures == []


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None), max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


@HOSTILE
@given(
    kind=st.sampled_from(["free", "echo", "gate", "nope"]),
    definition=_JSON_VALUES,
    fields=st.dictionaries(
        st.sampled_from(["actionId", "idempotencyKey", "concurrencyKey", "parentActionRunId"]),
        st.none() | st.integers() | st.text(st.characters(codec=None), max_size=300),
    ),
)
def test_any_create_body_is_answered(
    api: Call, kind: str, definition: Any, fields: dict[str, Any]
) -> None:
    body = json.dumps({"kind": kind, "definition": definition, **fields}, allow_nan=True)
    response = api("POST", BASE, content=body.encode("utf-8", "surrogatepass"), headers=_JSON)
    _not_5xx(response)


@HOSTILE
@given(
    name=st.sampled_from(["limit", "offset", "status", "kind", "action_id"]),
    value=st.text(max_size=30),
)
def test_any_query_value_is_answered(
    api: Call, run: tuple[str, str], name: str, value: str
) -> None:
    run_id, _ = run
    for path in (BASE, f"{BASE}/{run_id}/logs"):
        _not_5xx(api("GET", path, params={name: value}))


# ------------------------------------------------------------------ message framing -------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _exchange(port: int, raw: bytes) -> tuple[bytes, bool]:
    """What the server answers to ``raw``, and whether it then closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        s.settimeout(2)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except TimeoutError:
            return data, False
    return data, True


@pytest.mark.timeout(60)
def test_serve_refuses_ambiguous_framing_and_closes() -> None:
    """A request with both Content-Length and Transfer-Encoding (RFC 9112 6.1): the
    server ``runkit serve`` runs answers 400 and closes, so nothing after it on the
    connection (a smuggled request) is read."""
    import uvicorn

    from runkit_contrib._serve import build_server_app, http_protocol

    runkit = Runkit("memory://", kinds=KINDS, autoload_plugins=False)
    app = build_server_app(runkit, ApiKeys({"tester": API_KEY}), workers=0)
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws="none", http=http_protocol(), log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        smuggled = b"GET /api/v1/kinds HTTP/1.1\r\nHost: x\r\nX-API-Key: " + API_KEY.encode()
        body = b'{"kind": "free"}'
        head = (
            b"POST /api/v1/action-runs HTTP/1.1\r\nHost: x\r\nX-API-Key: "
            + API_KEY.encode()
            + b"\r\nContent-Type: application/json\r\n"
        )
        both = (
            head
            + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
            + smuggled
            + b"\r\n\r\n"
        )
        answer, closed = _exchange(port, both)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert closed and answer.count(b"HTTP/1.1") == 1, answer
        old = b"POST /api/v1/action-runs HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        answer, closed = _exchange(port, old)
        assert answer.startswith(b"HTTP/1.1 400 ") and closed, answer[:200]
        # A well-framed chunked request is served, and the connection kept.
        chunked = (
            head
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
        )
        answer, closed = _exchange(port, chunked)
        assert answer.startswith(b"HTTP/1.1 201 ") and not closed, answer[:200]
    finally:
        server.should_exit = True
        thread.join(20)
