"""duckdb_transform as runs on the memory and SQLite stores: results on real DuckDB files
under a temporary data root, output tables, parameters, JSON-safe values, the sandbox's
refusals, the timeout and cancel interrupting a query, and each definition error as a 422
at its field. The only server reached is one this test starts on loopback, and the sandbox
must never reach it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest

from run_support import FAST, SETTINGS
from runkit import ConfigurationError, Kind, Run, Runkit, Status, ValidationError
from runkit.engine import embedded_workers
from runkit.kinds.data import DataPolicy, configure_data
from runkit.kinds.data.duckdb_sandbox import (
    DuckdbSettings,
    configure_duckdb,
    iso_duration,
    jsonable,
)
from web_support import LocalServer

pytestmark = pytest.mark.anyio

KIND = "duckdb_transform"
#: A query that runs for minutes: ten billion hashes that the optimiser cannot skip.
FOREVER = "SELECT count(*) FROM range(10000000) a, range(1000) b WHERE hash(a.range * b.range) = 42"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("MEMORY_LIMIT", "THREADS", "TIMEOUT_SECONDS"):
        monkeypatch.delenv(f"RUNKIT_DUCKDB_{name}", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    configure_data(DataPolicy(root=data))
    configure_duckdb(None)
    yield data.resolve()
    configure_data(None)
    configure_duckdb(None)


@pytest.fixture(params=["memory", "sqlite"])
async def rk(request: pytest.FixtureRequest, root: Path, tmp_path: Path) -> AsyncIterator[Runkit]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'runkit.db'}"
    async with (
        Runkit(url, settings=SETTINGS, autoload_plugins=False) as instance,
        embedded_workers(instance, concurrency=4, **FAST),
    ):
        yield instance


async def run(rk: Runkit, definition: dict[str, Any], within: float = 20.0) -> Run:
    created = await rk.create(KIND, definition, execute=True)
    return await rk.wait(created.run.id, timeout=within, poll=0.05)


async def succeeded(rk: Runkit, definition: dict[str, Any]) -> dict[str, Any]:
    done = await run(rk, definition)
    assert done.status == Status.SUCCEEDED, done.error
    assert done.result is not None
    json.dumps(done.result, allow_nan=False)  # strict JSON: no NaN, no Infinity
    return done.result


async def refused(rk: Runkit, definition: dict[str, Any], error: str = "SandboxRefused") -> str:
    done = await run(rk, definition)
    assert done.status == Status.FAILED and done.error is not None, done.status
    assert done.error["type"] == error, done.error
    assert done.attempt == 1  # never retried: SQL is not repeated behind the user's back
    return str(done.error["message"])


async def definition_errors(rk: Runkit, definition: dict[str, Any]) -> dict[Any, str]:
    with pytest.raises(ValidationError) as info:
        await rk.create(KIND, definition)
    errors: dict[Any, str] = {}
    for detail in info.value.details:
        errors[detail.loc] = (
            f"{errors[detail.loc]}; {detail.msg}" if detail.loc in errors else detail.msg
        )
    return errors


def make_db(path: Path, *statements: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    for statement in statements:
        con.execute(statement)
    con.close()


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# --- registration -----------------------------------------------------------------------------
async def test_the_kind_is_registered_with_a_valid_example(rk: Runkit) -> None:
    kind = rk.kinds.get(KIND)
    assert isinstance(kind, Kind) and kind.display_name == "DuckDB transform"
    assert rk.kinds.owner(KIND) == "runkit.kinds.data"
    assert kind.description and kind.cancellable and kind.pausable
    assert kind.example is not None and kind.check is not None
    kind.check(kind.validate(kind.example), None)  # type: ignore[arg-type]


# --- success paths ----------------------------------------------------------------------------
async def test_a_database_file_under_the_root(rk: Runkit, root: Path) -> None:
    make_db(
        root / "shop" / "sales.duckdb",
        "CREATE TABLE orders (region VARCHAR, amount INTEGER)",
        "INSERT INTO orders VALUES ('north', 10), ('south', 5), ('north', 7)",
    )
    result = await succeeded(
        rk,
        {
            "database": "shop/sales.duckdb",
            "sql": "SELECT region, sum(amount) AS total FROM orders GROUP BY region ORDER BY 1",
        },
    )
    assert result == {
        "columns": [{"name": "region", "type": "VARCHAR"}, {"name": "total", "type": "HUGEINT"}],
        "rows": [["north", 17], ["south", 5]],
        "rowCount": 2,
        "truncated": False,
        "outputTable": None,
    }


async def test_memory_and_a_new_file_in_a_new_folder(rk: Runkit, root: Path) -> None:
    result = await succeeded(rk, {"sql": "CREATE TABLE t AS SELECT 42 AS x; FROM t"})
    assert result["rows"] == [[42]]
    await succeeded(rk, {"database": "new/dir/w.duckdb", "sql": "CREATE TABLE t AS SELECT 1 x"})
    assert query(root / "new" / "dir" / "w.duckdb", "FROM t") == [(1,)]


async def test_files_under_the_root_by_tilde_and_by_absolute_path(rk: Runkit, root: Path) -> None:
    (root / "in").mkdir()
    (root / "in" / "orders.csv").write_text("id,amount\n1,2.5\n2,4\n")
    result = await succeeded(
        rk,
        {
            "sql": f"""CREATE TABLE o AS FROM read_csv('~/in/orders.csv');
                COPY o TO '~/orders.parquet';
                SELECT count(*) AS n FROM read_parquet('{root}/orders.parquet')""",
        },
    )
    assert result["rows"] == [[2]]
    assert (root / "orders.parquet").is_file()


async def test_output_replace_and_append(rk: Runkit, root: Path) -> None:
    db = root / "w.duckdb"
    base = {"database": "w.duckdb", "output": {"table": "daily"}}
    first = await succeeded(rk, {**base, "sql": "SELECT range AS n FROM range(3)"})
    assert (first["outputTable"], first["rowCount"], first["rows"]) == ("daily", 3, [[0], [1], [2]])
    await succeeded(rk, {**base, "sql": "SELECT 7 AS n"})  # replace: the table anew
    assert query(db, "FROM daily") == [(7,)]
    append = {"database": "w.duckdb", "output": {"table": "main.daily", "mode": "append"}}
    added = await succeeded(rk, {**append, "sql": "SELECT range + 100 AS n FROM range(2)"})
    assert (added["rowCount"], added["rows"]) == (2, [[100], [101]])  # the rows added
    await succeeded(rk, {**append, "sql": "SELECT 5 AS n"})
    assert query(db, "FROM daily ORDER BY n") == [(5,), (7,), (100,), (101,)]
    # Append matches columns by name and makes a missing table.
    await succeeded(
        rk,
        {
            "database": "w.duckdb",
            "sql": "SELECT 'b' AS label, 2 AS n",
            "output": {"table": "pairs", "mode": "append"},
        },
    )
    await succeeded(
        rk,
        {
            "database": "w.duckdb",
            "sql": "SELECT 3 AS n, 'c' AS label",
            "output": {"table": "pairs", "mode": "append"},
        },
    )
    assert query(db, "SELECT label, n FROM pairs ORDER BY n") == [("b", 2), ("c", 3)]


async def test_parameters_as_a_list_and_as_an_object(rk: Runkit) -> None:
    listed = await succeeded(
        rk,
        {
            "sql": "CREATE TABLE t AS SELECT range AS n FROM range(10);"
            "DELETE FROM t WHERE n > $1;"  # each statement takes the values it names
            "CREATE TABLE u AS SELECT ? AS a, ? AS b;"
            "SELECT (SELECT count(*) FROM t) AS kept, a, b FROM u",
            "parameters": [3, "x"],
        },
    )
    assert listed["rows"] == [[4, 3, "x"]]
    named = await succeeded(
        rk,
        {
            "sql": "CREATE TABLE t AS SELECT range AS n FROM range(10);"
            "SELECT count(*) AS c, $label AS label FROM t WHERE n >= $low",
            "parameters": {"low": 4, "label": "from four"},
        },
    )
    assert named["rows"] == [[6, "from four"]]
    nested = await succeeded(
        rk, {"sql": "SELECT $1 AS l, $2 AS s", "parameters": [[1, 2], {"k": 1}]}
    )
    assert nested["rows"] == [[[1, 2], {"k": 1}]]


async def test_preview_rows_truncate_the_rows_not_the_count(rk: Runkit) -> None:
    many = "SELECT range AS n FROM range(50)"
    capped = await succeeded(rk, {"sql": many, "previewRows": 5})
    assert (capped["rows"], capped["rowCount"], capped["truncated"]) == (
        [[0], [1], [2], [3], [4]],
        50,
        True,
    )
    none = await succeeded(rk, {"sql": many, "previewRows": 0})
    assert (none["rows"], none["rowCount"], none["truncated"]) == ([], 50, True)
    assert none["columns"] == [{"name": "n", "type": "BIGINT"}]
    big = await succeeded(rk, {"sql": "SELECT range FROM range(25000)", "previewRows": 1})
    assert (big["rowCount"], big["truncated"]) == (25000, True)
    exact = await succeeded(rk, {"sql": "SELECT 1 UNION ALL SELECT 2", "previewRows": 2})
    assert (exact["rowCount"], exact["truncated"]) == (2, False)
    written = await succeeded(rk, {"sql": many, "previewRows": 3, "output": {"table": "t"}})
    assert (len(written["rows"]), written["rowCount"], written["truncated"]) == (3, 50, True)


async def test_every_type_comes_back_json_safe(rk: Runkit) -> None:
    result = await succeeded(
        rk,
        {
            "sql": """SELECT
                sum(x) AS small_sum,
                sum(x) + 9007199254740993 AS big_sum,
                9007199254740993::BIGINT AS big,
                170141183460469231731687303715884105727::HUGEINT AS huge,
                1.50::DECIMAL(10, 2) AS dec,
                DATE '2026-11-30' AS day,
                TIMESTAMP '2026-11-30 10:15:00.25' AS ts,
                TIMESTAMPTZ '2026-11-30 10:15:00+00' AS tstz,
                TIME '12:34:56' AS tm,
                '\\x00\\xFFab'::BLOB AS blob,
                INTERVAL '1 day 2 hours 3.5 seconds' AS span,
                -INTERVAL '90 minutes' AS negative,
                '6c6d1d2a-5e55-4d9b-9a5b-2d4b6b7f0d11'::UUID AS id,
                'nan'::DOUBLE AS nan, 'inf'::DOUBLE AS inf, '-inf'::FLOAT AS ninf, 0.5 AS half,
                [DATE '2026-01-02'] AS dates,
                {'amount': 2.25::DECIMAL(5, 2), 'raw': 'a'::BLOB} AS nested,
                MAP {1: 'one'} AS by_number,
                NULL AS nothing, true AS yes
            FROM range(3) t(x)""",
        },
    )
    row = dict(zip([c["name"] for c in result["columns"]], result["rows"][0], strict=True))
    assert row == {
        "small_sum": 3,
        "big_sum": "9007199254740996",
        "big": "9007199254740993",
        "huge": "170141183460469231731687303715884105727",
        "dec": "1.50",
        "day": "2026-11-30",
        "ts": "2026-11-30T10:15:00.250000",
        "tstz": "2026-11-30T10:15:00+00:00",
        "tm": "12:34:56",
        "blob": "AP9hYg==",
        "span": "P1DT2H3.5S",
        "negative": "-PT1H30M",
        "id": "6c6d1d2a-5e55-4d9b-9a5b-2d4b6b7f0d11",
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "half": "0.5",
        "dates": ["2026-01-02"],
        "nested": {"amount": "2.25", "raw": "YQ=="},
        "by_number": {"1": "one"},
        "nothing": None,
        "yes": True,
    }
    types = {c["name"]: c["type"] for c in result["columns"]}
    assert types["small_sum"] == "HUGEINT" and types["dec"] == "DECIMAL(10,2)"


def test_json_conversions_directly() -> None:
    assert jsonable(2**53 - 1) == 2**53 - 1 and jsonable(-(2**53)) == str(-(2**53))
    assert jsonable({None: 1, True: 2}) == {"null": 1, "true": 2}
    assert iso_duration(timedelta(0)) == "PT0S"
    assert iso_duration(timedelta(days=420)) == "P420D"  # 14 months, as Python receives them
    assert iso_duration(timedelta(seconds=-0.25)) == "-PT0.25S"
    assert jsonable(object.__new__(type("Odd", (), {"__str__": lambda s: "odd"}))) == "odd"


async def test_progress_and_logs(rk: Runkit) -> None:
    done = await run(rk, {"sql": "CREATE TABLE t (x INT); INSERT INTO t VALUES (1); FROM t"})
    lines = [e.message async for e in rk.iter_logs(done.id)]
    assert [line.split(" in ")[0] for line in lines if line.startswith("statement")] == [
        "statement 1 of 3 (CREATE)",
        "statement 2 of 3 (INSERT)",
        "statement 3 of 3 (SELECT)",
    ]


# --- the host's settings ----------------------------------------------------------------------
async def test_the_hosts_limits_apply(rk: Runkit, monkeypatch: pytest.MonkeyPatch) -> None:
    sql = "SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m"
    configure_duckdb(DuckdbSettings(memory_limit="300MB", threads=1, timeout_seconds=30))
    result = await succeeded(rk, {"sql": sql})
    assert result["rows"][0][0] == 1 and result["rows"][0][1].startswith("286")  # MiB
    configure_duckdb(None)
    monkeypatch.setenv("RUNKIT_DUCKDB_THREADS", "3")
    monkeypatch.setenv("RUNKIT_DUCKDB_TIMEOUT_SECONDS", "5")
    assert (await succeeded(rk, {"sql": sql}))["rows"][0][0] == 3
    errors = await definition_errors(rk, {"sql": "SELECT 1", "timeoutSeconds": 6})
    assert "at most 5 s" in errors[("definition", "timeoutSeconds")]
    monkeypatch.setenv("RUNKIT_DUCKDB_THREADS", "many")
    with pytest.raises(ConfigurationError, match="RUNKIT_DUCKDB_THREADS"):
        await rk.create(KIND, {"sql": "SELECT 1"})


async def test_memory_beyond_the_limit_fails_and_spills_stay_in_the_root(
    rk: Runkit, root: Path
) -> None:
    configure_duckdb(DuckdbSettings(memory_limit="16MB", threads=1))
    message = await refused(
        rk, {"sql": "SELECT length(list(range)) FROM range(20000000)"}, "OutOfMemory"
    )
    assert "Out of Memory Error" in message
    big_sort = (
        "SELECT count(*) FROM (SELECT range::VARCHAR || 'x' AS s FROM range(1000000) ORDER BY s)"
    )
    assert (await succeeded(rk, {"sql": big_sort}))["rows"] == [[1000000]]  # spilled to disk
    spills = await succeeded(rk, {"sql": "SELECT current_setting('temp_directory')"})
    assert spills["rows"] == [[f"{root}/.duckdb-tmp"]]  # inside the root (DuckDB removes it)


# --- the sandbox ------------------------------------------------------------------------------
async def test_files_outside_the_root_are_refused(rk: Runkit, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("secret\n42\n")
    sibling = root.parent / f"{root.name}2"
    sibling.mkdir()
    (sibling / "s.csv").write_text("a\n1\n")
    (root / "link").symlink_to(tmp_path)  # a symlink inside the root that points out
    for sql in (
        f"SELECT * FROM read_csv('{outside}')",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_csv('{sibling}/s.csv')",  # a sibling that shares the prefix
        "SELECT * FROM read_csv('~/link/outside.csv')",
        f"SELECT * FROM read_text('{root}/link/outside.csv')",
        "SELECT * FROM read_csv('relative.csv')",  # relative: refused, so say '~/'
        "SELECT * FROM glob('/etc/*')",
    ):
        message = await refused(rk, {"sql": sql})
        assert "refused by the sandbox" in message and "Permission Error" in message
    await refused(rk, {"sql": f"COPY (SELECT 1) TO '{tmp_path}/leak.csv'"})
    await refused(rk, {"sql": f"EXPORT DATABASE '{tmp_path}/dump'"})
    assert not (tmp_path / "leak.csv").exists() and not (tmp_path / "dump").exists()


async def test_attach_outside_is_refused_and_inside_allowed(
    rk: Runkit, root: Path, tmp_path: Path
) -> None:
    make_db(tmp_path / "other.duckdb", "CREATE TABLE secret AS SELECT 1 x")
    make_db(root / "lake" / "raw.duckdb", "CREATE TABLE events AS SELECT range AS id FROM range(4)")
    await refused(rk, {"sql": f"ATTACH '{tmp_path}/other.duckdb' AS o; FROM o.secret"})
    result = await succeeded(
        rk,
        {
            "database": "w.duckdb",
            "sql": "ATTACH '~/lake/raw.duckdb' AS raw (READ_ONLY); ATTACH ':memory:' AS scratch;"
            "SELECT count(*) AS n FROM raw.events",
        },
    )
    assert result["rows"] == [[4]]


async def test_network_extensions_and_settings_are_refused(rk: Runkit, server: LocalServer) -> None:
    for sql in (
        f"SELECT * FROM read_csv('{server.url('/data.csv')}')",
        f"SELECT * FROM '{server.url('/data.parquet')}'",
        "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
        "INSTALL httpfs",
        f"INSTALL httpfs FROM '{server.url('/')}'",
        "LOAD httpfs",
        "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    ):
        done = await run(rk, {"sql": sql})
        assert done.status == Status.FAILED and done.error is not None
        assert done.error["type"] in ("SandboxRefused", "SqlError"), done.error
    assert server.connections == 0  # nothing reached the loopback server
    for sql in (
        "SET threads = 64",
        "SET memory_limit = '100GB'",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "RESET allowed_directories",
        "PRAGMA threads=8",
    ):
        message = await refused(rk, {"sql": sql})
        assert "configuration has been locked" in message


async def test_parent_segments_are_refused_at_create(rk: Runkit) -> None:
    errors = await definition_errors(rk, {"sql": "SELECT * FROM read_text('~/link/../etc/x')"})
    assert "'..'" in errors[("definition", "sql")]


async def test_a_database_path_that_leaves_the_root_at_run_time(
    rk: Runkit, root: Path, tmp_path: Path
) -> None:
    (root / "out").symlink_to(tmp_path)
    message = await refused(rk, {"database": "out/x.duckdb", "sql": "SELECT 1"}, "PathRefused")
    assert "leads out of the data root" in message
    assert not (tmp_path / "x.duckdb").exists()


# --- time limits and cancel -------------------------------------------------------------------
async def test_the_timeout_interrupts_the_query(rk: Runkit) -> None:
    started = time.monotonic()
    message = await refused(
        rk, {"sql": f"SELECT 1; {FOREVER}", "timeoutSeconds": 0.5}, "StatementTimeout"
    )
    assert time.monotonic() - started < 5
    assert message == "statement 2 of 2 (SELECT) ran past the timeout of 0.5 s and was interrupted"
    configure_duckdb(DuckdbSettings(timeout_seconds=0.5))  # the host's limit applies too
    await refused(rk, {"sql": FOREVER}, "StatementTimeout")


async def _until(rk: Runkit, run_id: Any, done: Callable[[Run], bool]) -> Run:
    with anyio.fail_after(10):
        while True:
            current = await rk.get(run_id)
            if done(current):
                return current
            await anyio.sleep(0.02)


async def _running(rk: Runkit, definition: dict[str, Any]) -> Run:
    created = await rk.create(KIND, definition, execute=True)
    return await _until(rk, created.run.id, lambda r: r.progress.get("phase") == "running")


async def test_cancel_interrupts_a_running_query_at_once(rk: Runkit) -> None:
    current = await _running(rk, {"sql": FOREVER})
    assert current.progress == {
        "phase": "running",
        "statement": 1,
        "statements": 1,
        "type": "SELECT",
    }
    assert await rk.display_status(current) == "Running · statement 1 of 1"
    started = time.monotonic()
    await rk.cancel(current.id)
    done = await rk.wait(current.id, timeout=10, poll=0.02)
    assert done.status == Status.CANCELLED and time.monotonic() - started < 2


async def test_pause_interrupts_and_resume_starts_over(rk: Runkit) -> None:
    current = await _running(rk, {"sql": FOREVER})
    await rk.pause(current.id)
    started = time.monotonic()
    await _until(rk, current.id, lambda r: r.status == Status.PAUSED)
    assert time.monotonic() - started < 3  # the pause grace, then the interrupt
    await rk.resume(current.id)
    again = await _until(rk, current.id, lambda r: r.status == Status.RUNNING)
    assert again.attempt == 2
    await rk.cancel(current.id)
    assert (await rk.wait(current.id, timeout=10)).status == Status.CANCELLED


# --- a database in use ------------------------------------------------------------------------
async def test_runs_on_one_file_take_turns(rk: Runkit, root: Path) -> None:
    make_db(root / "shared.duckdb", "CREATE TABLE t (n INTEGER)")
    definition = {
        "database": "shared.duckdb",
        "sql": "INSERT INTO t SELECT 1 FROM range(1000); SELECT count(*) FROM t",
    }
    created = [await rk.create(KIND, definition, execute=True) for _ in range(3)]
    done = [await rk.wait(c.run.id, timeout=20) for c in created]
    assert all(d.status == Status.SUCCEEDED for d in done), [d.error for d in done]
    assert sorted(d.result["rows"][0][0] for d in done if d.result) == [1000, 2000, 3000]


async def test_a_file_in_use_by_a_run_here_is_waited_for(rk: Runkit, root: Path) -> None:
    first = await _running(rk, {"database": "busy.duckdb", "sql": FOREVER})
    created = await rk.create(KIND, {"database": "busy.duckdb", "sql": "SELECT 1"}, execute=True)
    second = await _until(rk, created.run.id, lambda r: r.progress.get("phase") == "waiting")
    assert await rk.display_status(second) == "Running · waiting for busy.duckdb, which is in use"
    await rk.cancel(first.id)
    assert (await rk.wait(second.id, timeout=10)).status == Status.SUCCEEDED
    holder = await _running(rk, {"database": "busy.duckdb", "sql": FOREVER})
    message = await refused(
        rk, {"database": "busy.duckdb", "sql": "SELECT 1", "timeoutSeconds": 0.3}, "DatabaseBusy"
    )
    assert message == "busy.duckdb was in use by another run of this process for more than 0.3 s"
    await rk.cancel(holder.id)


@pytest.fixture
def held(root: Path) -> Iterator[Path]:
    """A DuckDB file that another process holds open (DuckDB locks the file for it)."""
    path = root / "held.duckdb"
    make_db(path, "CREATE TABLE t (n INTEGER)")
    program = f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ready', flush=True)"
    holder = subprocess.Popen(
        [sys.executable, "-c", program + "; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield path
    finally:
        holder.communicate("", timeout=10)


async def test_a_file_held_by_another_process_fails_after_the_timeout(
    rk: Runkit, held: Path
) -> None:
    started = time.monotonic()
    definition = {"database": held.name, "sql": "FROM t", "timeoutSeconds": 0.5}
    message = await refused(rk, definition, "DatabaseBusy")
    assert "held.duckdb was held" in message and "for more than 0.5 s" in message
    assert time.monotonic() - started < 5


# --- definition errors ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("definition", "loc", "words"),
    [
        ({}, ("definition", "sql"), "required"),
        ({"sql": ""}, ("definition", "sql"), "1"),
        ({"sql": "  ;  -- nothing"}, ("definition", "sql"), "no SQL statement"),
        ({"sql": "SELEC 1"}, ("definition", "sql"), "syntax error"),
        ({"sql": "SELECT 1", "database": "/etc/x.duckdb"}, ("definition", "database"), "absolute"),
        ({"sql": "SELECT 1", "database": "../x.duckdb"}, ("definition", "database"), "'..'"),
        (
            {"sql": "SELECT 1", "database": "s3://b/x.duckdb"},
            ("definition", "database"),
            "protocol",
        ),
        ({"sql": "SELECT 1", "database": ""}, ("definition", "database"), "empty"),
        ({"sql": "SELECT 1", "parameters": 5}, ("definition", "parameters"), "a list"),
        (
            {"sql": "SELECT $1", "parameters": {"1": 2}},
            ("definition", "parameters"),
            "parameter name",
        ),
        ({"sql": "SELECT ?", "parameters": {"a": 1}}, ("definition", "parameters"), "as a list"),
        ({"sql": "SELECT $a", "parameters": [1]}, ("definition", "parameters"), "as an object"),
        ({"sql": "SELECT $a", "parameters": {}}, ("definition", "parameters"), "does not give"),
        ({"sql": "SELECT $2", "parameters": [1]}, ("definition", "parameters"), "has 1"),
        ({"sql": "SELECT 1", "parameters": [1]}, ("definition", "parameters"), "no statement"),
        ({"sql": "SELECT $a", "parameters": {"a": 1, "b": 2}}, ("definition", "parameters"), "$b"),
        (
            {"sql": "SELECT 1", "output": {"table": "x; DROP"}},
            ("definition", "output", "table"),
            "not a table name",
        ),
        (
            {"sql": "SELECT 1", "output": {"table": "a.b.c.d"}},
            ("definition", "output", "table"),
            "not a table name",
        ),
        (
            {"sql": "SELECT 1", "output": {"table": "t", "mode": "merge"}},
            ("definition", "output", "mode"),
            "in",
        ),
        ({"sql": "SELECT 1", "output": {}}, ("definition", "output", "table"), "required"),
        (
            {"sql": "CREATE TABLE t (x INT)", "output": {"table": "t2"}},
            ("definition", "output"),
            "CREATE",
        ),
        ({"sql": "SELECT 1", "previewRows": -1}, ("definition", "previewRows"), ">= 0"),
        ({"sql": "SELECT 1", "previewRows": 1001}, ("definition", "previewRows"), "<= 1000"),
        ({"sql": "SELECT 1", "previewRows": 2.5}, ("definition", "previewRows"), "int"),
        ({"sql": "SELECT 1", "timeoutSeconds": 0}, ("definition", "timeoutSeconds"), "> 0"),
        (
            {"sql": "SELECT 1", "timeoutSeconds": 301},
            ("definition", "timeoutSeconds"),
            "at most 300 s",
        ),
        ({"sql": "SELECT 1", "table": "t"}, ("definition", "table"), "extra field"),
    ],
)
async def test_each_definition_error_is_a_422_at_its_field(
    rk: Runkit, definition: dict[str, Any], loc: tuple[str, ...], words: str
) -> None:
    errors = await definition_errors(rk, definition)
    assert loc in errors, errors
    assert words in errors[loc], errors


async def test_errors_are_reported_together(rk: Runkit) -> None:
    errors = await definition_errors(
        rk, {"sql": "SELECT $a", "database": "/abs", "timeoutSeconds": 1000}
    )
    assert set(errors) == {
        ("definition", "database"),
        ("definition", "parameters"),
        ("definition", "timeoutSeconds"),
    }


async def test_sql_errors_fail_the_run_naming_the_statement(rk: Runkit) -> None:
    done = await run(rk, {"sql": "SELECT 1; SELECT * FROM missing_table"})
    assert done.status == Status.FAILED and done.error is not None
    assert done.error["type"] == "SqlError" and done.error["statement"] == 2
    assert done.error["message"].startswith("statement 2 of 2 (SELECT): Catalog Error")


async def test_statements_commit_one_by_one_unless_in_a_transaction(rk: Runkit, root: Path) -> None:
    db = root / "tx.duckdb"
    await refused(
        rk,
        {"database": "tx.duckdb", "sql": "CREATE TABLE kept AS SELECT 1 x; FROM missing"},
        "SqlError",
    )
    transaction = "BEGIN; CREATE TABLE gone AS SELECT 1 x; INSERT INTO kept VALUES (2);"
    await refused(
        rk, {"database": "tx.duckdb", "sql": f"{transaction} FROM missing; COMMIT"}, "SqlError"
    )
    await refused(
        rk,
        {"database": "tx.duckdb", "sql": f"{transaction} {FOREVER}; COMMIT", "timeoutSeconds": 0.3},
        "StatementTimeout",
    )
    assert query(db, "SELECT table_name FROM duckdb_tables()") == [("kept",)]
    assert query(db, "FROM kept") == [(1,)]


async def test_a_missing_extra_is_a_422_naming_it(
    rk: Runkit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)  # as if not installed
    errors = await definition_errors(rk, {"sql": "SELECT 1"})
    assert "pip install 'runkit[duckdb]'" in errors[("definition",)]


def test_the_module_imports_and_registers_without_duckdb() -> None:
    program = textwrap.dedent("""
        import sys
        sys.modules["duckdb"] = None
        import runkit
        from runkit.kinds.data import duckdb_transform
        rk = runkit.Runkit("memory://", autoload_plugins=False)
        print("duckdb_transform" in rk.kinds.names())
    """)
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"
