"""Where secrets are in a string, by the detectors of detect-secrets.

Only its line-scanning regex plugins are used, their patterns applied here to one string at
a time: never its file scanner, its settings, its filters or its verifiers (which would send
a found secret to the service it belongs to). Their patterns are maintained there, so a new
token format reaches runkit with an upgrade rather than with a private regex list.

detect-secrets imports ``requests`` when its plugins are imported (about 0.2 s), so the
plugins are loaded on first use, not when runkit is imported.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterable, Iterator

import attrs

#: The plugins used: those that recognise a secret by its shape, or by the keyword it is
#: assigned to. Left out: high-entropy strings (UUIDs and commit shas would go), public IPs
#: (no secret) and the IBM/Cloudant/SoftLayer keyword variants (the keyword plugin covers them).
_PLUGINS = (
    "artifactory",
    "aws",
    "azure_storage_key",
    "basic_auth",
    "discord",
    "github_token",
    "gitlab_token",
    "jwt",
    "mailchimp",
    "npm",
    "openai",
    "pypi_token",
    "sendgrid",
    "slack",
    "square_oauth",
    "stripe",
    "telegram_token",
    "twilio",
)
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*-----")
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_.+/=-]*")

Span = tuple[int, int]


@attrs.frozen
class _Detector:
    pattern: re.Pattern[str]
    #: The group holding the secret (keyword assignments); None: the whole match, or its
    #: last group when only a closing quote or ``@`` follows it.
    group: int | None = None
    #: Widens a match to the whole secret (a JWT's signature, a PEM block).
    widen: Callable[[str, re.Match[str]], Span | None] | None = None


def _jwt(valid: Callable[[str], bool]) -> Callable[[str, re.Match[str]], Span | None]:
    def widen(text: str, m: re.Match[str]) -> Span | None:
        if not valid(m.group()):
            return None
        tail = _TOKEN_TAIL.match(text, m.end())
        return m.start(), tail.end() if tail else m.end()

    return widen


def _pem(text: str, m: re.Match[str]) -> Span:
    dashes = text.rfind("-----", max(0, m.start() - 5), m.start())
    end = _PEM_END.search(text, m.end())
    return (dashes if dashes >= 0 else m.start()), (end.end() if end else len(text))


@functools.cache
def _detectors() -> tuple[tuple[_Detector, ...], tuple[_Detector, ...]]:
    """The shape detectors and the keyword detectors. The keyword plugin's patterns ignore
    case, which makes Python's ``re`` try every alternative at every position (50 us a
    line); they run here without that flag on the lower-cased text (3 us), as its words
    are lower case."""
    from detect_secrets.plugins import keyword, private_key
    from detect_secrets.plugins.base import RegexBasedDetector

    shapes: list[_Detector] = []
    for name in _PLUGINS:
        module = importlib.import_module(f"detect_secrets.plugins.{name}")
        for plugin in vars(module).values():
            if not (
                isinstance(plugin, type)
                and issubclass(plugin, RegexBasedDetector)
                and plugin.__module__ == module.__name__
            ):
                continue
            valid = getattr(plugin, "is_formally_valid", None)
            widen = _jwt(valid) if name == "jwt" and valid else None
            # A class attribute, though the base class types it as an abstract property.
            patterns: Iterable[re.Pattern[str]] = vars(plugin)["denylist"]
            shapes.extend(_Detector(p, widen=widen) for p in patterns)
    pem = vars(private_key.PrivateKeyDetector)["denylist"]
    shapes.extend(_Detector(p, widen=_pem) for p in pem)
    groups = {
        **keyword.CONFIG_DENYLIST_REGEX_TO_GROUP,
        **keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    }
    keywords = tuple(
        _Detector(re.compile(p.pattern, p.flags & ~re.IGNORECASE), group=g)
        for p, g in groups.items()
    )
    return tuple(shapes), keywords


@functools.cache
def secret_key_words() -> tuple[str, ...]:
    """The keyword plugin's words that name a secret (regex fragments, lower case)."""
    from detect_secrets.plugins import keyword

    return tuple(keyword.DENYLIST)


def _span(m: re.Match[str], group: int | str | None) -> Span:
    if group is not None:
        start, end = m.span(group)
        # An unquoted value ends at the first blank: the rest of the line stays readable.
        quoted = start > 0 and m.string[start - 1] in "'\"`"
        blank = re.search(r"\s", m.string[start:end])
        return start, (start + blank.start() if blank and not quoted else end)
    last = m.lastindex
    if last is not None and m.end(last) >= m.end() - 1 and m.end(last) > m.start(last):
        return m.span(last)
    return m.span()


@functools.cache
def _keyword_hints() -> tuple[str, ...] | None:
    """A literal that each keyword word contains, to skip the keyword patterns for text
    without any; None (always run them) if a word is more than letters and ``_?``."""
    hints = [re.split(r"_\?", w)[-1] for w in secret_key_words()]
    return tuple(hints) if all(h.isalpha() for h in hints) else None


def find(text: str) -> Iterator[Span]:
    """The spans of ``text`` that hold secrets (they may overlap)."""
    shapes, keywords = _detectors()
    for d in shapes:
        for m in d.pattern.finditer(text):
            span = d.widen(text, m) if d.widen else _span(m, None)
            if span is not None:
                yield span
    lower = text.lower()
    hints = _keyword_hints()
    if hints is not None and not any(h in lower for h in hints):
        return
    if len(lower) != len(text):  # a character whose lower case is longer: rare, and slow
        lower = text
        keywords = tuple(
            attrs.evolve(d, pattern=re.compile(d.pattern.pattern, re.I)) for d in keywords
        )
    for d in keywords:
        for m in d.pattern.finditer(lower):
            yield _span(m, d.group)
