"""runkit_runs.wait: what a waiting run waits for

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot ALTER every column shape in place; adding a nullable
    # column it can, and the batch is a plain ALTER TABLE on PostgreSQL.
    with op.batch_alter_table("runkit_runs") as batch:
        batch.add_column(sa.Column("wait", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runkit_runs") as batch:
        batch.drop_column("wait")
