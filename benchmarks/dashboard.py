"""The dashboard's first runs page on a large PostgreSQL store: server time only.

A database of its own (``bench_dashboard``, dropped and recreated first, dropped after) is
filled with R runs (default 100,000) in a few seconds: rows made by the SQL store's own
encoder (``runkit.storage.sql.rows.run_values``) and inserted with SQLAlchemy Core in
batches, mixed kinds (the test kinds and ``approval_gate``), statuses consistent with their
timestamps, created over the last 30 days, a third of them started by a person through the
UI. Then the app ``runkit serve`` builds (``asgi_app``: the API and the dashboard) answers,
in-process through ``httpx.ASGITransport`` (no socket, no HTTP parser), with an ``admin``
API key header:

* ``GET /ui/``: the runs page (50 runs, newest first, the live rows and the chrome);
* ``GET /ui/fragments/runs``: the rows the page polls every 2 s;
* ``GET /api/v1/action-runs?limit=50``: the same page as JSON, the baseline.

N requests of each (default 50), after a warm-up, taken in turn so that drift hits all
three alike; median and p95 in ms, and each page's median over the API's. Target: the
first page under 100 ms. Absolute numbers depend on the machine; the ratio is the figure
that travels.

    .venv/bin/python benchmarks/dashboard.py [--runs 100000] [--requests 50] [--write]

``--write`` also writes benchmarks/results/dashboard.json. PostgreSQL is the cluster of
the other benchmarks (``BENCH_PG_HOST``/``BENCH_PG_PORT``/``BENCH_PG_USER``, default
``postgres@127.0.0.1:5432``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

if not __package__:  # run as a script: its directory would come first on sys.path, and
    # benchmarks/http.py would shadow the standard library's http; the repo root instead.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import httpx
import sqlalchemy as sa

from benchmarks import _harness as h
from benchmarks._runkit import prepare_schema

DATABASE = "bench_dashboard"
API_KEY = "rk_bench_dashboard_" + "x" * 32
PAGE_TARGET_MS = 100.0
BATCH = 5_000
WARMUP = 5
#: kind -> (weight, statuses it takes, with weights)
MIX: dict[str, tuple[int, dict[str, int]]] = {
    "noop": (30, {"succeeded": 80, "failed": 5, "pending": 10, "queued": 5}),
    "sleep": (25, {"succeeded": 60, "running": 10, "paused": 5, "cancelled": 15, "queued": 10}),
    "emit_logs": (25, {"succeeded": 85, "running": 5, "failed": 10}),
    "fail_n_times": (10, {"succeeded": 50, "failed": 50}),
    "approval_gate": (10, {"awaiting_approval": 30, "succeeded": 50, "rejected": 20}),
}
DEFINITIONS: dict[str, dict[str, Any]] = {
    "noop": {},
    "sleep": {"seconds": 30.0},
    "emit_logs": {"count": 200, "intervalSeconds": 0.01},
    "fail_n_times": {"times": 2, "backoffSeconds": 0.1},
    "approval_gate": {
        "title": "Deploy to production",
        "message": "Release 2.4.1: 14 changes, migrations included.",
        "groups": ["release-managers"],
        "requiredApprovals": 1,
    },
}
TARGETS = {
    "ui page": "/ui/",
    "ui rows fragment": "/ui/fragments/runs",
    "api list limit=50": "/api/v1/action-runs?limit=50",
}
BASELINE = "api list limit=50"


# ------------------------------------------------------------------ the data -----------
def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def make_rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` runs as the SQL store writes them, oldest first (so ``seq`` follows
    ``created_at``, as it does for runs made one by one)."""
    from runkit import Run, Status
    from runkit.storage.sql.rows import run_values

    rng = random.Random(seed)
    now = datetime.now(UTC)
    kinds = {k: w for k, (w, _) in MIX.items()}
    offsets = sorted((rng.uniform(0, 30 * 86400) for _ in range(count)), reverse=True)
    rows = []
    for offset in offsets:
        kind = _pick(rng, kinds)
        status = Status(_pick(rng, MIX[kind][1]))
        created = now - timedelta(seconds=offset)
        by_person = rng.random() < 1 / 3
        fields: dict[str, Any] = {
            "id": UUID(int=rng.getrandbits(128), version=4),
            "kind": kind,
            "status": status,
            "created_at": created,
            "updated_at": created,
            "definition": DEFINITIONS[kind],
            "trigger_method": "ui" if by_person else "api",
            "trigger_source_type": "user" if by_person else "api_key",
            "trigger_source_id": rng.choice(["ada", "grace", "linus"]) if by_person else "bench",
            "log_seq": 2,
        }
        if status not in (Status.PENDING, Status.QUEUED):
            started = created + timedelta(seconds=rng.uniform(0.01, 2))
            fields.update(started_at=started, attempt=1, updated_at=started)
        if status is Status.RUNNING:
            fields.update(
                worker_id="bench:1:abc",
                lease_token="t",
                deadline_at=now + timedelta(days=1),  # alive: not "stopped reporting"
                progress={"elapsed": 3.0, "seconds": 30.0},
            )
        if status.terminal:
            done = fields["started_at"] + timedelta(seconds=rng.expovariate(1 / 5))
            fields.update(completed_at=done, updated_at=done, log_seq=6)
            if status is Status.SUCCEEDED:
                fields["result"] = {"ok": True}
            elif status is Status.FAILED:
                fields["error"] = {"type": "Retryable", "message": "failure 1 of 2"}
            if kind == "approval_gate":
                decision = "approve" if status is Status.SUCCEEDED else "reject"
                fields["approvals"] = (
                    {"by": "grace", "decision": decision, "reason": None, "at": done.isoformat()},
                )
        rows.append(run_values(Run(**fields)))
    return rows


def seed(url: str, count: int) -> float:
    """Fill the database at ``url`` (schema made by runkit first); the seconds it took."""
    from runkit.storage.sql.schema import runs

    asyncio.run(prepare_schema(url))
    began = time.perf_counter()
    rows = make_rows(count)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for start in range(0, len(rows), BATCH):
                conn.execute(sa.insert(runs), rows[start : start + BATCH])
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE runkit_runs")
    finally:
        engine.dispose()
    return time.perf_counter() - began


# ------------------------------------------------------------------ the timing ---------
async def measure(url: str, requests: int) -> dict[str, list[float]]:
    """``requests`` timings (ms) of each target after a warm-up, taken in turn."""
    os.environ["RUNKIT_ENABLE_TEST_KINDS"] = "1"  # as `make serve`: the kinds of the runs
    from runkit import Runkit
    from runkit_contrib import ApiKeys, asgi_app, lifespan

    rk = Runkit(url)
    app = asgi_app(rk, auth=ApiKeys({"bench": API_KEY}, roles={"admin"}))
    samples: dict[str, list[float]] = {name: [] for name in TARGETS}
    async with lifespan(rk, workers=0):
        transport = httpx.ASGITransport(app=app)
        headers = {"X-API-Key": API_KEY}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers=headers
        ) as client:
            for name, path in TARGETS.items():
                answer = await client.get(path)
                check(name, answer)
                for _ in range(WARMUP - 1):
                    await client.get(path)
            for _ in range(requests):
                for name, path in TARGETS.items():
                    began = time.perf_counter()
                    answer = await client.get(path)
                    samples[name].append((time.perf_counter() - began) * 1000)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{path} answered {answer.status_code}")
    return samples


def check(name: str, answer: httpx.Response) -> None:
    """Each target answers the page it should: 200 and 50 runs."""
    if answer.status_code != 200:
        raise RuntimeError(f"{name} answered {answer.status_code}: {answer.text[:500]}")
    if name.startswith("api"):
        runs = len(answer.json()["runs"])
    else:
        runs = answer.text.count("<tr data-run-id=")
    if runs != 50:
        raise RuntimeError(f"{name} shows {runs} runs, not 50")


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    base = h.percentile(samples[BASELINE], 0.5)
    out = {}
    for name, values in samples.items():
        median = h.percentile(values, 0.5)
        out[name] = {
            "n": len(values),
            "median_ms": round(median, 2),
            "p95_ms": round(h.percentile(values, 0.95), 2),
            "max_ms": round(max(values), 2),
            "vs_api_median": round(median / base, 2),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the store")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per target")
    parser.add_argument(
        "--write", action="store_true", help="write benchmarks/results/dashboard.json"
    )
    args = parser.parse_args(argv)
    if not h.pg_available():
        print("PostgreSQL is not reachable at", h.dsn("postgres"), file=sys.stderr)
        return 1
    h.fresh_database(DATABASE)
    url = h.url(DATABASE)
    try:
        seconds = seed(url, args.runs)
        print(f"seeded {args.runs:,} runs in {seconds:.1f} s ({h.dsn(DATABASE)})")
        figures = summarize(asyncio.run(measure(url, args.requests)))
    finally:
        drop(DATABASE)
    page = figures["ui page"]["median_ms"]
    met = page < PAGE_TARGET_MS
    print(f"\n{'':<20}{'median ms':>10}{'p95 ms':>9}{'max ms':>9}{'vs API':>8}")
    for name, f in figures.items():
        print(
            f"{name:<20}{f['median_ms']:>10.1f}{f['p95_ms']:>9.1f}{f['max_ms']:>9.1f}"
            f"{f['vs_api_median']:>7.2f}x"
        )
    verdict = "met" if met else "MISSED"
    print(f"\ntarget: first page (GET /ui/) median < {PAGE_TARGET_MS:g} ms: {verdict}")
    if args.write:
        record = {
            "benchmark": "dashboard",
            "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "runs": args.runs,
            "requests": args.requests,
            "warmup": WARMUP,
            "transport": "httpx.ASGITransport, in-process",
            "targets": TARGETS,
            "figures": figures,
            "target": {"ui page median_ms": f"< {PAGE_TARGET_MS:g}", "met": met},
            "seed_seconds": round(seconds, 1),
            "environment": h.environment(),
        }
        h.RESULTS_DIR.mkdir(exist_ok=True)
        path = h.RESULTS_DIR / "dashboard.json"
        path.write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(f"wrote {path}")
    return 0


def drop(name: str) -> None:
    import psycopg

    with psycopg.connect(h.admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
