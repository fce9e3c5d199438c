"""Helpers for driving runkit itself: the benchmark kind, stores built for measurement,
statement counters, and correctness checks on runkit's tables."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

import runkit
from runkit.storage.sql.store import SqlStore

KIND = "bench_noop"
LINES = ("line 1", "line 2")


async def bench_executor(ctx: Any) -> dict[str, Any]:
    """The no-op with two log lines; its result carries when it started (CLOCK_MONOTONIC,
    system-wide on Linux, so comparable across processes) for dispatch latency."""
    started = time.monotonic_ns()
    await ctx.log("info", LINES[0])
    await ctx.log("info", LINES[1])
    return {"started_ns": started}


def bench_kind() -> runkit.Kind:
    return runkit.Kind(KIND, executor=bench_executor)


def make_runkit(url: str, **store_options: Any) -> runkit.Runkit:
    """A Runkit on a store that does not migrate on open (the schema is prepared before the
    measured phase by :func:`prepare_schema`), with only the benchmark kind."""
    store = SqlStore(url, **store_options)
    return runkit.Runkit(store, kinds=[bench_kind()], autoload_plugins=False)


async def prepare_schema(url: str) -> None:
    async with SqlStore(url, create_schema=True):
        pass


@dataclass
class Counts:
    statements: int = 0
    write_transactions: int = 0


@contextmanager
def count_statements(engine: sa.Engine) -> Iterator[Counts]:
    """Client-side statements (an executemany is one) and write transactions (``BEGIN
    IMMEDIATE`` on SQLite; a commit through a transaction on PostgreSQL)."""
    counts = Counts()
    sqlite = engine.dialect.name == "sqlite"

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts.statements += 1
        if sqlite and statement.startswith("BEGIN IMMEDIATE"):
            counts.write_transactions += 1

    def on_commit(conn: Any) -> None:
        if not sqlite:
            counts.write_transactions += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)


def check_runs(url: str, expected: int, logs_per_run: int | None = 6) -> list[str]:
    """Lost or duplicated runs, read from runkit's tables: every run succeeded, on its first
    attempt, with its log entries (created, queued, claimed, 2 lines, completed)."""
    errors: list[str] = []
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        total, done, attempts = conn.execute(
            sa.text(
                "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'),"
                " coalesce(max(attempt), 0) FROM runkit_runs"
            )
            if engine.dialect.name == "postgresql"
            else sa.text(
                "SELECT count(*), sum(status = 'succeeded'), coalesce(max(attempt), 0)"
                " FROM runkit_runs"
            )
        ).one()
        nlogs = conn.execute(sa.text("SELECT count(*) FROM runkit_logs")).scalar_one()
    engine.dispose()
    if total != expected:
        errors.append(f"{total} runs stored, {expected} created")
    if (done or 0) != expected:
        errors.append(f"{done} of {expected} runs succeeded (lost runs)")
    if attempts > 1:
        errors.append(f"a run was executed {attempts} times (duplicate execution)")
    if logs_per_run is not None and nlogs != expected * logs_per_run:
        errors.append(f"{nlogs} log entries, expected {expected * logs_per_run}")
    return errors
