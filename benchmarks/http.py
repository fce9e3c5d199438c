"""Issue #4, the HTTP API (S9, S10-lite, S11) on PostgreSQL.

The server runs pinned to core 0 (``taskset -c 0``, uvicorn, one worker), the load
generator (``_http_load``, closed loop, 32 connections) pinned to core 1; PostgreSQL is not
pinned. Traffic stays on 127.0.0.1. Over R runs (full 100k, smoke 10k):

* S9 ``GET /api/v1/action-runs/{id}`` (random ids) beside a bare Starlette endpoint that
  reads the same row through a psycopg pool (``_http_server bare``): req/s, p50/p99;
* S10-lite ``GET /api/v1/action-runs?limit=100`` (first page; offset-paginated, with total);
* S11 ``POST /api/v1/action-runs`` (one commit each) beside B-PG-1, the raw single-row
  commit rate through psycopg with 1 and 8 connections.

SSE append -> client latency is not measured yet (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import _harness as h
from ._runkit import KIND

PORT = 18765
CONCURRENCY = 32
GET_TARGET = 0.40  # of the bare endpoint on PostgreSQL (S9)
CREATE_TARGET = 0.70  # of min(B-PG-1, bare) (S11)


def _pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


class Server:
    def __init__(self, mode: str, database: str) -> None:
        command = [sys.executable, "-m", "benchmarks._http_server", mode, database, str(PORT)]
        self.proc = subprocess.Popen(
            [*_pinned(0), *command], cwd=h.ROOT.parent, stderr=subprocess.PIPE
        )
        try:
            _wait_port(PORT)
        except RuntimeError:
            self.stop()
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError(f"{mode} server failed: {err[-1500:]}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _load(method: str, paths: list[str], seconds: float, body: str | None = None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(paths))
        paths_file = f.name
    command = [
        sys.executable,
        "-m",
        "benchmarks._http_load",
        f"http://127.0.0.1:{PORT}",
        method,
        paths_file,
        str(seconds),
        str(CONCURRENCY),
        *([body] if body else []),
    ]
    proc = subprocess.run(
        [*_pinned(1), *command], capture_output=True, text=True, cwd=h.ROOT.parent, timeout=300
    )
    Path(paths_file).unlink(missing_ok=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"load generator failed: {proc.stderr[-1500:]}")
    out: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    out["errors"] = [f"{out['non_2xx']} non-2xx answers"] if out["non_2xx"] else []
    del out["non_2xx"]
    return out


def commit_rate(database: str, connections: int, seconds: float) -> float:
    """B-PG-1: autocommit single-row INSERTs per second over ``connections`` threads."""
    import psycopg

    with psycopg.connect(h.dsn(database), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, v text)")
    counts = [0] * connections
    end = time.perf_counter() + seconds

    def worker(i: int) -> None:
        with psycopg.connect(h.dsn(database), autocommit=True) as conn:
            while time.perf_counter() < end:
                conn.execute("INSERT INTO bench_commit (v) VALUES (%s)", ["x"])
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def run(ctx: h.Context) -> None:
    try:
        import runkit_contrib

        assert callable(runkit_contrib.asgi_app)
    except Exception as err:
        ctx.add(h.Result("http", "runkit", "req/s", skipped=f"runkit_contrib unusable: {err}"))
        return
    if not h.pg_available():
        ctx.add(h.Result("http", "runkit", "req/s", skipped="PostgreSQL unreachable"))
        return
    from .pagination import _seed

    runs = ctx.size(100_000, 10_000)
    seconds = ctx.size(10, 2)
    database = "bench_runkit"
    h.fresh_database(database)
    asyncio.run(_seed(h.url(database), runs, 10))
    import psycopg

    with psycopg.connect(h.dsn(database)) as conn:
        ids = [
            str(r[0])
            for r in conn.execute("SELECT id FROM runkit_runs ORDER BY random() LIMIT 2000")
        ]
    ctx.say(f"http: {runs} runs, {CONCURRENCY} connections, {seconds} s per load, server on core 0")

    figures: dict[str, dict[str, Any]] = {}
    server = Server("bare", database)
    try:
        figures["bare"] = h.repeat(ctx, lambda: _load("GET", [f"/bare/{i}" for i in ids], seconds))
    finally:
        server.stop()
    server = Server("runkit", database)
    base = "/api/v1/action-runs"
    body = json.dumps({"kind": KIND, "definition": {}})
    try:
        figures["get"] = h.repeat(ctx, lambda: _load("GET", [f"{base}/{i}" for i in ids], seconds))
        figures["list"] = h.repeat(ctx, lambda: _load("GET", [f"{base}?limit=100"], seconds))
        figures["create"] = h.repeat(ctx, lambda: _load("POST", [base], seconds, body))
    finally:
        server.stop()
    pg1 = h.repeat(
        ctx,
        lambda: {
            "c1": commit_rate("bench_raw", 1, seconds / 2),
            "c8": commit_rate("bench_raw", 8, seconds / 2),
        },
    )
    _report(ctx, figures, pg1, runs)


def _report(ctx: h.Context, f: dict[str, dict[str, Any]], pg1: dict[str, Any], runs: int) -> None:
    def extra(name: str) -> dict[str, Any]:
        return {"p50_ms": f[name]["p50_ms"].median, "p99_ms": f[name]["p99_ms"].median}

    bare = f["bare"]["rps"].median
    ctx.add(
        h.Result(
            "S9-pg",
            "bare Starlette + psycopg (B-HTTP floor)",
            "GET run",
            stats=f["bare"]["rps"],
            unit="req/s",
            extra=extra("bare"),
            errors=f["bare"]["errors"],
        )
    )
    ratio = f["get"]["rps"].median / bare
    ctx.add(
        h.Result(
            "S9-pg",
            "runkit GET run",
            "GET run",
            stats=f["get"]["rps"],
            unit="req/s",
            baseline="bare",
            baseline_value=bare,
            ratio=ratio,
            ratio_key="S9-pg.get_vs_bare",
            target=f">= {GET_TARGET:.0%} of bare",
            met=ratio >= GET_TARGET,
            extra=extra("get"),
            errors=f["get"]["errors"],
        )
    )
    ratio = f["list"]["rps"].median / bare
    ctx.add(
        h.Result(
            "S10-pg",
            f"runkit GET list (limit 100 of {runs:,})",
            "GET list",
            stats=f["list"]["rps"],
            unit="req/s",
            baseline="bare GET run",
            baseline_value=bare,
            ratio=ratio,
            ratio_key="S10-pg.list_vs_bare",
            target=">= 30% of bare",
            met=ratio >= 0.30,
            extra=extra("list"),
            errors=f["list"]["errors"],
        )
    )
    anchor = min(pg1["c8"].median, bare)
    ratio = f["create"]["rps"].median / anchor
    ctx.add(
        h.Result(
            "S11-pg",
            "runkit POST create",
            "POST create",
            stats=f["create"]["rps"],
            unit="req/s",
            baseline="min(B-PG-1 8 conns, bare)",
            baseline_value=anchor,
            ratio=ratio,
            ratio_key="S11-pg.create_vs_commit",
            target=f">= {CREATE_TARGET:.0%}",
            met=ratio >= CREATE_TARGET,
            extra={**extra("create"), "b_pg_1_c1": pg1["c1"].median, "b_pg_1_c8": pg1["c8"].median},
            errors=f["create"]["errors"],
        )
    )
