"""Database fixtures for the SQL store's tests: import them into ``conftest.py``.

* ``sqlite_url``: a fresh SQLite file in the test's ``tmp_path``.
* ``pg_url``: a fresh schema in the PostgreSQL at ``RUNKIT_TEST_PG_URL`` (default
  ``postgresql+psycopg://postgres@127.0.0.1:5432/test``), reached through
  ``options=-csearch_path=<schema>`` and dropped at teardown. PostgreSQL being unreachable
  fails the test: CI never skips PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

PG_URL = os.environ.get("RUNKIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runkit.db'}"


def _with_search_path(url: str, schema: str) -> str:
    base = sa.make_url(url)
    return base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A URL of PostgreSQL whose search path is a new, empty schema, dropped afterwards."""
    schema = f"rk_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(PG_URL, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        try:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        except sa.exc.OperationalError as err:
            pytest.fail(f"PostgreSQL is required at {PG_URL} (RUNKIT_TEST_PG_URL): {err}")
        yield _with_search_path(PG_URL, schema)
        with admin.begin() as conn:
            # A connection a test leaked must not hang the suite: fail the drop instead.
            conn.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url
