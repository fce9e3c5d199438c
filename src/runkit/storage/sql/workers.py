"""The worker registry of the SQL store (``runkit_workers``): one row a live worker, written
by its heartbeat. Each function runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ...domain.models import WorkerInfo
from .schema import workers

_COLUMNS = ("host", "pid", "kinds", "concurrency", "started_at", "last_seen_at")
_LIST = (
    sa.select(workers)
    .where(workers.c.last_seen_at >= sa.bindparam("b_since", type_=workers.c.last_seen_at.type))
    .order_by(workers.c.started_at, workers.c.id)
)


def save(conn: Connection, worker: WorkerInfo) -> None:
    """Upsert: a worker's first heartbeat registers it, later ones replace the row."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    values: dict[str, Any] = {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "kinds": sorted(worker.kinds),
        "concurrency": worker.concurrency,
        "started_at": worker.started_at,
        "last_seen_at": worker.last_seen_at,
    }
    stmt = insert(workers).values(values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[workers.c.id], set_={c: stmt.excluded[c] for c in _COLUMNS}
        )
    )


def delete(conn: Connection, ids: Collection[str], seen_before: datetime | None) -> int:
    conditions: list[sa.ColumnElement[bool]] = []
    if ids:
        conditions.append(workers.c.id.in_(sorted(ids)))
    if seen_before is not None:
        conditions.append(workers.c.last_seen_at < seen_before)
    if not conditions:
        return 0
    return conn.execute(sa.delete(workers).where(sa.or_(*conditions))).rowcount or 0


def list_live(conn: Connection, seen_since: datetime) -> list[WorkerInfo]:
    return [
        WorkerInfo(
            id=row.id,
            host=row.host,
            pid=row.pid,
            kinds=tuple(row.kinds),
            concurrency=row.concurrency,
            started_at=row.started_at,
            last_seen_at=row.last_seen_at,
        )
        for row in conn.execute(_LIST, {"b_since": seen_since})
    ]
