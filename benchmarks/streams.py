"""Issue #12: what idle log streams cost the rest of the API, on PostgreSQL.

The runkit server (uvicorn, one worker, core 0, ``_http_server streams``: the API with the
stream caps raised past K) answers ``GET /api/v1/action-runs/{id}`` (random pending runs,
the Python load generator on core 1, 4 connections: a latency probe, not a throughput
test) twice: with no stream open, then with K idle SSE streams open (full 1,000, smoke
200; one a pending run, held by ``_stream_holder``, one process on core 1). Between the
two, with no request in flight and the streams' opening reads done, the server's CPU is
sampled for the measuring window.

Reported: GET p99 with K streams over p99 without (lower is better, parity 1; the probe of
issue #12 saw 417 ms p99 at 1,500 streams, 82 ms p50 at 500), p50 and req/s beside it, and
the server's idle CPU with and without the streams (it was 110 % of a core at 1,500).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _harness as h
from ._http_load import python_load
from ._http_server import API_KEY
from .http import Server, pinned
from .pagination import _seed

PORT = 18767
CONNECTIONS = 4
#: GET p99 with the streams open may be at most this many times p99 without.
P99_TARGET = 2.0
#: From the last stream open to the CPU sample: the streams' first reads are done.
SETTLE_SECONDS = 3.0


class Holder:
    """``_stream_holder`` in a subprocess: K streams open until :meth:`close`."""

    def __init__(self, paths: list[str]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(paths))
            self.paths_file = Path(f.name)
        command = [sys.executable, "-m", "benchmarks._stream_holder", "127.0.0.1", str(PORT)]
        self.proc = subprocess.Popen(
            [*pinned(1), *command, API_KEY, str(self.paths_file)],
            cwd=h.ROOT.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.close()
            raise RuntimeError(f"stream holder failed: {line!r}")
        self.opened = int(line.split()[1])

    def close(self) -> dict[str, Any]:
        """Close the streams; the holder's counts (empty if it crashed)."""
        out, _ = self.proc.communicate(timeout=60)
        self.paths_file.unlink(missing_ok=True)
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT ")) if lines else {}
        return result


def _idle_cpu(pid: int, seconds: float) -> float:
    """The share of one core ``pid`` used over ``seconds`` with no request in flight."""
    before = h.process_cpu_seconds([pid])
    time.sleep(seconds)
    return (h.process_cpu_seconds([pid]) - before) / seconds


def run(ctx: h.Context) -> None:
    if (why := h.http_unavailable()) is not None:
        ctx.add(h.Result("streams-pg", "runkit", "GET p99", skipped=why))
        return
    k = ctx.size(1000, 200)
    seconds = ctx.size(10, 3)
    database = "bench_streams"
    h.fresh_database(database)
    asyncio.run(_seed(h.url(database), k + 200, 0))
    import psycopg

    with psycopg.connect(h.dsn(database)) as conn:
        ids = [str(r[0]) for r in conn.execute("SELECT id FROM runkit_runs ORDER BY seq")]
    streamed, probed = ids[:k], ids[k:]
    base = "/api/v1/action-runs"
    url = f"http://127.0.0.1:{PORT}"

    def probe() -> dict[str, Any]:
        out = python_load(
            url,
            "GET",
            [f"{base}/{i}" for i in probed],
            seconds,
            CONNECTIONS,
            api_key=API_KEY,
            pin=pinned(1),
            cwd=h.ROOT.parent,
        )
        out["errors"] = ["some GETs answered non-2xx"] if out.pop("non_2xx") else []
        out.pop("socket_errors", None)
        return out

    with Server("streams", database, port=PORT) as server:
        without: dict[str, Any] = h.repeat(ctx, probe)
        cpu_without = _idle_cpu(server.proc.pid, seconds)
        holder = Holder([f"{base}/{i}/logs/stream" for i in streamed])
        try:
            time.sleep(SETTLE_SECONDS)  # each new stream reads its run once or twice
            cpu_with = _idle_cpu(server.proc.pid, seconds)
            with_streams: dict[str, Any] = h.repeat(ctx, probe)
        finally:
            held = holder.close()
    errors: list[str] = with_streams["errors"]
    if holder.opened != k:
        errors.append(f"{holder.opened} of {k} streams opened")
    if held.get("closed_early") or held.get("failed"):
        errors.append(f"streams closed early: {held}")
    p99_without = without["p99_ms"].median
    ratio = with_streams["p99_ms"].median / p99_without
    setup = {
        "streams": k,
        "connections": CONNECTIONS,
        "seconds": seconds,
        "server": "uvicorn 1 worker, core 0; load generator and stream holder on core 1",
    }

    def latencies(f: dict[str, Any]) -> dict[str, Any]:
        return {key: f[key].median for key in ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms")}

    ctx.add(
        h.Result(
            "streams-pg",
            "runkit GET run, no stream open",
            "GET p99",
            stats=without["p99_ms"],
            unit="ms",
            extra={**latencies(without), **setup},
            errors=without["errors"],
        )
    )
    ctx.add(
        h.Result(
            "streams-pg",
            f"runkit GET run, {k:,} idle streams open",
            "GET p99",
            stats=with_streams["p99_ms"],
            unit="ms",
            baseline="no stream open",
            baseline_value=p99_without,
            ratio=ratio,
            ratio_key="streams-pg.get_p99_with_vs_without",
            higher_is_better=False,
            target=f"<= {P99_TARGET:g}x p99 without streams",
            met=ratio <= P99_TARGET,
            extra={**latencies(with_streams), **setup, "holder": held},
            errors=errors,
        )
    )
    ctx.add(
        h.Result(
            "streams-pg",
            f"server CPU, {k:,} idle streams open, no requests",
            "idle CPU",
            value=round(cpu_with * 100, 1),
            unit="% of a core",
            baseline="no stream open",
            baseline_value=round(cpu_without * 100, 1),
            extra=setup,
        )
    )
