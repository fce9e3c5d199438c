"""Issue #3, the peers in the same run: pgqueuer, procrastinate and DBOS on PostgreSQL (each
in its own database of the cluster) and DBOS on SQLite, driven by ``_peer_main`` in a
subprocess each, with the same N as ``e2e``. Ratios compare ``runkit embedded`` of this
run's ``e2e`` family (one process enqueueing while its worker executes) with the same
shape of pass for each peer. Smoke mode skips the peers (they are slow to import and start,
and CI only checks runkit).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from . import _harness as h
from . import e2e

#: (scenario, system, database or None for SQLite, the runkit figure to compare, target).
PEERS = (
    ("S2-pg", "pgqueuer", "bench_pgqueuer", 1.0),
    ("S2-pg", "procrastinate", "bench_procrastinate", 5.0),
    ("S2-pg", "dbos", "bench_dbos", 2.0),
    ("S1-sqlite", "dbos", None, 2.0),
)


def _once(system: str, database: str | None, n: int) -> dict[str, Any]:
    with h.fresh_sqlite("dbos") as path:
        if database is None:
            target = f"sqlite:///{path}"
        else:
            conninfo = h.fresh_database(database)
            target = h.url(database, "postgresql") if system == "dbos" else conninfo
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks._peer_main", system, target, str(n)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=h.ROOT.parent,
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{system} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    out: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    errors = []
    if out["executions"] < n:
        errors.append(f"{out['executions']} of {n} jobs executed (lost)")
    if out["executions"] > n:
        errors.append(f"{out['executions']} executions of {n} jobs (duplicates)")
    out["errors"] = errors
    return out


def run(ctx: h.Context) -> None:
    if ctx.smoke:
        ctx.add(h.Result("peers", "pgqueuer/procrastinate/dbos", "runs/s", skipped="smoke mode"))
        return
    n = ctx.size(3000, 300)
    for scenario, system, database, factor in PEERS:
        if database is not None and not h.pg_available():
            continue
        label = f"{system} ({'PostgreSQL' if database else 'SQLite'})"
        try:
            figures = h.repeat(ctx, lambda s=system, d=database: _once(s, d, n))
        except Exception as err:  # record why and carry on with the others
            ctx.add(h.Result(scenario, label, "runs/s", skipped=f"failed: {err}"[:500]))
            continue
        mine = e2e.THROUGHPUT.get(f"{scenario}/runkit embedded")
        result = h.Result(
            scenario,
            label,
            "runs/s",
            stats=figures["runs_per_s"],
            unit="runs/s",
            extra={"enqueue_per_s": figures["enqueue_per_s"].median},
            errors=figures["errors"],
        )
        if mine is not None:
            ratio = mine["runs_per_s"].median / figures["runs_per_s"].median
            result.baseline, result.ratio = "runkit embedded / peer", ratio
            result.baseline_value = mine["runs_per_s"].median
            result.ratio_key = f"{scenario}.runkit_vs_{system}"
            result.target, result.met = f"runkit >= {factor:g}x {system}", ratio >= factor
        ctx.add(result)
