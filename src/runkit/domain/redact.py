"""What executors log is cleaned before it is stored: secrets redacted, sizes bounded.

Log entries outlive runs and travel to every client that can read them, so a token an
executor logs by mistake must not be persisted. Redaction is key-based (values under keys
that name secrets, at any depth of ``data``) and pattern-based (bearer tokens, runkit API
keys, passwords in URLs, in messages and string values). Entries runkit writes itself
(status changes) carry no secrets and are not touched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import attrs

from .models import NewLogEntry

REDACTED = "[redacted]"
#: A message longer than this is cut, and the entry's data says ``"truncated": true``.
MAX_MESSAGE_CHARS = 64 * 1024
#: Data whose JSON is larger than this is replaced by ``{"truncated": true}``.
MAX_DATA_CHARS = 64 * 1024

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|authorization|cookie|credential|private[-_]?key",
    re.IGNORECASE,
)
_PATTERNS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\brk_[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@"), r"\1:" + REDACTED + "@"),
    (
        re.compile(r"(?i)\b(password|passwd|secret|token|api[-_]?key)(\s*[=:]\s*)[^\s&,;]+"),
        r"\1\2" + REDACTED,
    ),
)


def redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def clean(entry: NewLogEntry) -> NewLogEntry:
    """``entry`` with secrets redacted and its message and data bounded."""
    message = redact_text(entry.message)
    data = redact_value(entry.data)
    truncated = False
    if len(message) > MAX_MESSAGE_CHARS:
        message, truncated = message[:MAX_MESSAGE_CHARS], True
    if len(json.dumps(data, default=str)) > MAX_DATA_CHARS:
        data, truncated = {}, True
    if truncated:
        data = {**data, "truncated": True}
    if message == entry.message and data == entry.data:
        return entry
    return attrs.evolve(entry, message=message, data=data)


def clean_all(entries: Iterable[NewLogEntry]) -> list[NewLogEntry]:
    return [clean(e) for e in entries]
