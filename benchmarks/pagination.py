"""Issue #2, pagination at depth (S7/S10 through the in-process API).

* ``list``: ``Runkit.list(limit=100)`` over R runs (full 100k, smoke 10k) at offset 0 and at
  the last page. The spec's list API is offset-paginated, so a deep page costs the rows it
  skips; the ratio is reported as measured. Every page also counts all matching rows
  (``total``), which costs the same at any depth.
* ``logs``: ``Runkit.logs(run, after=cursor, limit=500)`` over one run with L entries (full
  1M, smoke 20k) at cursor 0 and near the end: a keyset read, so the target is a deep/first
  ratio <= 1.2. Beside it, the same page as raw SQL through the same driver (B-PG-6 / the
  SQLite equivalent).

The data is seeded once per backend with set-based SQL (copies of one run made through the
API) and only read afterwards, so repetitions share it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from runkit import Cursor

from . import _harness as h
from ._runkit import KIND, make_runkit, prepare_schema

LIST_LIMIT = 100
LOG_LIMIT = 500
LOG_TARGET = 1.2

_RUN_COLUMNS_EXCEPT = ("seq", "id", "idempotency_scope")


def _seed_sql(dialect: str, template_seq: int, runs: int, lines: int) -> list[str]:
    from runkit.storage.sql.schema import runs as runs_table

    cols = [c.name for c in runs_table.c if c.name not in _RUN_COLUMNS_EXCEPT]
    col_list = ", ".join(cols)
    if dialect == "postgresql":
        new_id = "gen_random_uuid()"
        series = "generate_series(1, {n}) AS g(i)"
        now = "now()"
    else:
        new_id = "lower(hex(randomblob(16)))"
        series = (
            "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})"
            " SELECT i FROM s) AS g"
        )
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    return [
        f"INSERT INTO runkit_runs (id, {col_list}) SELECT {new_id}, {col_list}"
        f" FROM runkit_runs, {series.format(n=runs - 1)} WHERE seq = {template_seq}",
        "INSERT INTO runkit_logs (run_seq, seq, attempt, level, message, data, occurred_at)"
        f" SELECT {template_seq}, g.i + 2, 0, 'info', 'line ' || g.i, '{{}}', {now}"
        f" FROM {series.format(n=lines)}",
        f"UPDATE runkit_runs SET log_seq = {lines + 2} WHERE seq = {template_seq}",
    ]


async def _seed(url: str, runs: int, lines: int) -> tuple[UUID, int]:
    """One run through the API, ``runs - 1`` copies of it, ``lines`` log entries on it."""
    await prepare_schema(url)
    rk = make_runkit(url)
    async with rk:
        created = await rk.create(KIND, {}, execute=False)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for stmt in _seed_sql(engine.dialect.name, created.run.seq, runs, lines):
            conn.exec_driver_sql(stmt)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return created.run.id, created.run.seq


async def _latencies(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    await call()  # warm the statement caches and the pool
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def _measure(url: str, run_id: UUID, runs: int, lines: int, n: int) -> dict[str, float]:
    rk = make_runkit(url)
    async with rk:
        deep_offset = runs - LIST_LIMIT
        list_first = await _latencies(lambda: rk.list(limit=LIST_LIMIT), n)
        list_deep = await _latencies(lambda: rk.list(limit=LIST_LIMIT, offset=deep_offset), n)
        cursor = str(Cursor(run_id, lines - LOG_LIMIT + 1))
        logs_first = await _latencies(lambda: rk.logs(run_id, limit=LOG_LIMIT), n)
        logs_deep = await _latencies(lambda: rk.logs(run_id, after=cursor, limit=LOG_LIMIT), n)
        first_page = await rk.logs(run_id, limit=LOG_LIMIT)
        deep_page = await rk.logs(run_id, after=cursor, limit=LOG_LIMIT)
    errors = []
    if len(first_page.entries) != LOG_LIMIT or len(deep_page.entries) != LOG_LIMIT:
        errors.append("log pages came back short")
    return {
        "list_first_p50_ms": h.percentile(list_first, 0.5),
        "list_deep_p50_ms": h.percentile(list_deep, 0.5),
        "logs_first_p50_ms": h.percentile(logs_first, 0.5),
        "logs_deep_p50_ms": h.percentile(logs_deep, 0.5),
        "logs_first_p99_ms": h.percentile(logs_first, 0.99),
        "logs_deep_p99_ms": h.percentile(logs_deep, 0.99),
        "errors": errors,  # type: ignore[dict-item]
    }


_RAW_PAGE = (
    "SELECT l.seq, l.attempt, l.level, l.message, l.occurred_at, l.event, l.data, l.worker_id"
    " FROM runkit_logs l WHERE l.run_seq = {p} AND l.seq > {p} ORDER BY l.seq LIMIT {limit}"
)


def _raw_log_pages(url: str, run_seq: int, lines: int, n: int) -> dict[str, float]:
    """B-PG-6 / SQLite keyset page through the raw driver, first and deep."""
    out: dict[str, float] = {}
    if url.startswith("sqlite"):
        conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"))
        sql = _RAW_PAGE.format(p="?", limit=LOG_LIMIT)
    else:
        import psycopg

        conn = psycopg.connect(h.dsn(url.rsplit("/", 1)[1]), autocommit=True)
        sql = _RAW_PAGE.format(p="%s", limit=LOG_LIMIT)
    try:
        for label, after in (("first", 0), ("deep", lines - LOG_LIMIT)):
            conn.execute(sql, (run_seq, after)).fetchall()
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                conn.execute(sql, (run_seq, after)).fetchall()
                samples.append((time.perf_counter() - t0) * 1000)
            out[f"raw_logs_{label}_p50_ms"] = h.percentile(samples, 0.5)
    finally:
        conn.close()
    return out


def _backend(ctx: h.Context, backend: str, url: str, runs: int, lines: int) -> None:
    t0 = time.perf_counter()
    run_id, run_seq = asyncio.run(_seed(url, runs, lines))
    ctx.say(f"  seeded {runs} runs and {lines} log entries in {time.perf_counter() - t0:.1f} s")
    n = ctx.size(50, 10)

    def once() -> dict[str, Any]:
        out: dict[str, Any] = asyncio.run(_measure(url, run_id, runs, lines, n))
        out.update(_raw_log_pages(url, run_seq, lines, n))
        return out

    figures = h.repeat(ctx, once)
    scenario = f"pagination-{backend}"
    first, deep = figures["list_first_p50_ms"], figures["list_deep_p50_ms"]
    ctx.add(
        h.Result(
            scenario,
            "runkit list",
            f"page p50 at offset {runs - LIST_LIMIT:,} vs 0",
            stats=deep,
            unit="ms",
            baseline="offset 0",
            baseline_value=first.median,
            ratio=deep.median / first.median,
            ratio_key=f"{scenario}.list_deep_vs_first",
            higher_is_better=False,
            target="reported (offset pagination per the spec; no target)",
            met=None,
            extra={"first_p50_ms": first.median, "runs": runs},
        )
    )
    first, deep = figures["logs_first_p50_ms"], figures["logs_deep_p50_ms"]
    ratio = deep.median / first.median
    ctx.add(
        h.Result(
            scenario,
            "runkit logs",
            f"page p50 at cursor {lines - LOG_LIMIT:,} vs 0",
            stats=deep,
            unit="ms",
            baseline="cursor 0",
            baseline_value=first.median,
            ratio=ratio,
            ratio_key=f"{scenario}.logs_deep_vs_first",
            higher_is_better=False,
            target=f"deep/first <= {LOG_TARGET}",
            met=ratio <= LOG_TARGET,
            extra={
                "first_p50_ms": first.median,
                "first_p99_ms": figures["logs_first_p99_ms"].median,
                "deep_p99_ms": figures["logs_deep_p99_ms"].median,
                "raw_first_p50_ms": figures["raw_logs_first_p50_ms"].median,
                "raw_deep_p50_ms": figures["raw_logs_deep_p50_ms"].median,
                "runkit_vs_raw_first": figures["raw_logs_first_p50_ms"].median / first.median,
                "lines": lines,
            },
            errors=figures["errors"],
        )
    )


def run(ctx: h.Context) -> None:
    runs, lines = ctx.size(100_000, 10_000), ctx.size(1_000_000, 20_000)
    with h.fresh_sqlite("pages") as path:
        _backend(ctx, "sqlite", f"sqlite:///{path}", runs, lines)
    if h.pg_available():
        h.fresh_database("bench_runkit")
        _backend(ctx, "pg", h.url("bench_runkit"), runs, lines)
