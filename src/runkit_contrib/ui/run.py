"""The run page (``R/ui/runs/<id>``) and its live summary (``R/ui/runs/<id>/summary``).

The summary (status, fields, buttons, progress, timeline, tree, approvals, result and
error) is one fragment the page polls every two seconds while the run is not terminal; the
definition and the log stay put (the log grows in the browser, by cursor: dashboard.js).

The timeline is read from the run's audit entries (``status.changed``) in the first
:data:`TIMELINE_ENTRIES` log entries, a bounded read whatever the log's length; the page
says when it stopped short.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from runkit import ApprovalPolicy, LogEntry, Principal, Run, RunNotFound, RunPage

from .._routes import Api
from .._wire import log_to_wire, run_to_wire
from .access import Page, Refused, chrome, is_fragment, parse_run_id, require, run_actions
from .render import compact, iso, now, relative, render
from .runs import run_duration, trigger_name

#: Log entries read for the timeline (pages of 500), at most.
TIMELINE_ENTRIES = 2000
_PAGE = 500
#: Entries the page renders itself; the browser reads the rest by cursor.
FIRST_LOG_PAGE = 200
#: Ancestors shown above the run, and children below it.
MAX_ANCESTORS = 5
MAX_CHILDREN = 100

#: The wire fields listed in the page's field list (the rest have places of their own).
_LISTED = (
    ("id", "Id"),
    ("kind", "Kind"),
    ("status", "Status"),
    ("displayStatus", "Display status"),
    ("statusReason", "Status reason"),
    ("createdAt", "Created"),
    ("updatedAt", "Updated"),
    ("startedAt", "Started"),
    ("completedAt", "Completed"),
    ("durationSeconds", "Duration"),
    ("attempt", "Attempt"),
    ("retryCount", "Retries"),
    ("interruptCount", "Interruptions"),
    ("actionId", "Action id"),
    ("idempotencyKey", "Idempotency key"),
    ("concurrencyKey", "Concurrency key"),
    ("parentActionRunId", "Parent run"),
    ("triggerMethod", "Trigger method"),
    ("triggerSourceType", "Trigger source type"),
    ("triggerSourceId", "Trigger source"),
)
#: The time fields, by their wire name: the Run attribute each comes from.
_TIMES = {
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "startedAt": "started_at",
    "completedAt": "completed_at",
}


def clock(when: datetime) -> str:
    """HH:MM:SS.mmm in UTC (a log line's time; the full time is its title)."""
    at = when.astimezone(UTC)
    return at.strftime("%H:%M:%S.") + f"{at.microsecond // 1000:03d}"


def log_item(entry: LogEntry) -> dict[str, Any]:
    wire = log_to_wire(entry)
    return {
        "id": wire["id"],
        "level": entry.level,
        "event": entry.event or "",
        "message": entry.message,
        "data": compact(entry.data, 2000) if entry.data else "",
        "time": clock(entry.occurred_at),
        "iso": iso(entry.occurred_at),
        "attempt": entry.attempt,
    }


async def read_head(api: Api, run: Run) -> tuple[list[LogEntry], bool]:
    """The first :data:`TIMELINE_ENTRIES` entries of ``run``'s log, and whether more follow."""
    entries: list[LogEntry] = []
    after: str | None = None
    more = True
    while more and len(entries) < TIMELINE_ENTRIES:
        page = await api.rk.logs(run.id, after=after, limit=_PAGE)
        entries.extend(page.entries)
        more = page.has_more
        after = page.next_cursor
        if not page.entries:
            break
    return entries, more


def timeline(entries: list[LogEntry]) -> list[dict[str, Any]]:
    moves = []
    for e in entries:
        if e.event != "status.changed":
            continue
        data = e.data
        moves.append(
            {
                "from": str(data.get("from") or "new"),
                "to": str(data.get("to") or "?"),
                "reason": str(data.get("reason") or ""),
                "actor": str(data.get("actor") or ""),
                "iso": iso(e.occurred_at),
                "time": clock(e.occurred_at),
                "id": log_to_wire(e)["id"],
            }
        )
    return moves


def progress_bar(progress: Mapping[str, Any]) -> dict[str, float] | None:
    """``{done, total}`` when the executor reported numbers for both (total > 0)."""
    done, total = progress.get("done"), progress.get("total")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (done, total))
    if not numbers or total is None or done is None or not total > 0:
        return None
    return {"done": float(done), "total": float(total), "percent": 100.0 * done / total}


def policy_of(api: Api, run: Run) -> ApprovalPolicy | None:
    try:
        return api.rk.kinds.approval_policy(run)
    except Exception:  # a definition its kind no longer accepts: no policy to show
        return None


def deciders(policy: ApprovalPolicy) -> dict[str, Any]:
    """Who may decide under ``policy``, for people."""
    return {
        "approvers": sorted(policy.approvers),
        "groups": sorted(policy.groups),
        "anyone": not policy.approvers and not policy.groups,
        "required": policy.required,
        "self": policy.allow_self_approval,
        "timeout": policy.timeout_seconds,
        "on_timeout": policy.on_timeout,
    }


def decision_note(policy: ApprovalPolicy | None, principal: Principal | None, run: Run) -> str:
    """Why the gate's policy refuses ``principal``'s decision on ``run`` ("" if it does
    not): the checks ``Runkit.approve`` and ``Runkit.reject`` make, in their order, on the
    policy ``KindRegistry.approval_policy`` gives them. The pages show this note instead
    of Approve and Reject."""
    if policy is None or principal is None or principal.kind == "system":
        return ""
    if not policy.may_decide(principal.id, principal.groups):
        return f"Only {who_may(policy)} may decide."
    if not policy.allow_self_approval and principal.id == run.trigger_source_id:
        return "You created this run: only someone else may decide it."
    if any(a.get("by") == principal.id for a in run.approvals):
        return "You have decided on this run already; each person decides once."
    return ""


def who_may(policy: ApprovalPolicy) -> str:
    """The approvers and groups of ``policy``, for people: "ada, grace or members of ops"."""
    names = sorted(policy.approvers)
    if policy.groups:
        names.append("members of " + ", ".join(sorted(policy.groups)))
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


async def tree(api: Api, principal: Principal | None, run: Run) -> dict[str, Any]:
    """The run's ancestors (nearest last) and its children (in creation order)."""
    ancestors: list[dict[str, Any]] = []
    parent_id = run.parent_action_run_id
    while parent_id is not None and len(ancestors) < MAX_ANCESTORS:
        try:
            parent = await api.rk.get(parent_id)
        except RunNotFound:
            ancestors.append({"id": str(parent_id), "kind": "", "status": "deleted"})
            break
        if not await api.allowed(principal, "get", parent):
            break
        ancestors.append({"id": str(parent.id), "kind": parent.kind, "status": parent.status})
        parent_id = parent.parent_action_run_id
    ancestors.reverse()
    page = await api.rk.list(
        parent_action_run_id=run.id,
        tenant=principal.tenant if principal is not None else None,
        limit=MAX_CHILDREN,
    )
    children = [
        {"id": str(c.id), "kind": c.kind, "status": c.status.value}
        for c in page.runs
        if api.config.authorize is None or await api.allowed(principal, "get", c)
    ]
    return {
        "ancestors": ancestors,
        "children": children,
        "more_children": max(0, page.total - len(page.runs)),
        "more_ancestors": parent_id is not None and len(ancestors) >= MAX_ANCESTORS,
    }


def field_list(wire: Mapping[str, Any], at: datetime, run: Run) -> list[dict[str, Any]]:
    fields = []
    for key, label in _LISTED:
        value = wire.get(key)
        item: dict[str, Any] = {"key": key, "label": label, "value": value, "kind": "text"}
        if value is None:
            item["kind"] = "none"
        elif key in _TIMES:
            item.update(kind="time", rel=relative(getattr(run, _TIMES[key]), at))
        elif key == "durationSeconds":
            # The runs table's rule, not the stored one (which stops at the run's last
            # change): a run still going has lasted until now.
            item.update(
                kind="duration", value=run_duration(run, at), so_far=not run.status.terminal
            )
        elif key == "parentActionRunId":
            item["kind"] = "run"
        elif key == "status":
            item["kind"] = "status"
        fields.append(item)
    return fields


async def summary_context(
    api: Api, request: Request, principal: Principal | None
) -> tuple[Run, dict[str, Any], list[LogEntry], bool]:
    run = await api.rk.get(parse_run_id(request.path_params["run_id"]))
    await require(api, principal, "get", run)
    display = await api.rk.display_status(run)
    wire = run_to_wire(run, display, api.rk.kinds.shown_definition(run))
    at = now()
    may_logs = await api.allowed(principal, "logs", run)
    entries: list[LogEntry] = []
    more = False
    if may_logs:
        entries, more = await read_head(api, run)
    policy = policy_of(api, run)
    note = decision_note(policy, principal, run)
    actions, refused = await run_actions(api, principal, run, note)
    known = await api.rk.resolve_users([run])
    users = await api.page_users(RunPage(runs=(run,), total=1, limit=1, offset=0, users=known))
    context = {
        **chrome(api, principal, "runs"),
        "run": wire,
        "status": run.status.value,
        "terminal": run.status.terminal,
        "trigger": trigger_name(run, users),
        "fields": field_list(wire, at, run),
        "progress": progress_bar(run.progress),
        "actions": actions,
        "may_logs": may_logs,
        "timeline": timeline(entries),
        "timeline_truncated": more,
        "timeline_limit": TIMELINE_ENTRIES,
        "tree": await tree(api, principal, run),
        "policy": deciders(policy) if policy is not None else None,
        "decision_note": refused,
        "approvals": wire["approvals"],
    }
    return run, context, entries, more


def run_page(api: Api) -> Page:
    async def page(request: Request, principal: Principal | None) -> Response:
        run, context, entries, more = await summary_context(api, request, principal)
        first = entries[:FIRST_LOG_PAGE]
        has_more = more or len(entries) > len(first)
        context.update(
            title=f"{run.kind} {str(run.id)[:8]}",
            logs=[log_item(e) for e in first],
            logs_next=log_to_wire(first[-1])["id"] if first else "",
            logs_more=has_more,
        )
        return render(request, "run.html", context)

    return page


#: htmx stops polling an element whose refresh answers this status (and swaps it).
STOP_POLLING = 286


def run_summary(api: Api) -> Page:
    async def fragment(request: Request, principal: Principal | None) -> Response:
        try:
            _, context, _, _ = await summary_context(api, request, principal)
        except (RunNotFound, Refused):
            if not is_fragment(request):
                raise
            # Deleted meanwhile (or out of sight): say so once and stop asking.
            return render(request, "run_gone.html", {}, status=STOP_POLLING)
        return render(request, "run_summary.html", context)

    return fragment
