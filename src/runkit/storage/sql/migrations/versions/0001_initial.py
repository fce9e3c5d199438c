"""runkit_runs and runkit_logs

Revision ID: 0001
Revises:
Create Date: 2024-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types in runkit.storage.sql.schema: a migration must not change when
# the model module does. UTCDateTime is stored as its impl, DateTime(timezone=True).
BigSeq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
QUEUED = sa.text("status = 'queued'")
QUEUED_KEYED = sa.text("status = 'queued' AND concurrency_key IS NOT NULL")
HAS_DEADLINE = sa.text("deadline_at IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "runkit_runs",
        sa.Column("seq", BigSeq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("action_id", sa.String(), nullable=True),
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("concurrency_key", sa.String(), nullable=True),
        sa.Column("parent_action_run_id", sa.Uuid(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("error", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("interrupt_count", sa.Integer(), nullable=False),
        sa.Column("trigger_method", sa.String(), nullable=True),
        sa.Column("trigger_source_type", sa.String(), nullable=True),
        sa.Column("trigger_source_id", sa.String(), nullable=True),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("completed_at", Timestamp, nullable=True),
        sa.Column("status_reason", sa.String(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(), nullable=True),
        sa.Column("worker_id", sa.String(), nullable=True),
        sa.Column("deadline_at", Timestamp, nullable=True),
        sa.Column("not_before", Timestamp, nullable=True),
        sa.Column("concurrency_limit", sa.Integer(), nullable=False),
        sa.Column("idempotency_scope", sa.String(), nullable=True),
        sa.Column("fingerprint", sa.String(), nullable=True),
        sa.Column("log_seq", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.UniqueConstraint("id", name="runkit_runs_id_key"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "runkit_runs_idempotency_scope_key", "runkit_runs", ["idempotency_scope"], unique=True
    )
    op.create_index(
        "runkit_runs_queued_idx",
        "runkit_runs",
        ["seq"],
        postgresql_where=QUEUED,
        sqlite_where=QUEUED,
    )
    op.create_index(
        "runkit_runs_queued_key_idx",
        "runkit_runs",
        ["concurrency_key", "seq"],
        postgresql_where=QUEUED_KEYED,
        sqlite_where=QUEUED_KEYED,
    )
    op.create_index("runkit_runs_concurrency_idx", "runkit_runs", ["concurrency_key", "status"])
    op.create_index(
        "runkit_runs_deadline_idx",
        "runkit_runs",
        ["deadline_at"],
        postgresql_where=HAS_DEADLINE,
        sqlite_where=HAS_DEADLINE,
    )
    op.create_index("runkit_runs_kind_idx", "runkit_runs", ["kind", "seq"])
    op.create_index("runkit_runs_action_idx", "runkit_runs", ["action_id", "seq"])
    op.create_index("runkit_runs_parent_idx", "runkit_runs", ["parent_action_run_id", "seq"])
    op.create_index("runkit_runs_status_idx", "runkit_runs", ["status", "seq"])

    op.create_table(
        "runkit_logs",
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
        sa.Column("occurred_at", Timestamp, nullable=False),
        sa.Column("worker_id", sa.String(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("runkit_logs")
    op.drop_table("runkit_runs")
