"""What the create_flashboard tests share: a data root with a small sales database, and a
Runkit with the kind and embedded workers on the memory or SQLite store. A test module
imports the fixtures (``root_fixture``, ``rk_fixture``) to use ``root`` and ``rk``.

A plain module, not a package: ``tests/`` is not a package (see run_support.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from run_support import FAST, SETTINGS
from runkit import Run, Runkit, Status
from runkit.engine import embedded_workers
from runkit.kinds import builtin_plugins, flashboard
from runkit.kinds.data import DataPolicy, configure_data
from runkit.kinds.data.duckdb_sandbox import configure_duckdb
from runkit.kinds.flashboard import configure_flashboard

KIND = "create_flashboard"
DATABASE = "warehouse/sales.duckdb"
#: The kind's plugin, unless the built-ins already bring it.
PLUGINS: list[object] = [] if flashboard in builtin_plugins() else [flashboard]
REGIONS = ("north", "south", "east", "west")

SALES = [
    "CREATE TABLE orders (id INTEGER, order_date DATE, region VARCHAR, "
    "amount DECIMAL(10, 2), quantity INTEGER, unit_price DOUBLE)",
    # 360 orders over 2026 in four regions of different sizes, deterministic; the larger
    # the unit price, the fewer items an order has.
    "INSERT INTO orders SELECT i, DATE '2026-01-01' + i::INTEGER, "
    "CASE WHEN i % 10 < 4 THEN 'north' WHEN i % 10 < 7 THEN 'south' "
    "WHEN i % 10 < 9 THEN 'east' ELSE 'west' END, "
    "round(40 + (i * 37) % 160 + 30 * sin(i / 20), 2), "
    "greatest(1, round(12 - (5 + (i * 13) % 40) / 4 + (i * 7) % 5 - 2)), "
    "5 + (i * 13) % 40 + 0.5 FROM range(360) t(i)",
    "CREATE TABLE customers (id INTEGER, name VARCHAR, tags VARCHAR[])",
    "INSERT INTO customers VALUES (1, 'Ada', ['vip']), (2, 'Grace', []), (3, 'Linus', NULL)",
    "CREATE SEQUENCE ticket START 1",
    "CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 150",
]

#: One query per chart type the rules choose (area comes from a suggestion).
QUERIES: list[dict[str, Any]] = [
    {"title": "Revenue", "sql": "SELECT sum(amount) AS revenue FROM orders"},
    {
        "title": "Revenue by month",
        "sql": "SELECT date_trunc('month', order_date) AS month, sum(amount) AS revenue "
        "FROM orders GROUP BY 1 ORDER BY 1",
    },
    {
        "title": "Revenue by month and region",
        "sql": "SELECT date_trunc('month', order_date) AS month, region, sum(amount) AS revenue "
        "FROM orders GROUP BY ALL ORDER BY 1, 2",
        "chart": "area",
    },
    {
        "title": "Orders by region",
        "sql": "SELECT region, count(*) AS orders FROM orders GROUP BY 1 ORDER BY 2 DESC, 1",
    },
    {
        "title": "Unit price and quantity",
        "sql": "SELECT unit_price, quantity FROM orders ORDER BY id LIMIT 120",
    },
    {
        "title": "Latest orders",
        "sql": "SELECT id, order_date, region, amount FROM orders ORDER BY id DESC LIMIT 8",
    },
]


def make_db(path: Path, *statements: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        for statement in statements:
            con.execute(statement)
    finally:
        con.close()


@pytest.fixture(name="root")
def root_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data root with the sales database, the host's settings back to their defaults."""
    for name in ("MEMORY_LIMIT", "THREADS", "TIMEOUT_SECONDS"):
        monkeypatch.delenv(f"RUNKIT_DUCKDB_{name}", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    make_db(data / DATABASE, *SALES)
    configure_data(DataPolicy(root=data))
    configure_duckdb(None)
    configure_flashboard(None)
    yield data.resolve()
    configure_data(None)
    configure_duckdb(None)
    configure_flashboard(None)


@pytest.fixture(name="rk", params=["memory", "sqlite"])
async def rk_fixture(
    request: pytest.FixtureRequest, root: Path, tmp_path: Path
) -> AsyncIterator[Runkit]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'runkit.db'}"
    async with (
        Runkit(url, settings=SETTINGS, plugins=PLUGINS, autoload_plugins=False) as instance,
        embedded_workers(instance, concurrency=4, **FAST),
    ):
        yield instance


async def run(rk: Runkit, definition: dict[str, Any], within: float = 60.0) -> Run:
    created = await rk.create(KIND, definition, execute=True)
    return await rk.wait(created.run.id, timeout=within, poll=0.05)


async def succeeded(rk: Runkit, definition: dict[str, Any]) -> dict[str, Any]:
    done = await run(rk, definition)
    assert done.status == Status.SUCCEEDED, done.error
    assert done.result is not None
    json.dumps(done.result, allow_nan=False)  # strict JSON
    return done.result
