"""The wire format: one cattrs converter turns models into the spec's JSON and back.

camelCase keys, RFC 3339 UTC timestamps ending in ``Z``, ``null`` for absent values, UUIDs
as strings, log ids as cursors. Engine bookkeeping stays off the wire except ``attempt``,
``statusReason`` and ``approvals``, which clients need to read retries and outcomes (a
rejection's reason lives only in its approval record).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from runkit.domain.kind import camel
from runkit.domain.models import LogEntry, LogPage, Run, RunPage, UserProfile, WorkerInfo
from runkit.domain.states import Status

#: Run fields that appear on the wire, in the spec's order of mention.
PUBLIC_RUN_FIELDS = (
    "id",
    "action_id",
    "kind",
    "status",
    "definition",
    "idempotency_key",
    "concurrency_key",
    "parent_action_run_id",
    "progress",
    "result",
    "error",
    "retry_count",
    "interrupt_count",
    "trigger_method",
    "trigger_source_type",
    "trigger_source_id",
    "created_at",
    "started_at",
    "completed_at",
    "updated_at",
    "attempt",
    "status_reason",
    "approvals",
)

#: The keys of one approval decision on the wire, in this order.
APPROVAL_KEYS = ("by", "decision", "reason", "at")


def format_time(when: datetime) -> str:
    when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += f".{when.microsecond:06d}"
    return text + "Z"


def parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"timestamp without timezone: {text!r}")
    return when.astimezone(UTC)


def approvals_to_wire(approvals: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """Each decision with exactly the documented keys, its time in the wire's own format
    (the store keeps whatever the core wrote; an unreadable time is passed on as is)."""
    out: list[dict[str, Any]] = []
    for record in approvals:
        item = {key: record.get(key) for key in APPROVAL_KEYS}
        at = item["at"]
        if isinstance(at, str):
            with contextlib.suppress(ValueError):
                item["at"] = format_time(parse_time(at))
        out.append(item)
    return out


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_unstructure_hook(datetime, format_time)
    conv.register_structure_hook(datetime, lambda v, _: parse_time(v))
    conv.register_unstructure_hook(UUID, str)
    conv.register_structure_hook(UUID, lambda v, _: UUID(v))
    conv.register_unstructure_hook(Status, lambda s: s.value)
    conv.register_structure_hook(Status, lambda v, _: Status(v))

    hidden = {a.name for a in attrs.fields(Run)} - set(PUBLIC_RUN_FIELDS)
    # Any: cattrs types **overrides together with its bool options, which mypy can't split.
    run_overrides: Any = {n: override(rename=camel(n)) for n in PUBLIC_RUN_FIELDS}
    run_overrides["approvals"] = override(unstruct_hook=approvals_to_wire)
    run_overrides.update({n: override(omit=True) for n in hidden})
    conv.register_unstructure_hook(Run, make_dict_unstructure_fn(Run, conv, **run_overrides))
    conv.register_structure_hook(Run, make_dict_structure_fn(Run, conv, **run_overrides))

    profile: Any = {a.name: override(rename=camel(a.name)) for a in attrs.fields(UserProfile)}
    conv.register_unstructure_hook(
        UserProfile, make_dict_unstructure_fn(UserProfile, conv, **profile)
    )
    conv.register_structure_hook(UserProfile, make_dict_structure_fn(UserProfile, conv, **profile))
    return conv


converter = _converter()


def run_to_wire(run: Run, display_status: str) -> dict[str, Any]:
    data: dict[str, Any] = converter.unstructure(run, Run)
    data["displayStatus"] = display_status
    data["durationSeconds"] = run.duration_seconds
    return data


def run_from_wire(data: dict[str, Any]) -> Run:
    """The public part of a run back from JSON (bookkeeping fields take their defaults)."""
    fields = {k: v for k, v in data.items() if k not in ("displayStatus", "durationSeconds")}
    run: Run = converter.structure(fields, Run)
    return run


def public_part(run: Run) -> Run:
    """``run`` with its bookkeeping fields reset: what survives a trip over the wire."""
    keep = {n: getattr(run, n) for n in PUBLIC_RUN_FIELDS}
    return Run(**keep)


def log_to_wire(entry: LogEntry) -> dict[str, Any]:
    return {
        "id": entry.cursor,
        "attempt": entry.attempt,
        "level": entry.level,
        "event": entry.event,
        "message": entry.message,
        "data": entry.data,
        "occurredAt": format_time(entry.occurred_at),
        "workerId": entry.worker_id,
    }


def log_page_to_wire(page: LogPage) -> dict[str, Any]:
    return {
        "entries": [log_to_wire(e) for e in page.entries],
        "hasMore": page.has_more,
        "nextCursor": page.next_cursor,
    }


def run_page_to_wire(page: RunPage, display_statuses: list[str]) -> dict[str, Any]:
    return {
        "hasNext": page.has_next,
        "limit": page.limit,
        "offset": page.offset,
        "runs": [run_to_wire(r, d) for r, d in zip(page.runs, display_statuses, strict=True)],
        "total": page.total,
        "users": {uid: converter.unstructure(p, UserProfile) for uid, p in page.users.items()},
    }


def worker_to_wire(worker: WorkerInfo) -> dict[str, Any]:
    return {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "kinds": list(worker.kinds),
        "concurrency": worker.concurrency,
        "startedAt": format_time(worker.started_at),
        "lastSeenAt": format_time(worker.last_seen_at),
    }
