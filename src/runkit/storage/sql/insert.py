"""Inserting a run in the SQL store, with the idempotency rule in one place: the unique
index on ``idempotency_scope`` decides which of two racing inserts wins
(``ON CONFLICT DO NOTHING``); the loser reads the holder and returns it. If the holder is
deleted between the two statements, the scope is free again and the insert is retried.

On PostgreSQL a run and its first few log entries go in one statement (data-modifying CTEs):
one round trip, atomic as any single statement.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ...domain.errors import StorageUnavailable
from ...domain.models import NewLogEntry, Run, replace
from .engine import Transactions, violates
from .rows import new_log_rows, row_to_run, run_values
from .schema import logs, runs

#: The run holding an idempotency scope (``b_scope``).
HOLDER = sa.select(runs).where(runs.c.idempotency_scope == sa.bindparam("b_scope"))
_HOLDERS = sa.select(runs).where(
    runs.c.idempotency_scope.in_(sa.bindparam("b_scopes", expanding=True))
)
_INSERT_LOGS = sa.insert(logs)
#: Creates write one or two entries; up to this many go in the one-statement insert.
_ONE_STATEMENT_ENTRIES = 4
_LOG_FIELDS = ("seq", "attempt", "level", "event", "message", "data", "occurred_at", "worker_id")
#: Rounds of insert-then-read-the-holder before giving up (each loss means the holder was
#: deleted in between; ten in a row means something is wrong).
_ROUNDS = 10


def _insert_with_logs(insert_run: Any, count: int) -> sa.Select[Any]:
    """``WITH r AS (INSERT run ... RETURNING seq), l AS (INSERT INTO logs SELECT r.seq, ...
    FROM r) SELECT seq FROM r``: PostgreSQL runs every data-modifying CTE, and the log rows
    exist only if the run row was inserted (no row in ``r``, no log rows)."""
    r = insert_run.cte("r")
    rows = [
        sa.select(
            r.c.seq,
            *(sa.bindparam(f"e{i}_{name}", type_=logs.c[name].type) for name in _LOG_FIELDS),
        )
        for i in range(count)
    ]
    source = rows[0] if count == 1 else sa.union_all(*rows)
    add_logs = sa.insert(logs).from_select(["run_seq", *_LOG_FIELDS], source).cte("l")
    return sa.select(r.c.seq).add_cte(add_logs)


class Inserter:
    """The insert statements of one dialect, built once."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._insert_run = (
            dialect_insert(runs)
            .on_conflict_do_nothing(index_elements=[runs.c.idempotency_scope])
            .returning(runs.c.seq)
        )
        # The same INSERT with explicit binds, to nest in a CTE (PostgreSQL only).
        self._insert_run_values = (
            postgresql.insert(runs)
            .values({c.name: sa.bindparam(c.name, type_=c.type) for c in runs.c if c.name != "seq"})
            .on_conflict_do_nothing(index_elements=[runs.c.idempotency_scope])
            .returning(runs.c.seq)
        )
        # For batches: ids come back with the seqs, as a skipped row returns nothing.
        self._insert_runs = (
            dialect_insert(runs)
            .on_conflict_do_nothing(index_elements=[runs.c.idempotency_scope])
            .returning(runs.c.id, runs.c.seq)
        )
        self._with_logs: dict[int, sa.Select[Any]] = {}

    def insert_many(
        self, tx: Transactions, items: Sequence[tuple[Run, Sequence[NewLogEntry]]]
    ) -> list[tuple[Run, bool]]:
        """Insert every ``(run, entries)`` of ``items`` in one transaction: one multi-row
        INSERT for the runs, one for their entries, one read for the held scopes."""
        ids = [run.id for run, _ in items]
        if len(set(ids)) != len(ids):
            raise ValueError("insert_many: a run id repeats within the batch")
        if not items:
            return []
        try:
            with tx.write() as conn:
                return self._insert_many_on(conn, items)
        except exc.IntegrityError as err:
            if violates(err, "runkit_runs_id_key", "runkit_runs.id"):
                raise ValueError("insert_many: a run id exists") from err
            raise

    def _insert_many_on(
        self, conn: Connection, items: Sequence[tuple[Run, Sequence[NewLogEntry]]]
    ) -> list[tuple[Run, bool]]:
        results: list[tuple[Run, bool] | None] = [None] * len(items)
        pending = list(range(len(items)))
        now = datetime.now(UTC)
        for _ in range(_ROUNDS):
            values = []
            for i in pending:
                run, entries = items[i]
                row = run_values(run)
                row["log_seq"] = len(entries)
                values.append(row)
            inserted: dict[Any, int] = dict(conn.execute(self._insert_runs, values).all())
            log_rows: list[dict[str, Any]] = []
            held: list[int] = []
            for i in pending:
                run, entries = items[i]
                seq = inserted.get(run.id)
                if seq is None:
                    held.append(i)
                    continue
                results[i] = (stored(run, entries, seq), True)
                new_log_rows(seq, run.attempt, entries, 0, now, log_rows)
            if log_rows:
                conn.execute(_INSERT_LOGS, log_rows)
            # A skipped row's scope is held by a stored run or an earlier item of this batch
            # (this transaction sees its own rows); one deleted since is free: insert again.
            scopes = [items[i][0].idempotency_scope for i in held]
            holders = (
                {r.idempotency_scope: r for r in conn.execute(_HOLDERS, {"b_scopes": scopes})}
                if held
                else {}
            )
            pending = []
            for i in held:
                holder = holders.get(items[i][0].idempotency_scope)
                if holder is None:
                    pending.append(i)
                else:
                    results[i] = (row_to_run(holder), False)
            if not pending:
                return [r for r in results if r is not None]
        raise StorageUnavailable("idempotency scopes kept changing hands in a batch insert")

    def one_statement(
        self, run: Run, entries: Sequence[NewLogEntry]
    ) -> tuple[sa.Select[Any], dict[str, Any]] | None:
        """The statement and parameters inserting ``run`` with ``entries`` at once, and
        returning its ``seq`` (no row: its idempotency scope is held); None where the
        dialect or the number of entries does not allow one statement."""
        if self.dialect != "postgresql" or not 0 < len(entries) <= _ONE_STATEMENT_ENTRIES:
            return None
        statement = self._with_logs.get(len(entries))
        if statement is None:
            statement = self._with_logs[len(entries)] = _insert_with_logs(
                self._insert_run_values, len(entries)
            )
        params = run_values(run)
        params["log_seq"] = len(entries)
        rows: list[dict[str, Any]] = []
        new_log_rows(0, run.attempt, entries, 0, datetime.now(UTC), rows)
        for i, row in enumerate(rows):
            for name, value in row.items():
                if name != "run_seq":
                    params[f"e{i}_{name}"] = value
        return statement, params

    @staticmethod
    def refused(err: exc.IntegrityError, run: Run) -> NoReturn:
        """Raise what an insert's integrity error means to the caller: a run whose id
        exists is the caller's mistake (ValueError); any other violation as it is."""
        if violates(err, "runkit_runs_id_key", "runkit_runs.id"):
            raise ValueError(f"run {run.id} exists") from err
        raise err

    def insert(
        self, tx: Transactions, run: Run, entries: Sequence[NewLogEntry]
    ) -> tuple[Run, bool]:
        """Insert ``run`` with ``entries`` in a transaction of its own."""
        one = self.one_statement(run, entries)
        if one is not None:
            statement, params = one

            def write(c: Connection) -> int | None:
                seq: int | None = c.execute(statement, params).scalar_one_or_none()
                return seq

            return _insert_or_replay(tx.single, run, entries, write)
        with tx.write() as conn:
            return self.insert_on(conn, run, entries)

    def insert_on(
        self, conn: Connection, run: Run, entries: Sequence[NewLogEntry]
    ) -> tuple[Run, bool]:
        """Insert ``run`` with ``entries`` inside the caller's transaction on ``conn``."""
        values = run_values(run)
        values["log_seq"] = len(entries)

        def write(c: Connection) -> int | None:
            seq: int | None = c.execute(self._insert_run, values).scalar_one_or_none()
            if seq is not None and entries:
                rows: list[dict[str, Any]] = []
                new_log_rows(seq, run.attempt, entries, 0, datetime.now(UTC), rows)
                c.execute(_INSERT_LOGS, rows)
            return seq

        return _insert_or_replay(lambda: contextlib.nullcontext(conn), run, entries, write)


def stored(run: Run, entries: Sequence[NewLogEntry], seq: int) -> Run:
    """``run`` as inserted with ``entries``: its ``seq``, and its log numbered up to them."""
    return replace(run, seq=seq, log_seq=len(entries))


def _insert_or_replay(
    connect: Callable[[], contextlib.AbstractContextManager[Connection]],
    run: Run,
    entries: Sequence[NewLogEntry],
    write: Callable[[Connection], int | None],
) -> tuple[Run, bool]:
    """``(stored, True)`` once ``write`` inserts the run; ``(holder, False)`` when another
    run holds its idempotency scope. Each round runs on a connection from ``connect``."""
    for _ in range(_ROUNDS):
        with connect() as conn:
            try:
                seq = write(conn)
            except exc.IntegrityError as err:
                Inserter.refused(err, run)
            if seq is not None:
                return stored(run, entries, seq), True
            holder = conn.execute(HOLDER, {"b_scope": run.idempotency_scope}).first()
        if holder is not None:
            return row_to_run(holder), False
        # The holder was deleted between the two statements: the scope is free again.
    raise StorageUnavailable(f"idempotency scope {run.idempotency_scope!r} kept changing hands")
