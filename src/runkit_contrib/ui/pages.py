"""The sign-in, new-run, approvals and workers pages (the runs and run pages have modules of
their own)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from runkit import Principal, Status

from .._auth import authenticate
from .._errors import HttpError
from .._kinds import definition_schema
from .._routes import Api
from .access import chrome, principal_name, require
from .forms import fields_for, initial_definition, schema_help
from .render import iso, now, relative, render, root
from .run import deciders, decision_note, policy_of
from .runs import PAGE_SIZE, rows_of, visible_page

#: The statuses in which a worker holds a run (what its load counts).
LEASED = (Status.RUNNING, Status.PAUSING, Status.CANCELLING)
#: Runs read per leased status to count the workers' load (one list each).
LOAD_SAMPLE = 100


def safe_next(request: Request, target: str | None) -> str:
    """``target`` when it is a path under R/ui/ (no scheme, host or ``//``), else R/ui/."""
    home = f"{root(request)}/ui/"
    if not target or not target.startswith(home) or "\\" in target:
        return home
    if any(c in target for c in "\r\n\t") or target.startswith("//"):
        return home
    # Dot segments (plain or percent-encoded) would climb out of R/ui/ once resolved.
    path = target.split("?", 1)[0].split("#", 1)[0]
    segments = path.lower().replace("%2e", ".").split("/")
    if any(s in (".", "..") for s in segments):
        return home
    return target


def sign_in_page(api: Api) -> Callable[[Request], Awaitable[Response]]:
    """The sign-in page: a key form when the app has runkit's sessions, else a note that
    the host signs people in itself (pages still send signed-out callers here)."""

    async def endpoint(request: Request) -> Response:
        principal: Principal | None = None
        signed_in = False
        try:
            principal = await authenticate(request, api.config.auth)
            signed_in = True
        except HttpError:
            pass
        context = {
            **chrome(api, principal, "sign-in"),
            "whoami": principal_name(api, principal) if signed_in else "not signed in",
            "signed_in": signed_in,
            "next": safe_next(request, request.query_params.get("next")),
            "title": "Sign in",
        }
        return render(request, "sign_in.html", context)

    return endpoint


async def new_context(api: Api, request: Request, principal: Principal | None) -> dict[str, Any]:
    await require(api, principal, "create", None)
    names = api.rk.kinds.names()
    asked = request.query_params.get("kind", "")
    problem = ""
    if asked and asked not in names:
        problem = f"Unknown kind {asked[:64]!r}; choose one of the kinds below."
    chosen = asked if asked in names else (names[0] if names else "")
    kind = api.rk.kinds.get(chosen) if chosen else None
    kinds = [
        {"name": k.name, "label": k.display_name or k.name}
        for k in sorted(api.rk.kinds, key=lambda k: k.name)
    ]
    fields: list[Any] = []
    raw = "{}"
    free = True
    described: list[tuple[str, bool]] = []
    if kind is not None:
        schema = definition_schema(kind)
        example = kind.example
        fields = fields_for(schema, example)
        raw = initial_definition(fields, example)
        free = not isinstance(schema.get("properties"), dict)
        described = schema_help(schema.get("description"))
    context = {
        **chrome(api, principal, "new"),
        "title": "New run",
        "kinds": kinds,
        "kind": kind,
        "chosen": chosen,
        "fields": fields,
        "raw": raw,
        "free": free,
        "schema_help": described,
        "problem": problem,
        "may_execute": await api.allowed(principal, "execute", None),
    }
    return context


async def approvals_context(
    api: Api, request: Request, principal: Principal | None
) -> dict[str, Any]:
    await require(api, principal, "list", None)
    raw = request.query_params.get("offset", "")
    offset = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
    page = await api.rk.list(
        status=Status.AWAITING_APPROVAL,
        tenant=principal.tenant if principal is not None else None,
        limit=PAGE_SIZE,
        offset=offset,
    )
    shown = await visible_page(api, principal, page)
    rows = await rows_of(api, principal, shown)
    at = now()
    for run, item in zip(shown.runs, rows, strict=True):
        policy = policy_of(api, run)
        # What the roles allow, less what the gate's policy refuses (shown as the note).
        allowed = {a: await api.allowed(principal, a, run) for a in ("approve", "reject")}
        note = decision_note(policy, principal, run) if any(allowed.values()) else ""
        title = run.definition.get("title")
        message = run.definition.get("message")
        item.update(
            policy=deciders(policy) if policy is not None else None,
            title=title if isinstance(title, str) else "",
            message=message if isinstance(message, str) else "",
            approvals=list(run.approvals),
            note=note,
            # Its last change: when it parked, or the last decision short of enough.
            waiting_iso=iso(run.updated_at),
            waiting_rel=relative(run.updated_at, at),
            may_approve=allowed["approve"] and not note,
            may_reject=allowed["reject"] and not note,
        )
    return {
        **chrome(api, principal, "approvals"),
        "title": "Approvals",
        "rows": rows,
        "total": page.total,
        "offset": offset,
        "prev_query": urlencode({"offset": max(0, offset - PAGE_SIZE)}) if offset else None,
        "next_query": urlencode({"offset": offset + PAGE_SIZE}) if page.has_next else None,
        "live_query": urlencode({"offset": offset}) if offset else "",
    }


async def workers_context(
    api: Api, request: Request, principal: Principal | None
) -> dict[str, Any]:
    await require(api, principal, "workers", None)
    workers = sorted(await api.rk.workers(), key=lambda w: (w.started_at, w.id))
    # Load: the leased runs of each worker, from one list per leased status (a sample of
    # LOAD_SAMPLE each, so the page stays cheap; a larger fleet's counts say "at least").
    load: dict[str, int] = {}
    partial = False
    tenant = principal.tenant if principal is not None else None
    known = await api.allowed(principal, "list", None)
    if known:
        for status in LEASED:
            page = await api.rk.list(status=status, tenant=tenant, limit=LOAD_SAMPLE)
            partial = partial or page.has_next
            for run in page.runs:
                if run.worker_id:
                    load[run.worker_id] = load.get(run.worker_id, 0) + 1
    at = now()
    rows = [
        {
            "id": w.id,
            "host": w.host,
            "pid": w.pid,
            "kinds": list(w.kinds),
            "concurrency": w.concurrency,
            "load": load.get(w.id, 0) if known else None,
            "started_iso": iso(w.started_at),
            "started_rel": relative(w.started_at, at),
            "seen_iso": iso(w.last_seen_at),
            "seen_rel": relative(w.last_seen_at, at),
        }
        for w in workers
    ]
    return {
        **chrome(api, principal, "workers"),
        "title": "Workers",
        "workers": rows,
        "load_partial": partial,
        "load_known": known,
        "load_sample": LOAD_SAMPLE,
        "tenant": tenant,
    }
