"""The raw-SQL ideal lifecycle (B-SQ-2/3 on stdlib ``sqlite3``, B-PG-2/3 on psycopg 3).

The tables are runkit's own (created from ``runkit.storage._schema.metadata``, every index
included), and each step writes what runkit writes: the run row with its two audit entries
(created, queued); the claim with its audit entry; the completion with the executor's two
log lines and its audit entry. What the ideal does not do is everything that is not a
write: no read before a compare-and-set, one statement per step where the dialect allows
(PostgreSQL CTEs), logs carried by the completion's transaction, and with ``batch > 1`` one
claim and one completion transaction per batch.

Commits per run: ``3`` unbatched, ``1 + 2/B`` batched (creates stay one per commit, as the
public API creates one run at a time).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from runkit.storage.sql.schema import metadata

KIND = "bench_noop"
LINES = ("line 1", "line 2")
_CREATED = json.dumps({"from": None, "to": "pending", "reason": "created", "actor": None})
_QUEUED = json.dumps({"from": "pending", "to": "queued", "reason": "execute", "actor": None})
_CLAIMED = json.dumps({"from": "queued", "to": "running", "reason": "claimed", "actor": "w"})
_DONE_MESSAGE = "status running -> succeeded"
_DONE = json.dumps({"from": "running", "to": "succeeded", "reason": "completed", "actor": None})
_LEASE = timedelta(seconds=30)

Claimed = tuple[int, int, str]  # seq, attempt, lease token


def create_tables(sa_url: str) -> None:
    engine = sa.create_engine(sa_url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- SQLite ------
class RawSqlite:
    """B-SQ-2/3: WAL, ``synchronous`` as given, ``BEGIN IMMEDIATE`` per transaction."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        create_tables(f"sqlite:///{path}")
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute(f"PRAGMA synchronous = {synchronous}")
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.commits = 0

    def close(self) -> None:
        self.conn.close()

    def _ts(self) -> str:
        return _now().replace(tzinfo=None).isoformat(sep=" ")

    def create(self) -> None:
        now = self._ts()
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        seq = c.execute(
            "INSERT INTO runkit_runs (id, kind, status, created_at, updated_at, definition,"
            " progress, retry_count, interrupt_count, trigger_method, attempt,"
            " concurrency_limit, log_seq, approvals)"
            " VALUES (?, ?, 'queued', ?, ?, '{}', '{}', 0, 0, 'api', 0, 1, 2, '[]')"
            " RETURNING seq",
            (uuid.uuid4().hex, KIND, now, now),
        ).fetchone()[0]
        c.executemany(
            "INSERT INTO runkit_logs (run_seq, seq, attempt, level, event, message, data,"
            " occurred_at) VALUES (?, ?, 0, 'info', 'status.changed', ?, ?, ?)",
            [
                (seq, 1, "status new -> pending (created)", _CREATED, now),
                (seq, 2, "status pending -> queued (execute)", _QUEUED, now),
            ],
        )
        c.execute("COMMIT")
        self.commits += 1

    def claim(self, batch: int) -> list[Claimed]:
        now = _now()
        ts = now.replace(tzinfo=None).isoformat(sep=" ")
        deadline = (now + _LEASE).replace(tzinfo=None).isoformat(sep=" ")
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        rows = c.execute(
            "UPDATE runkit_runs SET status = 'running', attempt = attempt + 1,"
            " lease_token = lower(hex(randomblob(16))), worker_id = 'w', deadline_at = ?,"
            " started_at = ?, updated_at = ?, log_seq = log_seq + 1"
            " WHERE seq IN (SELECT seq FROM runkit_runs WHERE status = 'queued'"
            " ORDER BY seq LIMIT ?) RETURNING seq, attempt, lease_token, log_seq",
            (deadline, ts, ts, batch),
        ).fetchall()
        if rows:
            c.executemany(
                "INSERT INTO runkit_logs (run_seq, seq, attempt, level, event, message, data,"
                " occurred_at, worker_id) VALUES (?, ?, ?, 'info', 'status.changed',"
                " 'status queued -> running (claimed)', ?, ?, 'w')",
                [(r[0], r[3], r[1], _CLAIMED, ts) for r in rows],
            )
        c.execute("COMMIT")
        self.commits += 1
        return [(r[0], r[1], r[2]) for r in rows]

    def complete(self, claimed: list[Claimed]) -> int:
        ts = self._ts()
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        done = 0
        logs: list[tuple[Any, ...]] = []
        for seq, attempt, token in claimed:
            row = c.execute(
                "UPDATE runkit_runs SET status = 'succeeded', result = '{}', completed_at = ?,"
                " updated_at = ?, status_reason = 'completed', lease_token = NULL,"
                " worker_id = NULL, deadline_at = NULL, log_seq = log_seq + 3"
                " WHERE seq = ? AND attempt = ? AND lease_token = ? AND status = 'running'"
                " RETURNING log_seq",
                (ts, ts, seq, attempt, token),
            ).fetchone()
            if row is None:
                continue
            done += 1
            base = row[0] - 3
            logs += [
                (seq, base + 1, attempt, None, LINES[0], "{}", ts),
                (seq, base + 2, attempt, None, LINES[1], "{}", ts),
                (seq, base + 3, attempt, "status.changed", _DONE_MESSAGE, _DONE, ts),
            ]
        c.executemany(
            "INSERT INTO runkit_logs (run_seq, seq, attempt, level, event, message, data,"
            " occurred_at) VALUES (?, ?, ?, 'info', ?, ?, ?, ?)",
            logs,
        )
        c.execute("COMMIT")
        self.commits += 1
        return done


# --------------------------------------------------------------------------- PostgreSQL --
_PG_CREATE = """
WITH r AS (
  INSERT INTO runkit_runs (id, kind, status, created_at, updated_at, definition, progress,
    retry_count, interrupt_count, trigger_method, attempt, concurrency_limit, log_seq,
    approvals)
  VALUES (%(id)s, %(kind)s, 'queued', %(now)s, %(now)s, '{}', '{}', 0, 0, 'api', 0, 1, 2, '[]')
  RETURNING seq)
INSERT INTO runkit_logs (run_seq, seq, attempt, level, event, message, data, occurred_at)
SELECT r.seq, v.seq, 0, 'info', 'status.changed', v.message, v.data::json, %(now)s
FROM r CROSS JOIN (VALUES (1, 'status new -> pending (created)', %(created)s),
                          (2, 'status pending -> queued (execute)', %(queued)s))
     AS v(seq, message, data)
"""

_PG_CLAIM = """
WITH c AS (
  UPDATE runkit_runs SET status = 'running', attempt = attempt + 1,
    lease_token = md5(random()::text || clock_timestamp()::text), worker_id = 'w',
    deadline_at = %(deadline)s, started_at = %(now)s, updated_at = %(now)s,
    log_seq = log_seq + 1
  WHERE seq IN (SELECT seq FROM runkit_runs WHERE status = 'queued' ORDER BY seq
                LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
  RETURNING seq, attempt, lease_token, log_seq),
l AS (
  INSERT INTO runkit_logs (run_seq, seq, attempt, level, event, message, data, occurred_at,
    worker_id)
  SELECT seq, log_seq, attempt, 'info', 'status.changed',
    'status queued -> running (claimed)', %(claimed)s::json, %(now)s, 'w' FROM c)
SELECT seq, attempt, lease_token FROM c
"""

_PG_COMPLETE = """
WITH d AS (
  UPDATE runkit_runs r SET status = 'succeeded', result = '{}', completed_at = %(now)s,
    updated_at = %(now)s, status_reason = 'completed', lease_token = NULL, worker_id = NULL,
    deadline_at = NULL, log_seq = r.log_seq + 3
  FROM unnest(%(seqs)s::bigint[], %(attempts)s::int[], %(tokens)s::text[])
       AS u(seq, attempt, token)
  WHERE r.seq = u.seq AND r.attempt = u.attempt AND r.lease_token = u.token
    AND r.status = 'running'
  RETURNING r.seq, r.attempt, r.log_seq),
l AS (
  INSERT INTO runkit_logs (run_seq, seq, attempt, level, event, message, data, occurred_at)
  SELECT d.seq, d.log_seq - 3 + v.k, d.attempt, 'info', v.event, v.message, v.data::json,
    %(now)s
  FROM d CROSS JOIN (VALUES (1, NULL, %(line1)s, '{}'), (2, NULL, %(line2)s, '{}'),
                            (3, 'status.changed', 'status running -> succeeded', %(done)s))
       AS v(k, event, message, data))
SELECT count(*) FROM d
"""


class RawPg:
    """B-PG-2/3: psycopg 3, one autocommit statement per step (a CTE when a step writes two
    tables), server-side prepared after a few executions."""

    def __init__(self, conninfo: str, sa_url: str) -> None:
        import psycopg

        create_tables(sa_url)
        self.conn = psycopg.connect(conninfo, autocommit=True)
        self.commits = 0

    def close(self) -> None:
        self.conn.close()

    def create(self) -> None:
        self.conn.execute(
            _PG_CREATE,
            {
                "id": uuid.uuid4(),
                "kind": KIND,
                "now": _now(),
                "created": _CREATED,
                "queued": _QUEUED,
            },
        )
        self.commits += 1

    def claim(self, batch: int) -> list[Claimed]:
        now = _now()
        rows = self.conn.execute(
            _PG_CLAIM,
            {"deadline": now + _LEASE, "now": now, "batch": batch, "claimed": _CLAIMED},
        ).fetchall()
        self.commits += 1
        return [(r[0], r[1], r[2]) for r in rows]

    def complete(self, claimed: list[Claimed]) -> int:
        row = self.conn.execute(
            _PG_COMPLETE,
            {
                "now": _now(),
                "seqs": [c[0] for c in claimed],
                "attempts": [c[1] for c in claimed],
                "tokens": [c[2] for c in claimed],
                "line1": LINES[0],
                "line2": LINES[1],
                "done": _DONE,
            },
        ).fetchone()
        self.commits += 1
        return int(row[0]) if row else 0
