"""The ``memory`` family's SSE scenario (``memory-sse-pg``): the API process's RSS while
K clients follow K runs' log streams and 1,000,000 entries are appended from another
process. See :mod:`benchmarks.memory`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from . import _harness as h
from ._http_server import API_KEY
from ._memory_proc import RssSampler, hwm_mb, rss_mb
from .http import Server, pinned

PORT = 18768
DATABASE = "bench_memory_sse"
STREAM = "/api/v1/action-runs/{}/logs/stream"
WORKER_ID = "bench-memory-appender"
#: In every benchmark line's message, so clients can count them without decoding JSON.
MARKER = "memline"
#: Entries per ``append_logs`` call: what a worker's log flusher sends for a chatty run
#: (one flush every 20 ms at 5,000 lines/s).
BATCH = 100
HEARTBEAT = 5.0
PEAK_TARGET_MB = 200.0


def _cursor(run_id: uuid.UUID, seq: int) -> str:
    return f"{run_id.hex[:8]}-{seq}"


class Clients:
    """``_memory_clients`` in a subprocess on core 1: one stream per (path, after)."""

    def __init__(self, streams: list[tuple[str, str]], timeout: float) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("".join(f"{path} {after}\n" for path, after in streams))
            self.spec = Path(f.name)
        command = [sys.executable, "-m", "benchmarks._memory_clients", "127.0.0.1", str(PORT)]
        self.proc = subprocess.Popen(
            [*pinned(1), *command, API_KEY, str(self.spec), MARKER, str(timeout)],
            cwd=h.ROOT.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.spec.unlink(missing_ok=True)
            raise RuntimeError(f"SSE clients failed: {line!r} {err[-1500:]}")
        self.opened = int(line.split()[1])

    def result(self, timeout: float) -> list[dict[str, Any]]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            self.spec.unlink(missing_ok=True)
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(f"SSE clients failed: {err[-1500:]}")
        clients: list[dict[str, Any]] = json.loads(lines[-1].removeprefix("RESULT "))["clients"]
        return clients


async def _append(rk: Any, leases: list[Any], per_run: int) -> dict[str, float]:
    """``per_run`` entries to each run, round robin in batches of BATCH, as fast as this
    process goes (the worst case for the server: every tail's window full, a client that
    falls behind reads back); the leases are heartbeaten every HEARTBEAT seconds."""
    from runkit import NewLogEntry

    written = [0] * len(leases)
    start = last_beat = time.perf_counter()
    for i in range(-(-per_run // BATCH) * len(leases)):
        k = i % len(leases)
        count = min(BATCH, per_run - written[k])
        entries = [
            NewLogEntry(f"{MARKER} {written[k] + j} of run {k}", data={"i": written[k] + j})
            for j in range(count)
        ]
        await rk.ops.append_logs(leases[k], entries)
        written[k] += count
        if time.perf_counter() - last_beat > HEARTBEAT:
            await rk.ops.heartbeat(leases)
            last_beat = time.perf_counter()
    seconds = time.perf_counter() - start
    return {"append_s": seconds, "entries_per_s": sum(written) / seconds}


async def sse_pass(server_pid: int, runs: int, per_run: int, timeout: float) -> dict[str, Any]:
    from runkit import Lease

    from ._runkit import KIND, make_runkit

    rk = make_runkit(h.url(DATABASE))
    async with rk:
        for _ in range(runs):
            await rk.create(KIND, {}, execute=True)
        claimed: list[Any] = []
        while len(claimed) < runs:
            got = await rk.ops.claim(WORKER_ID, runs - len(claimed))
            if not got:
                raise RuntimeError(f"{len(claimed)} of {runs} runs claimed")
            claimed += got
        leases = [Lease(r.id, r.attempt, r.lease_token or "") for r in claimed]
        after = {r.id: r.log_seq for r in claimed}
        streams = [(STREAM.format(r.id), _cursor(r.id, r.log_seq)) for r in claimed]
        rss_idle = rss_mb(server_pid)
        sampler = RssSampler(server_pid).start()
        try:
            clients = await asyncio.to_thread(Clients, streams, timeout)
            rss_open = rss_mb(server_pid)
            figures = await _append(rk, leases, per_run)
            for lease in leases:
                await rk.ops.complete(lease, {})
            got_clients = await asyncio.to_thread(clients.result, timeout)
            await asyncio.sleep(2.0)  # the streams' tasks and tails are let go
            rss_after = rss_mb(server_pid)
        finally:
            sampler.stop()
        final = {r.id: (await rk.get(r.id)).log_seq for r in claimed}
    errors = _check(got_clients, [r.id for r in claimed], after, final, per_run, clients.opened)
    return {
        "peak_mb": sampler.peak,
        "hwm_mb": hwm_mb(server_pid),
        "rss_idle_mb": rss_idle,
        "rss_streams_open_mb": rss_open,
        "rss_after_mb": rss_after,
        **figures,
        "entries": runs * per_run,
        "delivered": sum(c["marked"] for c in got_clients),
        "reconnects": sum(c["reconnects"] for c in got_clients),
        "rss_series": sampler.thinned(),
        "errors": errors,
    }


def _check(
    clients: list[dict[str, Any]],
    ids: list[uuid.UUID],
    after: dict[uuid.UUID, int],
    final: dict[uuid.UUID, int],
    per_run: int,
    opened: int,
) -> list[str]:
    """Every client got every entry of its run once: E benchmark lines, ids consecutive up
    to the run's last entry, and the end."""
    errors: list[str] = []
    if opened != len(ids):
        errors.append(f"{opened} of {len(ids)} streams opened")
    lost = dups = gaps = short = unended = 0
    failures: list[str] = []
    for run_id, c in zip(ids, clients, strict=True):
        expected = final[run_id] - after[run_id]
        lost += max(0, per_run - c["marked"])
        dups += c["dups"] + max(0, c["marked"] - per_run)
        gaps += c["gaps"]
        short += c["entries"] != expected or c["last_seq"] != final[run_id]
        unended += not c["ended"]
        if c["failure"]:
            failures.append(c["failure"])
    if lost or dups or gaps:
        errors.append(f"{lost} entries lost, {dups} duplicated, {gaps} ids skipped")
    if short:
        errors.append(f"{short} clients did not receive their run's entries up to its last")
    if unended:
        errors.append(f"{unended} of {len(ids)} streams did not end")
    if failures:
        errors.append(f"client failures: {sorted(set(failures))[:3]}")
    return errors


def run_sse(ctx: h.Context) -> None:
    scenario = "memory-sse-pg"
    if (why := h.http_unavailable()) is not None:
        ctx.add(h.Result(scenario, "runkit API", "peak RSS", skipped=why))
        return
    from ._runkit import prepare_schema

    runs = ctx.size(100, 10)
    per_run = 10_000
    h.fresh_database(DATABASE)
    asyncio.run(prepare_schema(h.url(DATABASE)))
    ctx.say(
        f"SSE API RSS: {runs} runs x {per_run:,} entries, one client per run, "
        f"appended from another process in batches of {BATCH}, as fast as it goes"
    )
    timeout = runs * per_run / 500 + 120  # 500 entries/s would be 10 times slower than here
    with Server("streams", DATABASE, port=PORT) as server:
        f = asyncio.run(sse_pass(server.proc.pid, runs, per_run, timeout))
    peak = max(f["peak_mb"], f["hwm_mb"])  # VmHWM is the kernel's, but updated lazily
    target = f"< {PEAK_TARGET_MB:.0f} MB" + (" (full size; smoke: reported)" if ctx.smoke else "")
    setup = {
        "runs": runs,
        "entries_per_run": per_run,
        "clients": runs,
        "server": "uvicorn 1 worker, core 0 (_http_server streams: API only)",
        "clients_process": "one process, raw asyncio sockets, core 1",
        "appender": "the harness process, Runkit.ops.append_logs, PostgreSQL NOTIFY",
    }
    ctx.add(
        h.Result(
            scenario,
            f"runkit API, {runs} SSE clients, {runs * per_run:,} entries",
            "peak RSS",
            value=peak,
            unit="MB",
            target=target,
            met=None if ctx.smoke else peak < PEAK_TARGET_MB,
            extra={
                k: round(v, 2) if isinstance(v, float) else v for k, v in f.items() if k != "errors"
            }
            | setup,
            errors=f["errors"],
        )
    )
    ctx.say(
        f"    RSS (MB): idle {f['rss_idle_mb']:.1f}, streams open {f['rss_streams_open_mb']:.1f},"
        f" peak {peak:.1f} (VmHWM {f['hwm_mb']:.1f}), after {f['rss_after_mb']:.1f};"
        f" {f['entries_per_s']:,.0f} entries/s appended, {f['delivered']:,} delivered"
    )
