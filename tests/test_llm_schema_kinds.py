"""explain_schema and generate_query as runs on the memory and SQLite stores, end to end: real
DuckDB files under a temporary data root (opened read-only), DDL text, the model answered by
the scripted fake of tests/llm_fake.py on 127.0.0.1 (valid answers, SQL that does not parse
or plan, malformed JSON, an answer that never ends), and each definition error as a 422,
through the HTTP API too."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import duckdb
import httpx
import pytest

import runkit.kinds.llm as llm_plugin
from llm_fake import FakeLlm, Seen, endless, serving_llm, text
from run_support import FAST, SETTINGS
from runkit import Kind, LogEntry, Run, Runkit, Status, ValidationError
from runkit.engine import embedded_workers
from runkit.kinds import builtin_plugins
from runkit.kinds.data import DataPolicy, configure_data
from runkit.kinds.data.duckdb_sandbox import configure_duckdb
from runkit.kinds.llm import LlmSettings, configure_llm
from runkit.kinds.llm.settings import API_KEY_ENV, BASE_URL_ENV, MODEL_ENV, PROVIDER_ENV
from runkit_contrib import ApiKeys, asgi_app

pytestmark = pytest.mark.anyio

KEY = "sk-schema-kinds-secret-0123456789"
ORDERS = [
    "CREATE TABLE regions (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL)",
    "CREATE TABLE orders (id INTEGER NOT NULL, region_id INTEGER, amount DECIMAL(10, 2), "
    "ordered_on DATE)",
    "INSERT INTO regions VALUES (1, 'north'), (2, 'south')",
    "INSERT INTO orders VALUES (1, 1, 10.50, '2026-11-01'), (2, 1, 7.25, '2026-11-02'), "
    "(3, 2, 5.00, '2026-11-02')",
    "CREATE SCHEMA audit",
    "CREATE TABLE audit.events (happened TIMESTAMP, what VARCHAR)",
    "CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 6",
]
DDL = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR NOT NULL, joined DATE);
CREATE TABLE invoices (id INTEGER, customer_id INTEGER, total DOUBLE, paid BOOLEAN);
INSERT INTO customers VALUES (1, 'a@example.org', '2026-01-02');
"""
GOOD_SQL = (
    "SELECT r.name AS region, sum(o.amount) AS revenue FROM orders o "
    "JOIN regions r ON r.id = o.region_id GROUP BY r.name ORDER BY revenue DESC"
)


def answer(value: Any, **kwargs: Any) -> Any:
    return text(json.dumps(value), **kwargs)


def summaries(*names: str) -> Any:
    return answer(
        {
            "overview": "A small sales schema.",
            "tables": [{"name": n, "summary": f"About {n}."} for n in names],
        },
        usage=(300, 40),
    )


# --- fixtures ----------------------------------------------------------------------------------
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


@pytest.fixture
def fake_llm() -> Iterator[FakeLlm]:
    with serving_llm() as server:
        yield server


@pytest.fixture(autouse=True)
def configured(fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLlm]:
    for name in (BASE_URL_ENV, API_KEY_ENV, MODEL_ENV, PROVIDER_ENV):
        monkeypatch.delenv(name, raising=False)
    configure_llm(
        LlmSettings(base_url=fake_llm.base_url, api_key=KEY, model="fake-model", backoff_base=0.01)
    )
    yield fake_llm
    configure_llm(None)


def plugins() -> list[object]:
    """The plugin, unless runkit already builds it in (then it is registered anyway)."""
    return [] if llm_plugin in builtin_plugins() else [llm_plugin]


@pytest.fixture(params=["memory", "sqlite"])
async def rk(request: pytest.FixtureRequest, root: Path, tmp_path: Path) -> AsyncIterator[Runkit]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'runkit.db'}"
    async with (
        Runkit(url, settings=SETTINGS, plugins=plugins(), autoload_plugins=False) as instance,
        embedded_workers(instance, concurrency=2, **FAST),
    ):
        yield instance


@pytest.fixture
def shop(root: Path) -> Path:
    path = root / "shop" / "sales.duckdb"
    path.parent.mkdir()
    con = duckdb.connect(str(path))
    for statement in ORDERS:
        con.execute(statement)
    con.close()
    return path


async def run(rk: Runkit, kind: str, definition: dict[str, Any], within: float = 30.0) -> Run:
    created = await rk.create(kind, definition, execute=True)
    return await rk.wait(created.run.id, timeout=within, poll=0.05)


async def succeeded(rk: Runkit, kind: str, definition: dict[str, Any]) -> dict[str, Any]:
    done = await run(rk, kind, definition)
    assert done.status == Status.SUCCEEDED, done.error
    assert done.result is not None
    json.dumps(done.result, allow_nan=False)
    return done.result


async def until(condition: Callable[[], bool], within: float) -> None:
    with anyio.fail_after(within):
        while True:
            if condition():
                return
            await anyio.sleep(0.02)


async def entries(rk: Runkit, run_id: Any) -> list[LogEntry]:
    return [entry async for entry in rk.iter_logs(run_id)]


async def definition_errors(rk: Runkit, kind: str, definition: dict[str, Any]) -> dict[Any, str]:
    with pytest.raises(ValidationError) as info:
        await rk.create(kind, definition)
    return {detail.loc: detail.msg for detail in info.value.details}


# --- registration ------------------------------------------------------------------------------
async def test_the_kinds_come_with_the_plugin(rk: Runkit, shop: Path) -> None:
    for name in ("explain_schema", "generate_query"):
        kind = rk.kinds.get(name)
        assert isinstance(kind, Kind) and kind.display_name and kind.description
        assert rk.kinds.owner(name) == "runkit.kinds.llm" and kind.cancellable
        assert kind.example is not None and kind.check is not None
        kind.check(kind.validate(kind.example), None)  # type: ignore[arg-type]


# --- explain_schema ---------------------------------------------------------------------------
async def test_explain_a_database_file(rk: Runkit, fake_llm: FakeLlm, shop: Path) -> None:
    before = await anyio.Path(shop).read_bytes()
    fake_llm.script(summaries("regions", "orders", "big_orders", "audit.events"))
    result = await succeeded(rk, "explain_schema", {"database": "shop/sales.duckdb"})
    by_name = {t["name"]: t for t in result["tables"]}
    assert list(by_name) == ["big_orders", "orders", "regions", "audit.events"]
    assert by_name["orders"] == {
        "name": "orders",
        "columns": [
            {"name": "id", "type": "INTEGER", "nullable": False},
            {"name": "region_id", "type": "INTEGER", "nullable": True},
            {"name": "amount", "type": "DECIMAL(10,2)", "nullable": True},
            {"name": "ordered_on", "type": "DATE", "nullable": True},
        ],
        "rowCount": 3,
        "summary": "About orders.",
    }
    assert by_name["big_orders"]["rowCount"] is None  # a view is not counted
    assert by_name["audit.events"]["rowCount"] == 0
    assert result["overview"] == "A small sales schema."
    assert result["usage"] == {"promptTokens": 300, "completionTokens": 40, "calls": 1}
    (seen,) = fake_llm.chat_requests
    prompt = seen.prompt
    assert "CREATE TABLE orders (  -- 3 rows" in prompt and "id INTEGER NOT NULL," in prompt
    assert "CREATE TABLE audit.events" in prompt and "CREATE VIEW big_orders" in prompt
    assert '-- sample: {"id": 1, "name": "north"}' in prompt  # sample rows, 3 by default
    assert await anyio.Path(shop).read_bytes() == before  # opened read-only


async def test_explain_ddl_text_chosen_tables_without_samples(
    rk: Runkit, fake_llm: FakeLlm
) -> None:
    fake_llm.script(summaries("invoices"))
    result = await succeeded(
        rk, "explain_schema", {"schema": DDL, "tables": ["invoices"], "sampleRows": 0}
    )
    (table,) = result["tables"]
    assert table["name"] == "invoices" and table["rowCount"] == 0
    assert [c["name"] for c in table["columns"]] == ["id", "customer_id", "total", "paid"]
    prompt = fake_llm.chat_requests[0].prompt
    assert "customers" not in prompt and "-- sample" not in prompt


async def test_a_missing_summary_is_asked_for_again(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(summaries("customers"), summaries("customers", "invoices"))
    result = await succeeded(rk, "explain_schema", {"schema": DDL})
    assert [t["summary"] for t in result["tables"]] == ["About customers.", "About invoices."]
    assert result["usage"]["calls"] == 2
    shown = fake_llm.chat_requests[1].messages[-1]["content"]
    assert "no summary for the table(s) invoices" in shown


async def test_an_unknown_table_fails_the_run(rk: Runkit, fake_llm: FakeLlm) -> None:
    done = await run(rk, "explain_schema", {"schema": DDL, "tables": ["nope"]})
    assert done.error is not None and done.error["type"] == "SchemaError"
    assert "no table named nope (tables: customers, invoices)" in done.error["message"]
    assert fake_llm.chat_requests == []  # the model is not asked


async def test_a_missing_file_fails_the_run(rk: Runkit, fake_llm: FakeLlm) -> None:
    done = await run(rk, "explain_schema", {"database": "none/here.duckdb"})
    assert done.error is not None and done.error["type"] == "PathRefused"


# --- generate_query ---------------------------------------------------------------------------
async def test_a_valid_query_executed_with_a_preview(
    rk: Runkit, fake_llm: FakeLlm, shop: Path
) -> None:
    fake_llm.script(answer({"sql": GOOD_SQL + ";", "explanation": "Sums by region."}))
    result = await succeeded(
        rk,
        "generate_query",
        {
            "question": "Revenue by region?",
            "database": "shop/sales.duckdb",
            "execute": True,
            "previewRows": 1,
        },
    )
    assert result == {
        "sql": GOOD_SQL,
        "explanation": "Sums by region.",
        "valid": True,
        "columns": [
            {"name": "region", "type": "VARCHAR"},
            {"name": "revenue", "type": "DECIMAL(38,2)"},
        ],
        "rows": [["north", "17.75"]],
        "rowCount": 2,
        "truncated": True,
        "usage": {"promptTokens": 10, "completionTokens": 5, "calls": 1},
    }
    prompt = fake_llm.chat_requests[0].prompt
    assert "You write SQL for DuckDB" in prompt and "Revenue by region?" in prompt
    assert "CREATE TABLE regions" in prompt and "-- sample" not in prompt


async def test_sql_that_does_not_parse_is_retried_with_the_error(
    rk: Runkit, fake_llm: FakeLlm, shop: Path
) -> None:
    fake_llm.script(
        answer({"sql": "SELEC region FROM orders", "explanation": "typo"}),
        answer({"sql": "SELECT nope FROM orders", "explanation": "wrong column"}),
        answer({"sql": GOOD_SQL, "explanation": "right"}),
    )
    definition = {"question": "Revenue by region?", "database": "shop/sales.duckdb"}
    done = await run(rk, "generate_query", definition)
    result = done.result or {}
    assert result["valid"] is True and result["sql"] == GOOD_SQL and "rows" not in result
    assert result["usage"]["calls"] == 3
    second, third = fake_llm.chat_requests[1:]
    assert second.messages[-2]["content"].startswith('{"sql": "SELEC region')
    assert 'syntax error at or near "SELEC"' in second.messages[-1]["content"]
    assert 'Referenced column "nope" not found' in third.messages[-1]["content"]
    warnings = [e for e in await entries(rk, done.id) if e.event == "llm.query_invalid"]
    assert [e.data["query"] for e in warnings] == [1, 2]


async def test_a_query_still_invalid_is_returned_as_invalid(rk: Runkit, fake_llm: FakeLlm) -> None:
    wrong = answer({"sql": "SELECT missing FROM customers", "explanation": "?"})
    fake_llm.script(wrong, wrong, wrong)
    result = await succeeded(
        rk, "generate_query", {"question": "Who?", "schema": DDL, "execute": True}
    )
    assert result["valid"] is False and "rows" not in result
    assert 'Referenced column "missing" not found' in result["error"]
    assert result["usage"]["calls"] == 3 and fake_llm.exhausted == 0


async def test_only_one_read_only_query_is_accepted(
    rk: Runkit, fake_llm: FakeLlm, shop: Path
) -> None:
    fake_llm.script(
        answer({"sql": "DELETE FROM orders", "explanation": "clean up"}),
        answer({"sql": "SELECT 1; SELECT 2", "explanation": "two"}),
        answer({"sql": "COPY orders TO '/tmp/x.csv'", "explanation": "export"}),
    )
    definition = {"question": "Drop it all", "database": "shop/sales.duckdb", "execute": True}
    result = await succeeded(rk, "generate_query", definition)
    assert result["valid"] is False and "a COPY statement" in result["error"]
    prompts = [s.messages[-1]["content"] for s in fake_llm.chat_requests[1:]]
    assert "a DELETE statement: only one read-only query" in prompts[0]
    assert "2 statements: write exactly one query" in prompts[1]
    con = duckdb.connect(str(shop), read_only=True)
    assert con.execute("SELECT count(*) FROM orders").fetchone() == (3,)
    con.close()


async def test_another_dialect_is_checked_through_sqlglot(rk: Runkit, fake_llm: FakeLlm) -> None:
    pytest.importorskip("sqlglot")
    fake_llm.script(
        answer({"sql": "SELECT email FROM customers WHERE joined >= NOW() -", "explanation": "x"}),
        answer({"sql": "SELECT email::TEXT FROM customers LIMIT 5", "explanation": "pg"}),
    )
    result = await succeeded(
        rk, "generate_query", {"question": "Emails?", "schema": DDL, "dialect": "postgres"}
    )
    assert result["valid"] is True and result["sql"] == "SELECT email::TEXT FROM customers LIMIT 5"
    assert "You write SQL for the postgres SQL dialect" in fake_llm.chat_requests[0].prompt
    assert "does not parse as postgres" in fake_llm.chat_requests[1].messages[-1]["content"]


async def test_malformed_json_twice_is_model_output_invalid(rk: Runkit, fake_llm: FakeLlm) -> None:
    fake_llm.script(text("SELECT 1"), answer({"query": "SELECT 1"}))
    done = await run(rk, "generate_query", {"question": "One?", "schema": DDL})
    assert done.status == Status.FAILED and done.error is not None
    assert done.error["type"] == "ModelOutputInvalid"
    assert '"sql" must be the query' in done.error["message"]
    assert done.error["usage"] == {"prompt": 20, "completion": 10, "calls": 2}
    shown = fake_llm.chat_requests[1].messages[-1]["content"]
    assert "the answer is not JSON" in shown


# --- cancel, secrets --------------------------------------------------------------------------
async def test_cancel_while_the_model_streams(rk: Runkit, fake_llm: FakeLlm, shop: Path) -> None:
    fake_llm.script(endless('{"sql": "SELECT ', interval=0.02))
    definition = {"question": "Forever?", "database": "shop/sales.duckdb"}
    created = await rk.create("generate_query", definition, execute=True)
    await until(lambda: fake_llm.streaming.is_set() and fake_llm.pieces_sent > 5, within=10)
    assert await rk.display_status(await rk.get(created.run.id)) == (
        "Running · asking the model (call 1)"
    )
    started = time.monotonic()
    await rk.cancel(created.run.id)
    done = await rk.wait(created.run.id, timeout=10, poll=0.02)
    assert done.status == Status.CANCELLED and time.monotonic() - started < 2
    assert await anyio.to_thread.run_sync(fake_llm.hung_up.wait, 2)
    # The database is free again: a run right after opens it.
    fake_llm.script(answer({"sql": GOOD_SQL, "explanation": "ok"}))
    assert (await succeeded(rk, "generate_query", definition))["valid"] is True


async def test_the_api_key_never_appears(rk: Runkit, fake_llm: FakeLlm, shop: Path) -> None:
    def echo_key(seen: Seen) -> Any:
        return answer({"sql": f"SELECT '{KEY}' AS k", "explanation": f"the key is {KEY}"})

    fake_llm.script(echo_key)
    done = await run(rk, "generate_query", {"question": "Key?", "database": "shop/sales.duckdb"})
    logs = await entries(rk, done.id)
    assert any(e.event == "llm.answer" for e in logs)
    shown = json.dumps([[e.message, e.data] for e in logs] + [done.error], default=str)
    assert KEY not in shown
    assert fake_llm.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"


# --- definitions refused at create ------------------------------------------------------------
async def test_nothing_configured_is_a_422_naming_the_settings(rk: Runkit) -> None:
    configure_llm(None)
    for kind, definition in (
        ("explain_schema", {"schema": DDL}),
        ("generate_query", {"question": "Who?", "schema": DDL}),
    ):
        errors = await definition_errors(rk, kind, definition)
        message = errors[("definition",)]
        assert BASE_URL_ENV in message and MODEL_ENV in message and API_KEY_ENV in message


async def test_definition_errors_are_422s_at_their_fields(rk: Runkit) -> None:
    both = await definition_errors(
        rk, "explain_schema", {"database": "a.duckdb", "schema": "CREATE TABLE t (x INT)"}
    )
    assert "either database" in both[("definition",)]
    neither = await definition_errors(rk, "generate_query", {"question": "Who?"})
    assert "either database" in neither[("definition",)]
    outside = await definition_errors(rk, "explain_schema", {"database": "../x.duckdb"})
    assert "'..' is not allowed" in outside[("definition", "database")]
    url = await definition_errors(rk, "explain_schema", {"database": "s3://bucket/x.duckdb"})
    assert "protocol 's3' is not allowed" in url[("definition", "database")]
    syntax = await definition_errors(rk, "explain_schema", {"schema": "CREATE TABLE ("})
    assert "syntax error" in syntax[("definition", "schema")]
    query = await definition_errors(rk, "explain_schema", {"schema": "SELECT 1; COPY t TO 'x'"})
    assert query[("definition", "schema")] == "DDL only (CREATE, ALTER, INSERT), not COPY, SELECT"
    blank = await definition_errors(rk, "generate_query", {"question": "  ", "schema": DDL})
    assert "blank" in blank[("definition", "question")]
    bounds = await definition_errors(
        rk,
        "generate_query",
        {"question": "q", "schema": DDL, "temperature": 3, "maxTokens": 0, "previewRows": -1},
    )
    assert set(bounds) == {
        ("definition", "temperature"),
        ("definition", "maxTokens"),
        ("definition", "previewRows"),
    }
    dialect = await definition_errors(
        rk, "generate_query", {"question": "q", "schema": DDL, "dialect": "klingon"}
    )
    assert "unknown dialect 'klingon'" in dialect[("definition", "dialect")]
    execute = await definition_errors(
        rk, "generate_query", {"question": "q", "schema": DDL, "dialect": "mysql", "execute": True}
    )
    assert "needs dialect 'duckdb'" in execute[("definition", "dialect")]
    tables = await definition_errors(rk, "explain_schema", {"schema": DDL, "tables": []})
    assert "at least one table" in tables[("definition", "tables")]


async def test_the_http_api_answers_422_naming_the_settings(rk: Runkit) -> None:
    configure_llm(None)
    app = asgi_app(rk, auth=ApiKeys({"tester": "rk_test_llm_key_0123456789"}))
    headers = {"X-API-Key": "rk_test_llm_key_0123456789"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(
            "/api/v1/action-runs",
            json={"kind": "generate_query", "definition": {"question": "Who?", "schema": DDL}},
            headers=headers,
        )
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", "definition"] and detail["type"] == "llm_not_configured"
    assert BASE_URL_ENV in detail["msg"] and MODEL_ENV in detail["msg"]


async def test_a_file_being_read_is_waited_for_by_duckdb_transform(shop: Path) -> None:
    """The read-only kinds hold the file's lock of this process while they read it, so a
    duckdb_transform on the same file waits its turn instead of failing on DuckDB's
    "Unique file handle conflict"."""
    from runkit.kinds.data import duckdb_sandbox as sandbox
    from runkit.kinds.data.root import current_root
    from runkit.kinds.llm.schema_source import open_source

    async def nothing() -> None:
        pass

    settings, root = sandbox.current_settings(), current_root().real_root()
    async with open_source("shop/sales.duckdb", None):
        with pytest.raises(sandbox.DatabaseBusy, match="in use by another run"):
            await sandbox.connect(shop, root, settings, 0.2, nothing)
    con, lock = await sandbox.connect(shop, root, settings, 5.0, nothing)  # free again
    con.close()
    assert lock is not None
    lock.release()
