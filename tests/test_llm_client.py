"""The language-model foundation (runkit.kinds.llm: settings, providers, Llm) through a small
kind of this file's own, run end to end by embedded workers on the memory and SQLite stores:
streamed answers, tool calls in pieces, usage summed, retries on 429 and 5xx, refusals,
malformed JSON retried once, the transcript in the log, the key never shown, cancel closing
the stream at once, and the 422 when nothing is configured. Every model call goes to the
scripted fake of tests/llm_fake.py on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from llm_fake import FakeLlm, endless, serving_llm, status, text, tool_calls
from run_support import FAST, SETTINGS
from runkit import Kind, LogEntry, Run, Runkit, Status, ValidationError
from runkit.engine import embedded_workers
from runkit.kinds.llm import (
    MAX_TOKENS,
    MODEL,
    TEMPERATURE,
    ChatReply,
    ChatRequest,
    Llm,
    LlmSettings,
    ModelOptions,
    ProviderError,
    Usage,
    check_configured,
    complete_json,
    configure_llm,
    parse_json,
    problem,
    register_llm_provider,
    unregister_llm_provider,
)
from runkit.kinds.llm.settings import (
    API_KEY_ENV,
    BASE_URL_ENV,
    MODEL_ENV,
    PROVIDER_ENV,
    RETRIES_ENV,
    TIMEOUT_ENV,
)

pytestmark = pytest.mark.anyio

KEY = "sk-fake-0123456789-very-secret-key"
ENV = (BASE_URL_ENV, API_KEY_ENV, MODEL_ENV, PROVIDER_ENV, RETRIES_ENV, TIMEOUT_ENV)
TOOLS = (
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up.",
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
        },
    },
)


# --- a kind of our own that asks through Llm ---------------------------------------------------
@attrs.frozen
class ProbeConfig:
    """One call per prompt, in one conversation; ``json``: complete_json (with ``schema``)."""

    prompts: list[str]
    json: bool = False
    schema: dict[str, Any] | None = None
    tools: bool = False
    oneshot: bool = False
    model: str | None = attrs.field(default=None, validator=MODEL)
    temperature: float | None = attrs.field(default=None, validator=TEMPERATURE)
    max_tokens: int | None = attrs.field(default=None, validator=MAX_TOKENS)


async def probe(ctx: Any) -> dict[str, Any]:
    config: ProbeConfig = ctx.definition
    llm = Llm(ctx, ModelOptions.of(config))
    messages: list[Any] = [{"role": "system", "content": "Be brief."}]
    answers = []
    for prompt in config.prompts:
        messages.append({"role": "user", "content": prompt})
        if config.oneshot:
            value = await complete_json(
                ctx,
                system="Be brief.",
                prompt=prompt,
                schema=config.schema,
                validate=double,
                llm=llm,
            )
            answers.append(value)
        elif config.json:
            answer = await llm.complete_json(messages, config.schema, purpose="probe")
            answers.append(answer.value)
            messages = list(answer.messages)
        else:
            reply = await llm.chat(messages, tools=TOOLS if config.tools else (), purpose="probe")
            calls = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in reply.tool_calls
            ]
            answers.append(
                {"content": reply.content, "calls": calls, "finish": reply.finish_reason}
            )
            messages.append(reply.to_message())
    return {"answers": answers, "usage": llm.usage.to_json(), "model": llm.model}


def double(value: Any) -> Any:
    if value.get("n", 0) < 0:
        raise ValueError("n must not be negative")
    return {"n": value["n"] * 2}


PROBE = Kind("llm_probe", probe, ProbeConfig, check=check_configured, cancellable=True)


# --- fixtures ----------------------------------------------------------------------------------
def settings(llm: FakeLlm, **changes: Any) -> LlmSettings:
    values: dict[str, Any] = {
        "base_url": llm.base_url,
        "api_key": KEY,
        "model": "fake-model",
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }
    return LlmSettings(**(values | changes))


@pytest.fixture
def fake_llm() -> Iterator[FakeLlm]:
    with serving_llm() as server:
        yield server


@pytest.fixture(autouse=True)
def configured(fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLlm]:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    configure_llm(settings(fake_llm))
    yield fake_llm
    configure_llm(None)


@pytest.fixture(params=["memory", "sqlite"])
async def rk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runkit]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'runkit.db'}"
    async with (
        Runkit(url, settings=SETTINGS, kinds=[PROBE], autoload_plugins=False) as instance,
        embedded_workers(instance, concurrency=2, **FAST),
    ):
        yield instance


async def run(rk: Runkit, definition: dict[str, Any], within: float = 20.0) -> Run:
    created = await rk.create("llm_probe", definition, execute=True)
    return await rk.wait(created.run.id, timeout=within, poll=0.05)


async def until(condition: Callable[[], bool], within: float) -> None:
    with anyio.fail_after(within):
        while True:
            if condition():
                return
            await anyio.sleep(0.02)


async def entries(rk: Runkit, run_id: Any) -> list[LogEntry]:
    return [entry async for entry in rk.iter_logs(run_id)]


async def succeeded(rk: Runkit, definition: dict[str, Any]) -> Run:
    done = await run(rk, definition)
    assert done.status == Status.SUCCEEDED, done.error
    return done


def everything(done: Run, logs: list[LogEntry]) -> str:
    """All a client can read of a run: its result, error, progress and every log entry."""
    shown = [done.result, done.error, done.progress]
    shown += [[e.message, e.event, e.data] for e in logs]
    return json.dumps(shown, default=str)


# --- answers, tool calls, usage ----------------------------------------------------------------
async def test_streamed_answers_and_usage_summed_over_calls(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(
        text("Hello there, user.", usage=(21, 5), pieces=5), text("Again.", usage=(40, 2))
    )
    done = await succeeded(rk, {"prompts": ["hi", "and again"], "temperature": 0.2})
    result = done.result or {}
    assert [a["content"] for a in result["answers"]] == ["Hello there, user.", "Again."]
    assert result["usage"] == {"promptTokens": 61, "completionTokens": 7, "calls": 2}
    first, second = fake_llm.chat_requests
    assert first.streamed and first.body["stream_options"] == {"include_usage": True}
    assert first.body["model"] == "fake-model" and first.body["temperature"] == 0.2
    assert "max_tokens" not in first.body
    assert first.headers["authorization"] == f"Bearer {KEY}"
    # The second call carries the conversation: the first answer as the assistant's turn.
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "user"]
    assert second.messages[2]["content"] == "Hello there, user."


async def test_a_definition_chooses_model_and_max_tokens(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(text("ok"))
    done = await succeeded(rk, {"prompts": ["x"], "model": "other-model", "maxTokens": 64})
    (seen,) = fake_llm.chat_requests
    assert seen.body["model"] == "other-model" and seen.body["max_tokens"] == 64
    assert (done.result or {})["model"] == "other-model"


async def test_tool_calls_are_assembled_from_pieces(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(
        tool_calls(("lookup", {"word": "durable"}), ("lookup", {"word": "lease"}), pieces=4)
    )
    done = await succeeded(rk, {"prompts": ["define two words"], "tools": True})
    (answer,) = (done.result or {})["answers"]
    assert answer["finish"] == "tool_calls"
    assert answer["calls"] == [
        {"id": "call_0", "name": "lookup", "arguments": '{"word": "durable"}'},
        {"id": "call_1", "name": "lookup", "arguments": '{"word": "lease"}'},
    ]
    (seen,) = fake_llm.chat_requests
    assert seen.body["tools"][0]["function"]["name"] == "lookup"
    logs = await entries(rk, done.id)
    (shown,) = [e for e in logs if e.event == "llm.answer"]
    assert 'lookup({"word": "durable"})' in shown.message


# --- retries ---------------------------------------------------------------------------------
async def test_429_is_retried_after_retry_after(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(status(429, "slow down", retry_after=0.3), text("done", usage=(5, 1)))
    done = await succeeded(rk, {"prompts": ["hi"]})
    assert len(fake_llm.chat_requests) == 2
    assert (done.result or {})["usage"] == {"promptTokens": 5, "completionTokens": 1, "calls": 1}
    (retry,) = [e for e in await entries(rk, done.id) if e.event == "llm.retry"]
    assert retry.level == "warning" and "429 slow down" in retry.message
    assert retry.data == {"call": 1, "status": 429, "retryIn": 0.3}  # Retry-After, honoured


async def test_5xx_is_retried_with_backoff(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(status(500), status(503), text("finally"))
    done = await succeeded(rk, {"prompts": ["hi"]})
    assert (done.result or {})["answers"][0]["content"] == "finally"
    retries = [e for e in await entries(rk, done.id) if e.event == "llm.retry"]
    assert [e.data["status"] for e in retries] == [500, 503]
    assert all(0 < e.data["retryIn"] <= 0.05 * 1.2 for e in retries)  # the backoff's cap


async def test_retries_run_out_as_model_unavailable(rk: Runkit, fake_llm: FakeLlm) -> None:
    configure_llm(settings(fake_llm, max_retries=2))
    fake_llm.script(status(502), status(502), status(502))
    done = await run(rk, {"prompts": ["hi"]})
    assert done.status == Status.FAILED and done.error is not None
    assert done.error["type"] == "ModelUnavailable" and done.error["status"] == 502
    assert "still after 2 retries" in done.error["message"]
    assert len(fake_llm.chat_requests) == 3 and fake_llm.exhausted == 0


async def test_a_retry_after_too_long_fails_at_once(rk: Runkit, fake_llm: FakeLlm) -> None:
    configure_llm(settings(fake_llm, max_retry_after=5))
    fake_llm.script(status(429, retry_after=3600))
    done = await run(rk, {"prompts": ["hi"]})
    assert done.error is not None and done.error["type"] == "ModelUnavailable"
    assert done.error["retryAfter"] == 3600 and len(fake_llm.chat_requests) == 1


async def test_a_refused_connection_is_retried_then_unavailable(
    rk: Runkit, fake_llm: FakeLlm
) -> None:
    with socket.socket() as probe_socket:  # a port nobody listens on
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    configure_llm(settings(fake_llm, base_url=f"http://127.0.0.1:{port}/v1", max_retries=1))
    done = await run(rk, {"prompts": ["hi"]})
    assert done.error is not None and done.error["type"] == "ModelUnavailable"
    assert "connection failed" in done.error["message"]
    logs = await entries(rk, done.id)
    assert len([e for e in logs if e.event == "llm.retry"]) == 1


async def test_other_refusals_fail_at_once(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(status(404, "The model `nope` does not exist"))
    done = await run(rk, {"prompts": ["hi"], "model": "nope"})
    assert done.error is not None and done.error["type"] == "ModelRequestFailed"
    assert done.error["status"] == 404 and "does not exist" in done.error["message"]
    assert done.error["usage"] == {"prompt": 0, "completion": 0, "calls": 0}
    assert len(fake_llm.chat_requests) == 1  # never retried


# --- the key is never shown ------------------------------------------------------------------
async def test_the_api_key_never_appears_in_logs_or_errors(rk: Runkit, fake_llm: FakeLlm) -> None:
    # A server that echoes the key back, in a rate limit and in a refusal.
    fake_llm.script(
        status(429, f"rate limited for key {KEY}", retry_after=0.01),
        status(401, f"Incorrect API key provided: {KEY}"),
    )
    done = await run(rk, {"prompts": ["hi"]})
    assert done.error is not None and done.error["type"] == "ModelRequestFailed"
    assert "Incorrect API key provided: [redacted]" in done.error["message"]
    logs = await entries(rk, done.id)
    assert [e.event for e in logs if e.event and e.event.startswith("llm.")] == [
        "llm.prompt",
        "llm.retry",
    ]
    assert KEY not in everything(done, logs)
    assert KEY[:12] in fake_llm.chat_requests[0].headers["authorization"]  # it was sent
    assert KEY not in repr(settings(fake_llm))


# --- malformed output ------------------------------------------------------------------------
async def test_malformed_json_is_retried_once_with_the_error(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(text("Sure! {not json", usage=(10, 4)), text('```json\n{"n": 3}\n```'))
    done = await succeeded(rk, {"prompts": ["a number as JSON"], "json": True})
    result = done.result or {}
    assert result["answers"] == [{"n": 3}]
    assert result["usage"] == {"promptTokens": 20, "completionTokens": 9, "calls": 2}
    second = fake_llm.chat_requests[1]
    assert second.messages[-2] == {"role": "assistant", "content": "Sure! {not json"}
    assert second.messages[-1]["role"] == "user"
    assert "could not be used: the answer is not JSON" in second.messages[-1]["content"]
    logs = await entries(rk, done.id)
    assert [e.event for e in logs if e.event == "llm.invalid"] == ["llm.invalid"]


async def test_malformed_twice_fails_with_model_output_invalid(
    rk: Runkit, fake_llm: FakeLlm
) -> None:
    fake_llm.script(text("nope"), text("still nope", usage=(12, 3)))
    done = await run(rk, {"prompts": ["JSON please"], "json": True})
    assert done.status == Status.FAILED and done.error is not None
    assert done.error["type"] == "ModelOutputInvalid" and not done.error["retryable"]
    assert done.error["answer"] == "still nope"
    assert done.error["usage"] == {"prompt": 22, "completion": 8, "calls": 2}
    assert len(fake_llm.chat_requests) == 2 and done.attempt == 1


async def test_a_json_schema_checks_the_answer(rk: Runkit, fake_llm: FakeLlm) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "score": {"type": "integer"}},
        "required": ["title", "score"],
    }
    fake_llm.script(text('{"title": "x", "score": "high"}'), text('{"title": "x", "score": 9}'))
    done = await succeeded(rk, {"prompts": ["rate it"], "json": True, "schema": schema})
    assert (done.result or {})["answers"] == [{"title": "x", "score": 9}]
    shown = fake_llm.chat_requests[1].messages[-1]["content"]
    assert "at score: 'high' is not of type 'integer'" in shown


async def test_the_one_shot_helper_checks_schema_then_validator(
    rk: Runkit, fake_llm: FakeLlm
) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fake_llm.script(text('{"n": "x"}'), text('{"n": -1}'))
    done = await run(rk, {"prompts": ["n?"], "oneshot": True, "schema": schema})
    assert done.error is not None and done.error["type"] == "ModelOutputInvalid"
    assert "n must not be negative" in done.error["message"]
    assert "'x' is not of type 'integer'" in fake_llm.chat_requests[1].prompt
    fake_llm.script(text('{"n": 5}'))
    done = await succeeded(rk, {"prompts": ["n?"], "oneshot": True, "schema": schema})
    result = done.result or {}
    assert result["answers"] == [{"n": 10}] and result["usage"]["calls"] == 1
    assert fake_llm.chat_requests[-1].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "n?"},
    ]


def test_problem_says_whether_a_model_is_configured(fake_llm: FakeLlm) -> None:
    assert problem() is None and problem("other") is None
    configure_llm(settings(fake_llm, model=""))
    assert MODEL_ENV in (problem() or "") and problem("named") is None
    configure_llm(LlmSettings())
    assert BASE_URL_ENV in (problem() or "")


def test_parse_json_finds_the_json_in_an_answer() -> None:
    assert parse_json('{"a": 1}') == {"a": 1}
    assert parse_json('```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert parse_json('Here you go: {"a": {"b": 2}} - enjoy') == {"a": {"b": 2}}
    assert parse_json("[1, 2]") == [1, 2]
    for bad in ("", "   ", "no json here", "{broken"):
        with pytest.raises(ValueError):
            parse_json(bad)


# --- the transcript ---------------------------------------------------------------------------
async def test_prompt_and_answer_are_logged_and_cut_with_a_flag(
    rk: Runkit, fake_llm: FakeLlm
) -> None:
    configure_llm(settings(fake_llm, transcript_chars=300))
    long_answer = "word " * 400
    fake_llm.script(text("short answer", usage=(9, 2)), text(long_answer, pieces=20))
    done = await succeeded(rk, {"prompts": ["a short question", "x" * 1000]})
    logs = await entries(rk, done.id)
    prompts = [e for e in logs if e.event == "llm.prompt"]
    answers = [e for e in logs if e.event == "llm.answer"]
    assert len(prompts) == 2 and len(answers) == 2
    first_prompt, second_prompt = prompts
    assert first_prompt.message.startswith("model call 1 (probe):\nsystem: Be brief.")
    assert "user: a short question" in first_prompt.message
    assert first_prompt.data == {"call": 1, "messages": 2, "chars": 41}
    # The second shows only the new turn (the first answer is logged already), cut at 300
    # characters and flagged.
    assert second_prompt.message.startswith("model call 2 (probe), after the 3 earlier messages:")
    assert "Be brief." not in second_prompt.message
    assert "assistant: short answer" not in second_prompt.message
    assert second_prompt.data["truncated"] is True and second_prompt.data["chars"] == 1006
    assert len(second_prompt.message) < 300 + 100
    short, cut = answers
    assert short.message.endswith("short answer") and "truncated" not in short.data
    assert short.data["usage"] == {"prompt": 9, "completion": 2}  # not redacted as "tokens"
    assert short.data["model"] == "fake-model" and short.data["finishReason"] == "stop"
    assert cut.data["truncated"] is True and cut.data["chars"] == len(long_answer)
    assert len(cut.message) < 300 + 100


# --- cancel -----------------------------------------------------------------------------------
async def test_cancel_while_the_model_streams_stops_at_once(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(endless("tok ", interval=0.02))
    created = await rk.create("llm_probe", {"prompts": ["never stop"]}, execute=True)
    await until(lambda: fake_llm.streaming.is_set() and fake_llm.pieces_sent > 5, within=10)
    started = time.monotonic()
    await rk.cancel(created.run.id)
    done = await rk.wait(created.run.id, timeout=10, poll=0.02)
    assert done.status == Status.CANCELLED
    assert time.monotonic() - started < 2
    # The stream was closed: the server saw the client hang up, within the same 2 s.
    assert await anyio.to_thread.run_sync(fake_llm.hung_up.wait, 2)
    assert fake_llm.hung_up_at is not None and fake_llm.hung_up_at - started < 2


async def test_progress_shows_the_answer_streaming(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(endless("tok ", interval=0.02))
    created = await rk.create("llm_probe", {"prompts": ["go"]}, execute=True)
    with anyio.fail_after(10):
        while True:
            current = await rk.get(created.run.id)
            if current.progress.get("chars", 0) > 0:
                break
            await anyio.sleep(0.05)
    assert current.progress["phase"] == "model" and current.progress["purpose"] == "probe"
    await rk.cancel(created.run.id)
    assert (await rk.wait(created.run.id, timeout=10)).status == Status.CANCELLED


# --- configuration ----------------------------------------------------------------------------
async def test_nothing_configured_is_a_422_naming_the_settings(rk: Runkit) -> None:
    configure_llm(None)  # back to the environment, where nothing is set
    with pytest.raises(ValidationError) as info:
        await rk.create("llm_probe", {"prompts": ["hi"]})
    (detail,) = info.value.details
    assert detail.loc == ("definition",) and detail.type == "llm_not_configured"
    for name in (BASE_URL_ENV, MODEL_ENV, API_KEY_ENV):
        assert name in detail.msg


async def test_the_environment_configures_the_model(
    rk: Runkit, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_llm(None)
    monkeypatch.setenv(BASE_URL_ENV, fake_llm.base_url + "/v1/")  # with /v1: also fine
    monkeypatch.setenv(API_KEY_ENV, KEY)
    # No model set: a definition that names one is enough, one that does not is a 422.
    with pytest.raises(ValidationError, match=MODEL_ENV):
        await rk.create("llm_probe", {"prompts": ["hi"]})
    fake_llm.script(text("from env"))
    done = await succeeded(rk, {"prompts": ["hi"], "model": "env-model"})
    assert (done.result or {})["answers"][0]["content"] == "from env"
    assert fake_llm.chat_requests[0].path == "/v1/chat/completions"
    monkeypatch.setenv(MODEL_ENV, "env-model")
    monkeypatch.setenv(RETRIES_ENV, "many")
    with pytest.raises(ValidationError, match=f"{RETRIES_ENV}='many' is invalid"):
        await rk.create("llm_probe", {"prompts": ["hi"]})


async def test_configuration_gone_at_run_time_fails_the_run(rk: Runkit) -> None:
    created = await rk.create("llm_probe", {"prompts": ["hi"]})
    configure_llm(None)
    await rk.execute(created.run.id)
    done = await rk.wait(created.run.id, timeout=10, poll=0.05)
    assert done.error is not None and done.error["type"] == "LlmNotConfigured"
    assert BASE_URL_ENV in done.error["message"]


# --- a provider of the host's own ---------------------------------------------------------------
class EchoProvider:
    """Answers every call with the last user message, upper-cased; never calls out."""

    name = "echo"

    def __init__(self, ready: bool = True) -> None:
        self.ready = ready
        self.requests: list[ChatRequest] = []

    def problem(self) -> str | None:
        return None if self.ready else "set ECHO_READY"

    def default_model(self) -> str | None:
        return "echo-1"

    def secrets(self) -> list[str]:
        return ["echo-secret-value"]

    async def chat(self, request: ChatRequest, on_text: Any = None) -> ChatReply:
        self.requests.append(request)
        last = str(request.messages[-1]["content"])
        if "fail" in last:
            raise ProviderError("echo-secret-value was refused", status=403)
        return ChatReply(last.upper(), usage=Usage(3, 4, 1), model="echo-1")


async def test_a_registered_provider_is_used_and_its_secrets_masked(
    rk: Runkit, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = EchoProvider()
    configure_llm(None)  # the built-in provider is not ready: the registered one is used
    register_llm_provider(provider)
    try:
        done = await succeeded(rk, {"prompts": ["shout"]})
        assert (done.result or {})["answers"][0]["content"] == "SHOUT"
        assert (done.result or {})["model"] == "echo-1"
        assert provider.requests[0].model == "echo-1"
        failed = await run(rk, {"prompts": ["fail please"]})
        assert failed.error is not None and failed.error["type"] == "ModelRequestFailed"
        assert "echo-secret-value" not in everything(failed, await entries(rk, failed.id))
        # Not ready, and no other: the 422 carries its own words and the settings'.
        provider.ready = False
        with pytest.raises(ValidationError) as info:
            await rk.create("llm_probe", {"prompts": ["hi"]})
        assert "echo: set ECHO_READY" in str(info.value) and BASE_URL_ENV in str(info.value)
        # RUNKIT_LLM_PROVIDER picks one by name, ready or not.
        provider.ready = True
        configure_llm(settings(fake_llm))
        monkeypatch.setenv(PROVIDER_ENV, "openai-compatible")
        fake_llm.script(text("built in"))
        done = await succeeded(rk, {"prompts": ["hi"]})
        assert (done.result or {})["answers"][0]["content"] == "built in"
        monkeypatch.setenv(PROVIDER_ENV, "nobody")
        with pytest.raises(ValidationError, match="'nobody' is no LLM provider"):
            await rk.create("llm_probe", {"prompts": ["hi"]})
    finally:
        unregister_llm_provider("echo")
    with pytest.raises(TypeError):
        register_llm_provider(object())  # type: ignore[arg-type]


def test_settings_normalise_the_base_url_and_hide_secrets() -> None:
    plain = LlmSettings(base_url="http://127.0.0.1:8080/", api_key=KEY, headers={"X-Gw": "gw-1"})
    assert plain.chat_base == "http://127.0.0.1:8080/v1"
    assert LlmSettings(base_url="http://h/v1").chat_base == "http://h/v1"
    assert plain.secrets() == (KEY, "gw-1")
    assert KEY not in repr(plain) and "gw-1" not in repr(plain)
    env = {BASE_URL_ENV: " http://x ", MODEL_ENV: "m", TIMEOUT_ENV: "30", RETRIES_ENV: "1"}
    loaded = LlmSettings.from_env(env)
    assert (loaded.base_url, loaded.model, loaded.timeout_seconds, loaded.max_retries) == (
        "http://x",
        "m",
        30.0,
        1,
    )
    with pytest.raises(ValueError, match=TIMEOUT_ENV):
        LlmSettings.from_env({TIMEOUT_ENV: "-1"})
