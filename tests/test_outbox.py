"""Runkit.create_in: a run created inside the host's own SQLAlchemy transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa

from runkit import (
    ConfigurationError,
    IdempotencyConflict,
    Kind,
    Runkit,
    Status,
    SyncRunkit,
    ValidationError,
)
from runkit.storage.sql.store import SqlStore


@attrs.frozen
class Order:
    order_id: int


KINDS = [Kind("ship", executor=lambda ctx: None, config=Order)]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    value: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return value


@pytest.fixture
def host(url: str) -> Iterator[sa.Engine]:
    """The host application's own engine (runkit must never dispose it)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    yield engine
    engine.dispose()


def test_run_commits_and_rolls_back_with_the_host(url: str, host: sa.Engine) -> None:
    store = SqlStore(host, create_schema=True)
    with SyncRunkit(lambda: Runkit(store, kinds=KINDS, autoload_plugins=False)) as rk:
        with host.begin() as conn:
            conn.exec_driver_sql("INSERT INTO orders (id) VALUES (1)")
            kept = rk.create_in(conn, "ship", {"orderId": 1}, execute=True)
        with pytest.raises(RuntimeError), host.begin() as conn:
            conn.exec_driver_sql("INSERT INTO orders (id) VALUES (2)")
            lost = rk.create_in(conn, "ship", {"orderId": 2}, execute=True)
            raise RuntimeError("the host's business write failed")
        assert rk.get(kept.run.id).status is Status.QUEUED
        page = rk.list()
        assert [r.id for r in page.runs] == [kept.run.id]
        assert lost.run.id not in {r.id for r in page.runs}
        assert [e.data["to"] for e in rk.logs(kept.run.id).entries] == ["pending", "queued"]


def test_validation_and_idempotency_inside_the_host_transaction(host: sa.Engine) -> None:
    store = SqlStore(host, create_schema=True)
    with SyncRunkit(lambda: Runkit(store, kinds=KINDS, autoload_plugins=False)) as rk:
        with host.begin() as conn:
            with pytest.raises(ValidationError) as info:
                rk.create_in(conn, "ship", {"orderId": "one"})
            assert info.value.details[0].loc == ("definition", "orderId")
            first = rk.create_in(conn, "ship", {"orderId": 3}, idempotency_key="o-3")
            again = rk.create_in(conn, "ship", {"orderId": 3}, idempotency_key="o-3")
            assert first.created and again.replayed and again.run.id == first.run.id
            with pytest.raises(IdempotencyConflict):
                rk.create_in(conn, "ship", {"orderId": 4}, idempotency_key="o-3")
        assert rk.list().total == 1


def test_create_in_needs_a_sql_store(tmp_path: Path) -> None:
    with SyncRunkit(lambda: Runkit("memory://", kinds=KINDS, autoload_plugins=False)) as rk:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'host.db'}")
        with engine.begin() as conn, pytest.raises(ConfigurationError, match="SQL store"):
            rk.create_in(conn, "ship", {"orderId": 1})
        engine.dispose()
