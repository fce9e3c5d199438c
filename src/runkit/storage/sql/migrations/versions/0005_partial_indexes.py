"""Partial indexes for the filters on columns most runs leave NULL

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``action_id``, ``parent_action_run_id``, ``tenant`` and ``concurrency_key`` are NULL on most
runs, and every query through their indexes looks for a value (``=``, ``IN``), never for
NULL. Indexing only the rows that have a value spares four index entries on most inserts
(a create wrote ten), and the planner still uses them: ``col = x`` implies
``col IS NOT NULL``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index, its columns, the column that must not be NULL).
_INDEXES = (
    ("runkit_runs_action_idx", ["action_id", "seq"], "action_id"),
    ("runkit_runs_parent_idx", ["parent_action_run_id", "seq"], "parent_action_run_id"),
    ("runkit_runs_tenant_idx", ["tenant", "seq"], "tenant"),
    ("runkit_runs_concurrency_idx", ["concurrency_key", "status"], "concurrency_key"),
)


def upgrade() -> None:
    for name, columns, column in _INDEXES:
        op.drop_index(name, table_name="runkit_runs")
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "runkit_runs", columns, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for name, columns, _ in _INDEXES:
        op.drop_index(name, table_name="runkit_runs")
        op.create_index(name, "runkit_runs", columns)
