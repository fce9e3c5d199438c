"""A worker process for the file_sync crash test: ``python tests/file_sync_proc.py URL``.

The worker of ``worker_proc.py`` (lease 2 s, heartbeat 0.3 s, rescue 0.3 s; built-in kinds,
so ``file_sync``), with each file's rename into place delayed by
``RUNKIT_TEST_SYNC_DELAY`` seconds (so that a SIGKILL lands in the middle of a sync). The
data root is ``RUNKIT_DATA_ROOT``, as for any worker.
"""

from __future__ import annotations

import argparse
import os
import time

import anyio

from runkit.engine import run_workers
from runkit.kinds.data import file_sync_trees
from worker_proc import make_runkit

DELAY_ENV = "RUNKIT_TEST_SYNC_DELAY"


def slow_down(delay: float) -> None:
    """Every file takes at least ``delay`` s: the sleep runs in the copy's thread, just
    before the temporary file is renamed into place."""
    commit = file_sync_trees.Transfer.commit

    def slow_commit(self: file_sync_trees.Transfer) -> None:
        time.sleep(delay)
        commit(self)

    file_sync_trees.Transfer.commit = slow_commit  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    slow_down(float(os.environ.get(DELAY_ENV, "0")))

    async def serve() -> None:
        async with make_runkit(args.url, proc_kinds=False) as rk:
            await run_workers(rk, args.concurrency, poll_interval=0.2, control_interval=0.3)

    anyio.run(serve)


if __name__ == "__main__":
    main()
