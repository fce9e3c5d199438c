"""The model calls of a run as log entries a user can read: what was asked and what came
back, each cut at the host's ``transcript_chars`` with ``truncated`` set in the entry's data.

Entries (``event``):

* ``llm.prompt``: the messages sent that the previous call had not sent (the whole
  conversation on the first call; after that, the new turns), as ``role: text`` blocks;
* ``llm.answer``: the answer's text and the tool calls it asks for, with ``data``
  ``{"call", "model", "finishReason", "usage": {"prompt", "completion"}, "ms", "chars",
  "truncated"}``;
* ``llm.retry`` (warning): a failed call that is tried again, and when.

Keys in ``data`` avoid the word "token": runkit's log redaction hides the values of keys
that name secrets, and would hide token counts too. Known secrets (the provider's key) are
masked here before anything is logged; runkit's own redaction applies on top.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ...domain.redact import REDACTED
from .providers import ChatReply

#: A secret shorter than this is not masked (it would mask ordinary words).
MIN_SECRET = 4


def mask(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every occurrence of ``secrets`` replaced (the longest first)."""
    for secret in sorted((s for s in secrets if len(s) >= MIN_SECRET), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def cut(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters, and whether it was."""
    if len(text) <= limit:
        return text, False
    return text[:limit] + " …", True


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        parts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
        return "\n".join(str(p) for p in parts if p)
    return "" if content is None else json.dumps(content, default=str)


def render_message(message: Mapping[str, Any]) -> str:
    role = str(message.get("role", "?"))
    if role == "tool":
        role = f"tool ({message.get('tool_call_id', '?')})"
    text = _content(message)
    calls = message.get("tool_calls") or ()
    lines = [f"{role}: {text}" if text else f"{role}:"]
    for call in calls:
        function = call.get("function", {}) if isinstance(call, Mapping) else {}
        lines.append(f"  -> {function.get('name', '?')}({function.get('arguments', '')})")
    return "\n".join(lines)


def render_messages(messages: Sequence[Mapping[str, Any]]) -> str:
    return "\n\n".join(render_message(m) for m in messages)


def render_reply(reply: ChatReply) -> str:
    lines = [reply.content] if reply.content else []
    lines += [f"-> {call.name}({call.arguments})" for call in reply.tool_calls]
    return "\n".join(lines) if lines else "(an empty answer)"


def new_messages(
    previous: Sequence[Mapping[str, Any]] | None, messages: Sequence[Mapping[str, Any]]
) -> tuple[Sequence[Mapping[str, Any]], int]:
    """The messages not sent by the previous call when it sent a prefix of these (a
    conversation going on), else all of them; and how many were skipped."""
    if (
        previous is not None
        and len(previous) <= len(messages)
        and all(a == b for a, b in zip(previous, messages, strict=False))
    ):
        return messages[len(previous) :], len(previous)
    return messages, 0


def prompt_entry(
    call: int,
    purpose: str,
    messages: Sequence[Mapping[str, Any]],
    skipped: int,
    limit: int,
    secrets: Sequence[str],
) -> tuple[str, dict[str, Any]]:
    """The message and data of a call's ``llm.prompt`` entry."""
    text = mask(render_messages(messages), secrets)
    shown, truncated = cut(text, limit)
    head = f"model call {call}" + (f" ({purpose})" if purpose else "")
    if skipped:
        head += f", after the {skipped} earlier messages"
    data: dict[str, Any] = {"call": call, "messages": len(messages) + skipped, "chars": len(text)}
    if truncated:
        data["truncated"] = True
    return f"{head}:\n{shown}", data


def answer_entry(
    call: int, reply: ChatReply, ms: int, limit: int, secrets: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """The message and data of a call's ``llm.answer`` entry."""
    text = mask(render_reply(reply), secrets)
    shown, truncated = cut(text, limit)
    usage = {"prompt": reply.usage.prompt_tokens, "completion": reply.usage.completion_tokens}
    data: dict[str, Any] = {
        "call": call,
        "model": reply.model,
        "finishReason": reply.finish_reason,
        "usage": usage,
        "ms": ms,
        "chars": len(text),
    }
    if truncated:
        data["truncated"] = True
    return f"model answer {call} in {ms} ms:\n{shown}", data
