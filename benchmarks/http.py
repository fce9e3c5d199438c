"""Issue #4, the HTTP API (S9, S10-lite, S11) on PostgreSQL.

The server runs pinned to core 0 (``taskset -c 0``, uvicorn, one worker, uvloop/httptools
when installed), the load generator pinned to core 1: ``wrk -t1 -c64 --latency`` (closed
loop; see ``_http_load``). PostgreSQL is not pinned. Traffic stays on 127.0.0.1. Over R
runs (full 100k, smoke 10k), each figure beside its baseline in the same run:

* S9 ``GET /api/v1/action-runs/{id}`` (random ids, ``X-API-Key``) beside B-HTTP-1, a bare
  Starlette endpoint reading the same row through a psycopg pool (``_http_server bare``);
* S10-lite ``GET /api/v1/action-runs?limit=100`` (first page, with total) beside the bare
  endpoint reading the same page and count;
* S11 ``POST /api/v1/action-runs`` (one commit each; without and with a fresh
  ``Idempotency-Key`` per request) beside B-PG-1, the raw single-row commit rate through
  psycopg (1 and 8 connections), and the bare endpoint's one-INSERT POST.

``/hello`` (constant bytes, B-HTTP-0) gives the server's own ceiling.

Without ``wrk``: in ``--smoke`` the load part is skipped (and says so: CI never fails for a
missing tool); a full run falls back to the Python generator, whose ~500 req/s ceiling makes
the ratios meaningless, and stores its ratios under separate keys.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from . import _harness as h
from ._http_load import python_load, wrk_available, wrk_load, wrk_version
from ._http_server import API_KEY, server_stack
from ._runkit import KIND

PORT = 18765
CONNECTIONS = 64
GET_TARGET = 0.50  # of the bare endpoint on PostgreSQL (S9, issue #4)
LIST_TARGET = 0.50  # of the bare list endpoint (S10, issue #4)
CREATE_TARGET = 0.70  # of B-PG-1 (S11, issue #4)
COMMIT_DATABASE = "bench_http_commit"  # B-PG-1's single-row INSERTs


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


class Server:
    def __init__(self, mode: str, database: str, *extra: str, port: int = PORT) -> None:
        command = [sys.executable, "-m", "benchmarks._http_server", mode, database, str(port)]
        self.proc = subprocess.Popen(
            [*pinned(0), *command, *extra], cwd=h.ROOT.parent, stderr=subprocess.PIPE
        )
        try:
            wait_port(port)
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

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _load(
    generator: str,
    method: str,
    paths: list[str],
    seconds: int,
    body: str | None = None,
    idempotency: str = "none",
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{PORT}"
    if generator == "wrk":
        out = wrk_load(
            base,
            method,
            paths,
            seconds,
            CONNECTIONS,
            body=body,
            idempotency=idempotency,
            api_key=API_KEY,
            pin=pinned(1),
        )
    else:
        out = python_load(
            base,
            method,
            paths,
            seconds,
            32,
            body=body,
            api_key=API_KEY,
            pin=pinned(1),
            cwd=h.ROOT.parent,
        )
    errors = []
    if out.pop("non_2xx"):
        errors.append(f"{out['requests']} requests, some answered non-2xx")
    if out.pop("socket_errors", 0):
        errors.append("socket errors (connect/read/write/timeout)")
    out["errors"] = errors
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
    if (why := h.http_unavailable()) is not None:
        ctx.add(h.Result("http", "runkit", "req/s", skipped=why))
        return
    if wrk_available():
        generator = "wrk"
    elif ctx.smoke:
        ctx.add(
            h.Result(
                "S9-pg",
                "runkit HTTP load",
                "req/s",
                skipped="wrk not installed: HTTP load skipped in smoke (apt-get install wrk)",
            )
        )
        return
    else:
        generator = "python"
        ctx.say("  wrk not installed: falling back to the Python generator (~500 req/s ceiling)")
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
    stack = server_stack()
    setup = {
        "generator": wrk_version() if generator == "wrk" else "python httpx (fallback)",
        "connections": CONNECTIONS if generator == "wrk" else 32,
        "seconds": seconds,
        "server": f"uvicorn 1 worker, loop={stack['loop']}, http={stack['http']}, core 0",
        "client_core": 1,
        "runs": runs,
    }
    ctx.say(f"http: {setup}")

    def load(*args: Any, **kw: Any) -> dict[str, Any]:
        return _load(generator, *args, **kw)

    f: dict[str, dict[str, Any]] = {}
    base = "/api/v1/action-runs"
    body = json.dumps({"kind": KIND, "definition": {}})
    with Server("bare", database):
        f["hello"] = h.repeat(ctx, lambda: load("GET", ["/hello"], seconds))
        f["bare"] = h.repeat(ctx, lambda: load("GET", [f"/bare/{i}" for i in ids], seconds))
        f["bare_list"] = h.repeat(ctx, lambda: load("GET", ["/bare-list?limit=100"], seconds))
        f["bare_create"] = h.repeat(ctx, lambda: load("POST", ["/bare-create"], seconds, body))
    with Server("runkit", database):
        f["get"] = h.repeat(ctx, lambda: load("GET", [f"{base}/{i}" for i in ids], seconds))
        f["list"] = h.repeat(ctx, lambda: load("GET", [f"{base}?limit=100"], seconds))
        f["create"] = h.repeat(ctx, lambda: load("POST", [base], seconds, body))
        f["create_idem"] = h.repeat(
            ctx, lambda: load("POST", [base], seconds, body, idempotency="unique")
        )
    # A database of its own: `--only http` runs without the family that makes bench_raw.
    h.fresh_database(COMMIT_DATABASE)
    pg1 = h.repeat(
        ctx,
        lambda: {
            "c1": commit_rate(COMMIT_DATABASE, 1, seconds / 2),
            "c8": commit_rate(COMMIT_DATABASE, 8, seconds / 2),
        },
    )
    _report(ctx, f, pg1, runs, generator, setup)


def _report(
    ctx: h.Context,
    f: dict[str, dict[str, Any]],
    pg1: dict[str, Any],
    runs: int,
    generator: str,
    setup: dict[str, Any],
) -> None:
    suffix = "" if generator == "wrk" else ".python"

    def extra(name: str) -> dict[str, Any]:
        return {
            **{k: f[name][k].median for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")},
            **setup,
        }

    def figure(scenario: str, name: str, system: str, metric: str, **kw: Any) -> None:
        ctx.add(
            h.Result(
                scenario,
                system,
                metric,
                stats=f[name]["rps"],
                unit="req/s",
                extra={**extra(name), **kw.pop("more", {})},
                errors=f[name]["errors"],
                **kw,
            )
        )

    def compared(
        scenario: str, name: str, system: str, metric: str, anchor: str, value: float, **kw: Any
    ) -> None:
        ratio = f[name]["rps"].median / value
        target = kw.pop("target")
        figure(
            scenario,
            name,
            system,
            metric,
            baseline=anchor,
            baseline_value=value,
            ratio=ratio,
            target=f">= {target:.0%} of {anchor}",
            met=ratio >= target,
            **kw,
        )

    figure("B-HTTP-0", "hello", "bare Starlette, constant bytes (server floor)", "GET")
    figure("S9-pg", "bare", "bare Starlette + psycopg (B-HTTP-1)", "GET run")
    compared(
        "S9-pg",
        "get",
        "runkit GET run",
        "GET run",
        "bare GET run",
        f["bare"]["rps"].median,
        target=GET_TARGET,
        ratio_key=f"S9-pg.get_vs_bare.wrk{suffix}",
    )
    figure("S10-pg", "bare_list", "bare Starlette + psycopg list (B-HTTP-1)", "GET list")
    compared(
        "S10-pg",
        "list",
        f"runkit GET list (limit 100 of {runs:,}, with total)",
        "GET list",
        "bare GET list",
        f["bare_list"]["rps"].median,
        target=LIST_TARGET,
        ratio_key=f"S10-pg.list_vs_bare.wrk{suffix}",
    )
    c1, c8 = pg1["c1"].median, pg1["c8"].median
    for label, key in (("1 conn", "c1"), ("8 conns", "c8")):
        ctx.add(
            h.Result(
                "S11-pg",
                f"raw psycopg autocommit INSERT, {label} (B-PG-1)",
                "commits/s",
                stats=pg1[key],
                unit="commits/s",
            )
        )
    figure("S11-pg", "bare_create", "bare Starlette + psycopg INSERT (B-HTTP-1)", "POST")
    for name, label, key in (
        ("create", "runkit POST create", "create_vs_commit"),
        ("create_idem", "runkit POST create, fresh Idempotency-Key", "create_idem_vs_commit"),
    ):
        compared(
            "S11-pg",
            name,
            label,
            "POST create",
            "B-PG-1 8 conns",
            c8,
            target=CREATE_TARGET,
            ratio_key=f"S11-pg.{key}.wrk{suffix}",
            more={
                "b_pg_1_c1": c1,
                "b_pg_1_c8": c8,
                "vs_b_pg_1_c1": f[name]["rps"].median / c1,
                "vs_bare_create": f[name]["rps"].median / f["bare_create"]["rps"].median,
            },
        )
