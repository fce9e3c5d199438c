"""Language-model providers: what turns one chat request into one answer, and which one a
run uses.

A provider is any object with ``name``, ``problem()`` (None when it is ready, otherwise what
to configure: the 422 at create time), ``default_model()`` (None: a definition must name a
model), ``secrets()`` (strings runkit masks in every log entry and error) and
``async chat(request, on_text)``, which makes one streamed call and returns the whole
answer as a :class:`ChatReply`, calling ``await on_text(piece)`` as text arrives. It raises
:class:`~.errors.ProviderError` for a failed call (``retryable`` for 429, 5xx and lost
connections). Retries, backoff, usage, logs and cancel are runkit's: a provider makes one
attempt, and a cancel reaches it as the cancellation of ``chat`` (it must close its stream
then, which an ``async with`` around the stream does).

The provider used is, in this order:

1. the one ``RUNKIT_LLM_PROVIDER`` names, if set;
2. the first ready one of those passed to :func:`register_llm_provider` (latest first);
3. the built-in OpenAI-compatible provider (:mod:`.openai_compat`), configured by
   :mod:`.settings`.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from ..selection import select
from .settings import HOW_TO_CONFIGURE, PROVIDER_ENV

#: ``await on_text(piece)``: called with each piece of the answer's text as it streams.
OnText = Callable[[str], Awaitable[None]]


@attrs.frozen
class Usage:
    """Tokens spent: summed over the calls of a run (``calls`` answered calls)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.calls + other.calls,
        )

    def to_json(self) -> dict[str, int]:
        """``{"promptTokens", "completionTokens", "calls"}``: a result's ``usage``."""
        return {
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
            "calls": self.calls,
        }

    def to_log(self) -> dict[str, int]:
        """``{"prompt", "completion", "calls"}``: the usage in log entries and run errors,
        whose keys runkit's redaction reads (it hides the values of keys naming tokens)."""
        return {
            "prompt": self.prompt_tokens,
            "completion": self.completion_tokens,
            "calls": self.calls,
        }


@attrs.frozen
class ToolCall:
    """A function the model asks to call: ``arguments`` is its JSON text, as sent."""

    id: str
    name: str
    arguments: str

    def to_message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@attrs.frozen
class ChatRequest:
    """One call: OpenAI chat ``messages`` (``{"role", "content"}``, tool results as
    ``{"role": "tool", "tool_call_id", "content"}``) and ``tools`` (OpenAI function tool
    definitions, ``{"type": "function", "function": {"name", "description", "parameters"}}``)."""

    model: str
    messages: tuple[Mapping[str, Any], ...]
    temperature: float | None = None
    max_tokens: int | None = None
    tools: tuple[Mapping[str, Any], ...] = ()
    #: ``"auto"``, ``"none"``, ``"required"`` or ``{"type": "function", ...}``; None: unset.
    tool_choice: Any = None


@attrs.frozen
class ChatReply:
    """A whole answer: its text, the tool calls it asks for, why it stopped (``stop``,
    ``length``: cut at max tokens, ``tool_calls``), the tokens of this call."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: Usage = Usage()
    model: str = ""

    def to_message(self) -> dict[str, Any]:
        """The answer as the assistant message to append to the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_message() for call in self.tool_calls]
        return message


@runtime_checkable
class LlmProvider(Protocol):
    name: str

    def problem(self) -> str | None:
        """None when the provider can answer; otherwise what to configure (name the
        setting): runs are then refused at create time with this text."""
        ...

    def default_model(self) -> str | None:
        """The model used when a definition names none (None: it must name one)."""
        ...

    def secrets(self) -> Sequence[str]:
        """Strings that must never be shown (keys): masked in logs and errors."""
        ...

    async def chat(self, request: ChatRequest, on_text: OnText | None = None) -> ChatReply:
        """One streamed call; :class:`~.errors.ProviderError` when it fails."""
        ...


_registered: list[LlmProvider] = []
_lock = threading.Lock()


def register_llm_provider(provider: LlmProvider) -> None:
    """Add ``provider`` (before those registered earlier; one with the same name is
    replaced). Process-wide, like the settings."""
    if not isinstance(provider, LlmProvider):
        raise TypeError(
            f"{provider!r} is no LLM provider (name, problem(), default_model(), secrets(), chat())"
        )
    with _lock:
        _registered[:] = [p for p in _registered if p.name != provider.name]
        _registered.insert(0, provider)


def unregister_llm_provider(name: str) -> None:
    with _lock:
        _registered[:] = [p for p in _registered if p.name != name]


def providers() -> list[LlmProvider]:
    """Every known provider, in the order they are tried."""
    from .openai_compat import BUILTIN

    with _lock:
        registered = list(_registered)
    return [*registered, BUILTIN]


class NotConfigured(ValueError):
    """No provider is ready: ``str()`` names what to set (a 422 at create time)."""


def select_provider() -> LlmProvider:
    """The provider runs use now; :class:`NotConfigured` naming the settings when none is
    ready."""
    return select(
        providers(),
        PROVIDER_ENV,
        "LLM provider",
        nothing=f"no language model is configured: {HOW_TO_CONFIGURE}",
        error=NotConfigured,
    )


def resolve_model(provider: LlmProvider, model: str | None) -> str:
    """``model`` (a definition's), else the provider's default; NotConfigured without one."""
    chosen = model or provider.default_model()
    if not chosen:
        raise NotConfigured(
            f"no model is named: set the definition's model or the provider's default "
            f"(RUNKIT_LLM_MODEL for the built-in provider {provider.name!r})"
        )
    return chosen
