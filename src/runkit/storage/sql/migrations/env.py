"""Alembic environment of runkit's schema.

Driven by :mod:`runkit.storage.sql.migrate`, which hands over an open connection (in
``config.attributes["connection"]``) already inside the transaction that serializes
migrations across processes, or, for offline SQL, a URL or a dialect name. The version table
is runkit's own (``runkit_alembic_version``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from runkit.storage.sql.schema import VERSION_TABLE, metadata

config = context.config


def run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    dialect = config.get_main_option("runkit.dialect")
    context.configure(
        url=url or None,
        dialect_name=dialect or None,
        target_metadata=metadata,
        literal_binds=True,
        version_table=VERSION_TABLE,
        # One transaction for the script on PostgreSQL, as upgrade() has online.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    # Run through the alembic command line with a sqlalchemy.url of its own.
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as conn:
            _migrate(conn)
    finally:
        engine.dispose()


def _migrate(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
