"""``call_agent``: a language model that answers with the help of tools, each tool call a child
run of a kind the host allows for agents (:mod:`.agent_tools`).

The loop: ask the model, with the tools' schemas; if it answers, that is the result; if it
asks for tool calls, start each as a child run (its own logs and result, listed under this
run), wait for them without holding a worker (``ctx.wait_for``), show the model their
results, and ask again. A call the run cannot make (a tool it does not offer, arguments
that are not a JSON object or that the kind refuses) starts nothing: its error is the tool
result the model sees. More tool calls than ``maxSteps`` fail the run with
:class:`StepLimitReached`.

Durable: the executor runs again from the start after every wait, so each turn's answer is
remembered (``ctx.step("turn:<n>")``), each call's child is started once
(``ctx.step("call:<n>:<i>")`` around ``ctx.start_child(step=...)``), and the children's
results are read back from the runs: a re-execution replays the earlier turns without
asking the model again, and goes on with the conversation where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Literal

import attrs
from attrs.validators import and_, ge, le, max_len, min_len, optional

from ...authoring import Fatal, Kind, KindChecks, RetryPolicy, Run, RunContext
from ...domain.errors import ErrorDetail, IdempotencyConflict, RunNotFound, ValidationError
from ...domain.states import Status
from .agent_tools import AgentSettings, Toolbox, check_tools, current_agent_settings, toolbox
from .client import Llm
from .options import MAX_TOKENS, MODEL, TEMPERATURE, ModelOptions, check_configured
from .providers import ChatReply, ToolCall, Usage

MAX_TEXT = 100_000
MAX_MESSAGES = 200
MAX_TOOLS = 20
MAX_STEPS = 50


@attrs.frozen
class AgentMessage:
    """``{role, content}``: one turn of a conversation so far."""

    role: Literal["system", "user", "assistant"]
    content: str = attrs.field(validator=max_len(MAX_TEXT))


@attrs.frozen
class CallAgentConfig:
    """``{prompt | messages, system, tools, maxSteps, model, temperature, maxTokens}``: one of
    ``prompt`` (the user's request) or ``messages`` (a conversation so far) is required.
    ``system``: instructions put first. ``tools``: the kinds the model may start, each call
    a child run (only kinds the host allows for agents). ``maxSteps``: the most tool calls
    (1 to 50); a model that asks for more fails the run."""

    prompt: str | None = attrs.field(
        default=None, validator=optional(and_(min_len(1), max_len(MAX_TEXT)))
    )
    messages: list[AgentMessage] | None = None
    system: str | None = attrs.field(default=None, validator=optional(max_len(MAX_TEXT)))
    tools: list[str] = attrs.field(factory=list, validator=max_len(MAX_TOOLS))
    max_steps: int = attrs.field(default=8, validator=[ge(1), le(MAX_STEPS)])
    model: str | None = attrs.field(default=None, validator=MODEL)
    temperature: float | None = attrs.field(default=None, validator=TEMPERATURE)
    max_tokens: int | None = attrs.field(default=None, validator=MAX_TOKENS)


class AgentFailed(Fatal):
    """An agent stopped without an answer; ``details`` go into the run's ``error``."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class StepLimitReached(AgentFailed):
    """The model asked for more tool calls than ``maxSteps`` allows."""


class ToolRunDeleted(AgentFailed):
    """A tool call's child run was deleted before its result was read."""


# ------------------------------------------------------------------ create time ------------
def check(config: CallAgentConfig, checks: KindChecks) -> None:
    errors: list[ErrorDetail] = []
    try:
        check_configured(config)
    except ValidationError as exc:
        errors.extend(exc.details)
    if (config.prompt is None) == (config.messages is None):
        message = "give a prompt or messages, not both and not neither"
        errors.append(ErrorDetail(("definition",), message, "value_error"))
    elif config.prompt is not None and not config.prompt.strip():
        errors.append(ErrorDetail(("definition", "prompt"), "the prompt is blank", "value_error"))
    elif config.messages is not None and not 1 <= len(config.messages) <= MAX_MESSAGES:
        message = f"give 1 to {MAX_MESSAGES} messages"
        errors.append(ErrorDetail(("definition", "messages"), message, "value_error"))
    errors.extend(check_tools(config.tools, ("definition", "tools"), checks))
    if errors:
        raise ValidationError(errors)


# ------------------------------------------------------------------ turns, remembered ------
def _stored(reply: ChatReply, turn: int) -> dict[str, Any]:
    """A model's answer as the turn's JSON memo. Tool call ids are made unique (a local
    server may send none): the tool results refer to them."""
    seen: set[str] = set()
    calls = []
    for i, call in enumerate(reply.tool_calls):
        call_id = call.id if call.id and call.id not in seen else f"call_{turn}_{i}"
        seen.add(call_id)
        calls.append({"id": call_id, "name": call.name, "arguments": call.arguments})
    return {
        "content": reply.content,
        "toolCalls": calls,
        "finish": reply.finish_reason,
        "usage": [reply.usage.prompt_tokens, reply.usage.completion_tokens],
        "model": reply.model,
    }


def _reply(stored: Mapping[str, Any]) -> ChatReply:
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in stored["toolCalls"])
    prompt, completion = stored["usage"]
    return ChatReply(
        stored["content"], calls, stored["finish"], Usage(prompt, completion, 1), stored["model"]
    )


def first_messages(config: CallAgentConfig) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if config.system:
        out.append({"role": "system", "content": config.system})
    if config.prompt is not None:
        out.append({"role": "user", "content": config.prompt})
    for message in config.messages or ():
        out.append({"role": message.role, "content": message.content})
    return out


# ------------------------------------------------------------------ tool calls -------------
def _arguments(call: ToolCall) -> Any:
    """The call's arguments as sent: parsed JSON if they are JSON, else the raw text."""
    try:
        return json.loads(call.arguments or "{}")
    except ValueError:
        return call.arguments


def _refusal(exc: ValidationError) -> str:
    shown = []
    for detail in exc.details:
        loc = [str(p) for p in detail.loc]
        where = ".".join(loc[1:] if loc[:1] == ["definition"] else loc) or "(the arguments)"
        shown.append(f"{where}: {detail.msg}")
    return "; ".join(shown)


async def launch(
    ctx: RunContext, tools: Toolbox, turn: int, index: int, number: int, call: ToolCall
) -> dict[str, Any]:
    """Start tool call ``call`` as a child run (once: called through ``ctx.step``):
    ``{"childRunId"}``, or ``{"error"}`` shown to the model when the call cannot be made."""
    kind = tools.kinds.get(call.name)
    arguments = _arguments(call)
    error: str | None = None
    if kind is None:
        offered = ", ".join(tools.kinds) or "none"
        error = f"there is no tool {call.name!r} (the tools are: {offered})"
    elif not isinstance(arguments, dict):
        error = "the arguments must be a JSON object" + (
            " (they are not JSON)" if isinstance(arguments, str) else ""
        )
    else:
        try:
            child = await ctx.start_child(kind, arguments, step=f"tool:{turn}:{index}")
        except IdempotencyConflict:
            raise  # the same call made twice with other arguments: a bug, not the model's
        except ValidationError as exc:
            error = f"{kind} refused the arguments: {_refusal(exc)}"
        else:
            await ctx.log(
                "info",
                f"step {number}: started {kind} run {child.id}",
                event="agent.tool_started",
                data={"step": number, "tool": kind, "runId": str(child.id)},
            )
            return {"childRunId": str(child.id)}
    await ctx.log(
        "warning",
        f"step {number}: {call.name} was not started: {error}",
        event="agent.tool_refused",
        data={"step": number, "tool": call.name},
    )
    return {"error": error}


def cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]} … (cut here: {len(text)} characters in all)"


def tool_result(run: Run, limit: int) -> str:
    """What the model is shown of a finished tool run: its result's JSON, or its error."""
    if run.status is Status.SUCCEEDED:
        return cut(json.dumps(run.result, ensure_ascii=False, default=str), limit)
    error = run.error or {}
    why = f"{error.get('type', 'Error')}: {error.get('message', '')}" if error else ""
    shown = {"status": run.status.value, "error": why or f"the run was {run.status.value}"}
    return cut(json.dumps(shown, ensure_ascii=False), limit)


async def outcomes(ctx: RunContext, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Log how the tool runs of one turn ended (once: called through ``ctx.step``)."""
    for entry in entries:
        if entry["childRunId"] is None:
            continue
        level = "info" if entry["status"] == Status.SUCCEEDED.value else "warning"
        await ctx.log(
            level,
            f"step {entry['step']}: {entry['tool']} run {entry['childRunId']} {entry['status']}",
            event="agent.tool_done",
            data={k: entry[k] for k in ("step", "tool", "status")},
        )
    return [str(entry["status"]) for entry in entries]


async def wait(ctx: RunContext, ids: list[str]) -> dict[str, Run]:
    if not ids:
        return {}
    try:
        runs = await ctx.wait_for(ids)
    except RunNotFound as exc:
        raise ToolRunDeleted(f"tool run {exc.run_id} was deleted", runId=str(exc.run_id)) from None
    return {str(run.id): run for run in runs}


# ------------------------------------------------------------------ the loop ---------------
class Conversation:
    """The model's side of one execution: asks only for the turns no earlier execution has
    remembered, going on from them (the transcript, the call numbers, the usage)."""

    def __init__(self, llm: Llm, tools: Toolbox) -> None:
        self.llm = llm
        self.tools = tools
        #: The messages up to the model's last answer (logged already), and the usage so far.
        self.answered: list[dict[str, Any]] = []
        self.usage = Usage()
        self._live = False

    def record(self, messages: list[dict[str, Any]], reply: ChatReply) -> None:
        """A turn is done (asked now, or remembered): ``messages`` end with ``reply``."""
        self.answered = list(messages)
        self.usage = self.usage + reply.usage

    async def ask(self, messages: list[dict[str, Any]], turn: int) -> dict[str, Any]:
        if not self._live:  # the first call of this execution: go on from the earlier ones
            self._live = True
            self.llm.resume(self.answered, calls=self.usage.calls, usage=self.usage)
        reply = await self.llm.chat(messages, tools=self.tools.definitions, purpose=f"turn {turn}")
        return _stored(reply, turn)


async def execute(ctx: RunContext) -> dict[str, Any]:
    config: CallAgentConfig = ctx.definition
    settings: AgentSettings = current_agent_settings()
    tools, missing = toolbox(config.tools, settings)
    talk = Conversation(Llm(ctx, ModelOptions.of(config)), tools)
    if missing:
        await ctx.step("tools", partial(_left_out, ctx, missing))
    messages = first_messages(config)
    steps: list[dict[str, Any]] = []
    turn = 0
    while True:
        turn += 1
        reply = _reply(await ctx.step(f"turn:{turn}", partial(talk.ask, list(messages), turn)))
        messages.append(reply.to_message())
        talk.record(messages, reply)
        if not reply.tool_calls:
            await ctx.progress({"phase": "done", "message": f"answered after {len(steps)} steps"})
            return {"answer": reply.content, "steps": steps, "usage": talk.usage.to_json()}
        wanted = len(steps) + len(reply.tool_calls)
        if wanted > config.max_steps:
            raise StepLimitReached(
                f"the model asked for {wanted} tool calls in all, more than maxSteps "
                f"({config.max_steps}) allows; it gave no answer",
                maxSteps=config.max_steps,
                steps=steps,
                usage=talk.usage.to_log(),
            )
        started = []
        for i, call in enumerate(reply.tool_calls):
            begin = partial(launch, ctx, tools, turn, i, len(steps) + i + 1, call)
            started.append(await ctx.step(f"call:{turn}:{i}", begin))
        ids = [s["childRunId"] for s in started if "childRunId" in s]
        if ids:  # said once: a re-execution passes here again
            taken = len(steps) + len(reply.tool_calls)
            note = partial(_waiting, ctx, turn, taken, len(ids), config.max_steps)
            await ctx.step(f"wait:{turn}", note)
        runs = await wait(ctx, ids)
        entries = []
        for call, begun in zip(reply.tool_calls, started, strict=True):
            entry, content = _outcome(call, begun, runs, tools, settings.result_chars)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
            steps.append(entry)
            entries.append({**entry, "step": len(steps)})
        await ctx.step(f"results:{turn}", partial(outcomes, ctx, entries))


def _outcome(
    call: ToolCall, begun: Mapping[str, Any], runs: Mapping[str, Run], tools: Toolbox, limit: int
) -> tuple[dict[str, Any], str]:
    """A tool call's entry in the result's ``steps``, and the tool result the model sees."""
    run = runs.get(begun.get("childRunId", ""))
    entry: dict[str, Any] = {
        "tool": tools.kinds.get(call.name, call.name),
        "arguments": _arguments(call),
        "childRunId": None if run is None else str(run.id),
        "status": "refused" if run is None else run.status.value,
    }
    if run is None:
        entry["error"] = begun["error"]
        return entry, json.dumps({"error": begun["error"]}, ensure_ascii=False)
    if run.status is not Status.SUCCEEDED:
        entry["error"] = (run.error or {}).get("message") or f"the run was {run.status.value}"
    return entry, tool_result(run, limit)


async def _waiting(ctx: RunContext, turn: int, taken: int, running: int, most: int) -> None:
    runs = "1 tool run" if running == 1 else f"{running} tool runs"
    message = f"waiting for {runs} (turn {turn}, step {taken} of at most {most})"
    await ctx.progress({"phase": "tools", "turn": turn, "steps": taken, "message": message})


async def _left_out(ctx: RunContext, missing: list[str]) -> list[str]:
    await ctx.log(
        "warning",
        "no longer allowed for agents, so not offered: " + ", ".join(missing),
        event="agent.tools_left_out",
        data={"tools": missing},
    )
    return missing


def describe_progress(progress: Mapping[str, Any]) -> str | None:
    if progress.get("phase") == "model":
        return f"asking the model (call {progress.get('call')})"
    message = progress.get("message")
    return message if isinstance(message, str) else None


KIND = Kind(
    name="call_agent",
    executor=execute,
    config=CallAgentConfig,
    display_name="Call an agent",
    description=(
        "Asks a language model, which may call tools (allowed kinds, each call a child run) "
        "until it answers; waits for the tool runs without holding a worker."
    ),
    # Every turn is remembered and every tool run started once: a paused, interrupted or
    # retried run goes on with the turn it was at.
    pausable=True,
    cancellable=True,
    retry=RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=30.0),
    timeout_seconds=900.0,
    describe_progress=describe_progress,
    check=check,
    example={
        "prompt": "What changed in the latest PostgreSQL minor release? Cite the release notes.",
        "system": None,
        "tools": ["web_search", "fetch_page"],
        "maxSteps": 8,
    },
)
