"""Issue #16, the same-work table: every system in one invocation, on the same PostgreSQL
cluster and file system, each doing the same four passes of N no-op jobs (N = 5,000;
medians of the harness's repetitions, a fresh database or SQLite file per system and
repetition):

* **a**, enqueue N one at a time through the public API, nothing draining;
* **b**, enqueue N in batches of 500 (pgqueuer ``Queries.enqueue`` with lists,
  procrastinate ``batch_defer_async``, runkit ``Runkit.create_many`` of ``NewRun``s, raw one
  ``INSERT ... SELECT FROM unnest`` per batch; DBOS has no batch API: n/a);
* **c**, drain N already queued (left by an untimed fill, batched where the system can)
  with one worker: from the worker's start to the last execution;
* **d**, end to end: creates one at a time while the worker runs, each job writing two log
  lines, from the first create until all N are recorded done in the system's tables.

Systems, each pass in a subprocess of its own (``_peer_main``; the same import state for
all, runkit included: runkit runs in the subprocess too, its worker embedded there):

* ``raw psycopg`` (PostgreSQL, ``_samework_raw``): one autocommit statement per step on
  runkit's own tables, the shapes of ``_raw``'s B-PG-2: a create writes the run and its two
  audit entries, a claim ``LIMIT 1 FOR UPDATE SKIP LOCKED`` its audit entry, a completion
  the outcome, its audit entry and (pass d) the two log lines, in one transaction;
* ``pgqueuer``, ``procrastinate``, ``DBOS`` on PostgreSQL, ``runkit`` on PostgreSQL;
* ``runkit`` and ``DBOS`` on SQLite.

What a log line is (pass d): runkit, one ``ctx.log`` (buffered, written with the
completion); raw, one row of ``runkit_logs`` in the completing statement; pgqueuer and
procrastinate (no log store), one INSERT into a ``bench_logs`` table, a job's two committed
together on a 4-connection pool; DBOS, one ``DBOS.write_stream`` (its durable append).
DBOS makes no traffic beyond 127.0.0.1: ``enable_otlp: False``, no Conductor key, and the
``DBOS__CLOUD``/``DBOS__CONDUCTOR_*``/``DBOS__OTLP_*`` variables are dropped (``_peer_main``).

Smoke mode (CI) skips the peers (slow to import) and runs raw psycopg and runkit on
PostgreSQL at the smoke size, for the runkit / raw ratios of passes a, c and d. The table
is printed as Markdown at the end and the medians are written to
``results/peers-samework.json`` (``results/smoke-peers-samework.json`` in smoke mode).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import _harness as h
from ._runkit import check_runs, prepare_schema

PASSES = {
    "a": "enqueue one at a time",
    "b": "enqueue in batches of 500",
    "c": "drain N queued, one worker",
    "d": "end to end, 2 log lines",
}
#: (key, system, name, backend, database); the raw baseline first, then runkit, the peers.
#: Databases of their own (``bench_sw_*``): other families' ``bench_raw``/``bench_runkit``
#: are dropped by whoever runs them, and this family must not share them.
SYSTEMS = (
    ("raw-pg", "raw", "raw psycopg", "pg", "bench_sw_raw"),
    ("runkit-pg", "runkit", "runkit", "pg", "bench_sw_runkit"),
    ("pgqueuer-pg", "pgqueuer", "pgqueuer", "pg", "bench_sw_pgqueuer"),
    ("procrastinate-pg", "procrastinate", "procrastinate", "pg", "bench_sw_procrastinate"),
    ("dbos-pg", "dbos", "DBOS", "pg", "bench_sw_dbos"),
    ("runkit-sqlite", "runkit", "runkit", "sqlite", None),
    ("dbos-sqlite", "dbos", "DBOS", "sqlite", None),
)
LABELS = {
    key: f"{name} ({'PostgreSQL' if backend == 'pg' else 'SQLite'})"
    for key, _, name, backend, _ in SYSTEMS
}
SMOKE_SYSTEMS = ("raw-pg", "runkit-pg")
#: (pass, runkit, other, target factor or None: reported only).
RATIOS = (
    ("a", "runkit-pg", "raw-pg", 0.7),
    ("b", "runkit-pg", "procrastinate-pg", 1.0),
    ("b", "runkit-pg", "pgqueuer-pg", 0.3),
    ("b", "runkit-pg", "raw-pg", None),
    ("c", "runkit-pg", "pgqueuer-pg", 1.0),
    ("c", "runkit-pg", "raw-pg", None),
    ("d", "runkit-pg", "raw-pg", 1.0),
    ("d", "runkit-pg", "procrastinate-pg", 4.0),
    ("d", "runkit-pg", "dbos-pg", 4.0),
    ("d", "runkit-sqlite", "dbos-sqlite", 10.0),
)
TIMEOUT = 1200


# --------------------------------------------------------------------------- one pass ----
def _child(system: str, target: str, n: int, pass_: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._peer_main", system, target, str(n), pass_],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=h.ROOT.parent,
        env={k: v for k, v in os.environ.items() if not k.startswith("DBOS__")},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        err = [ln for ln in proc.stderr.splitlines() if ln.strip()] or ["no output"]
        raise RuntimeError(f"{system} {pass_} failed ({proc.returncode}): {err[-1][:300]}")
    out: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return out


def _once(system: str, backend: str, database: str | None, n: int, pass_: str) -> dict[str, Any]:
    with h.fresh_sqlite(system) as path:
        if database is None:
            sa_url = f"sqlite:///{path}"
            target = sa_url
        else:
            conninfo = h.fresh_database(database)
            sa_url = h.url(database)
            targets = {"runkit": sa_url, "dbos": h.url(database, "postgresql")}
            target = targets.get(system, conninfo)
        if system == "raw":
            from ._raw import create_tables

            create_tables(sa_url)
        elif system == "runkit":
            asyncio.run(prepare_schema(sa_url))
        if pass_ == "c":
            filled = _child(system, target, n, "fill")
            if filled.get("counted") != n:
                raise RuntimeError(f"fill left {filled.get('counted')} of {n} queued")
        out = _child(system, target, n, pass_)
        if "skipped" not in out:
            out["errors"] = _errors(system, sa_url, n, pass_, out)
    return out


def _errors(system: str, sa_url: str, n: int, pass_: str, out: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    if out["counted"] != n:
        state = "queued" if pass_ in ("a", "b") else "done"
        errors.append(f"{out['counted']} of {n} jobs {state}")
    if pass_ in ("a", "b"):
        return errors
    if out["executions"] < n:
        errors.append(f"{out['executions']} of {n} jobs executed (lost)")
    if out["executions"] > n:
        errors.append(f"{out['executions']} executions of {n} jobs (duplicates)")
    lines = 2 * n if pass_ == "d" else 0
    if out["logs"] != lines:
        errors.append(f"{out['logs']} log lines written, expected {lines}")
    if system in ("raw", "runkit"):  # from runkit's tables: attempts, audit entries
        errors += check_runs(sa_url, n, logs_per_run=6 if pass_ == "d" else 4)
    return errors


# --------------------------------------------------------------------------- scenario ----
def _scenario(backend: str) -> str:
    return f"samework-{backend}"


def run(ctx: h.Context) -> None:
    if not h.pg_available():
        ctx.add(h.Result("samework", "all", "runs/s", skipped="PostgreSQL unreachable"))
        return
    n = ctx.size(5000, 500)
    systems = [s for s in SYSTEMS if not ctx.smoke or s[0] in SMOKE_SYSTEMS]
    if ctx.smoke:
        ctx.add(h.Result("samework", "pgqueuer/procrastinate/dbos", "runs/s", skipped="smoke"))
    ctx.say(f"same-work table: N = {n} no-op jobs, passes {', '.join(PASSES)}")
    stats: dict[str, dict[str, h.Stats | None]] = {}
    notes: dict[str, dict[str, str]] = {}
    extras: dict[str, dict[str, dict[str, Any]]] = {}
    for key, system, _, backend, database in systems:
        label = LABELS[key]
        stats[key], notes[key], extras[key] = {}, {}, {}
        for pass_, what in PASSES.items():
            result = h.Result(_scenario(backend), label, f"{pass_}: {what}", unit="runs/s")
            try:
                figures = _measure(ctx, system, backend, database, n, pass_)
            except Exception as err:  # record why and carry on with the others
                result.skipped = f"failed: {err}"[:500]
                notes[key][pass_] = "failed"
                stats[key][pass_] = None
                ctx.add(result)
                continue
            if figures.get("skipped"):
                result.skipped = figures["skipped"]
                notes[key][pass_] = "n/a" if result.skipped.startswith("n/a") else "skipped"
                stats[key][pass_] = None
                ctx.add(result)
                continue
            result.stats = figures["per_s"]
            result.errors = figures["errors"]
            result.extra = {
                k: v.median
                for k, v in figures.items()
                if isinstance(v, h.Stats) and k not in ("per_s", "counted")
            }
            stats[key][pass_], extras[key][pass_] = figures["per_s"], result.extra
            ctx.add(result)
    ratios = _ratios(ctx, stats, extras)
    ctx.say("\n" + markdown(stats, notes, ratios, n))
    _write(ctx, stats, notes, ratios, n)


def _measure(
    ctx: h.Context, system: str, backend: str, database: str | None, n: int, pass_: str
) -> dict[str, Any]:
    if pass_ == "b" and system == "dbos":
        return {"skipped": "n/a: DBOS has no batch enqueue API"}
    if pass_ == "b" and system == "runkit":
        import runkit

        if not (hasattr(runkit, "NewRun") and hasattr(runkit.Runkit, "create_many")):
            return {"skipped": "Runkit.create_many / runkit.NewRun not in this runkit yet"}
    return h.repeat(ctx, lambda: _once(system, backend, database, n, pass_))


def _ratios(
    ctx: h.Context,
    stats: dict[str, dict[str, h.Stats | None]],
    extras: dict[str, dict[str, dict[str, Any]]],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for pass_, mine, other, factor in RATIOS:
        a, b = stats.get(mine, {}).get(pass_), stats.get(other, {}).get(pass_)
        if a is None or b is None:
            continue
        backend = mine.rsplit("-", 1)[1]
        ratio = a.median / b.median
        name = other.rsplit("-", 1)[0]
        result = h.Result(
            _scenario(backend),
            f"runkit / {name}",
            f"{pass_}: ratio",
            value=ratio,
            unit="x",
            baseline=name,
            baseline_value=b.median,
            ratio=ratio,
            ratio_key=f"{_scenario(backend)}.{pass_}.runkit_vs_{name}",
            extra={"runkit": a.median, name: b.median},
        )
        bare = extras.get(other, {}).get(pass_, {}).get("bare_insert_per_s")
        if bare:  # pass a: also against B-PG-1, the bare single-row INSERT
            result.extra["bare_insert_per_s"] = bare
            result.extra["ratio_vs_bare_insert"] = a.median / bare
        if factor is not None:
            result.target, result.met = f"runkit >= {factor:g}x {name}", ratio >= factor
        ctx.add(result)
        out.append(
            {
                "key": result.ratio_key,
                "pass": pass_,
                "runkit": mine,
                "other": other,
                "ratio": ratio,
                "target": factor,
                "met": result.met,
            }
        )
    return out


# --------------------------------------------------------------------------- report ------
def _cell(stats: h.Stats | None, note: str | None) -> str:
    if stats is None:
        return note or "-"
    text = f"{stats.median:,.0f}"
    return text + " (noisy)" if stats.noisy else text


def markdown(
    stats: dict[str, dict[str, h.Stats | None]],
    notes: dict[str, dict[str, str]],
    ratios: list[dict[str, Any]],
    n: int,
) -> str:
    head = " | ".join(f"{p}: {w}" for p, w in PASSES.items())
    lines = [f"Same work, N = {n}, runs/s (median):", "", f"| system | {head} |"]
    lines.append("|---|" + "---|" * len(PASSES))
    for key, row in stats.items():
        cells = " | ".join(_cell(row.get(p), notes[key].get(p)) for p in PASSES)
        lines.append(f"| {LABELS[key]} | {cells} |")
    if ratios:
        lines += ["", "| pass | ratio | value | target |", "|---|---|---|---|"]
        for r in ratios:
            target = "reported" if r["target"] is None else f">= {r['target']:g}"
            verdict = "" if r["met"] is None else (": met" if r["met"] else ": missed")
            name = f"{LABELS[r['runkit']]} / {LABELS[r['other']]}"
            lines.append(f"| {r['pass']} | {name} | {r['ratio']:.2f} | {target}{verdict} |")
    return "\n".join(lines)


def _write(
    ctx: h.Context,
    stats: dict[str, dict[str, h.Stats | None]],
    notes: dict[str, dict[str, str]],
    ratios: list[dict[str, Any]],
    n: int,
) -> None:
    name = "smoke-peers-samework.json" if ctx.smoke else "peers-samework.json"
    path: Path = h.RESULTS_DIR / name
    data = {
        "written_at": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "mode": "smoke" if ctx.smoke else "full",
        "n": n,
        "repetitions": ctx.repetitions,
        "unit": "runs/s",
        "passes": PASSES,
        "medians": {
            key: {p: (s.median if s else notes[key].get(p)) for p, s in row.items()}
            for key, row in stats.items()
        },
        "stats": {
            key: {p: (s.as_dict() if s else None) for p, s in row.items()}
            for key, row in stats.items()
        },
        "ratios": ratios,
    }
    h.RESULTS_DIR.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    ctx.say(f"  same-work medians -> {path}")
