"""The producer of the ``memory`` family's worker scenario, in its own process:
``python -m benchmarks._memory_producer URL N BACKLOG``.

Creates N runs of the test kind ``emit_logs`` (two log lines each) one at a time through
``Runkit.create(execute=True)``, never more than BACKLOG ahead of the runs that succeeded
(read every 250 creates), so the worker it feeds works in a steady state instead of
draining a queue that grows for the whole pass. Needs ``RUNKIT_ENABLE_TEST_KINDS=1``.
Prints ``DONE <created> <seconds>``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from ._runkit import make_runkit

KIND = "emit_logs"
DEFINITION = {"count": 2}
#: Creates between two reads of the backlog.
CHECK_EVERY = 250


async def _within_backlog(rk: Any, floor: int) -> None:
    """Until at least ``floor`` runs succeeded (the store is polled: the producer has no
    wake-up for other processes' completions)."""
    while (await rk.list(status="succeeded", limit=1)).total < floor:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def produce(url: str, n: int, backlog: int) -> float:
    rk = make_runkit(url)
    async with rk:
        start = time.perf_counter()
        for i in range(n):
            if i % CHECK_EVERY == 0:
                await _within_backlog(rk, i - backlog)
            await rk.create(KIND, DEFINITION, execute=True)
        return time.perf_counter() - start


def main(argv: list[str]) -> int:
    url, n, backlog = argv[0], int(argv[1]), int(argv[2])
    seconds = asyncio.run(produce(url, n, backlog))
    print(f"DONE {n} {seconds:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
