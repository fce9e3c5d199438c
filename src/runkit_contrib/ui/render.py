"""The dashboard's Jinja2 environment (autoescape on for every template), the filters its
templates use, and the one function that turns a template into a response with the UI's
security headers.

Every value a template prints is escaped; no template marks user data ``|safe``. JSON is
pretty-printed to a plain string (:func:`pretty`) and then escaped like any other text, so a
definition holding ``<script>`` shows as text.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .._convert import format_time

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: Scripts and styles from this origin only (no inline script or style anywhere), no
#: frames, no plugins; fetch and EventSource to this origin only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


#: The request scope's key that says whether the app has runkit's sessions (the sign-in
#: form and the Sign out button); set by the dashboard's routes, True when absent.
SESSIONS = "runkit.ui.sessions"


def root(request: Request) -> str:
    """R: where the app is mounted ("" at the top), without a trailing slash."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def pretty(value: Any) -> str:
    """``value`` as indented JSON text (escaped by the template like any string)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def compact(value: Any, limit: int = 120) -> str:
    """One line of JSON, cut at ``limit`` characters (for table cells)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iso(when: datetime | None) -> str:
    return "" if when is None else format_time(when)


def relative(when: datetime | None, now: datetime) -> str:
    """``when`` as people say it: "12 s ago", "3 min ago", "in 5 min"."""
    if when is None:
        return "—"
    seconds = (now - when).total_seconds()
    future = seconds < 0
    span = abs(seconds)
    if span < 1:
        return "just now"
    if span < 60:
        text = f"{int(span)} s"
    elif span < 3600:
        text = f"{int(span // 60)} min"
    elif span < 86400:
        text = f"{int(span // 3600)} h"
    else:
        text = f"{int(span // 86400)} d"
    return f"in {text}" if future else f"{text} ago"


def duration(seconds: float | None) -> str:
    """A span in the largest units that matter: "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min"."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{int(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _static_version() -> str:
    """A digest of the static files: their URLs change when they do, so they can be cached."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = pretty
    env.filters["compact"] = compact
    env.filters["iso"] = iso
    env.filters["duration"] = duration
    env.globals["static_version"] = _static_version()
    return env


ENV = _environment()


def now() -> datetime:
    return datetime.now(UTC)


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """``template`` rendered with ``context`` plus ``R`` (the mount root), ``request`` and
    ``sessions`` (whether runkit signs people in: :data:`SESSIONS`)."""
    sessions = bool(request.scope.get(SESSIONS, True))
    html = ENV.get_template(template).render(
        R=root(request), request=request, sessions=sessions, **context
    )
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})
