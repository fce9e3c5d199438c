"""How requests appear in logs, progress, results and errors: readable, and without secrets.

Redacted: header values whose names look like credentials (Authorization, Cookie,
Set-Cookie, anything with token, key, secret, password or session in it), the same in URL
query parameters, and passwords in a URL's user information. Pure; no httpx needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[redacted]"
_PARTS = re.compile(r"[\s;,=]+")
SECRET_WORDS = ("authorization", "cookie", "token", "key", "secret", "password", "session")


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def redact_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as one JSON object (lower-case names; repeated headers joined with ``, ``),
    secret values replaced."""
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        shown = REDACTED if is_secret_name(key) else value
        out[key] = f"{out[key]}, {shown}" if key in out else shown
    return out


def redact_url(url: str) -> str:
    """``url`` with secret-named query values and any userinfo password replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{hostport}" if ":" in userinfo else netloc
    query = parts.query
    if query and any(is_secret_name(k) for k, _ in parse_qsl(query, keep_blank_values=True)):
        pairs = [
            (k, REDACTED if is_secret_name(k) else v)
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe="[]")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (values the caller knows are secret) replaced."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def secret_values(headers: Mapping[str, str]) -> list[str]:
    """The values of ``headers`` that are secrets, and their parts (``Bearer abc``: ``abc``)."""
    out: list[str] = []
    for name, value in headers.items():
        if is_secret_name(name):
            out.append(value)
            # The parts too: a server may echo the token without "Bearer " or "sid=".
            out.extend(part for part in _PARTS.split(value) if len(part) >= 8)
    return out


def size(n: int) -> str:
    """``532 B``, ``1.2 KiB``, ``3.4 MiB``."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"
