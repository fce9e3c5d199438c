"""The claim of the SQL store: pick due queued runs in ``seq`` order and lease them, in one
transaction, with the rule every backend shares (:func:`~runkit.storage.base.pick_claimable`).

The candidate rows are read in a few statements; which of them are claimed is decided in
Python by :func:`~runkit.storage.base.pick_claimable` (the rule every backend shares), and
the winners are written back with one executemany UPDATE and one executemany INSERT of
their audit entries.

Why the candidate lists are exact: a claim takes at most ``limit`` runs, so it needs at
most the first ``limit`` due unkeyed runs, at most the first ``limit`` due queued runs of a
key (FIFO: a later run of a key is never taken while an earlier one is left), and at most
the first ``limit`` keys whose head of line is claimable (each such head would be taken, so
a key further back can only come after ``limit`` claims).

Concurrency. On SQLite the caller holds the database's write lock (``BEGIN IMMEDIATE``), so
the reads are the truth. On PostgreSQL:

* unkeyed rows are locked with ``FOR UPDATE SKIP LOCKED``: claimers never wait on each other;
* a key is claimed by one claimer at a time, serialized by
  ``pg_try_advisory_xact_lock(hashtextextended(key, 0))``. A *try*-lock: a key another
  claimer holds is skipped this round rather than waited for, so advisory locks and row
  locks can never form a wait cycle. The key's occupancy and its head rows are read after
  the lock is granted (READ COMMITTED: a fresh snapshot per statement), so they include
  every claim committed before, and no claim of that key can commit until ours does;
* the head rows of a held key are locked with plain ``FOR UPDATE``: only non-claimers
  (single-run API updates) can hold them, briefly, and skipping would let a later run of the
  key overtake the locked one.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from ...domain import moves
from ...domain.keys import pick_claimable
from ...domain.models import Run, replace
from ...domain.states import LEASED, Status
from .rows import change_values, new_log_rows, row_to_run
from .schema import logs, runs

LEASED_VALUES = sorted(s.value for s in LEASED)
_INSERT_LOGS = sa.insert(logs)


@functools.cache
def _claim_write(fields: tuple[str, ...]) -> sa.Update:
    """The UPDATE that applies a claim's changes (:func:`runkit.domain.moves.changes`) to
    the runs chosen, by ``seq`` (executemany): one statement per shape of changes."""
    values: dict[str, Any] = {
        name: sa.bindparam(f"v_{name}", type_=runs.c[name].type) for name in fields
    }
    values["log_seq"] = sa.bindparam("b_log_seq", type_=runs.c.log_seq.type)
    return sa.update(runs).where(runs.c.seq == sa.bindparam("b_seq")).values(values)


def _due() -> sa.ColumnElement[bool]:
    now = sa.bindparam("b_now", type_=runs.c.not_before.type)
    return sa.and_(
        runs.c.status == Status.QUEUED.value,
        sa.or_(runs.c.not_before.is_(None), runs.c.not_before <= now),
    )


def _leased(table: sa.FromClause) -> sa.ColumnElement[bool]:
    """The runs of ``table`` that hold a slot of their key: the occupancy rule of
    :mod:`runkit.domain.keys`, in SQL (values inline, so the statement caches)."""
    status: sa.ColumnElement[str] = table.c.status
    return status.in_([sa.literal_column(f"'{v}'") for v in LEASED_VALUES])


def _held_of(key: sa.ColumnElement[Any]) -> sa.ScalarSelect[int]:
    """How many runs of ``key`` hold a lease: a correlated count."""
    leased = runs.alias("leased")
    return (
        sa.select(sa.func.count())
        .select_from(leased)
        .where(leased.c.concurrency_key == key, _leased(leased))
        .scalar_subquery()
    )


def occupancy(conn: Connection, keys: list[str]) -> dict[str, int]:
    """For each of ``keys``, how many of its runs are leased (``Store.occupancy``)."""
    stmt = (
        sa.select(runs.c.concurrency_key, sa.func.count())
        .where(runs.c.concurrency_key.in_(keys), _leased(runs))
        .group_by(runs.c.concurrency_key)
    )
    out = dict.fromkeys(keys, 0)
    for key, count in conn.execute(stmt):
        out[key] = count
    return out


_LIMIT = sa.bindparam("b_limit", type_=sa.Integer())
_KINDS: sa.BindParameter[Any] = sa.bindparam("b_kinds", expanding=True)
_keyed_queued = runs.alias("keyed_queued")
#: Whether any keyed run is queued (due or not): read with the unkeyed candidates, from the
#: small partial index of queued keyed runs, so a claim skips the keyed-heads query when
#: nothing keyed waits.
_ANY_KEYED = (
    sa.exists()
    .where(
        _keyed_queued.c.status == Status.QUEUED.value,
        _keyed_queued.c.concurrency_key.is_not(None),
    )
    .label("any_keyed")
)


@functools.cache
def _unkeyed(pg: bool, kinds: bool) -> sa.Select[Any]:
    """Due unkeyed runs in ``seq`` order (prebuilt per shape: ``b_now``, ``b_limit``,
    ``b_kinds``), each row with :data:`_ANY_KEYED` last."""
    query = (
        sa.select(*runs.c, _ANY_KEYED)
        .where(_due(), runs.c.concurrency_key.is_(None))
        .order_by(runs.c.seq)
        .limit(_LIMIT)
    )
    if kinds:
        query = query.where(runs.c.kind.in_(_KINDS))
    if pg:
        query = query.with_for_update(skip_locked=True, of=runs)
    return query


@functools.cache
def _heads_query(kinds: bool) -> sa.Select[Any]:
    """The first ``b_limit`` keys (by head ``seq``) whose head of line could be claimed now:
    a kind the claimer takes, and a free slot. Each with its leased count."""
    head = (
        sa.select(
            runs.c.concurrency_key.label("key"),
            sa.func.min(runs.c.seq).label("head_seq"),
        )
        .where(_due(), runs.c.concurrency_key.is_not(None))
        .group_by(runs.c.concurrency_key)
        .subquery("head")
    )
    held = _held_of(runs.c.concurrency_key)
    query = (
        sa.select(runs.c.concurrency_key, held.label("held"))
        .join_from(runs, head, runs.c.seq == head.c.head_seq)
        .where(held < runs.c.concurrency_limit)
        .order_by(runs.c.seq)
        .limit(_LIMIT)
    )
    if kinds:
        query = query.where(runs.c.kind.in_(_KINDS))
    return query


def claim(
    conn: Connection,
    worker_id: str,
    limit: int,
    *,
    now: datetime,
    lease: timedelta,
    kinds: Collection[str] | None,
) -> list[Run]:
    """Claim inside the caller's transaction (on SQLite, one begun IMMEDIATE)."""
    if limit <= 0 or (kinds is not None and not kinds):
        return []
    pg = conn.dialect.name == "postgresql"
    params: dict[str, Any] = {"b_now": now, "b_limit": limit}
    if kinds is not None:
        params["b_kinds"] = sorted(kinds)

    rows = conn.execute(_unkeyed(pg, kinds is not None), params).all()
    candidates = [row_to_run(r) for r in rows]
    # Rows say whether anything keyed is queued; without rows, ask the heads query.
    any_keyed = not rows or bool(rows[0][-1])

    held: dict[str, int] = {}
    heads = _heads(conn, params, kinds is not None) if any_keyed else []
    if heads:
        if pg:
            keyed, held = _keyed_pg(conn, [key for key, _ in heads], now, limit)
        else:
            held = dict(heads)
            keyed = _keyed_sqlite(conn, list(held), now, limit)
        candidates.extend(keyed)
        candidates.sort(key=lambda r: r.seq)

    chosen = pick_claimable(candidates, held, limit, kinds)
    return _write(conn, chosen, worker_id, now, lease)


def _heads(conn: Connection, params: dict[str, Any], kinds: bool) -> list[tuple[str, int]]:
    return [(row[0], row[1]) for row in conn.execute(_heads_query(kinds), params)]


_KEYED_SQLITE = (
    sa.select(runs)
    .where(_due(), runs.c.concurrency_key == sa.bindparam("key"))
    .order_by(runs.c.seq)
    .limit(_LIMIT)
)


def _keyed_sqlite(conn: Connection, keys: list[str], now: datetime, limit: int) -> list[Run]:
    out: list[Run] = []
    for key in keys:  # one indexed range read per key; SQLite statements are in-process
        params = {"key": key, "b_now": now, "b_limit": limit}
        out.extend(row_to_run(r) for r in conn.execute(_KEYED_SQLITE, params))
    return out


@functools.cache
def _try_keys() -> sa.Select[Any]:
    """The keys of ``b_keys`` whose advisory try-lock was granted."""
    wanted = sa.func.unnest(sa.bindparam("b_keys", type_=postgresql.ARRAY(sa.String())))
    tried = wanted.table_valued("key").render_derived(name="k")
    return sa.select(tried.c.key).where(
        sa.func.pg_try_advisory_xact_lock(sa.func.hashtextextended(tried.c.key, 0))
    )


@functools.cache
def _keyed_heads() -> sa.Select[Any]:
    """For each key of ``b_granted``: its first ``b_limit`` due queued runs, row-locked,
    each with the key's leased count."""
    mine = (
        sa.func.unnest(sa.bindparam("b_granted", type_=postgresql.ARRAY(sa.String())))
        .table_valued("key")
        .render_derived(name="g")
    )
    head = (
        sa.select(runs)
        .where(_due(), runs.c.concurrency_key == mine.c.key)
        .order_by(runs.c.seq)
        .limit(_LIMIT)
        .with_for_update()
        .lateral("head")
    )
    return sa.select(head, _held_of(mine.c.key).label("held")).select_from(
        mine.join(head, sa.true())
    )


def _keyed_pg(
    conn: Connection, keys: list[str], now: datetime, limit: int
) -> tuple[list[Run], dict[str, int]]:
    """Try-lock ``keys``; for those granted, their leased count and their first ``limit`` due
    queued runs, row-locked. Two statements: the second must start after the locks are
    granted so that its snapshot sees every claim committed before."""
    granted = [row[0] for row in conn.execute(_try_keys(), {"b_keys": keys})]
    if not granted:
        return [], {}
    held = dict.fromkeys(granted, 0)
    out: list[Run] = []
    params = {"b_granted": granted, "b_now": now, "b_limit": limit}
    for row in conn.execute(_keyed_heads(), params):
        run = row_to_run(row)
        assert run.concurrency_key is not None
        held[run.concurrency_key] = row._mapping["held"]
        out.append(run)
    return out, held


def _write(
    conn: Connection, chosen: Sequence[Run], worker_id: str, now: datetime, lease: timedelta
) -> list[Run]:
    if not chosen:
        return []
    out: list[Run] = []
    params: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    fields: tuple[str, ...] = ()
    for run in chosen:
        claimed_fields, entry = moves.claim(run, worker_id, now, lease)
        new = replace(run, **claimed_fields, log_seq=run.log_seq + 1)
        changed = change_values(claimed_fields)
        fields = tuple(sorted(changed))
        row = {f"v_{name}": value for name, value in changed.items()}
        row.update(b_seq=run.seq, b_log_seq=new.log_seq)
        params.append(row)
        new_log_rows(run.seq, new.attempt, [entry], run.log_seq, now, entries)
        out.append(new)
    conn.execute(_claim_write(fields), params)
    conn.execute(_INSERT_LOGS, entries)
    return out
