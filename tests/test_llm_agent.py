"""call_agent as runs on the memory and SQLite stores, end to end: the model is the scripted fake
of tests/llm_fake.py (tool calls streamed in pieces, usage), the tools are child runs of
web_search (on the fake SearXNG of tests/web_support.py), fetch_page (a page on 127.0.0.1)
and a kind of this file's own; the parent waits for them durably and goes on without asking
the model again for the turns it had. Also: the step limit, calls the agent cannot make
shown to the model, the create-time checks of the tools, the 422 when no model is
configured, and a cancel while the model streams."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

import runkit.kinds.llm.agents as agents_plugin
from llm_fake import FakeLlm, endless, serving_llm, text, tool_calls
from run_support import FAST, SETTINGS, wait_status
from runkit import Fatal, Kind, LogEntry, Run, Runkit, Status, ValidationError
from runkit.domain.config_schema import config_schema
from runkit.engine import RunContext, embedded_workers
from runkit.kinds.llm import LlmSettings, configure_llm
from runkit.kinds.llm.agent_tools import (
    DEFAULT_TOOLS,
    TOOLS_ENV,
    AgentSettings,
    configure_agents,
    function_name,
)
from runkit.kinds.llm.settings import API_KEY_ENV, BASE_URL_ENV, MODEL_ENV, PROVIDER_ENV
from runkit.kinds.web import configure_outbound
from runkit.kinds.web.web_search import WebSearchConfig
from web_support import LocalServer

pytestmark = pytest.mark.anyio

TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}
#: Set by a test to let ``lookup`` runs of the word "hold" finish.
RELEASE = threading.Event()


# --- a tool of this file's own ----------------------------------------------------------------
@attrs.frozen
class LookupConfig:
    """``{word}``: the word to look up."""

    word: str = attrs.field(validator=attrs.validators.min_len(1))


async def lookup(ctx: RunContext) -> dict[str, Any]:
    word = ctx.definition.word
    while word == "hold":
        if RELEASE.is_set():
            break
        await anyio.sleep(0.02)
    if word == "fail":
        raise Fatal("no such word")
    await ctx.log("info", f"looked up {word!r}")
    return {"word": word, "meaning": f"{word}: a thing that lasts"}


LOOKUP = Kind("lookup", lookup, LookupConfig, description="Looks a word up in the dictionary.")


# --- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def fake_llm() -> Iterator[FakeLlm]:
    with serving_llm() as server:
        yield server


@pytest.fixture(autouse=True)
def configured(
    fake_llm: FakeLlm, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeLlm]:
    for name in (BASE_URL_ENV, API_KEY_ENV, MODEL_ENV, PROVIDER_ENV, TOOLS_ENV):
        monkeypatch.delenv(name, raising=False)
    for name in ("DENY", "PORTS", "PROXY"):
        monkeypatch.delenv(f"RUNKIT_OUTBOUND_{name}", raising=False)
    monkeypatch.delenv("RUNKIT_SEARCH_PROVIDER", raising=False)
    monkeypatch.setenv("RUNKIT_OUTBOUND_ALLOW", server.host)  # 127.0.0.1 only
    monkeypatch.setenv("RUNKIT_SEARCH_URL", server.url("/"))  # the fake SearXNG
    configure_outbound(None)
    configure_llm(
        LlmSettings(base_url=fake_llm.base_url, api_key="k", model="fake-model", backoff_base=0.01)
    )
    configure_agents(AgentSettings(tools=("web_search", "fetch_page"), kinds=(LOOKUP,)))
    RELEASE.clear()
    yield fake_llm
    RELEASE.set()
    configure_llm(None)
    configure_agents(None)


def plugins() -> list[object]:
    """The agent kinds' plugin, unless runkit registers them already (built in)."""
    built_in = Runkit("memory://", autoload_plugins=False).kinds
    return [] if "call_agent" in built_in else [agents_plugin]


@pytest.fixture(params=["memory", "sqlite"])
async def rk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runkit]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'runkit.db'}"
    async with (
        Runkit(
            url, settings=SETTINGS, plugins=plugins(), kinds=[LOOKUP], autoload_plugins=False
        ) as instance,
        embedded_workers(instance, concurrency=2, **FAST),
    ):
        yield instance


@pytest.fixture
async def bare() -> AsyncIterator[Runkit]:
    """No worker: for what a create says."""
    async with Runkit(
        "memory://", plugins=plugins(), kinds=[LOOKUP], autoload_plugins=False
    ) as instance:
        yield instance


async def run(rk: Runkit, definition: dict[str, Any], within: float = 30.0) -> Run:
    created = await rk.create("call_agent", definition, execute=True)
    return await wait_status(rk, created.run.id, TERMINAL, within)


async def succeeded(rk: Runkit, definition: dict[str, Any]) -> dict[str, Any]:
    done = await run(rk, definition)
    assert done.status == Status.SUCCEEDED, done.error
    assert done.result is not None
    json.dumps(done.result, allow_nan=False)
    return done.result


async def children(rk: Runkit, run_id: Any) -> list[Run]:
    return list((await rk.list(parent_action_run_id=run_id)).runs)


async def entries(rk: Runkit, run_id: Any) -> list[LogEntry]:
    return [entry async for entry in rk.iter_logs(run_id)]


async def create_errors(rk: Runkit, definition: dict[str, Any]) -> dict[Any, str]:
    with pytest.raises(ValidationError) as info:
        await rk.create("call_agent", definition)
    return {detail.loc: detail.msg for detail in info.value.details}


async def until(condition: Callable[[], bool], within: float) -> None:
    with anyio.fail_after(within):
        while True:
            if condition():
                return
            await anyio.sleep(0.02)


# --- registration ------------------------------------------------------------------------------
async def test_the_agent_kinds_come_with_their_plugin(bare: Runkit) -> None:
    for name in ("call_agent", "agent_search", "agent_fetch_page"):
        kind = bare.kinds.require(name)
        assert kind.display_name and kind.description and kind.cancellable
        assert kind.example is not None
        kind.validate(kind.example)  # the examples are definitions the kind takes
    assert bare.kinds.require("call_agent").pausable


# --- tools as child runs -----------------------------------------------------------------------
async def test_each_tool_call_is_a_child_run_and_the_model_sees_its_result(
    rk: Runkit, fake_llm: FakeLlm, server: LocalServer
) -> None:
    fake_llm.script(
        tool_calls(
            ("web_search", {"query": "durable runs", "maxResults": 2}),
            ("fetch_page", {"url": server.url("/page")}),
            pieces=4,
            usage=(50, 10),
        ),
        text("Retries became visible in 2.4.", usage=(200, 20)),
    )
    definition = {
        "prompt": "What changed?",
        "system": "Be brief.",
        "tools": ["web_search", "fetch_page"],
    }
    created = await rk.create("call_agent", definition, execute=True)
    done = await wait_status(rk, created.run.id, TERMINAL, 30)
    assert done.status == Status.SUCCEEDED, done.error
    result = done.result or {}
    assert result["answer"] == "Retries became visible in 2.4."
    assert result["usage"] == {"promptTokens": 250, "completionTokens": 30, "calls": 2}
    kids = await children(rk, done.id)
    assert [k.kind for k in kids] == ["web_search", "fetch_page"]
    assert all(k.status == Status.SUCCEEDED and k.parent_action_run_id == done.id for k in kids)
    assert result["steps"] == [
        {
            "tool": "web_search",
            "arguments": {"query": "durable runs", "maxResults": 2},
            "childRunId": str(kids[0].id),
            "status": "succeeded",
        },
        {
            "tool": "fetch_page",
            "arguments": {"url": server.url("/page")},
            "childRunId": str(kids[1].id),
            "status": "succeeded",
        },
    ]
    # Each child has its own log: the request it made through the guard.
    for kid in kids:
        assert any(e.message.startswith("GET http://127.0.0.1") for e in await entries(rk, kid.id))
    # The model was given the tools' schemas, read from the kinds' configs...
    first, second = fake_llm.chat_requests
    tools = {t["function"]["name"]: t["function"] for t in first.body["tools"]}
    assert set(tools) == {"web_search", "fetch_page"}
    assert tools["web_search"]["parameters"] == config_schema(WebSearchConfig)
    assert tools["fetch_page"]["parameters"]["required"] == ["url"]
    assert [m["role"] for m in first.messages] == ["system", "user"]
    # ... and then the tool results, after its own turn.
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "tool", "tool"]
    calls = second.messages[2]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_0", "call_1"]
    assert [m["tool_call_id"] for m in second.messages[3:]] == ["call_0", "call_1"]
    searched = json.loads(second.messages[3]["content"])
    assert searched["results"][0]["title"] == "Result 0 for durable runs"
    assert "Version 2.4 makes retries visible" in second.messages[4]["content"]
    # The parent ran again after the wait; its log tells the story once, and the second
    # model call's entry shows only the new turns (the conversation went on).
    assert done.attempt >= 2
    logs = await entries(rk, done.id)
    events = [e.event for e in logs if e.event and e.event.startswith(("agent.", "llm.prompt"))]
    assert events == [
        "llm.prompt",
        "agent.tool_started",
        "agent.tool_started",
        "agent.tool_done",
        "agent.tool_done",
        "llm.prompt",
    ]
    prompts = [e for e in logs if e.event == "llm.prompt"]
    assert prompts[1].message.startswith("model call 2 (turn 2), after the 3 earlier messages")


async def test_a_resumed_agent_does_not_ask_the_model_again_for_earlier_turns(
    rk: Runkit, fake_llm: FakeLlm
) -> None:
    fake_llm.script(
        tool_calls(("lookup", {"word": "hold"}), usage=(11, 1)),
        tool_calls(("lookup", {"word": "lease"}), usage=(22, 2)),
        text("A lease is a thing that lasts.", usage=(33, 3)),
    )
    created = await rk.create(
        "call_agent", {"prompt": "Define lease.", "tools": ["lookup"]}, execute=True
    )
    # The parent waits for its tool run without a worker, having asked the model once.
    waiting = await wait_status(rk, created.run.id, {Status.WAITING}, 15)
    assert len(fake_llm.chat_requests) == 1
    assert await rk.display_status(waiting) == (
        "Waiting · waiting for 1 tool run (turn 1, step 1 of at most 8)"
    )
    (held,) = await children(rk, waiting.id)
    # Claimed by then or soon after: a busy worker gathers wake-ups for a moment first.
    await wait_status(rk, held.id, {Status.RUNNING}, 15)
    RELEASE.set()
    done = await wait_status(rk, created.run.id, TERMINAL, 30)
    assert done.status == Status.SUCCEEDED, done.error
    # Three turns, three requests: the re-executions replayed the earlier turns.
    assert len(fake_llm.chat_requests) == 3 and fake_llm.exhausted == 0
    assert done.attempt >= 3
    result = done.result or {}
    assert result["usage"] == {"promptTokens": 66, "completionTokens": 6, "calls": 3}
    assert [s["arguments"]["word"] for s in result["steps"]] == ["hold", "lease"]
    last = fake_llm.chat_requests[-1].messages
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "tool"]
    assert json.loads(last[4]["content"]) == {
        "word": "lease",
        "meaning": "lease: a thing that lasts",
    }
    answers = [e for e in await entries(rk, done.id) if e.event == "llm.answer"]
    assert [e.message.split(" in ")[0] for e in answers] == [
        "model answer 1",
        "model answer 2",
        "model answer 3",
    ]


async def test_the_step_limit_ends_the_loop_with_an_error(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(
        tool_calls(("lookup", {"word": "a"})),
        tool_calls(("lookup", {"word": "b"})),
        tool_calls(("lookup", {"word": "c"}), ("lookup", {"word": "d"})),
    )
    done = await run(rk, {"prompt": "Look everything up.", "tools": ["lookup"], "maxSteps": 3})
    assert done.status == Status.FAILED and done.error is not None
    assert done.error["type"] == "StepLimitReached" and not done.error["retryable"]
    assert "asked for 4 tool calls in all, more than maxSteps (3)" in done.error["message"]
    assert done.error["maxSteps"] == 3 and len(done.error["steps"]) == 2
    assert done.error["usage"] == {"prompt": 30, "completion": 15, "calls": 3}
    # The calls past the limit were not started.
    assert [k.definition["word"] for k in await children(rk, done.id)] == ["a", "b"]
    assert len(fake_llm.chat_requests) == 3


async def test_calls_it_cannot_make_are_shown_to_the_model_as_errors(
    rk: Runkit, fake_llm: FakeLlm
) -> None:
    fake_llm.script(
        tool_calls(
            ("http_request", {"url": "http://127.0.0.1/"}),  # not one of this run's tools
            ("lookup", {"wrd": "x"}),  # arguments the kind refuses
            ("lookup", "{not json"),
            ("lookup", {"word": "fail"}),  # a tool run that fails
            ("lookup", {"word": "ok"}),
        ),
        text("Only one word could be looked up."),
    )
    result = await succeeded(rk, {"prompt": "Try.", "tools": ["lookup"]})
    steps = result["steps"]
    assert [s["status"] for s in steps] == ["refused", "refused", "refused", "failed", "succeeded"]
    assert [s["childRunId"] is None for s in steps] == [True, True, True, False, False]
    assert "there is no tool 'http_request' (the tools are: lookup)" in steps[0]["error"]
    assert "lookup refused the arguments" in steps[1]["error"]
    assert "wrd: extra field not permitted" in steps[1]["error"]
    assert steps[2]["arguments"] == "{not json" and "not JSON" in steps[2]["error"]
    assert steps[3]["error"] == "no such word"
    shown = [m["content"] for m in fake_llm.chat_requests[1].messages if m["role"] == "tool"]
    assert len(shown) == 5
    assert json.loads(shown[0]) == {"error": steps[0]["error"]}
    assert "wrd: extra field not permitted" in json.loads(shown[1])["error"]
    assert json.loads(shown[3]) == {"status": "failed", "error": "Fatal: no such word"}
    assert json.loads(shown[4])["word"] == "ok"


async def test_a_conversation_and_the_model_options(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(text("Again: hello."))
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "say it again"},
    ]
    definition = {
        "messages": messages,
        "system": "Be kind.",
        "model": "other-model",
        "temperature": 0.1,
        "maxTokens": 50,
    }
    result = await succeeded(rk, definition)
    assert result == {
        "answer": "Again: hello.",
        "steps": [],
        "usage": {"promptTokens": 10, "completionTokens": 5, "calls": 1},
    }
    (seen,) = fake_llm.chat_requests
    assert seen.messages == [{"role": "system", "content": "Be kind."}, *messages]
    assert (seen.body["model"], seen.body["temperature"], seen.body["max_tokens"]) == (
        "other-model",
        0.1,
        50,
    )
    assert "tools" not in seen.body  # no tools: none offered


# --- create time -------------------------------------------------------------------------------
async def test_tools_are_checked_at_create(bare: Runkit) -> None:
    configure_agents(AgentSettings(tools=("web_search", "ghost"), kinds=(LOOKUP,)))
    tools = ["lookup", "approval_gate", "ghost", "lookup", "web_search"]
    errors = await create_errors(bare, {"prompt": "x", "tools": tools})
    assert set(errors) == {
        ("definition", "tools", 1),
        ("definition", "tools", 2),
        ("definition", "tools", 3),
    }
    assert "kind 'approval_gate' is not allowed for agents" in errors[("definition", "tools", 1)]
    assert TOOLS_ENV in errors[("definition", "tools", 1)]
    assert errors[("definition", "tools", 2)] == "no kind 'ghost' is registered"
    assert errors[("definition", "tools", 3)] == "tool 'lookup' is named twice"
    errors = await create_errors(
        bare, {"prompt": "x", "messages": [{"role": "user", "content": "y"}]}
    )
    assert errors == {("definition",): "give a prompt or messages, not both and not neither"}
    errors = await create_errors(bare, {"messages": [{"role": "tool", "content": "y"}]})
    assert list(errors) == [("definition", "messages", 0, "role")]
    errors = await create_errors(bare, {"prompt": "x", "maxSteps": 0})
    assert list(errors) == [("definition", "maxSteps")]


async def test_the_host_setting_allows_the_default_tools(
    bare: Runkit, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_agents(None)  # the environment, where nothing is set: the defaults
    await bare.create("call_agent", {"prompt": "x", "tools": ["http_request", "fetch_page"]})
    errors = await create_errors(bare, {"prompt": "x", "tools": ["lookup"]})
    assert (
        "not allowed for agents (allowed: " + ", ".join(DEFAULT_TOOLS)
        in errors[("definition", "tools", 0)]
    )
    monkeypatch.setenv(TOOLS_ENV, " lookup , web_search ")
    await bare.create("call_agent", {"prompt": "x", "tools": ["web_search"]})
    errors = await create_errors(bare, {"prompt": "x", "tools": ["lookup", "fetch_page"]})
    # lookup is allowed now, but runkit does not know its Kind; fetch_page is not allowed.
    assert (
        "its schema is unknown: give its Kind in AgentSettings.kinds"
        in errors[("definition", "tools", 0)]
    )
    assert "not allowed" in errors[("definition", "tools", 1)]
    assert AgentSettings.from_env({TOOLS_ENV: "a,b"}).tools == ("a", "b")
    assert AgentSettings.from_env({TOOLS_ENV: "  "}).tools == DEFAULT_TOOLS
    assert function_name("acme.deploy") == "acme_deploy"


async def test_nothing_configured_is_a_422_naming_the_settings(bare: Runkit) -> None:
    configure_llm(None)
    errors = await create_errors(bare, {"prompt": "x", "tools": ["lookup"]})
    message = errors[("definition",)]
    for name in (BASE_URL_ENV, MODEL_ENV, API_KEY_ENV):
        assert name in message


# --- cancel ------------------------------------------------------------------------------------
async def test_cancel_while_the_model_streams_stops_within_2_s(
    rk: Runkit, fake_llm: FakeLlm
) -> None:
    fake_llm.script(endless("thinking ", interval=0.02))
    created = await rk.create("call_agent", {"prompt": "Go.", "tools": ["lookup"]}, execute=True)
    await until(lambda: fake_llm.streaming.is_set() and fake_llm.pieces_sent > 5, within=10)
    started = time.monotonic()
    await rk.cancel(created.run.id)
    done = await wait_status(rk, created.run.id, TERMINAL, 10)
    assert done.status == Status.CANCELLED
    assert time.monotonic() - started < 2
    assert await anyio.to_thread.run_sync(fake_llm.hung_up.wait, 2)
    assert fake_llm.hung_up_at is not None and fake_llm.hung_up_at - started < 2
