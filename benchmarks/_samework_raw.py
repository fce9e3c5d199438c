"""Raw psycopg for the same-work table (``peers``): the ideal of one commit per step, on
runkit's own tables, driven by ``_peer_main`` like the peers.

Each step is one autocommit statement (a data-modifying CTE where a step writes two tables),
with the shapes of ``_raw.B-PG-2``: a create writes the run row and its two audit entries
(created, queued); a claim takes ``LIMIT 1 ... FOR UPDATE SKIP LOCKED`` and writes its audit
entry; a completion writes the outcome, the executor's log lines (pass d: two; pass c: none)
and its audit entry, all in the completing transaction. Batched creates (pass b) are one
statement per batch: ``INSERT ... SELECT FROM unnest(ids)`` and the audit entries of all of
them. Pass a also times B-PG-1 (bare single-row INSERTs into a one-column table), reported
beside the figure. The worker is one loop on its own connection (claim, execute, complete),
polling every millisecond when nothing is queued; the creator has its own connection on the
same event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from ._raw import _CLAIMED, _CREATED, _DONE, _LEASE, _PG_CLAIM, _PG_CREATE, _QUEUED, KIND, LINES

_PG_CREATE_MANY = """
WITH r AS (
  INSERT INTO runkit_runs (id, kind, status, created_at, updated_at, definition, progress,
    retry_count, interrupt_count, trigger_method, attempt, concurrency_limit, log_seq,
    approvals)
  SELECT u.id, %(kind)s, 'queued', %(now)s, %(now)s, '{}', '{}', 0, 0, 'api', 0, 1, 2, '[]'
  FROM unnest(%(ids)s::uuid[]) AS u(id)
  RETURNING seq)
INSERT INTO runkit_logs (run_seq, seq, attempt, level, event, message, data, occurred_at)
SELECT r.seq, v.seq, 0, 'info', 'status.changed', v.message, v.data::json, %(now)s
FROM r CROSS JOIN (VALUES (1, 'status new -> pending (created)', %(created)s),
                          (2, 'status pending -> queued (execute)', %(queued)s))
     AS v(seq, message, data)
"""

# One run's completion: the outcome, then its k log entries (the executor's lines, then the
# audit entry) numbered after the run's log_seq, in one statement.
_PG_COMPLETE_ONE = """
WITH d AS (
  UPDATE runkit_runs SET status = 'succeeded', result = '{}', completed_at = %(now)s,
    updated_at = %(now)s, status_reason = 'completed', lease_token = NULL, worker_id = NULL,
    deadline_at = NULL, log_seq = log_seq + %(k)s
  WHERE seq = %(seq)s AND attempt = %(attempt)s AND lease_token = %(token)s
    AND status = 'running'
  RETURNING seq, attempt, log_seq),
l AS (
  INSERT INTO runkit_logs (run_seq, seq, attempt, level, event, message, data, occurred_at)
  SELECT d.seq, d.log_seq - %(k)s + v.i, d.attempt, 'info', v.event, v.message, v.data::json,
    %(now)s
  FROM d CROSS JOIN unnest(%(events)s::text[], %(messages)s::text[], %(datas)s::text[])
       WITH ORDINALITY AS v(event, message, data, i))
SELECT count(*) FROM d
"""


def _now() -> datetime:
    return datetime.now(UTC)


class RawPeer:
    """The raw ideal behind the same interface as the peers (see ``_peer_main.Peer``)."""

    batch_api = True

    def __init__(self, conninfo: str, tally: Any, logs: bool) -> None:
        self.conninfo = conninfo
        self.tally = tally
        self.lines = LINES if logs else ()
        self.creator: Any = None
        self.worker_conn: Any = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False

    async def open(self) -> None:
        import psycopg

        # The tables (runkit's schema) are created by the harness before the pass.
        self.creator = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)

    async def close(self) -> None:
        for conn in (self.creator, self.worker_conn):
            if conn is not None:
                await conn.close()

    async def enqueue(self, n: int, batch: int) -> None:
        conn = self.creator
        if batch == 1:
            for _ in range(n):
                await conn.execute(
                    _PG_CREATE,
                    {
                        "id": uuid.uuid4(),
                        "kind": KIND,
                        "now": _now(),
                        "created": _CREATED,
                        "queued": _QUEUED,
                    },
                )
            return
        for start in range(0, n, batch):
            k = min(batch, n - start)
            await conn.execute(
                _PG_CREATE_MANY,
                {
                    "ids": [uuid.uuid4() for _ in range(k)],
                    "kind": KIND,
                    "now": _now(),
                    "created": _CREATED,
                    "queued": _QUEUED,
                },
            )

    async def bare_inserts(self, n: int) -> float:
        """B-PG-1 beside pass a: N autocommit single-row INSERTs into a one-column table
        (what ``http`` calls the raw commit rate), per second."""
        conn = self.creator
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial, v text)")
        t0 = time.perf_counter()
        for _ in range(n):
            await conn.execute("INSERT INTO bench_commit (v) VALUES (%s)", ["x"])
        return n / (time.perf_counter() - t0)

    async def start_worker(self) -> float | None:
        import psycopg

        self.worker_conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        self.task = asyncio.create_task(self._work())
        return None

    async def _work(self) -> None:
        conn = self.worker_conn
        events = [None] * len(self.lines) + ["status.changed"]
        messages = [*self.lines, "status running -> succeeded"]
        datas = ["{}"] * len(self.lines) + [_DONE]
        while not self.stopping:
            now = _now()
            cur = await conn.execute(
                _PG_CLAIM, {"deadline": now + _LEASE, "now": now, "batch": 1, "claimed": _CLAIMED}
            )
            row = await cur.fetchone()
            if row is None:
                await asyncio.sleep(0.001)
                continue
            seq, attempt, token = row
            self.tally.hit()  # the no-op execution
            await conn.execute(
                _PG_COMPLETE_ONE,
                {
                    "now": _now(),
                    "seq": seq,
                    "attempt": attempt,
                    "token": token,
                    "k": len(messages),
                    "events": events,
                    "messages": messages,
                    "datas": datas,
                },
            )
            self.tally.logs += len(self.lines)

    async def stop_worker(self) -> None:
        self.stopping = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 10)

    async def count(self, what: str) -> int:
        status = "queued" if what == "queued" else "succeeded"
        cur = await self.creator.execute(
            "SELECT count(*) FROM runkit_runs WHERE status = %s", [status]
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0
