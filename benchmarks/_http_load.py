"""A small HTTP load generator (httpx on asyncio, closed loop): ``python -m
benchmarks._http_load BASE_URL METHOD PATHS_FILE SECONDS CONCURRENCY [BODY]``.

Keeps CONCURRENCY requests in flight for SECONDS, cycling through the paths in PATHS_FILE
(one a line), and prints one JSON object: requests/s, latency p50/p99 (ms), non-2xx count.
A Python client tops out around a couple of thousand requests/s on one core; the bare
endpoint measured with the same client shows where that ceiling is.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from pathlib import Path

import httpx


async def load(
    base: str, method: str, paths: list[str], seconds: float, concurrency: int, body: str | None
) -> dict[str, float]:
    samples: list[float] = []
    bad = 0
    cycle = itertools.cycle(paths)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await client.request(method, next(cycle), content=body)  # connect, warm
        end = time.perf_counter() + seconds

        async def one_client() -> None:
            nonlocal bad
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                response = await client.request(
                    method,
                    next(cycle),
                    content=body,
                    headers={"content-type": "application/json"} if body else None,
                )
                samples.append((time.perf_counter() - t0) * 1000)
                if response.status_code >= 300:
                    bad += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    samples.sort()
    return {
        "rps": len(samples) / elapsed,
        "p50_ms": samples[len(samples) // 2] if samples else float("nan"),
        "p99_ms": samples[int(len(samples) * 0.99)] if samples else float("nan"),
        "requests": len(samples),
        "non_2xx": bad,
    }


def main(argv: list[str]) -> int:
    base, method, paths_file, seconds, concurrency = argv[:5]
    body = argv[5] if len(argv) > 5 else None
    paths = Path(paths_file).read_text().split()
    out = asyncio.run(load(base, method, paths, float(seconds), int(concurrency), body))
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
