"""The compare-and-set writes of the SQL store: one update, and a batch of them in one
transaction (how workers report a batch of outcomes with one commit).

On the driver path (``driver``) the items of a batch that share a shape go as one UPDATE
over arrays; each row is still its own compare-and-set (its own guard values), and the
transaction makes the batch one commit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from ...domain.models import Run
from ..base import Update
from .cas import cas
from .driver import DriverConnection
from .engine import violates
from .rows import new_log_rows, row_to_run
from .schema import logs

_INSERT_LOGS = sa.insert(logs)


def update_one(conn: Connection | DriverConnection, item: Update) -> Run | None:
    """One compare-and-set and its entries, in the caller's transaction."""
    rows: list[dict[str, Any]] = []
    stmt, params = cas(item.run_id, item.expect, item.changes, len(item.entries))
    with _scope_held():
        row = conn.execute(stmt, params).first()
    new = _applied(item, row, rows)
    if rows:
        conn.execute(_INSERT_LOGS, rows)
    return new


def update_many(conn: Connection | DriverConnection, updates: Sequence[Update]) -> list[Run | None]:
    """Each item's compare-and-set, then one INSERT of every applied item's entries, in the
    caller's transaction."""
    rows: list[dict[str, Any]] = []
    statements = [cas(u.run_id, u.expect, u.changes, len(u.entries)) for u in updates]
    with _scope_held():
        if isinstance(conn, DriverConnection) and len({u.run_id for u in updates}) == len(updates):
            firsts = _by_shape(conn, updates, statements)
        else:
            firsts = [conn.execute(stmt, params).first() for stmt, params in statements]
    out = [_applied(u, row, rows) for u, row in zip(updates, firsts, strict=True)]
    if rows:
        conn.execute(_INSERT_LOGS, rows)
    return out


def _by_shape(
    conn: DriverConnection, updates: Sequence[Update], statements: list[tuple[Any, Any]]
) -> list[Any]:
    """The items of one shape (the same statement: same fields, same guards) as one UPDATE
    over arrays (``driver``): a worker's batch of outcomes is usually one or two shapes,
    so one or two statements instead of one per run. Each row still changes only if its
    own guard holds; the rows returned are those that did, matched back by id (the runs
    are distinct, or the caller took the one-by-one path)."""
    groups: dict[int, list[int]] = {}
    for i, (stmt, _) in enumerate(statements):
        groups.setdefault(id(stmt), []).append(i)
    firsts: list[Any] = [None] * len(updates)
    for members in groups.values():
        stmt = statements[members[0]][0]
        returned = conn.execute(stmt, [statements[i][1] for i in members]).all()
        by_id = {row.id: row for row in returned}
        for i in members:
            firsts[i] = by_id.get(updates[i].run_id)
    return firsts


@contextlib.contextmanager
def _scope_held() -> Iterator[None]:
    """A compare-and-set that sets an idempotency scope another run holds: ValueError."""
    try:
        yield
    except exc.IntegrityError as err:
        if violates(err, "runkit_runs_idempotency_scope_key", "runkit_runs.idempotency_scope"):
            raise ValueError("idempotency scope already held") from err
        raise


def _applied(item: Update, row: Any, rows: list[dict[str, Any]]) -> Run | None:
    """The run a compare-and-set returned (None: it did not apply), its entries' log rows
    appended to ``rows``."""
    if row is None:
        return None
    new = row_to_run(row)
    n = len(item.entries)
    if n:
        now = datetime.now(UTC)
        new_log_rows(new.seq, new.attempt, item.entries, new.log_seq - n, now, rows)
    return new
