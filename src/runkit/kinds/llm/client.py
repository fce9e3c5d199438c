"""A run's conversation with a language model: :class:`Llm`, made once per execution.

``await llm.chat(messages, tools=...)`` makes one call through the provider the host
configured (:mod:`.providers`) and returns the whole answer (text, tool calls, usage).
Around the provider's single attempt, runkit adds:

* **retries**: a call answered 429 or 5xx, or whose connection failed, is tried again up to
  the settings' ``max_retries``, after ``Retry-After`` or an exponential backoff with
  jitter; then :class:`~.errors.ModelUnavailable`. Other refusals (401, 400, an unknown
  model) fail at once with :class:`~.errors.ModelRequestFailed`;
* **usage**: :attr:`Llm.usage` sums the tokens of every answered call;
* **the transcript**: each call's prompt and answer as log entries (:mod:`.transcript`);
* **progress** (unless ``report_progress=False``): ``{"phase": "model", "call", "purpose",
  "chars"}`` while an answer streams, at most once a second;
* **cancel**: a cancel of the run cancels the call, which closes the stream at once.

``await llm.complete_json(messages, validate)`` asks for a JSON answer, checks it (a
callable that raises :class:`~.errors.OutputRejected` or ValueError, or a JSON Schema),
and on failure asks once more, showing the model what was wrong; a second failure is
:class:`~.errors.ModelOutputInvalid`. The provider's secrets are masked in every entry
and error.
"""

from __future__ import annotations

import importlib
import json
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import attrs

from ...authoring import RunContext
from . import transcript
from .errors import (
    InvalidSchema,
    LlmNotConfigured,
    ModelOutputInvalid,
    ModelRequestFailed,
    ModelUnavailable,
    OutputRejected,
    ProviderError,
)
from .options import ModelOptions
from .providers import (
    ChatReply,
    ChatRequest,
    LlmProvider,
    NotConfigured,
    OnText,
    Usage,
    resolve_model,
    select_provider,
)
from .settings import LlmSettings, current_settings

#: A validator: a callable returning the value to use (raising OutputRejected or
#: ValueError with what is wrong), or a JSON Schema (a mapping).
Validator = Callable[[Any], Any] | Mapping[str, Any]
#: What the model is told after an answer that could not be used.
FIX_PROMPT = (
    "Your answer could not be used: {error}\n"
    "Answer again with only the JSON asked for, no other text."
)
PROGRESS_EVERY = 1.0
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n(?P<body>.*?)\n?```\s*$", re.DOTALL)


@attrs.frozen
class JsonAnswer:
    """A checked JSON answer: its ``value``, the whole conversation that led to it (the
    last message the model's answer, to go on from) and the final reply."""

    value: Any
    messages: tuple[Mapping[str, Any], ...]
    reply: ChatReply


class Llm:
    """Calls to the model on behalf of one run. ``options``: the definition's model,
    temperature and max tokens; ``provider`` and ``settings`` default to the host's."""

    def __init__(
        self,
        ctx: RunContext,
        options: ModelOptions | None = None,
        *,
        provider: LlmProvider | None = None,
        settings: LlmSettings | None = None,
        report_progress: bool = True,
    ) -> None:
        options = options or ModelOptions()
        try:
            self.settings = settings or current_settings()
            self.provider = provider or select_provider()
            self.model = resolve_model(self.provider, options.model)
        except (NotConfigured, ValueError) as exc:
            raise LlmNotConfigured(str(exc)) from None
        self.options = options
        #: Tokens of every answered call so far.
        self.usage = Usage()
        self._ctx = ctx
        self._secrets = tuple(self.provider.secrets())
        self._report = report_progress
        self._calls = 0
        self._previous: Sequence[Mapping[str, Any]] | None = None

    def mask(self, text: str) -> str:
        """``text`` without the provider's secrets."""
        return transcript.mask(text, self._secrets)

    def resume(self, messages: Sequence[Mapping[str, Any]], *, calls: int, usage: Usage) -> None:
        """Go on with a conversation an earlier execution of this run began (a kind that
        waits durably runs again from the start): ``messages`` were sent and logged,
        ending with the model's last answer, in ``calls`` calls that spent ``usage``. The
        next call logs only what follows, numbered after them, and :attr:`usage` (in
        results and errors) counts the earlier calls too."""
        self._previous = tuple(messages)
        self._calls = calls
        self.usage = usage

    # ------------------------------------------------------------------ one call ----------
    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        tool_choice: Any = None,
        purpose: str = "",
    ) -> ChatReply:
        """The model's answer to ``messages`` (with ``tools`` it may call), retried on 429,
        5xx and lost connections. ``purpose`` names the call in the transcript."""
        self._calls += 1
        call, limit = self._calls, self.settings.transcript_chars
        request = ChatRequest(
            model=self.model,
            messages=tuple(messages),
            temperature=self.options.temperature,
            max_tokens=self.options.max_tokens,
            tools=tuple(tools),
            tool_choice=tool_choice,
        )
        shown, skipped = transcript.new_messages(self._previous, request.messages)
        text, data = transcript.prompt_entry(call, purpose, shown, skipped, limit, self._secrets)
        await self._ctx.log("info", text, event="llm.prompt", data=data)
        self._previous = request.messages
        started = time.monotonic()
        reply = await self._attempts(call, request, purpose)
        ms = round((time.monotonic() - started) * 1000)
        self.usage = self.usage + Usage(
            reply.usage.prompt_tokens, reply.usage.completion_tokens, calls=1
        )
        text, data = transcript.answer_entry(call, reply, ms, limit, self._secrets)
        await self._ctx.log("info", text, event="llm.answer", data=data)
        # A conversation that goes on sends this answer back: it is logged already.
        self._previous = (*request.messages, reply.to_message())
        return reply

    async def _attempts(self, call: int, request: ChatRequest, purpose: str) -> ChatReply:
        settings, retries = self.settings, self.settings.max_retries
        for retry in range(retries + 1):
            on_text = await self._progress(call, purpose)
            try:
                return await self.provider.chat(request, on_text)
            except ProviderError as exc:
                what = self.mask(str(exc))
                if not exc.retryable:
                    raise ModelRequestFailed(
                        f"model call {call} was refused: {what}", status=exc.status, **self._spent()
                    ) from None
                if retry >= retries:
                    raise ModelUnavailable(
                        f"model call {call} failed: {what}, still after {retries} "
                        f"retr{'y' if retries == 1 else 'ies'}",
                        status=exc.status,
                        **self._spent(),
                    ) from None
                delay = self._delay(retry, exc.retry_after)
                if delay > settings.max_retry_after:
                    raise ModelUnavailable(
                        f"model call {call} failed: {what}; the server asks to wait "
                        f"{delay:.0f} s, more than {settings.max_retry_after:g} s",
                        status=exc.status,
                        retryAfter=round(delay, 3),
                        **self._spent(),
                    ) from None
                await self._ctx.log(
                    "warning",
                    f"model call {call} failed: {what}; retrying in {delay:.2f} s "
                    f"(retry {retry + 1} of {retries})",
                    event="llm.retry",
                    data={"call": call, "status": exc.status, "retryIn": round(delay, 3)},
                )
                await anyio.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _delay(self, retry: int, asked: float | None) -> float:
        if asked is not None:
            return asked
        settings = self.settings
        delay = min(settings.backoff_base * (2.0**retry), settings.backoff_max)
        return max(0.0, delay * (1 + random.uniform(-0.2, 0.2)))

    async def _progress(self, call: int, purpose: str) -> OnText | None:
        if not self._report:
            return None
        state: dict[str, Any] = {"phase": "model", "call": call, "purpose": purpose, "chars": 0}
        await self._ctx.progress(state)
        last = time.monotonic()

        async def on_text(piece: str) -> None:
            nonlocal last
            state["chars"] = int(state["chars"]) + len(piece)
            if time.monotonic() - last >= PROGRESS_EVERY:
                last = time.monotonic()
                await self._ctx.progress(dict(state))

        return on_text

    def _spent(self) -> dict[str, Any]:
        return {"usage": self.usage.to_log()}

    # ------------------------------------------------------------------ JSON answers ------
    async def complete_json(
        self,
        messages: Sequence[Mapping[str, Any]],
        validate: Validator | None = None,
        *,
        purpose: str = "",
    ) -> JsonAnswer:
        """The model's answer as checked JSON. Asked twice at most: after an answer that is
        not JSON, or that ``validate`` rejects, the model is shown the error and asked
        again; a second failure raises :class:`~.errors.ModelOutputInvalid`."""
        conversation = list(messages)
        error = ""
        for attempt in (1, 2):
            reply = await self.chat(
                conversation, purpose=purpose if attempt == 1 else f"{purpose}, corrected"
            )
            conversation.append(reply.to_message())
            try:
                value = check_json(reply, validate)
                return JsonAnswer(value, tuple(conversation), reply)
            except ValueError as exc:
                error = self.mask(str(exc))
            if attempt == 1:
                await self._ctx.log(
                    "warning",
                    f"model answer {self._calls} is not usable: {error}; asking again",
                    event="llm.invalid",
                    data={"call": self._calls},
                )
                conversation.append({"role": "user", "content": FIX_PROMPT.format(error=error)})
        answer, _ = transcript.cut(self.mask(reply.content), 1000)
        raise ModelOutputInvalid(
            f"the model's answer was not usable, even after it was shown why: {error}",
            answer=answer,
            **self._spent(),
        )


def parse_json(text: str) -> Any:
    """The JSON in a model's answer: the whole text, a fenced block (```json ... ```), or
    the outermost ``{...}`` in prose; ValueError saying why when there is none."""
    stripped = text.strip()
    if not stripped:
        raise OutputRejected("the answer is empty")
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group("body").strip()
    try:
        return json.loads(stripped)
    except ValueError as exc:
        first = stripped.find("{")
        last = stripped.rfind("}")
        if 0 <= first < last:
            try:
                return json.loads(stripped[first : last + 1])
            except ValueError:
                pass
        raise OutputRejected(f"the answer is not JSON ({exc})") from None


def check_json(reply: ChatReply, validate: Validator | None) -> Any:
    """``reply``'s JSON, checked; OutputRejected (a ValueError) saying what is wrong."""
    try:
        value = parse_json(reply.content)
    except OutputRejected as exc:
        if reply.finish_reason == "length":
            raise OutputRejected(f"{exc}; it was cut at the token limit: answer shorter") from None
        raise
    if validate is None:
        return value
    if isinstance(validate, Mapping):
        return _check_schema(value, validate)
    return validate(value)


def schema_checker(schema: Mapping[str, Any]) -> Callable[[Any], Any]:
    """A ``complete_json`` validator: the answer must be valid against ``schema``.

    References resolve within the schema only, through an empty ``referencing`` registry:
    jsonschema would otherwise download what a ``$ref`` names by URL, a request past the
    outbound guard that a definition's schema could aim anywhere. A reference that does
    not resolve fails the run (:class:`InvalidSchema`)."""
    # Imported by name: typed as Any, so mypy needs no stubs for an optional library.
    jsonschema = importlib.import_module("jsonschema")
    referencing = importlib.import_module("referencing")
    validator = jsonschema.validators.validator_for(schema)(schema, registry=referencing.Registry())

    def check(value: Any) -> Any:
        try:
            errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        except referencing.exceptions.Unresolvable as exc:
            raise InvalidSchema(f"the schema's reference cannot be resolved: {exc}") from None
        _reject(errors)
        return value

    return check


def _check_schema(value: Any, schema: Mapping[str, Any]) -> Any:
    return schema_checker(schema)(value)


def _reject(errors: list[Any]) -> None:
    """Raise OutputRejected naming (up to five of) the schema's ``errors``, if any."""
    if errors:
        shown = []
        for error in errors[:5]:
            where = "/".join(str(p) for p in error.absolute_path) or "(the whole answer)"
            shown.append(f"at {where}: {error.message}")
        raise OutputRejected("; ".join(shown))


# ---------------------------------------------------------------------- one-shot helpers --
def problem(model: str | None = None) -> str | None:
    """None when a model can be asked now (a provider ready, and ``model`` or the
    provider's default); otherwise what to set, naming the settings (a 422's text)."""
    try:
        resolve_model(select_provider(), model)
    except NotConfigured as exc:
        return str(exc)
    return None


async def complete_json(
    ctx: RunContext,
    *,
    system: str,
    prompt: str,
    schema: Mapping[str, Any] | None = None,
    validate: Callable[[Any], Any] | None = None,
    llm: Llm | None = None,
    purpose: str = "",
) -> Any:
    """One question, one checked JSON value: ``system`` and ``prompt`` as the first two
    messages, the answer checked against the JSON Schema ``schema`` and then by
    ``validate`` (whose return value is returned), asked once more on failure, as
    :meth:`Llm.complete_json`. ``llm``: the run's :class:`Llm`, so that its usage counts
    this call (None: a new one, with the provider's default model)."""
    session = llm or Llm(ctx)

    def check(value: Any) -> Any:
        if schema is not None:
            value = _check_schema(value, schema)
        return validate(value) if validate is not None else value

    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    answer = await session.complete_json(messages, check, purpose=purpose)
    return answer.value
