"""Rows to models and back for the SQL store: the one place that knows column encodings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from ...domain.models import LogEntry, NewLogEntry, Run
from ...domain.states import Status
from ..base import materialize_for

#: A result row. ``Row`` is generic over its column types, with a different arity in
#: SQLAlchemy 2.0 and 2.1; these helpers read rows by column name only.
SqlRow = Any


def run_values(run: Run) -> dict[str, Any]:
    """The column values of ``run`` for an INSERT (``seq`` is left to the database)."""
    return {
        "id": run.id,
        "kind": run.kind,
        "status": run.status.value,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "definition": run.definition,
        "action_id": run.action_id,
        "idempotency_key": run.idempotency_key,
        "concurrency_key": run.concurrency_key,
        "parent_action_run_id": run.parent_action_run_id,
        "progress": run.progress,
        "result": run.result,
        "error": run.error,
        "retry_count": run.retry_count,
        "interrupt_count": run.interrupt_count,
        "trigger_method": run.trigger_method,
        "trigger_source_type": run.trigger_source_type,
        "trigger_source_id": run.trigger_source_id,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "status_reason": run.status_reason,
        "attempt": run.attempt,
        "lease_token": run.lease_token,
        "worker_id": run.worker_id,
        "deadline_at": run.deadline_at,
        "not_before": run.not_before,
        "concurrency_limit": run.concurrency_limit,
        "idempotency_scope": run.idempotency_scope,
        "fingerprint": run.fingerprint,
        "log_seq": run.log_seq,
        "checkpoint": run.checkpoint,
        "approvals": [dict(a) for a in run.approvals],
        "wait": run.wait,
        "tenant": run.tenant,
    }


def change_values(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Encode the ``changes`` of :meth:`Store.update` (already checked) as column values."""
    values = dict(changes)
    if "status" in values:
        values["status"] = Status(values["status"]).value
    if "approvals" in values:
        values["approvals"] = [dict(a) for a in values["approvals"]]
    return values


def row_to_run(row: SqlRow) -> Run:
    m = row._mapping
    return Run(
        id=m["id"],
        kind=m["kind"],
        status=Status(m["status"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        definition=m["definition"],
        action_id=m["action_id"],
        idempotency_key=m["idempotency_key"],
        concurrency_key=m["concurrency_key"],
        parent_action_run_id=m["parent_action_run_id"],
        progress=m["progress"],
        result=m["result"],
        error=m["error"],
        retry_count=m["retry_count"],
        interrupt_count=m["interrupt_count"],
        trigger_method=m["trigger_method"],
        trigger_source_type=m["trigger_source_type"],
        trigger_source_id=m["trigger_source_id"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
        seq=m["seq"],
        status_reason=m["status_reason"],
        attempt=m["attempt"],
        lease_token=m["lease_token"],
        worker_id=m["worker_id"],
        deadline_at=m["deadline_at"],
        not_before=m["not_before"],
        concurrency_limit=m["concurrency_limit"],
        idempotency_scope=m["idempotency_scope"],
        fingerprint=m["fingerprint"],
        log_seq=m["log_seq"],
        checkpoint=m["checkpoint"],
        approvals=tuple(m["approvals"]),
        wait=m["wait"],
        tenant=m["tenant"],
    )


def rows_to_logs(rows: Iterable[SqlRow]) -> list[LogEntry]:
    """Log rows selected with the run's UUID labelled ``run_id``."""
    out: list[LogEntry] = []
    for row in rows:
        m = row._mapping
        out.append(
            LogEntry(
                run_id=m["run_id"],
                seq=m["seq"],
                attempt=m["attempt"],
                level=m["level"],
                message=m["message"],
                occurred_at=m["occurred_at"],
                event=m["event"],
                data=m["data"],
                worker_id=m["worker_id"],
            )
        )
    return out


def stored_logs(
    run_id: UUID,
    run_seq: int,
    attempt: int,
    entries: Sequence[NewLogEntry],
    start_seq: int,
    now: datetime,
    rows: list[dict[str, Any]],
) -> list[LogEntry]:
    """The stored form of ``entries`` (:func:`~runkit.storage.base.materialize_for`), with
    their INSERT parameter sets (:func:`new_log_rows`) appended to ``rows``."""
    new_log_rows(run_seq, attempt, entries, start_seq, now, rows)
    return materialize_for(run_id, attempt, entries, start_seq, now)


def new_log_rows(
    run_seq: int,
    attempt: int,
    entries: Sequence[NewLogEntry],
    start_seq: int,
    now: datetime,
    rows: list[dict[str, Any]],
) -> None:
    """:func:`stored_logs`'s parameter sets alone, for writers that do not answer with the
    entries (an insert, a move): no :class:`LogEntry` is built (two a created run)."""
    rows.extend(
        {
            "run_seq": run_seq,
            "seq": start_seq + i,
            "attempt": e.attempt if e.attempt is not None else attempt,
            "level": e.level,
            "event": e.event,
            "message": e.message,
            "data": e.data,
            "occurred_at": e.occurred_at or now,
            "worker_id": e.worker_id,
        }
        for i, e in enumerate(entries, start=1)
    )


def rows_to_run_logs(run_id: UUID, rows: Iterable[SqlRow]) -> list[LogEntry]:
    """Log rows selected as ``(seq, attempt, level, message, occurred_at, event, data,
    worker_id)`` (:data:`~runkit.storage.sql._LOG_PAGE`'s columns), all of ``run_id``."""
    return [
        LogEntry(
            run_id=run_id,
            seq=seq,
            attempt=attempt,
            level=level,
            message=message,
            occurred_at=occurred_at,
            event=event,
            data=data,
            worker_id=worker_id,
        )
        for seq, attempt, level, message, occurred_at, event, data, worker_id in rows
    ]
