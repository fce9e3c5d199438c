"""The built-in provider: any server that speaks OpenAI's chat completions API
(``POST {base}/v1/chat/completions``), through the ``openai`` package (``runkit[llm]``).

One client per call, made with ``max_retries=0`` (runkit retries, :mod:`.client`) and the
settings' timeout. The answer is always streamed, with ``stream_options.include_usage``: the
text and tool calls are assembled from the pieces (a tool call's id and name come once per
index, its arguments in parts), the usage comes in a last chunk with no choices. A cancel
cancels the read, and the ``async with`` around the stream closes it, so the server stops
generating at once.

The base URL is the host's own setting, never a definition's: the web kinds' outbound guard
does not apply to it, so a model served on this machine or the local network works as is.
"""

from __future__ import annotations

import email.utils
import importlib.util
import time
from typing import Any

import attrs

from .errors import ProviderError
from .providers import ChatReply, ChatRequest, OnText, ToolCall, Usage
from .settings import API_KEY_ENV, BASE_URL_ENV, MODEL_ENV, LlmSettings, current_settings

EXTRA = "runkit[llm]"
#: Statuses worth another try: rate limits and the server's own failures.
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


def installed() -> bool:
    try:
        return importlib.util.find_spec("openai") is not None
    except (ImportError, ValueError):
        return False


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@attrs.define
class _Assembly:
    """The pieces of a streamed answer, put together."""

    text: list[str] = attrs.field(factory=list)
    calls: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    finish: str | None = None
    usage: Usage = attrs.field(factory=lambda: Usage(calls=1))
    model: str = ""

    def add_call_piece(self, piece: Any) -> None:
        call = self.calls.setdefault(piece.index, {"id": "", "name": "", "arguments": []})
        if piece.id:
            call["id"] = piece.id
        function = piece.function
        if function is not None:
            if function.name:
                call["name"] = function.name
            if function.arguments:
                call["arguments"].append(function.arguments)

    def reply(self) -> ChatReply:
        calls = tuple(
            ToolCall(c["id"] or f"call_{i}", c["name"], "".join(c["arguments"]))
            for i, c in sorted(self.calls.items())
        )
        return ChatReply("".join(self.text), calls, self.finish, self.usage, self.model)


class OpenAICompatible:
    """The built-in provider. ``settings`` None: :func:`~.settings.current_settings` at
    each call (the environment, or what :func:`~.settings.configure_llm` set)."""

    name = "openai-compatible"

    def __init__(self, settings: LlmSettings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> LlmSettings:
        return self._settings if self._settings is not None else current_settings()

    def problem(self) -> str | None:
        try:
            settings = self.settings
        except ValueError as exc:
            return str(exc)
        if not settings.base_url:
            return f"set {BASE_URL_ENV} (and {MODEL_ENV}, and {API_KEY_ENV} if it needs a key)"
        if not settings.base_url.startswith(("http://", "https://")):
            return f"{BASE_URL_ENV} must be an http:// or https:// URL"
        if not installed():
            return f"the openai package is missing: pip install '{EXTRA}'"
        return None

    def default_model(self) -> str | None:
        return self.settings.model or None

    def secrets(self) -> tuple[str, ...]:
        return self.settings.secrets()

    async def chat(self, request: ChatRequest, on_text: OnText | None = None) -> ChatReply:
        import openai

        settings = self.settings
        params: dict[str, Any] = {
            "model": request.model,
            "messages": [dict(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        if request.tools:
            params["tools"] = [dict(t) for t in request.tools]
        if request.tool_choice is not None:
            params["tool_choice"] = request.tool_choice
        answer = _Assembly(model=request.model)
        client = openai.AsyncOpenAI(
            base_url=settings.chat_base,
            api_key=settings.api_key or "none",  # the client insists on one; servers ignore it
            max_retries=0,
            timeout=settings.timeout_seconds,
            default_headers=dict(settings.headers) or None,
        )
        try:
            async with client:
                stream = await client.chat.completions.create(**params)
                async with stream:  # closed on cancel too: the server stops generating
                    async for chunk in stream:
                        await _take(answer, chunk, on_text)
        except openai.APIStatusError as exc:
            status = exc.status_code
            raise ProviderError(
                f"{status} {_reason(exc)}",
                status=status,
                retryable=status in RETRY_STATUSES,
                retry_after=retry_after(exc.response.headers.get("retry-after")),
            ) from None
        except openai.APITimeoutError:
            raise ProviderError(
                f"no answer within {settings.timeout_seconds:g} s", retryable=True
            ) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise ProviderError(f"connection failed: {cause}", retryable=True) from None
        except openai.APIError as exc:  # an error event inside the stream
            raise ProviderError(f"the server reported an error: {exc}", retryable=True) from None
        except ValueError as exc:  # a stream event that is not JSON
            raise ProviderError(f"the stream was malformed: {exc}", retryable=True) from None
        return answer.reply()


async def _take(answer: _Assembly, chunk: Any, on_text: OnText | None) -> None:
    if chunk.model:
        answer.model = chunk.model
    if chunk.usage is not None:
        answer.usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0, 1)
    for choice in chunk.choices or ():
        if choice.index not in (0, None):
            continue  # n > 1 is never asked for
        delta = choice.delta
        if delta is not None and delta.content:
            answer.text.append(delta.content)
            if on_text is not None:
                await on_text(delta.content)
        for piece in (delta.tool_calls if delta is not None else None) or ():
            answer.add_call_piece(piece)
        if choice.finish_reason:
            answer.finish = choice.finish_reason


def _reason(exc: Any) -> str:
    """The server's own words for a refusal (OpenAI's ``{"error": {"message"}}``), short."""
    body = exc.body
    message = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
    text = str(message or exc.message or "")
    return text[:500]


BUILTIN = OpenAICompatible()
