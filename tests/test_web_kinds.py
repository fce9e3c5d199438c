"""http_request, fetch_page and web_search as runs: results, logs, limits, retries, cancel,
secrets, and each definition error as a 422 at its field. Every request goes to servers this
test starts on loopback; ``RUNKIT_OUTBOUND_ALLOW`` is exactly the allowed server's address."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

import runkit
from run_support import FAST, SETTINGS
from runkit import Kind, Run, Runkit, Status, ValidationError
from runkit.engine import embedded_workers
from runkit.kinds import builtin_plugins
from runkit.kinds.web import (
    SearchHit,
    configure_outbound,
    register_search_provider,
    unregister_search_provider,
)
from runkit.kinds.web.exchange import Outbound
from web_support import LocalServer

pytestmark = pytest.mark.anyio

TOKEN = "s3cr3t-t0ken-value-42"
TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}


@pytest.fixture(autouse=True)
def _allow(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DENY", "PORTS", "PROXY"):
        monkeypatch.delenv(f"RUNKIT_OUTBOUND_{name}", raising=False)
    monkeypatch.delenv("RUNKIT_SEARCH_URL", raising=False)
    monkeypatch.delenv("RUNKIT_SEARCH_PROVIDER", raising=False)
    monkeypatch.setenv("RUNKIT_OUTBOUND_ALLOW", server.host)
    configure_outbound(None)


@pytest.fixture
async def rk() -> AsyncIterator[Runkit]:
    async with (
        Runkit("memory://", settings=SETTINGS, autoload_plugins=False) as instance,
        embedded_workers(instance, concurrency=4, **FAST),
    ):
        yield instance


async def run(rk: Runkit, kind: str, definition: dict[str, Any], within: float = 10.0) -> Run:
    created = await rk.create(kind, definition, execute=True)
    return await rk.wait(created.run.id, timeout=within, poll=0.05)


async def messages(rk: Runkit, run_id: Any) -> list[str]:
    return [entry.message async for entry in rk.iter_logs(run_id)]


async def definition_error(rk: Runkit, kind: str, definition: dict[str, Any]) -> dict[Any, str]:
    with pytest.raises(ValidationError) as info:
        await rk.create(kind, definition)
    return {detail.loc: detail.msg for detail in info.value.details}


# --- registration ----------------------------------------------------------------------------
async def test_the_web_kinds_are_built_in_plugins(rk: Runkit) -> None:
    import runkit.kinds.web as web

    assert web in builtin_plugins()
    for name in ("http_request", "fetch_page", "web_search"):
        kind = rk.kinds.get(name)
        assert isinstance(kind, Kind) and kind.display_name and kind.description
        assert rk.kinds.owner(name) == "runkit.kinds.web"
        assert kind.cancellable and kind.example
    # The examples are valid definitions (web_search's once a provider is set).
    http_kind, page_kind = rk.kinds.require("http_request"), rk.kinds.require("fetch_page")
    assert http_kind.example is not None and page_kind.example is not None
    http_kind.validate(http_kind.example)
    page_kind.validate(page_kind.example)


# --- http_request ------------------------------------------------------------------------------
async def test_http_request_get_with_query(rk: Runkit, server: LocalServer) -> None:
    done = await run(rk, "http_request", {"url": server.url("/json"), "query": {"q": "a b"}})
    assert done.status == Status.SUCCEEDED, done.error
    result = done.result or {}
    assert result["status"] == 200 and result["truncated"] is False
    assert result["body"] == {"ok": True, "method": "GET", "query": {"q": ["a b"]}}
    assert result["url"] == server.url("/json?q=a+b")
    assert result["headers"]["content-type"] == "application/json"
    assert isinstance(result["elapsedMs"], int)
    (line,) = [m for m in await messages(rk, done.id) if m.startswith("GET ")]
    assert re.fullmatch(
        rf"GET {re.escape(server.url('/json?q=a+b'))} -> 200, \d+ B in \d+ ms", line
    )
    assert (done.progress or {}).get("phase") == "done"


async def test_http_request_post_json_and_text(rk: Runkit, server: LocalServer) -> None:
    done = await run(
        rk, "http_request", {"method": "POST", "url": server.url("/echo"), "json": {"n": 1}}
    )
    body = (done.result or {})["body"]
    assert body["method"] == "POST" and json.loads(body["body"]) == {"n": 1}
    assert body["headers"]["Content-Type"] == "application/json"
    done = await run(
        rk,
        "http_request",
        {
            "method": "PUT",
            "url": server.url("/echo"),
            "body": "plain text",
            "headers": {"Content-Type": "text/plain"},
        },
    )
    assert (done.result or {})["body"]["body"] == "plain text"


async def test_expect_status(rk: Runkit, server: LocalServer) -> None:
    missing = await run(rk, "http_request", {"url": server.url("/status/404")})
    assert missing.status == Status.FAILED and missing.attempt == 1  # never retried
    assert missing.error is not None and missing.error["type"] == "UnexpectedStatus"
    assert "404" in missing.error["message"] and "2xx" in missing.error["message"]
    assert missing.error["status"] == 404
    expected = await run(
        rk, "http_request", {"url": server.url("/status/404"), "expectStatus": [404]}
    )
    assert expected.status == Status.SUCCEEDED and (expected.result or {})["status"] == 404
    narrow = await run(rk, "http_request", {"url": server.url("/json"), "expectStatus": [201]})
    assert narrow.status == Status.FAILED and narrow.error is not None
    assert narrow.error["type"] == "UnexpectedStatus" and "200" in narrow.error["message"]


async def test_503_is_retried_after_retry_after(rk: Runkit, server: LocalServer) -> None:
    started = time.monotonic()
    done = await run(rk, "http_request", {"url": server.url("/flaky")}, within=15)
    assert done.status == Status.SUCCEEDED, done.error
    assert done.attempt == 2 and (done.result or {})["body"] == {"ok": True, "attempt": 2}
    assert time.monotonic() - started >= 0.9  # Retry-After: 1
    logs = [e async for e in rk.iter_logs(done.id)]
    failed = [e for e in logs if e.level == "error"]
    assert failed and failed[0].data["error"]["type"] == "UnexpectedStatus"
    assert failed[0].data["error"]["retryable"] is True
    assert failed[0].data["error"]["status"] == 503


async def test_size_limit(rk: Runkit, server: LocalServer) -> None:
    done = await run(rk, "http_request", {"url": server.url("/big"), "maxResponseBytes": 1000})
    result = done.result or {}
    assert (len(result["body"]), result["truncated"]) == (1000, True)
    endless = await run(
        rk, "http_request", {"url": server.url("/endless"), "maxResponseBytes": 50_000}
    )
    assert endless.status == Status.SUCCEEDED and (endless.result or {})["truncated"] is True


async def test_time_limit(rk: Runkit, server: LocalServer) -> None:
    started = time.monotonic()
    post = await run(
        rk, "http_request", {"method": "POST", "url": server.url("/drip"), "timeoutSeconds": 0.5}
    )
    assert time.monotonic() - started < 3
    assert post.status == Status.FAILED and post.error is not None
    assert post.error["type"] == "RequestTimeout" and post.attempt == 1  # POST: not repeated
    created = await rk.create(
        "http_request", {"url": server.url("/drip"), "timeoutSeconds": 0.3}, execute=True
    )
    with anyio.fail_after(5):  # GET is repeated: the first attempt's error says so
        while True:
            current = await rk.get(created.run.id)
            if current.error is not None:
                break
            await anyio.sleep(0.05)
    assert current.error is not None and current.error["type"] == "RequestTimeout"
    assert current.error["retryable"] is True
    await rk.cancel(created.run.id)


async def test_cancel_during_a_held_response(rk: Runkit, server: LocalServer) -> None:
    created = await rk.create("http_request", {"url": server.url("/hold")}, execute=True)
    with anyio.fail_after(5):
        while True:
            if server.held.is_set():
                break
            await anyio.sleep(0.02)
    started = time.monotonic()
    await rk.cancel(created.run.id)
    done = await rk.wait(created.run.id, timeout=2, poll=0.05)
    assert done.status == Status.CANCELLED
    assert time.monotonic() - started < 2


async def test_secrets_never_appear(rk: Runkit, server: LocalServer) -> None:
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Cookie": f"sid={TOKEN}",
        "X-Api-Key": TOKEN,
        "X-Auth-Token": TOKEN,
        "X-Client-Secret": TOKEN,
    }
    ok = await run(rk, "http_request", {"url": server.url("/echo"), "headers": headers})
    denied = await run(
        rk,
        "http_request",
        {"url": server.url(f"/status/401?api_key={TOKEN}"), "headers": headers},
    )
    assert ok.status == Status.SUCCEEDED and denied.status == Status.FAILED
    result = ok.result or {}
    assert result["headers"]["set-cookie"] == "[redacted]"
    assert result["body"]["headers"]["Authorization"] == "[redacted]"
    for done in (ok, denied):
        logs = [e async for e in rk.iter_logs(done.id)]
        seen = json.dumps([done.result, done.error, done.progress])
        seen += json.dumps([(e.message, e.data) for e in logs], default=str)
        assert TOKEN not in seen and "s3cr3t-session-value" not in seen
        assert "echoed-key-123" not in seen
    assert server.requests[0].headers["X-Api-Key"] == TOKEN  # it was sent


async def test_refused_destinations_at_run_time(
    rk: Runkit, server: LocalServer, refused: LocalServer
) -> None:
    redirect = await run(
        rk, "http_request", {"url": server.url("/redirect"), "query": {"to": refused.url("/")}}
    )
    assert redirect.status == Status.FAILED and redirect.attempt == 1
    assert redirect.error is not None and redirect.error["type"] == "BlockedDestination"
    assert "127.0.0.2" in redirect.error["message"] and "loopback" in redirect.error["message"]
    assert redirect.error["retryable"] is False

    async def rebound(host: str, port: int) -> list[str]:
        return ["127.0.0.2"]

    from runkit.kinds.web import OutboundPolicy

    configure_outbound(OutboundPolicy(allow=(server.host,), resolver=rebound))
    try:
        named = await run(rk, "fetch_page", {"url": f"http://intranet.test:{refused.port}/"})
    finally:
        configure_outbound(None)
    assert named.error is not None and named.error["type"] == "BlockedDestination"
    assert "intranet.test resolves to 127.0.0.2" in named.error["message"]
    assert refused.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:{p2}/",
        "http://[::1]:{p2}/",
        "http://localhost:{p1}/json",
        "http://0x7f000002:{p2}/",
        "http://2130706434:{p2}/",
        "http://[::ffff:127.0.0.2]:{p2}/",
        "http://169.254.169.254/latest/meta-data/",
        "ftp://127.0.0.1:{p1}/",
    ],
)
async def test_refused_literals_are_a_422_at_the_url(
    rk: Runkit, server: LocalServer, refused: LocalServer, url: str
) -> None:
    url = url.format(p1=server.port, p2=refused.port)
    for kind in ("http_request", "fetch_page"):
        errors = await definition_error(rk, kind, {"url": url})
        assert list(errors) == [("definition", "url")], errors
    assert (server.connections, refused.connections) == (0, 0)


async def test_spellings_of_the_allowed_address_without_the_allow_entry(
    rk: Runkit, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNKIT_OUTBOUND_ALLOW")
    for host in ("0x7f000001", "2130706433", "127.0.0.1"):
        errors = await definition_error(
            rk, "http_request", {"url": f"http://{host}:{server.port}/"}
        )
        assert "loopback" in errors[("definition", "url")]
    assert server.connections == 0


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "{u}", "method": "FETCH"}, "method"),
        ({"url": "{u}", "method": "get"}, "method"),
        ({"url": "{u}", "headers": {"Host": "example.com"}}, "headers"),
        ({"url": "{u}", "headers": {"X-A": "a\r\nX-B: b"}}, "headers"),
        ({"url": "{u}", "headers": {"bad name": "v"}}, "headers"),
        ({"url": "{u}", "headers": {"X-N": 1}}, "headers"),
        ({"url": "{u}", "query": {"a": {"nested": 1}}}, "query"),
        ({"url": "{u}", "json": {"a": 1}, "body": "b"}, "body"),
        ({"url": "{u}", "body": 12}, "body"),
        ({"url": "{u}", "timeoutSeconds": 0}, "timeoutSeconds"),
        ({"url": "{u}", "timeoutSeconds": 601}, "timeoutSeconds"),
        ({"url": "{u}", "expectStatus": []}, "expectStatus"),
        ({"url": "{u}", "expectStatus": [99]}, "expectStatus"),
        ({"url": "{u}", "maxResponseBytes": 0}, "maxResponseBytes"),
        ({"url": "{u}", "maxResponseBytes": 10**9}, "maxResponseBytes"),
        ({"url": "{u}", "followRedirects": "yes"}, "followRedirects"),
        ({"url": "{u}", "timeout": 5}, "timeout"),
    ],
)
async def test_http_request_definition_errors(
    rk: Runkit, server: LocalServer, definition: dict[str, Any], field: str
) -> None:
    filled = {
        k: v.format(u=server.url("/json")) if v == "{u}" else v for k, v in definition.items()
    }
    errors = await definition_error(rk, "http_request", filled)
    assert [loc[:2] for loc in errors] == [("definition", field)], errors


@pytest.mark.parametrize(
    ("kind", "definition", "field"),
    [
        ("fetch_page", {"url": "{u}", "format": "pdf"}, "format"),
        ("fetch_page", {"url": "{u}", "maxBytes": -1}, "maxBytes"),
        ("fetch_page", {"url": "{u}", "timeoutSeconds": "30"}, "timeoutSeconds"),
        ("web_search", {"query": ""}, "query"),
        ("web_search", {"query": "x" * 2001}, "query"),
        ("web_search", {"query": "q", "maxResults": 0}, "maxResults"),
        ("web_search", {"query": "q", "maxResults": 51}, "maxResults"),
    ],
)
async def test_page_and_search_definition_errors(
    rk: Runkit,
    server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    definition: dict[str, Any],
    field: str,
) -> None:
    monkeypatch.setenv("RUNKIT_SEARCH_URL", server.url())
    filled = {
        k: v.format(u=server.url("/page")) if v == "{u}" else v for k, v in definition.items()
    }
    errors = await definition_error(rk, kind, filled)
    assert list(errors) == [("definition", field)], errors


async def test_a_missing_library_is_a_422_naming_the_extra(
    rk: Runkit, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "trafilatura", None)  # as if not installed
    errors = await definition_error(rk, "fetch_page", {"url": server.url("/page")})
    assert "runkit[web]" in errors[("definition",)] and "trafilatura" in errors[("definition",)]
    await rk.create("http_request", {"url": server.url("/json")})  # needs only httpx
    monkeypatch.setitem(sys.modules, "httpx", None)
    for kind, definition in (
        ("http_request", {"url": server.url()}),
        ("web_search", {"query": "q"}),
    ):
        errors = await definition_error(rk, kind, definition)
        assert "runkit[web]" in errors[("definition",)] and "httpx" in errors[("definition",)]


async def test_422_over_http_points_at_the_field(rk: Runkit, refused: LocalServer) -> None:
    from runkit_contrib import ApiKeys, asgi_app

    app = asgi_app(rk, auth=ApiKeys({"t": "rk_test_key_0123456789"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(
            "/api/v1/action-runs",
            json={"kind": "http_request", "definition": {"url": refused.url()}},
            headers={"X-API-Key": "rk_test_key_0123456789"},
        )
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", "definition", "url"] and "loopback" in detail["msg"]


# --- fetch_page -------------------------------------------------------------------------------
async def test_fetch_page_markdown_with_absolute_links(rk: Runkit, server: LocalServer) -> None:
    done = await run(rk, "fetch_page", {"url": server.url("/docs/notes/2.4.html")})
    assert done.status == Status.SUCCEEDED, done.error
    page = done.result or {}
    assert page["title"] == "Release notes 2.4" and page["status"] == 200
    assert page["url"] == page["finalUrl"] == server.url("/docs/notes/2.4.html")
    links = {link["url"]: link["text"] for link in page["links"]}
    assert links[server.url("/docs/guide/retries.html")] == "retry guide"
    assert links[server.url("/docs/notes/changes.html")] == "API changes"
    assert links[server.url("/")] == "Home"
    assert links["https://example.org/upstream"] == "upstream notes"
    assert not [u for u in links if not u.startswith("http")]  # mailto:, #top dropped
    assert f"[retry guide]({server.url('/docs/guide/retries.html')})" in page["content"]
    assert "# What changed in 2.4" in page["content"]
    assert "Mail us" not in page["content"]  # the footer is not the content
    assert page["truncated"] is False


async def test_fetch_page_text_html_and_redirects(rk: Runkit, server: LocalServer) -> None:
    text = await run(rk, "fetch_page", {"url": server.url("/page"), "format": "text"})
    content = (text.result or {})["content"]
    assert "Version 2.4 makes retries visible" in content and "](" not in content
    html = await run(
        rk,
        "fetch_page",
        {"url": server.url("/redirect?to=/docs/notes/2.4.html"), "format": "html"},
    )
    page = html.result or {}
    assert page["finalUrl"] == server.url("/docs/notes/2.4.html")
    assert page["content"].startswith("<!doctype html>")
    plain = await run(rk, "fetch_page", {"url": server.url("/text")})
    assert (plain.result or {})["content"] == "plain words, ünïcode\n"
    cut = await run(rk, "fetch_page", {"url": server.url("/page"), "maxBytes": 300})
    assert (cut.result or {})["truncated"] is True


async def test_fetch_page_refuses_non_pages_and_errors(rk: Runkit, server: LocalServer) -> None:
    image = await run(rk, "fetch_page", {"url": server.url("/image.png")})
    assert image.error is not None and image.error["type"] == "UnsupportedContent"
    gone = await run(rk, "fetch_page", {"url": server.url("/status/410")})
    assert gone.error is not None and gone.error["type"] == "UnexpectedStatus"
    assert gone.attempt == 1


# --- web_search --------------------------------------------------------------------------------
async def test_web_search_needs_a_provider(rk: Runkit) -> None:
    errors = await definition_error(rk, "web_search", {"query": "runkit"})
    assert "RUNKIT_SEARCH_URL" in errors[("definition",)]


async def test_web_search_on_a_fake_searxng(
    rk: Runkit, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNKIT_SEARCH_URL", server.url("/"))
    done = await run(rk, "web_search", {"query": "durable runs", "maxResults": 3})
    assert done.status == Status.SUCCEEDED, done.error
    result = done.result or {}
    assert result["query"] == "durable runs" and result["provider"] == "searxng"
    assert result["results"] == [
        {
            "title": "Result 0 for durable runs",
            "url": "https://example.org/0",
            "snippet": "Snippet 0.",
        },
        {
            "title": "Result 1 for durable runs",
            "url": "https://example.org/1",
            "snippet": "Snippet 1.",
        },
        {
            "title": "Result 2 for durable runs",
            "url": "https://example.org/2",
            "snippet": "Snippet 2.",
        },
    ]
    (seen,) = server.requests
    assert seen.path == "/search" and seen.query["format"] == ["json"]
    logs = await messages(rk, done.id)
    assert any(m.startswith("GET http://127.0.0.1:") and "-> 200" in m for m in logs)
    assert "searxng: 3 results for 'durable runs'" in logs


async def test_web_search_url_goes_through_the_guard(
    rk: Runkit, refused: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNKIT_SEARCH_URL", refused.url())
    errors = await definition_error(rk, "web_search", {"query": "q"})
    assert "RUNKIT_SEARCH_URL is refused" in errors[("definition",)]
    assert refused.connections == 0


class _Canned:
    name = "canned"

    def __init__(self, ready: bool = True) -> None:
        self.ready = ready

    def problem(self) -> str | None:
        return None if self.ready else "set CANNED_KEY"

    async def search(self, query: str, max_results: int, outbound: Outbound) -> list[SearchHit]:
        return [SearchHit(f"{query} {i}", f"https://example.org/{i}") for i in range(10)]


async def test_web_search_providers_are_plugins(
    rk: Runkit, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_search_provider(_Canned())
    try:
        done = await run(rk, "web_search", {"query": "q", "maxResults": 2})
        result = done.result or {}
        assert result["provider"] == "canned" and len(result["results"]) == 2
        monkeypatch.setenv("RUNKIT_SEARCH_PROVIDER", "nope")
        errors = await definition_error(rk, "web_search", {"query": "q"})
        assert "known: canned, searxng" in errors[("definition",)]
        register_search_provider(_Canned(ready=False))
        monkeypatch.setenv("RUNKIT_SEARCH_PROVIDER", "canned")
        errors = await definition_error(rk, "web_search", {"query": "q"})
        assert "CANNED_KEY" in errors[("definition",)]
    finally:
        unregister_search_provider("canned")
    with pytest.raises(TypeError):
        register_search_provider(object())  # type: ignore[arg-type]


class _CannedPlugin:
    @runkit.hookimpl
    def runkit_register_search_providers(self, register: Callable[[Any], None]) -> None:
        register(_Canned())


async def test_a_plugin_offers_a_search_provider_through_the_hook() -> None:
    try:
        async with (
            Runkit("memory://", plugins=[_CannedPlugin()], autoload_plugins=False) as rk,
            runkit.embedded_workers(rk, concurrency=1),
        ):
            created = await rk.create("web_search", {"query": "q", "maxResults": 3}, execute=True)
            done = await rk.wait(created.run.id, timeout=30)
        assert done.result is not None and done.result["provider"] == "canned"
        assert len(done.result["results"]) == 3
    finally:
        unregister_search_provider("canned")
