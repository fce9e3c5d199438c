"""The SQL store's log reads: a page of one run's log, and the log heads of many runs."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...domain.models import LogEntry
from ...domain.states import Status
from ..base import LogHead
from .rows import rows_to_run_logs
from .schema import logs, runs

#: Runs whose log head one statement reads: keeps the bound parameters under SQLite's limit.
HEADS_CHUNK = 500

#: One page of a run's log: the run's ``seq`` is looked up first (a scalar subquery), so the
#: page is an index range scan on the log key ``(run_seq, seq)`` on every page, the first
#: included (a join on the UUID let PostgreSQL's planner pick a sequential scan). Built
#: once, like every hot statement, so each call only binds parameters.
_LOG_PAGE = (
    sa.select(
        logs.c.seq,
        logs.c.attempt,
        logs.c.level,
        logs.c.message,
        logs.c.occurred_at,
        logs.c.event,
        logs.c.data,
        logs.c.worker_id,
    )
    .where(
        logs.c.run_seq
        == sa.select(runs.c.seq)
        .where(runs.c.id == sa.bindparam("b_id", type_=runs.c.id.type))
        .scalar_subquery(),
        logs.c.seq > sa.bindparam("b_after", type_=sa.Integer()),
    )
    .order_by(logs.c.seq)
    .limit(sa.bindparam("b_limit", type_=sa.Integer()))
)
#: The heads of a chunk of runs: an index lookup a run (the unique index on ``id``).
_LOG_HEADS = sa.select(runs.c.id, runs.c.log_seq, runs.c.status).where(
    runs.c.id.in_(sa.bindparam("b_ids", expanding=True))
)


def log_page(conn: Connection, run_id: UUID, after: int, limit: int) -> list[LogEntry]:
    """Up to ``limit`` entries of the run with id > ``after``, in id order."""
    params = {"b_id": run_id, "b_after": after, "b_limit": max(0, limit)}
    return rows_to_run_logs(run_id, conn.execute(_LOG_PAGE, params))


def log_heads(conn: Connection, run_ids: Sequence[UUID]) -> dict[UUID, LogHead]:
    """The head of each run of ``run_ids`` that exists, :data:`HEADS_CHUNK` runs a
    statement."""
    heads: dict[UUID, LogHead] = {}
    for start in range(0, len(run_ids), HEADS_CHUNK):
        params = {"b_ids": list(run_ids[start : start + HEADS_CHUNK])}
        for run_id, log_seq, status in conn.execute(_LOG_HEADS, params):
            heads[run_id] = LogHead(log_seq, Status(status))
    return heads
