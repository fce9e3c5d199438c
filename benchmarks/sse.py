"""Issue #4, S8: SSE append-commit -> client-receive latency on PostgreSQL.

One run is created and claimed (a real ``Lease``); an appender writes 1 line per
``Runkit.append_logs`` call at 200 lines/s (open loop), or a burst of 5,000 lines/s in
batches of 25, each line's ``data`` carrying ``t_ns = time.time_ns()``. K clients
(``_sse_clients``, one process pinned to core 1, raw asyncio sockets) follow
``GET /api/v1/action-runs/{id}/logs/stream?after=<cursor>`` on uvicorn (one worker, core 0,
``_http_server sse``), each reconnecting once mid-window with ``Last-Event-ID``. At the end
the run is completed, which ends every stream.

Modes, all in the same run:

* ``floor`` (B-SSE-1): the same server broadcasting preformatted in-memory frames (encoded
  once per line) to K clients: the transport floor.
* ``in-process``: the appender runs inside the server process (``/bench/append``), so the
  stream wakes on runkit's in-process log signal.
* ``cross-process``: the appender is this process, with its own ``Runkit`` on the same
  database; the server learns of entries only by its stream poll
  (``StreamSettings.poll_interval``, 0.5 s by default).

Latency is per delivered line: receive time minus the moment ``append_logs`` returned
(commit -> receive; the appender records ``[seq, t before, t after]``), and minus ``t_ns``
(call -> receive). Same machine, same clock. Deliveries/s counts lines received by all
clients over the append window. Gaps or duplicates across the reconnect make a result
incorrect.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from typing import Any

import httpx

from . import _harness as h
from ._http_server import API_KEY, paced_append, server_stack
from .http import Server, pinned

PORT = 18766
#: The in-memory floor's run id (cursor prefix only; no such run exists).
FLOOR_RUN = uuid.UUID("00000000-0000-4000-8000-000000000000")
P50_TARGET_MS = 10.0
P99_TARGET_MS = 50.0
STREAM = "/api/v1/action-runs/{}/logs/stream"


def _cursor(run_id: str, seq: int) -> str:
    return f"{uuid.UUID(run_id).hex[:8]}-{seq}"


class Clients:
    def __init__(self, path: str, after: str, k: int, reconnect: bool, timeout: float) -> None:
        command = [
            sys.executable,
            "-m",
            "benchmarks._sse_clients",
            "127.0.0.1",
            str(PORT),
            path,
            after,
            str(k),
            API_KEY,
            "1" if reconnect else "0",
            str(timeout),
        ]
        self.proc = subprocess.Popen(
            [*pinned(1), *command],
            cwd=h.ROOT.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "READY":
            self.proc.kill()
            raise RuntimeError(f"SSE clients failed: {line} {self.proc.stderr.read()[-1500:]}")  # type: ignore[union-attr]

    def go(self, seconds: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"GO {seconds}\n")
        self.proc.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=timeout)
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(f"SSE clients failed: {err[-1500:]}")
        result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
        return result


def one_pass(
    mode: str, database: str, k: int, rate: float, batch: int, seconds: float
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{PORT}"
    reconnect = mode != "floor"  # the floor has no cursor to resume from
    timeout = seconds + 30
    with httpx.Client(base_url=base, timeout=timeout + 30) as control:
        if mode == "floor":
            prep = control.post("/bench/floor-reset").json()
            path = "/bench/floor-stream"
        elif mode == "in-process":
            prep = control.post("/bench/prepare").json()
            path = STREAM.format(prep["run_id"])
        else:
            return asyncio.run(_cross_process(database, k, rate, batch, seconds, timeout))
        clients = Clients(path, _cursor(prep["run_id"], prep["last_seq"]), k, reconnect, timeout)
        clients.go(seconds)
        query = {"rate": rate, "seconds": seconds, "batch": batch}
        if mode == "floor":
            query["floor"] = 1
        appended = control.post("/bench/append", params=query).json()
        control.post("/bench/finish", params={"floor": 1} if mode == "floor" else {})
        got = clients.result(timeout + 10)
    return _summarize(appended["records"], appended["late"], got, k)


async def _cross_process(
    database: str, k: int, rate: float, batch: int, seconds: float, timeout: float
) -> dict[str, Any]:
    from runkit import Lease

    from ._http_server import WORKER_ID
    from ._runkit import KIND, make_runkit

    rk = make_runkit(h.url(database))
    async with rk:
        created = await rk.create(KIND, {}, execute=True)
        (run,) = await rk.ops.claim(WORKER_ID, 1)
        assert run.id == created.run.id, "another run was queued"
        lease = Lease(run.id, run.attempt, run.lease_token or "")
        path = STREAM.format(run.id)
        clients = await asyncio.to_thread(
            Clients, path, _cursor(str(run.id), run.log_seq), k, True, timeout
        )
        clients.go(seconds)

        async def write(entries: list[Any]) -> list[int]:
            return [e.seq for e in await rk.ops.append_logs(lease, entries)]

        records, late = await paced_append(write, rate, seconds, batch)
        await rk.ops.complete(lease, {})
        got = await asyncio.to_thread(clients.result, timeout + 10)
    return _summarize(records, late, got, k)


def _summarize(records: list[list[int]], late: int, got: dict[str, Any], k: int) -> dict[str, Any]:
    sent = {seq: (t0, t1) for seq, t0, t1 in records}
    commit_ms: list[float] = []
    call_ms: list[float] = []
    errors: list[str] = []
    missing = gaps = dups = ended = reconnects = 0
    first_recv, last_recv = float("inf"), 0
    for c in got["clients"]:
        received = {seq for seq, _ in c["samples"]}
        missing += len(set(sent) - received)
        gaps += c["gaps"]
        dups += c["dups"]
        ended += c["ended"]
        reconnects += c["reconnects"]
        for seq, recv in c["samples"]:
            if seq in sent:
                t0, t1 = sent[seq]
                commit_ms.append((recv - t1) / 1e6)
                call_ms.append((recv - t0) / 1e6)
                first_recv, last_recv = min(first_recv, recv), max(last_recv, recv)
    if gaps or dups:
        errors.append(f"reconnect with cursor: {gaps} gaps, {dups} duplicates")
    if missing:
        errors.append(f"{missing} lines not delivered")
    if ended != k:
        errors.append(f"{k - ended} of {k} streams did not end")
    window = (max(r[2] for r in records) - min(r[1] for r in records)) / 1e9 if records else 0
    commit = h.latency_summary(commit_ms)
    call = h.latency_summary(call_ms)
    return {
        "p50_ms": commit["p50_ms"],
        "p90_ms": commit["p90_ms"],
        "p99_ms": commit["p99_ms"],
        "max_ms": commit["max_ms"],
        "call_p50_ms": call["p50_ms"],
        "call_p99_ms": call["p99_ms"],
        "append_call_p50_ms": h.percentile([(t1 - t0) / 1e6 for _, t0, t1 in records], 0.5),
        "lines": len(records),
        "lines_per_s": len(records) / window if window else 0.0,
        "deliveries_per_s": len(commit_ms) / max(window, (last_recv - first_recv) / 1e9),
        "late_sends": late,
        "gaps": gaps,
        "dups": dups,
        "reconnects": reconnects,
        "errors": errors,
    }


def run(ctx: h.Context) -> None:
    if (why := h.http_unavailable()) is not None:
        ctx.add(h.Result("S8-pg", "runkit SSE", "latency", skipped=why))
        return
    from ._runkit import prepare_schema

    database = "bench_sse"
    h.fresh_database(database)
    asyncio.run(prepare_schema(h.url(database)))
    steady = ctx.size(5, 2)
    ks = (5,) if ctx.smoke else (1, 100)
    k_main = ks[-1]
    cases: list[tuple[str, int, float, int, float]] = []  # mode, K, rate, batch, seconds
    for k in ks:
        cases += [("floor", k, 200.0, 1, steady), ("in-process", k, 200.0, 1, steady)]
    cases += [("cross-process", k_main, 200.0, 1, steady)]
    if not ctx.smoke:
        cases += [("floor", k_main, 5000.0, 25, 2.0), ("in-process", k_main, 5000.0, 25, 2.0)]
    stack = server_stack()
    setup = {
        "server": f"uvicorn 1 worker, loop={stack['loop']}, http={stack['http']}, core 0",
        "clients": "one process, raw asyncio sockets, core 1",
        "stream_poll_interval_s": 0.5,
    }
    ctx.say(f"sse: {setup}")
    figures: dict[tuple[str, int, float], dict[str, Any]] = {}
    with Server("sse", database, port=PORT):
        for mode, k, rate, batch, seconds in cases:
            figures[(mode, k, rate)] = h.repeat(
                ctx,
                lambda m=mode, k=k, r=rate, b=batch, s=seconds: one_pass(m, database, k, r, b, s),
            )
    for (mode, k, rate), f in figures.items():
        floor = figures.get(("floor", k, rate))
        system = f"{'B-SSE-1 in-memory broadcast' if mode == 'floor' else 'runkit ' + mode}"
        label = f"K={k}, {rate:,.0f} lines/s"
        extra = {
            key: (v.median if isinstance(v, h.Stats) else v)
            for key, v in f.items()
            if key != "errors"
        }
        extra.update(setup)
        met = None
        target = None
        if mode == "in-process" and k >= 100 and rate == 200.0:
            target = f"p50 < {P50_TARGET_MS:g} ms, p99 < {P99_TARGET_MS:g} ms"
            met = f["p50_ms"].median < P50_TARGET_MS and f["p99_ms"].median < P99_TARGET_MS
        ctx.add(
            h.Result(
                "S8-pg",
                f"{system} ({label})",
                "commit->receive p50",
                stats=f["p50_ms"],
                unit="ms",
                target=target,
                met=met,
                extra=extra,
                errors=f["errors"],
            )
        )
        ctx.add(
            h.Result(
                "S8-pg", f"{system} ({label})", "commit->receive p99", stats=f["p99_ms"], unit="ms"
            )
        )
        ratio = None
        if floor is not None and mode != "floor":
            ratio = f["deliveries_per_s"].median / floor["deliveries_per_s"].median
        ctx.add(
            h.Result(
                "S8-pg",
                f"{system} ({label})",
                "deliveries/s",
                stats=f["deliveries_per_s"],
                unit="lines/s",
                baseline="B-SSE-1" if ratio is not None else None,
                ratio=ratio,
                ratio_key=f"S8-pg.{mode}.k{k}.r{rate:.0f}.deliveries_vs_floor" if ratio else None,
                target=">= 50% of B-SSE-1" if ratio is not None else None,
                met=ratio >= 0.5 if ratio is not None else None,
            )
        )
