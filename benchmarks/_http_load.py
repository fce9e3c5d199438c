"""HTTP load generators for the ``http`` family.

* :func:`wrk_load`: ``wrk`` (C, one thread, closed loop, ``--latency``) driven by the Lua
  script :data:`WRK_SCRIPT`, which cycles through a file of paths and, for POST, sends a
  JSON body with ``X-API-Key`` and optionally a fresh ``Idempotency-Key`` per request. This
  is the generator of record: one core of ``wrk`` issues tens of thousands of requests/s,
  far above what the server on the other core can answer.
* The Python fallback (httpx on asyncio), ``python -m benchmarks._http_load BASE_URL METHOD
  PATHS_FILE SECONDS CONCURRENCY [BODY]``: tops out near 500 requests/s on one core, so its
  ratios mostly measure the client. Used only when ``wrk`` is not installed.

Both print one line ``RESULT {json}``: rps, p50/p90/p99/max (ms), requests, non_2xx.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

#: Lua for wrk: ``-- PATHS_FILE METHOD BODY IDEMPOTENCY(none|unique) API_KEY``.
WRK_SCRIPT = r"""
local paths, method, body, idem, key = {}, "GET", nil, "none", nil
local n, prefix = 0, ""
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  method = args[2] or "GET"
  if args[3] and #args[3] > 0 then body = args[3] end
  idem = args[4] or "none"
  if args[5] and #args[5] > 0 then key = args[5] end
  math.randomseed(os.time())
  prefix = string.format("%x%x", os.time(), math.random(0, 2147483647))
  n = math.random(0, #paths - 1)
end
function request()
  n = n + 1
  local headers = {}
  if key then headers["X-API-Key"] = key end
  if body then headers["Content-Type"] = "application/json" end
  if idem == "unique" then headers["Idempotency-Key"] = prefix .. "-" .. n end
  return wrk.format(method, paths[(n % #paths) + 1], headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str | None:
    if not wrk_available():
        return None
    proc = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    words = (proc.stdout or proc.stderr).split()
    return " ".join(words[:2]) if words else "wrk"


def wrk_load(
    base: str,
    method: str,
    paths: list[str],
    seconds: int,
    connections: int,
    *,
    body: str | None = None,
    idempotency: str = "none",
    api_key: str | None = None,
    pin: list[str] | None = None,
) -> dict[str, Any]:
    """One closed-loop ``wrk -t1`` load; ``pin`` is the taskset prefix."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp, "load.lua")
        script.write_text(WRK_SCRIPT)
        paths_file = Path(tmp, "paths.txt")
        paths_file.write_text("\n".join(paths) + "\n")
        command = [
            *(pin or []),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, int(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base,
            "--",
            str(paths_file),
            method,
            body or "",
            idempotency,
            api_key or "",
        ]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr[-1500:]}")
    raw = json.loads(lines[-1].removeprefix("RESULT "))
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "requests": raw["requests"],
        "non_2xx": raw["non_2xx"],
        "socket_errors": raw["socket_errors"],
    }


async def load(
    base: str,
    method: str,
    paths: list[str],
    seconds: float,
    concurrency: int,
    body: str | None,
    api_key: str | None = None,
) -> dict[str, float]:
    samples: list[float] = []
    bad = 0
    cycle = itertools.cycle(paths)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"X-API-Key": api_key} if api_key else {}
    if body:
        headers["content-type"] = "application/json"
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=30, headers=headers
    ) as client:
        await client.request(method, next(cycle), content=body)  # connect, warm
        end = time.perf_counter() + seconds

        async def one_client() -> None:
            nonlocal bad
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                response = await client.request(method, next(cycle), content=body)
                samples.append((time.perf_counter() - t0) * 1000)
                if response.status_code >= 300:
                    bad += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    samples.sort()

    def q(p: float) -> float:
        return samples[min(len(samples) - 1, int(len(samples) * p))] if samples else float("nan")

    return {
        "rps": len(samples) / elapsed,
        "p50_ms": q(0.50),
        "p90_ms": q(0.90),
        "p99_ms": q(0.99),
        "max_ms": samples[-1] if samples else float("nan"),
        "requests": len(samples),
        "non_2xx": bad,
        "socket_errors": 0,
    }


def python_load(
    base: str,
    method: str,
    paths: list[str],
    seconds: float,
    connections: int,
    *,
    body: str | None = None,
    api_key: str | None = None,
    pin: list[str] | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """The fallback: this module as a subprocess (so it can be pinned)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(paths))
        paths_file = f.name
    command = [
        *(pin or []),
        sys.executable,
        "-m",
        "benchmarks._http_load",
        base,
        method,
        paths_file,
        str(seconds),
        str(connections),
        body or "",
        api_key or "",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)
    Path(paths_file).unlink(missing_ok=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"load generator failed: {proc.stderr[-1500:]}")
    out: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return out


def main(argv: list[str]) -> int:
    base, method, paths_file, seconds, concurrency = argv[:5]
    body = argv[5] if len(argv) > 5 and argv[5] else None
    api_key = argv[6] if len(argv) > 6 and argv[6] else None
    paths = Path(paths_file).read_text().split()
    out = asyncio.run(load(base, method, paths, float(seconds), int(concurrency), body, api_key))
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
