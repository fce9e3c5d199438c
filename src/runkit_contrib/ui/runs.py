"""The runs page (``R/ui/``) and its live rows (``R/ui/fragments/runs``).

One page costs one ``Runkit.list`` (50 runs), one ``display_statuses`` for them and one
``page_users``: no query per row, so the first page stays cheap on a store of any size.
The filters (kind, status, parent) and the offset ride in the query string, and the rows'
live refresh asks for the same page with the same filters every two seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import attrs
from starlette.requests import Request

from runkit import Principal, Run, RunPage, Status, UserProfile, ValidationError

from .._routes import Api
from .access import chrome, require
from .render import compact, iso, now, relative

PAGE_SIZE = 50
STATUSES = [s.value for s in Status]


@attrs.frozen
class Filters:
    kind: str = ""
    status: str = ""
    parent: str = ""
    offset: int = 0
    #: What was wrong with the query, for people; the list is empty when a filter is bad.
    problems: tuple[str, ...] = ()

    def query(self, offset: int | None = None) -> str:
        """The query string of these filters at ``offset`` (this page's when None)."""
        pairs = [("kind", self.kind), ("status", self.status), ("parent", self.parent)]
        values = [(k, v) for k, v in pairs if v]
        at = self.offset if offset is None else offset
        if at:
            values.append(("offset", str(at)))
        return urlencode(values)


def read_filters(api: Api, request: Request) -> Filters:
    params = request.query_params
    kind = params.get("kind", "").strip()
    status = params.get("status", "").strip()
    parent = params.get("parent", "").strip()
    problems: list[str] = []
    if kind and kind not in api.rk.kinds.names():
        problems.append(f"Unknown kind {kind[:64]!r}.")
    if status and status not in STATUSES:
        problems.append(f"Unknown status {status[:64]!r}.")
    if parent:
        try:
            UUID(parent)
        except ValueError:
            problems.append("Parent must be a run id (a UUID).")
    raw_offset = params.get("offset", "").strip()
    offset = 0
    if raw_offset:
        if raw_offset.isascii() and raw_offset.isdigit() and len(raw_offset) <= 9:
            offset = int(raw_offset)
        else:
            problems.append("Offset must be a whole number of runs, 0 or more.")
    return Filters(kind, status, parent, offset, tuple(problems))


def trigger_name(run: Run, users: Mapping[str, UserProfile]) -> str:
    """Who started ``run``: the person's name when a person did and ``users`` knows them,
    else the principal id. ``users`` is keyed by user id: an API key or a system principal
    may share its id with a person on the page, and is never named after them."""
    source = run.trigger_source_id
    if source is None:
        return "—"
    if run.trigger_source_type != "user":
        return source
    profile = users.get(source)
    if profile is not None:
        full = " ".join(p for p in (profile.first_name, profile.last_name) if p)
        if full:
            return full
    return source


def run_duration(run: Run, at: datetime) -> float | None:
    """From start to finish, or to ``at`` for a run still going."""
    if run.started_at is None:
        return None
    end = run.completed_at or (at if not run.status.terminal else run.updated_at)
    return max(0.0, (end - run.started_at).total_seconds())


def row(
    run: Run, display: str, definition: Mapping[str, Any], users: Mapping[str, UserProfile]
) -> dict[str, Any]:
    at = now()
    return {
        "id": str(run.id),
        "short_id": str(run.id)[:8],
        "status": run.status.value,
        "kind": run.kind,
        "display_status": display,
        "definition": compact(dict(definition)),
        "created_iso": iso(run.created_at),
        "created_rel": relative(run.created_at, at),
        "duration": run_duration(run, at),
        "trigger": trigger_name(run, users),
        "method": run.trigger_method or "",
    }


async def visible_page(api: Api, principal: Principal | None, page: RunPage) -> RunPage:
    """``page`` with only the runs the host's ``authorize`` hook lets ``principal`` see
    (the list endpoint's rule); the whole page when there is no hook."""
    if api.config.authorize is None:
        return page
    runs = tuple([r for r in page.runs if await api.allowed(principal, "get", r)])
    return attrs.evolve(page, runs=runs)


async def rows_of(api: Api, principal: Principal | None, page: RunPage) -> list[dict[str, Any]]:
    """The table rows of ``page``: one ``display_statuses`` and one ``page_users`` for all."""
    users = await api.page_users(page)
    statuses = await api.rk.display_statuses(page.runs)
    return [
        row(r, d, api.rk.kinds.shown_definition(r), users)
        for r, d in zip(page.runs, statuses, strict=True)
    ]


async def runs_context(api: Api, request: Request, principal: Principal | None) -> dict[str, Any]:
    await require(api, principal, "list", None)
    filters = read_filters(api, request)
    problems = list(filters.problems)
    page: RunPage | None = None
    if not problems:
        try:
            page = await api.rk.list(
                kind=filters.kind or None,
                status=filters.status or None,
                parent_action_run_id=filters.parent or None,
                tenant=principal.tenant if principal is not None else None,
                limit=PAGE_SIZE,
                offset=filters.offset,
            )
        except ValidationError as exc:  # a bound the form did not check: say it, never 500
            problems.append(str(exc))
    rows: list[dict[str, Any]] = []
    total = 0
    has_next = False
    if page is not None:
        has_next = page.has_next
        total = page.total
        rows = await rows_of(api, principal, await visible_page(api, principal, page))
    prev_offset = (
        max(0, filters.offset - PAGE_SIZE) if filters.offset > 0 and not problems else None
    )
    return {
        **chrome(api, principal, "runs"),
        "filters": filters,
        "problems": problems,
        "kinds": api.rk.kinds.names(),
        "statuses": STATUSES,
        "rows": rows,
        "total": total,
        "first": filters.offset + 1 if rows else 0,
        "last": filters.offset + len(rows),
        "prev_query": None if prev_offset is None else filters.query(prev_offset),
        "next_query": filters.query(filters.offset + PAGE_SIZE) if has_next else None,
        "live_query": filters.query(),
        "may_create": await api.allowed(principal, "create", None),
    }
