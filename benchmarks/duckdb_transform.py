"""``duckdb_transform``'s overhead per run, beside DuckDB called directly.

Two scenarios, on the same temporary data root (``configure_data``, reset afterwards):

* **memory**: ``database`` ``:memory:``;
* **file**: ``database`` ``bench/select42.duckdb``, a file under the root.

runkit: :data:`RUNS` sequential runs of ``SELECT 42``, each created with ``execute=True`` on
a memory store (``memory://``) and executed by an embedded worker of concurrency 1 started
beforehand; a run's time is from before ``create`` to ``rk.wait`` returning (default poll;
it wakes on the run's own move). Direct: ``open_sandbox`` + ``run_last`` + ``close`` (what the
kind calls, with the same :func:`current_settings` and the same real root; the file is the
same one), on the event loop's thread, nothing else around it.

The samples are interleaved: each sample is one runkit run and one direct run, in turns
which one goes first. A round is :data:`RUNS` samples (smoke: 20), and there are
:data:`ROUNDS` rounds (smoke: 1) after a warm-up of :data:`WARMUP` samples. Per round: the
mean wall time (``time.perf_counter``) and CPU time of the process (``time.process_time``,
DuckDB's threads and the embedded worker included) per run; the figures are their medians
over the rounds. The overhead is runkit minus direct (per round, then the median); the ratio
is direct / runkit (higher is better; 1.0 is parity).

Correct when every runkit run succeeded with result rows ``[[42]]`` and every direct call
returned them too; otherwise the result carries errors (exit status 1).

``python -m benchmarks.duckdb_transform [--smoke]`` runs it alone; ``run(ctx)`` is the
family entry.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _harness as h

KIND = "duckdb_transform"
SQL = "SELECT 42"
EXPECTED_ROWS = [[42]]
RUNS = 200
ROUNDS = 5
WARMUP = 10
WAIT_TIMEOUT = 60.0
#: Scenario suffix and the definition's ``database``.
DATABASES = (("memory", ":memory:"), ("file", "bench/select42.duckdb"))


def _direct(database: Path | None, root: Path) -> tuple[float, float, list[Any]]:
    """One direct call: (wall s, CPU s, result rows)."""
    from runkit.kinds.data.duckdb_sandbox import current_settings, open_sandbox, run_last

    wall, cpu = time.perf_counter(), time.process_time()
    con = open_sandbox(database, root, current_settings())
    try:
        result = run_last(con, SQL, None, None, 20)
    finally:
        con.close()
    return time.perf_counter() - wall, time.process_time() - cpu, result["rows"]


async def _runkit(rk: Any, database: str) -> tuple[float, float, str | None]:
    """One run through the worker: (wall s, CPU s, what went wrong or None)."""
    wall, cpu = time.perf_counter(), time.process_time()
    created = await rk.create(KIND, {"sql": SQL, "database": database}, execute=True)
    run = await rk.wait(created.run.id, timeout=WAIT_TIMEOUT)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if run.status.value != "succeeded":
        return wall, cpu, f"run {run.status.value}: {run.error}"
    rows = (run.result or {}).get("rows")
    return wall, cpu, None if rows == EXPECTED_ROWS else f"result rows {rows!r}"


async def _samples(
    rk: Any, database: str, direct_path: Path | None, root: Path, n: int
) -> dict[str, Any]:
    """``n`` interleaved samples; per-run means (ms) and the errors."""
    walls: dict[str, list[float]] = {"runkit": [], "direct": []}
    cpus: dict[str, list[float]] = {"runkit": [], "direct": []}
    errors: list[str] = []

    async def one_runkit() -> None:
        wall, cpu, error = await _runkit(rk, database)
        walls["runkit"].append(wall)
        cpus["runkit"].append(cpu)
        if error:
            errors.append(f"runkit: {error}")

    def one_direct() -> None:
        wall, cpu, rows = _direct(direct_path, root)
        walls["direct"].append(wall)
        cpus["direct"].append(cpu)
        if rows != EXPECTED_ROWS:
            errors.append(f"direct: result rows {rows!r}")

    for i in range(n):
        if i % 2 == 0:
            await one_runkit()
            one_direct()
        else:
            one_direct()
            await one_runkit()
    out: dict[str, Any] = {"errors": errors}
    for system in ("runkit", "direct"):
        out[f"{system}_ms"] = statistics.fmean(walls[system]) * 1000
        out[f"{system}_cpu_ms"] = statistics.fmean(cpus[system]) * 1000
        out[f"{system}_p50_ms"] = statistics.median(walls[system]) * 1000
    out["overhead_ms"] = out["runkit_ms"] - out["direct_ms"]
    out["cpu_overhead_ms"] = out["runkit_cpu_ms"] - out["direct_cpu_ms"]
    out["p50_overhead_ms"] = out["runkit_p50_ms"] - out["direct_p50_ms"]
    return out


async def _scenario(
    ctx: h.Context, real_root: Path, database: str, n: int, rounds: int
) -> dict[str, Any]:
    """A fresh memory store and embedded worker; warm-up, then ``rounds`` rounds. The
    direct calls use the file the kind resolves ``database`` to (None: in memory)."""
    import runkit

    direct_path = None if database == ":memory:" else real_root / database
    async with (
        runkit.Runkit("memory://", autoload_plugins=False) as rk,
        runkit.embedded_workers(rk, concurrency=1),
    ):
        # Always warm (smoke too): the first runs load DuckDB's ICU data and runkit's paths.
        warm = await _samples(rk, database, direct_path, real_root, ctx.size(WARMUP, 2))
        rounds_out = []
        for i in range(rounds):
            rounds_out.append(figures := await _samples(rk, database, direct_path, real_root, n))
            ctx.say(
                f"  round {i + 1}: runkit {figures['runkit_ms']:.2f} ms/run,"
                f" direct {figures['direct_ms']:.2f} ms/run,"
                f" overhead {figures['overhead_ms']:.2f} ms"
                f" (CPU {figures['cpu_overhead_ms']:.2f} ms)"
            )
    out: dict[str, Any] = {
        "errors": [f"warm-up {e}" for e in warm["errors"]]
        + [e for r in rounds_out for e in r["errors"]]
    }
    for key in rounds_out[-1]:
        if key != "errors":
            out[key] = h.Stats.of([float(r[key]) for r in rounds_out])
    return out


def _summarize(errors: list[str]) -> list[str]:
    """At most three distinct messages, with the count."""
    if not errors:
        return []
    distinct = list(dict.fromkeys(errors))
    return [f"{len(errors)} incorrect runs or calls: {'; '.join(distinct[:3])}"]


def _report(ctx: h.Context, scenario: str, what: str, f: dict[str, Any], n: int) -> None:
    direct, mine = f["direct_ms"], f["runkit_ms"]
    ctx.add(
        h.Result(
            scenario,
            "DuckDB direct",
            "wall per run",
            stats=direct,
            unit="ms",
            extra={
                "what": what,
                "cpu_ms_per_run": f["direct_cpu_ms"].median,
                "sample_p50_ms": f["direct_p50_ms"].median,
            },
        )
    )
    ctx.add(
        h.Result(
            scenario,
            "runkit duckdb_transform",
            "wall per run",
            stats=mine,
            unit="ms",
            baseline="DuckDB direct",
            baseline_value=direct.median,
            ratio=direct.median / mine.median if mine.median else None,
            ratio_key=f"{scenario}.direct_vs_runkit",
            higher_is_better=True,
            extra={
                "what": what,
                "runs_per_round": n,
                "cpu_ms_per_run": f["runkit_cpu_ms"].median,
                "sample_p50_ms": f["runkit_p50_ms"].median,
            },
            errors=_summarize(f["errors"]),
        )
    )
    ctx.add(
        h.Result(
            scenario,
            "runkit overhead",
            "wall per run (runkit - direct)",
            stats=f["overhead_ms"],
            unit="ms",
            extra={
                "cpu_overhead_ms_per_run": f["cpu_overhead_ms"].median,
                "sample_p50_overhead_ms": f["p50_overhead_ms"].median,
            },
        )
    )
    ctx.say(
        f"  CPU per run: runkit {f['runkit_cpu_ms'].median:.2f} ms,"
        f" direct {f['direct_cpu_ms'].median:.2f} ms"
        f" (overhead {f['cpu_overhead_ms'].median:.2f} ms)"
    )


def run(ctx: h.Context) -> None:
    from runkit.kinds.data import DataPolicy, configure_data

    n, rounds = ctx.size(RUNS, 20), ctx.size(ROUNDS, 1)
    ctx.say(
        f"duckdb_transform: {rounds} x {n} sequential runs of {SQL!r} (memory store, embedded"
        f" worker, concurrency 1) interleaved with open_sandbox + run_last + close"
    )
    base = Path(tempfile.mkdtemp(prefix="bench-duckdb-"))
    configure_data(DataPolicy(root=base / "data"))
    try:
        (base / "data" / "bench").mkdir(parents=True)
        real_root = (base / "data").resolve()
        for suffix, database in DATABASES:
            scenario = f"{KIND}-{suffix}"
            figures = asyncio.run(_scenario(ctx, real_root, database, n, rounds))
            _report(ctx, scenario, f"{SQL!r} on {database}", figures, n)
    finally:
        configure_data(None)
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.duckdb_transform")
    parser.add_argument("--smoke", action="store_true", help="1 round of 20 runs")
    args = parser.parse_args(argv)
    run(h.Context(smoke=args.smoke, reps=1))


if __name__ == "__main__":
    main()
