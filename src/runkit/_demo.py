"""``runkit demo``: a handful of runs executed by an embedded worker, logs printed."""

from __future__ import annotations

from typing import Any

import anyio

from .domain.models import Principal
from .engine._embedded import embedded_workers
from .service.runkit import Runkit, Settings

_RUNS: list[tuple[str, dict[str, Any]]] = [
    ("noop", {}),
    ("emit_logs", {"count": 3, "intervalSeconds": 0.05}),
    ("sleep", {"seconds": 0.5}),
    ("fail_n_times", {"times": 1, "backoffSeconds": 0.1}),
    ("approval_gate", {"title": "Ship it?", "approvers": ["alice"]}),
]


async def demo(database: str) -> None:
    settings = Settings()
    async with Runkit(database, settings=settings) as rk:
        async with embedded_workers(rk, concurrency=4, poll_interval=0.2):
            ids = []
            for kind, definition in _RUNS:
                created = await rk.create(kind, definition, execute=True)
                ids.append(created.run.id)
                print(f"created {kind:<14} {created.run.id}")
            gate = ids[-1]
            with anyio.fail_after(30):
                while True:
                    runs = [await rk.get(rid) for rid in ids]
                    if all(r.status.terminal or r.id == gate for r in runs):
                        if runs[-1].status.value == "awaiting_approval":
                            print(f"approving {gate} as alice")
                            await rk.approve(gate, principal=Principal("alice"))
                            continue
                        break
                    await anyio.sleep(0.1)
        print()
        for rid in ids:
            run = await rk.get(rid)
            print(f"== {run.kind} {run.id}: {await rk.display_status(run)}")
            after = None
            while True:
                page = await rk.logs(rid, after=after, limit=100)
                for entry in page.entries:
                    print(f"  #{entry.seq} attempt {entry.attempt} {entry.level}: {entry.message}")
                if not page.has_more:
                    break
                after = page.next_cursor
            print(f"  result: {run.result}  error: {run.error}")
