"""What executors log is cleaned before it is stored: secrets redacted, sizes bounded.

Log entries outlive runs and travel to every client that can read them, so a token an
executor logs by mistake must not be persisted. Redaction is

- by shape and by assignment, with the detectors of detect-secrets (:mod:`.detectors`:
  AWS, GitHub, GitLab, Slack, Stripe, OpenAI and other tokens, JWTs, private keys,
  passwords in URLs, ``password: "..."``-style assignments), in the message, the event,
  every string of ``data`` and a failed attempt's error;
- by a few rules of runkit's own that log lines need: header values (``Authorization:``,
  ``Cookie:``), bearer and basic credentials, runkit API keys (``rk_...``), ``password=...``
  pairs and ``password is ...`` prose;
- by key: values under keys that name secrets, at any depth of ``data``, and the value of a
  ``[name, value]`` pair (a header list) whose name does.

Entries runkit writes itself (status changes) carry no secrets and are not touched.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

import attrs

from . import detectors
from .models import NewLogEntry

REDACTED = "[redacted]"
#: A message longer than this is cut, and the entry's data says ``"truncated": true``.
MAX_MESSAGE_CHARS = 64 * 1024
#: Data whose JSON is larger than this is replaced by ``{"truncated": true}``.
MAX_DATA_CHARS = 64 * 1024

#: Key words of runkit's own, beside those of detect-secrets' keyword plugin.
_OWN_KEY_WORDS = (
    r"pass(word|wd|phrase)?",
    r"secret",
    r"token",
    r"api[-_]?key",
    r"access[-_]?key",
    r"authorization",
    r"cookie",
    r"credential",
    r"private[-_]?key",
    r"session[-_]?id",
)
#: Words that say what a password is like rather than what it is: "password is incorrect"
#: stays readable.
_NOT_A_SECRET = (
    "incorrect|invalid|wrong|expired|missing|required|empty|blank|not|too|set|reset|correct"
    "|valid|ok|null|none|present|absent|unchanged|changed|needed|rotated|stored|hidden"
)
#: runkit's own rules, for what log lines hold and the detectors miss: each a pattern, lower
#: case (it runs on the lower-cased text) with the secret in group ``s``, and the literals
#: one of which a text must hold for the pattern to be tried.
_OWN = tuple(
    (re.compile(pattern), hints)
    for pattern, hints in (
        # Header lines: the whole value, whatever its scheme and however short.
        (
            r"\b(?:(?:proxy-)?authorization|(?:set-)?cookie|x-api-key|x-auth-token)"
            r"[\"']?\s*[:=]\s*[\"']?(?P<s>[^\r\n\"']+)",
            ("authorization", "cookie", "x-api-key", "x-auth-token"),
        ),
        (r"\b(?:bearer|basic)\s+(?P<s>[a-z0-9._~+/=-]{8,})", ("bearer", "basic")),
        (r"\b(?P<s>rk_[a-z0-9_-]{16,})", ("rk_",)),
        (r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<s>[^@\s/]+)@", ("://",)),
        (
            r"\b(?:password|passwd|pwd|secret|token|api[-_]?key)\s*[=:]\s*(?P<s>[^\s&,;]+)",
            ("pass", "pwd", "secret", "token", "key"),
        ),
        (
            r"\b(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_ ]?key)"
            rf"\s+(?:is|was|of|set to|changed to)\s+[\"']?(?!(?:{_NOT_A_SECRET})\b)"
            r"(?P<s>[^\s\"',;]+)",
            ("pass", "pwd", "secret", "token", "key"),
        ),
    )
)
#: Found values this long are redacted wherever else they occur in the same string.
_REPEATED = 8
#: Values known to be secret (a kind's secret fields) this long are masked wherever they
#: occur; shorter ones would mask ordinary words.
_KNOWN = 4


@functools.cache
def _secret_key() -> re.Pattern[str]:
    words = (*_OWN_KEY_WORDS, *detectors.secret_key_words())
    return re.compile("|".join(words), re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def warm_up() -> None:
    """Load the secret detectors now (detect-secrets takes about 0.3 s to import) rather
    than on the first log entry a worker writes; the Runkit calls it when it opens."""
    redact_text("warm up: password=x")


def is_secret_key(key: str) -> bool:
    """Whether a key of ``data`` (or a header's name) names a secret."""
    return _secret_key().search(key) is not None


def _spans(text: str) -> Iterator[tuple[int, int]]:
    yield from detectors.find(text)
    lower = text.lower()
    if len(lower) != len(text):
        lower = text
    for pattern, hints in _OWN:
        if any(h in lower for h in hints):
            flags = re.IGNORECASE if lower is text else 0
            for m in (
                re.finditer(pattern.pattern, lower, flags) if flags else pattern.finditer(lower)
            ):
                yield m.span("s")


def has_secret(text: str) -> bool:
    """Whether :func:`redact_text` would change ``text`` (no secret values given)."""
    return next(_spans(text), None) is not None


def redact_text(text: str, secrets: Collection[str] = ()) -> str:
    """``text`` with every secret it holds replaced by ``[redacted]``; ``secrets`` are
    values known to be secret (a kind's secret fields), redacted wherever they occur."""
    if not text:
        return text
    spans = sorted(_spans(text))
    if spans:
        found = {text[a:b] for a, b in spans}
        parts: list[str] = []
        at = 0
        for start, end in spans:  # by start; an overlapping span widens the last one
            if end <= at:
                continue
            if start >= at:
                parts += (text[at:start], REDACTED)
            at = end
        text = "".join(parts) + text[at:]
        text = _replace(text, {s for s in found if len(s) >= _REPEATED})
    return _replace(text, _known(secrets))


def _known(secrets: Collection[str]) -> set[str]:
    # Known secrets are masked from a shorter length than found ones: they are certain.
    return {s for s in secrets if len(s) >= _KNOWN}


def _replace(text: str, values: Collection[str]) -> str:
    for value in sorted(values, key=len, reverse=True):  # the longest first: no half-masks
        text = text.replace(value, REDACTED)
    return text


def mask_values(value: Any, secrets: Collection[str]) -> Any:
    """``value`` (JSON) with every occurrence of the known ``secrets`` in its strings
    replaced, and nothing else changed (for results and progress, whose keys are the
    executor's own and not guessed at)."""
    known = _known(secrets)
    if not known:
        return value
    if isinstance(value, str):
        return _replace(value, known)
    if isinstance(value, Mapping):
        return {k: mask_values(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_values(v, known) for v in value]
    return value


def redact_value(value: Any, secrets: Collection[str] = ()) -> Any:
    """``value`` (JSON) with its strings redacted and the values under secret keys
    replaced, at any depth; a ``[name, value]`` pair (a header list) whose name names a
    secret keeps only its name."""
    return _walk(value, lambda text: redact_text(text, secrets))


def _walk(value: Any, text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and is_secret_key(k) else _walk(v, text)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        if len(value) == 2 and isinstance(value[0], str) and is_secret_key(value[0]):
            return [value[0], REDACTED]  # a header as a pair: ["Authorization", "Bearer x"]
        return [_walk(v, text) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    """``value`` as JSON every store takes: a value JSON has no type for (a set, a datetime,
    an object) becomes its ``str``, a non-string key too, and so does a float that is not
    finite (PostgreSQL's JSON has no NaN). Done before redaction, so the strings made here
    are searched for secrets like the rest; and once, at logging, so an entry that no store
    can encode never reaches a write (it would fail that write, and the outcome with it)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def clean(entry: NewLogEntry, secrets: Collection[str] = ()) -> NewLogEntry:
    """``entry`` with secrets redacted (in its message, event and data) and its message and
    data bounded. ``secrets``: values known to be secret, redacted wherever they occur.

    The detectors read the message, the event and the strings of ``data`` once, joined;
    each is redacted on its own only when that finds something (most entries hold none)."""
    message, event = entry.message, entry.event
    data = _jsonable(entry.data) if entry.data else entry.data
    joined = "\n".join((message, event or "", *_strings(data)))
    if secrets or has_secret(joined):
        message = redact_text(message, secrets)
        event = redact_text(event, secrets) if event else event
        data = redact_value(data, secrets)
    elif data:
        data = _walk(data, lambda text: text)
    truncated = False
    if len(message) > MAX_MESSAGE_CHARS:
        message, truncated = message[:MAX_MESSAGE_CHARS], True
    if data and len(json.dumps(data, default=str)) > MAX_DATA_CHARS:
        data, truncated = {}, True
    if truncated:
        data = {**data, "truncated": True}
    if message == entry.message and event == entry.event and data == entry.data:
        return entry
    return attrs.evolve(entry, message=message, event=event, data=data)


def clean_all(entries: Iterable[NewLogEntry], secrets: Collection[str] = ()) -> list[NewLogEntry]:
    return [clean(e, secrets) for e in entries]


def mask_fields(definition: Mapping[str, Any], paths: Iterable[tuple[str, ...]]) -> dict[str, Any]:
    """A copy of ``definition`` with the value at each path (keys; ``*``: every key or
    item) replaced by ``[redacted]``; a path that is not there is skipped."""
    masked: Any = dict(definition)
    for path in paths:
        masked = _mask(masked, path)
    return dict(masked)


def _mask(value: Any, path: tuple[str, ...]) -> Any:
    if not path:
        return REDACTED if value is not None else None
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        return {k: _mask(v, rest) if head in ("*", k) else v for k, v in value.items()}
    if isinstance(value, list) and head == "*":
        return [_mask(v, rest) for v in value]
    return value
