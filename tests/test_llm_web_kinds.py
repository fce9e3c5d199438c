"""agent_search and agent_fetch_page as runs on the memory and SQLite stores, end to end: the
search is the SearXNG provider asking a fake SearXNG route, the pages are served on
127.0.0.1 (one on 127.0.0.2, which the outbound guard refuses: it must receive nothing), and
the model is the scripted fake of tests/llm_fake.py. Citations checked and asked again once;
JSON checked against a schema and asked again once; the create-time checks as 422s."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import runkit.kinds.llm.agents as agents_plugin
from llm_fake import FakeLlm, serving_llm, text
from run_support import FAST, SETTINGS
from runkit import LogEntry, Run, Runkit, Status, ValidationError
from runkit.engine import embedded_workers
from runkit.kinds.llm import LlmSettings, configure_llm
from runkit.kinds.llm.agent_search import citations
from runkit.kinds.llm.errors import OutputRejected
from runkit.kinds.llm.settings import API_KEY_ENV, BASE_URL_ENV, MODEL_ENV, PROVIDER_ENV
from runkit.kinds.web import configure_outbound
from web_support import LocalServer, Seen

pytestmark = pytest.mark.anyio

GUIDE = """<!doctype html>
<html><head><title>Retry guide</title></head><body><main><article>
<h1>Retries</h1>
<p>A failed attempt is retried after a backoff that doubles each time, up to a ceiling, with
some jitter so that many runs failing together do not all come back at the same moment.</p>
<p>A Retry-After header from the server wins over the backoff when it is given.</p>
</article></main></body></html>
"""
SCHEMA = {
    "type": "object",
    "properties": {"version": {"$ref": "#/$defs/text"}, "migration": {"type": "boolean"}},
    "required": ["version", "migration"],
    "additionalProperties": False,
    "$defs": {"text": {"type": "string"}},
}


# --- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def fake_llm() -> Iterator[FakeLlm]:
    with serving_llm() as server:
        yield server


@pytest.fixture(autouse=True)
def configured(
    fake_llm: FakeLlm, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeLlm]:
    for name in (BASE_URL_ENV, API_KEY_ENV, MODEL_ENV, PROVIDER_ENV, "RUNKIT_SEARCH_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    for name in ("DENY", "PORTS", "PROXY"):
        monkeypatch.delenv(f"RUNKIT_OUTBOUND_{name}", raising=False)
    monkeypatch.setenv("RUNKIT_OUTBOUND_ALLOW", server.host)  # 127.0.0.1 only
    monkeypatch.setenv("RUNKIT_SEARCH_URL", server.url("/"))
    configure_outbound(None)
    configure_llm(
        LlmSettings(base_url=fake_llm.base_url, api_key="k", model="fake-model", backoff_base=0.01)
    )
    server.routes["/guide"] = lambda h, seen: h.reply(200, GUIDE.encode(), "text/html")
    yield fake_llm
    configure_llm(None)


def plugins() -> list[object]:
    """The agent kinds' plugin, unless runkit registers them already (built in)."""
    built_in = Runkit("memory://", autoload_plugins=False).kinds
    return [] if "call_agent" in built_in else [agents_plugin]


@pytest.fixture(params=["memory", "sqlite"])
async def rk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runkit]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'runkit.db'}"
    async with (
        Runkit(url, settings=SETTINGS, plugins=plugins(), autoload_plugins=False) as instance,
        embedded_workers(instance, concurrency=2, **FAST),
    ):
        yield instance


def search_results(server: LocalServer, *urls: str) -> None:
    """Make the server's /search answer as SearXNG does, with ``urls`` as the results."""

    def route(h: Any, seen: Seen) -> None:
        if seen.query.get("format") != ["json"]:
            h.reply(403, b"format not allowed")
            return
        results = [
            {"url": url, "title": f"Hit {i}", "content": f"Snippet {i}."}
            for i, url in enumerate(urls)
        ]
        h.reply_json(200, {"query": seen.query["q"][0], "results": results})

    server.routes["/search"] = route


async def run(rk: Runkit, kind: str, definition: dict[str, Any], within: float = 30.0) -> Run:
    created = await rk.create(kind, definition, execute=True)
    return await rk.wait(created.run.id, timeout=within, poll=0.05)


async def succeeded(rk: Runkit, kind: str, definition: dict[str, Any]) -> dict[str, Any]:
    done = await run(rk, kind, definition)
    assert done.status == Status.SUCCEEDED, done.error
    assert done.result is not None
    json.dumps(done.result, allow_nan=False)
    return done.result


async def entries(rk: Runkit, run_id: Any) -> list[LogEntry]:
    return [entry async for entry in rk.iter_logs(run_id)]


async def create_errors(rk: Runkit, kind: str, definition: dict[str, Any]) -> list[Any]:
    with pytest.raises(ValidationError) as info:
        await rk.create(kind, definition)
    return [(detail.loc, detail.msg) for detail in info.value.details]


# --- agent_search ------------------------------------------------------------------------------
async def test_search_reads_the_best_pages_and_answers_with_citations(
    rk: Runkit, fake_llm: FakeLlm, server: LocalServer, refused: LocalServer
) -> None:
    search_results(
        server,
        server.url("/docs/notes/2.4.html"),
        server.url("/status/404"),  # fails: the next hit is read instead
        refused.url("/page"),  # 127.0.0.2: the guard refuses it
        server.url("/docs/notes/2.4.html"),  # a repeat: read once
        server.url("/image.png"),  # not a page
        server.url("/guide"),
        server.url("/text"),  # not needed: two sources are enough
    )
    answer = "Since 2.4 every failed attempt is recorded [1]; backoff doubles [2]."
    fake_llm.script(text(answer, usage=(400, 30)))
    question = "How does runkit retry?"
    done = await run(rk, "agent_search", {"question": question, "maxSources": 2})
    assert done.status == Status.SUCCEEDED, done.error
    assert done.result == {
        "answer": answer,
        "sources": [
            {"url": server.url("/docs/notes/2.4.html"), "title": "Release notes 2.4"},
            {"url": server.url("/guide"), "title": "Retry guide"},
        ],
        "usage": {"promptTokens": 400, "completionTokens": 30, "calls": 1},
    }
    (searched,) = [s for s in server.requests if s.path == "/search"]
    assert searched.query["q"] == [question]
    assert [s.path for s in server.requests if s.path == "/text"] == []
    assert refused.requests == [] and refused.connections == 0
    (seen,) = fake_llm.chat_requests
    prompt = seen.messages[1]["content"]
    assert prompt.startswith(f"Question: {question}")
    assert "[1] Release notes 2.4\n" + server.url("/docs/notes/2.4.html") in prompt
    assert "Version 2.4 makes retries visible" in prompt
    assert "[2] Retry guide" in prompt and "backoff that doubles" in prompt
    assert "square brackets" in seen.messages[0]["content"]
    skipped = [e for e in await entries(rk, done.id) if e.event == "agent.source_skipped"]
    reasons = sorted(e.message.split(": ")[2] for e in skipped)
    assert reasons == ["BlockedDestination", "UnexpectedStatus", "UnsupportedContent"]


async def test_citations_are_checked_and_asked_for_again_once(
    rk: Runkit, fake_llm: FakeLlm, server: LocalServer
) -> None:
    search_results(server, server.url("/docs/notes/2.4.html"))
    fake_llm.script(text("Retries are visible [1][2]."), text("Retries are visible [1]."))
    result = await succeeded(rk, "agent_search", {"question": "What changed?", "maxSources": 1})
    assert result["answer"] == "Retries are visible [1]."
    assert result["usage"]["calls"] == 2
    fix = fake_llm.chat_requests[1].messages[-1]["content"]
    assert "it cites [2], but the sources are numbered [1] to [1]" in fix
    # Twice without a usable citation: the run fails, showing the last answer.
    fake_llm.script(text("No citations at all."), text("Still none."))
    done = await run(rk, "agent_search", {"question": "What changed?", "maxSources": 1})
    assert done.status == Status.FAILED and done.error is not None
    assert done.error["type"] == "ModelOutputInvalid" and done.error["answer"] == "Still none."
    assert "it cites no source" in done.error["message"]
    assert done.error["usage"]["calls"] == 2 and done.attempt == 1


def test_citation_markers() -> None:
    assert citations("A [1]. B [2][1]. C [3, 2].", 3) == [1, 2, 3]
    with pytest.raises(OutputRejected, match=r"it cites \[0\], \[4\]"):
        citations("A [0] and [4] and [2].", 3)
    with pytest.raises(OutputRejected, match="cites no source"):
        citations("A (1).", 3)
    with pytest.raises(OutputRejected, match="empty"):
        citations("  ", 3)


async def test_search_with_nothing_readable_fails(
    rk: Runkit, fake_llm: FakeLlm, server: LocalServer
) -> None:
    search_results(server, server.url("/status/404"), server.url("/status/410"))
    done = await run(rk, "agent_search", {"question": "anything?"})
    assert done.status == Status.FAILED and done.error is not None
    assert done.error["type"] == "NoSources"
    assert done.error["message"] == "none of the 2 results could be read"
    assert fake_llm.chat_requests == []


async def test_search_needs_a_provider_and_a_model(
    rk: Runkit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNKIT_SEARCH_URL")
    configure_llm(None)
    errors = await create_errors(rk, "agent_search", {"question": "q"})
    assert [loc for loc, _ in errors] == [("definition",), ("definition",)]
    assert BASE_URL_ENV in errors[0][1] and MODEL_ENV in errors[0][1]
    assert "RUNKIT_SEARCH_URL" in errors[1][1]
    errors = await create_errors(rk, "agent_search", {"question": " ", "maxSources": 11})
    assert sorted(loc for loc, _ in errors) == [
        ("definition", "maxSources"),
        ("definition", "question"),
    ]


# --- agent_fetch_page --------------------------------------------------------------------------
async def test_fetch_page_extracts_text(rk: Runkit, fake_llm: FakeLlm, server: LocalServer) -> None:
    fake_llm.script(text("  Failed attempts now record their errors.  ", usage=(300, 9)))
    url = server.url("/docs/notes/2.4.html")
    instruction = "Say in one sentence what changed."
    result = await succeeded(rk, "agent_fetch_page", {"url": url, "instruction": instruction})
    assert result == {
        "url": url,
        "finalUrl": url,
        "title": "Release notes 2.4",
        "text": "Failed attempts now record their errors.",
        "usage": {"promptTokens": 300, "completionTokens": 9, "calls": 1},
    }
    (seen,) = fake_llm.chat_requests
    asked = seen.messages[1]["content"]
    assert asked.startswith(f"Instruction: {instruction}")
    assert f"The page {url} (Release notes 2.4)" in asked
    assert "Version 2.4 makes retries visible" in asked
    assert "plain text" in seen.messages[0]["content"]


async def test_fetch_page_extracts_json_valid_against_the_schema(
    rk: Runkit, fake_llm: FakeLlm, server: LocalServer
) -> None:
    fake_llm.script(
        text('{"version": 2.4, "migration": false}'),  # a number where a string is asked
        text('```json\n{"version": "2.4", "migration": false}\n```'),
    )
    definition = {
        "url": server.url("/page"),
        "instruction": "Which version, and does it need a migration?",
        "schema": SCHEMA,
    }
    result = await succeeded(rk, "agent_fetch_page", definition)
    assert result["data"] == {"version": "2.4", "migration": False}
    assert "text" not in result and result["usage"]["calls"] == 2
    first, second = fake_llm.chat_requests
    assert json.dumps(SCHEMA, indent=2) in first.messages[0]["content"]
    assert "at version: 2.4 is not of type 'string'" in second.messages[-1]["content"]


async def test_fetch_page_json_invalid_twice_fails(
    rk: Runkit, fake_llm: FakeLlm, server: LocalServer
) -> None:
    fake_llm.script(text('{"version": "2.4"}'), text('{"version": "2.4", "extra": 1}'))
    definition = {"url": server.url("/page"), "instruction": "Extract.", "schema": SCHEMA}
    done = await run(rk, "agent_fetch_page", definition)
    assert done.status == Status.FAILED and done.error is not None
    assert done.error["type"] == "ModelOutputInvalid" and done.attempt == 1
    assert "'migration' is a required property" in done.error["message"]
    assert done.error["usage"] == {"prompt": 20, "completion": 10, "calls": 2}
    assert len(fake_llm.chat_requests) == 2


async def test_fetch_page_fails_on_a_page_it_cannot_read(
    rk: Runkit, fake_llm: FakeLlm, server: LocalServer
) -> None:
    done = await run(rk, "agent_fetch_page", {"url": server.url("/status/404"), "instruction": "x"})
    assert done.error is not None and done.error["type"] == "UnexpectedStatus"
    assert done.error["status"] == 404 and fake_llm.chat_requests == []


async def test_fetch_page_definition_errors(
    rk: Runkit, server: LocalServer, refused: LocalServer
) -> None:
    errors = dict(
        await create_errors(rk, "agent_fetch_page", {"url": refused.url("/"), "instruction": "x"})
    )
    assert list(errors) == [("definition", "url")] and "127.0.0.2" in errors[("definition", "url")]
    bad_schema = {"type": "object", "properties": {"a": {"type": "strin"}}}
    definition = {"url": server.url("/page"), "instruction": "x", "schema": bad_schema}
    errors = dict(await create_errors(rk, "agent_fetch_page", definition))
    assert list(errors) == [("definition", "schema")]
    assert errors[("definition", "schema")].startswith("not a valid JSON Schema: ")
    assert "(at properties/a/type)" in errors[("definition", "schema")]
    # A schema may refer only to itself: jsonschema would download another, past the guard.
    elsewhere = {"properties": {"a": {"$ref": server.url("/json")}}}
    errors = dict(await create_errors(rk, "agent_fetch_page", {**definition, "schema": elsewhere}))
    assert "it may refer only to itself" in errors[("definition", "schema")]
    unknown = {"$schema": "https://example.org/my-draft", "type": "object"}
    errors = dict(await create_errors(rk, "agent_fetch_page", {**definition, "schema": unknown}))
    assert errors[("definition", "schema")].startswith("unknown $schema")
    configure_llm(None)
    errors = dict(await create_errors(rk, "agent_fetch_page", {**definition, "schema": SCHEMA}))
    assert list(errors) == [("definition",)] and BASE_URL_ENV in errors[("definition",)]
    assert refused.requests == [] and server.requests == []


async def test_fetch_page_schema_references_stay_inside_it(
    rk: Runkit, fake_llm: FakeLlm, server: LocalServer
) -> None:
    broken = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    fake_llm.script(text('{"a": 1}'))
    definition = {"url": server.url("/page"), "instruction": "Extract.", "schema": broken}
    done = await run(rk, "agent_fetch_page", definition)
    assert done.error is not None and done.error["type"] == "InvalidSchema"
    assert "/$defs/missing" in done.error["message"]
    assert [s.path for s in server.requests] == ["/page"]  # nothing else was fetched
