"""The SQL schema of runkit: ``runkit_runs``, ``runkit_logs`` and ``runkit_workers``.

This :data:`metadata` is the source of truth the migrations in ``runkit/migrations`` must
reproduce exactly (a test compares them); hosts that manage their own Alembic environment
may include it in their ``target_metadata``.

Why the shapes:

* ``runkit_runs.seq`` is an integer primary key that only grows: it is the FIFO order of the
  queue and ``Run.seq``. Log entries reference it rather than the UUID, so the log table's
  composite key ``(run_seq, seq)`` stays narrow and a page read is one index range scan.
* The hot claim path reads ``status = 'queued'`` rows in ``seq`` order, served by a small
  partial index that holds only queued rows. Finished runs never bloat it.
* ``idempotency_scope`` is unique: the database, not Python, decides which of two racing
  inserts wins. NULLs never collide, on PostgreSQL or on SQLite.
* JSON columns use the portable ``JSON`` type (``json`` on PostgreSQL, text on SQLite): runkit
  never queries inside them, so ``jsonb``'s parse-on-write cost buys nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["VERSION_TABLE", "UTCDateTime", "logs", "metadata", "runs", "workers"]

#: Alembic's version table for runkit's migrations: its own, so that a host's Alembic
#: history in the same database is left alone.
VERSION_TABLE = "runkit_alembic_version"


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back as a timezone-aware UTC datetime.

    PostgreSQL keeps ``timestamptz`` natively; SQLite has no timestamp type, so the value is
    stored as naive UTC text, whose lexical order is its time order (``deadline_at <= now``
    compares correctly in SQL). Naive datetimes are refused rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: runkit stores aware UTC timestamps")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: A 64-bit key on PostgreSQL; on SQLite it must be spelled INTEGER to be the rowid alias.
BigSeq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

_QUEUED = sa.text("status = 'queued'")
_QUEUED_KEYED = sa.text("status = 'queued' AND concurrency_key IS NOT NULL")
_KEYED = sa.text("concurrency_key IS NOT NULL")
#: List filters on columns most runs leave NULL: (index name part, column).
_OPTIONAL_FILTERS = (
    ("action", "action_id"),
    ("parent", "parent_action_run_id"),
    ("tenant", "tenant"),
)

runs = sa.Table(
    "runkit_runs",
    metadata,
    sa.Column("seq", BigSeq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("definition", sa.JSON(), nullable=False),
    sa.Column("action_id", sa.String(), nullable=True),
    sa.Column("idempotency_key", sa.String(), nullable=True),
    sa.Column("concurrency_key", sa.String(), nullable=True),
    sa.Column("parent_action_run_id", sa.Uuid(), nullable=True),
    sa.Column("progress", sa.JSON(), nullable=False),
    # none_as_null: a Python None is SQL NULL, not the JSON literal 'null'.
    sa.Column("result", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("error", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("retry_count", sa.Integer(), nullable=False),
    sa.Column("interrupt_count", sa.Integer(), nullable=False),
    sa.Column("trigger_method", sa.String(), nullable=True),
    sa.Column("trigger_source_type", sa.String(), nullable=True),
    sa.Column("trigger_source_id", sa.String(), nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("completed_at", UTCDateTime(), nullable=True),
    sa.Column("status_reason", sa.String(), nullable=True),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("lease_token", sa.String(), nullable=True),
    sa.Column("worker_id", sa.String(), nullable=True),
    sa.Column("deadline_at", UTCDateTime(), nullable=True),
    sa.Column("not_before", UTCDateTime(), nullable=True),
    sa.Column("concurrency_limit", sa.Integer(), nullable=False),
    sa.Column("idempotency_scope", sa.String(), nullable=True),
    sa.Column("fingerprint", sa.String(), nullable=True),
    sa.Column("log_seq", sa.Integer(), nullable=False),
    sa.Column("checkpoint", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("approvals", sa.JSON(), nullable=False),
    sa.Column("wait", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("tenant", sa.String(), nullable=True),
    sa.UniqueConstraint("id", name="runkit_runs_id_key"),
    sa.Index("runkit_runs_idempotency_scope_key", "idempotency_scope", unique=True),
    sa.Index("runkit_runs_queued_idx", "seq", postgresql_where=_QUEUED, sqlite_where=_QUEUED),
    # The head of each key's line, read by the claim for keyed runs.
    sa.Index(
        "runkit_runs_queued_key_idx",
        "concurrency_key",
        "seq",
        postgresql_where=_QUEUED_KEYED,
        sqlite_where=_QUEUED_KEYED,
    ),
    # Occupancy: leased runs of a key, counted in the claim's transaction.
    sa.Index(
        "runkit_runs_concurrency_idx",
        "concurrency_key",
        "status",
        postgresql_where=_KEYED,
        sqlite_where=_KEYED,
    ),
    sa.Index(
        "runkit_runs_deadline_idx",
        "deadline_at",
        postgresql_where=sa.text("deadline_at IS NOT NULL"),
        sqlite_where=sa.text("deadline_at IS NOT NULL"),
    ),
    # List filters page newest first, so each filter index carries seq for the order.
    sa.Index("runkit_runs_kind_idx", "kind", "seq"),
    # Filters on a column most runs leave NULL look for a value, never for NULL: partial
    # indexes skip the NULL rows, so most inserts write four index entries fewer.
    *(
        sa.Index(
            f"runkit_runs_{name}_idx",
            column,
            "seq",
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
        )
        for name, column in _OPTIONAL_FILTERS
    ),
    sa.Index("runkit_runs_status_idx", "status", "seq"),
    # AUTOINCREMENT: a deleted top seq is never handed out again, as in the memory store.
    sqlite_autoincrement=True,
)

logs = sa.Table(
    "runkit_logs",
    metadata,
    sa.Column(
        "run_seq",
        BigSeq,
        sa.ForeignKey("runkit_runs.seq", ondelete="CASCADE", name="runkit_logs_run_seq_fkey"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("event", sa.String(), nullable=True),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("worker_id", sa.String(), nullable=True),
)

#: Live workers register here (one row each, refreshed by their heartbeat) so that clients can
#: tell a run nobody can execute from one that merely waits. Rows of crashed workers stay
#: until their ``last_seen_at`` is older than the lease, then the rescuer deletes them.
workers = sa.Table(
    "runkit_workers",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("host", sa.String(), nullable=False),
    sa.Column("pid", sa.Integer(), nullable=False),
    sa.Column("kinds", sa.JSON(), nullable=False),
    sa.Column("concurrency", sa.Integer(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
)
