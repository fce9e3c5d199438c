"""runkit_runs.tenant: the tenant a run belongs to, and its list index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: existing runs belong to no tenant, which only keys without a
    # tenant see (as before).
    with op.batch_alter_table("runkit_runs") as batch:
        batch.add_column(sa.Column("tenant", sa.String(), nullable=True))
    op.create_index("runkit_runs_tenant_idx", "runkit_runs", ["tenant", "seq"])


def downgrade() -> None:
    op.drop_index("runkit_runs_tenant_idx", table_name="runkit_runs")
    with op.batch_alter_table("runkit_runs") as batch:
        batch.drop_column("tenant")
