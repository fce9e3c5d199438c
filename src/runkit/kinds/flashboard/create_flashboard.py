"""``create_flashboard``: a dashboard from a DuckDB file under the data root. Each query
runs read-only in the DuckDB sandbox (:mod:`.source`); a chart is chosen from its result's
shape (:mod:`.charts`) and drawn as a Vega-Lite spec with its data inline (:mod:`.specs`);
the page (:mod:`.page`) goes where the host says (:mod:`.settings`). Given a ``question``
instead of queries, the language model writes them (:mod:`.suggest`). Without
``runkit[flashboard]`` the kind is listed; creating a run is a 422 naming the extra."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from ...authoring import Fatal, Kind, KindChecks, RunContext
from ...domain.errors import ErrorDetail, ValidationError
from ..data import duckdb_sandbox as sandbox
from ..data.root import PathRefused, current_root
from . import charts, page, source, specs
from .config import FlashboardConfig, QueryConfig, fields_given
from .settings import Dashboard, current_settings, deliver
from .suggest import DEFAULT_QUERIES, LlmSuggester, QuerySuggester, SuggestRequest

EXTRA = "runkit[flashboard]"
#: Opens the run's database (read-only, sandboxed): the connection and the file's lock.
Opener = Callable[[], Awaitable[tuple[Any, threading.Lock]]]
MODULES = {"duckdb": "duckdb", "vl_convert": "vl-convert-python"}


class LlmNotConfigured(Fatal):
    """The definition asks a question, and no suggester can answer it now (the settings
    changed after the run was made)."""


class NoQueryRan(Fatal):
    """None of the model's queries ran: the dashboard would be empty."""


def missing_modules() -> list[str]:
    missing = []
    for module, package in MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # sys.modules[module] is None: as if missing
            found = False
        if not found:
            missing.append(package)
    return missing


def suggester() -> QuerySuggester:
    return current_settings().suggester or LlmSuggester()


def check(config: FlashboardConfig, checks: KindChecks) -> None:
    """Create-time checks: the extra, which of question and queries, the database path,
    each query parsed, the suggester ready for a question, the timeout under the cap."""
    if missing := missing_modules():
        raise ValidationError.at(
            ("definition",),
            f"the create_flashboard kind needs the optional dependencies of {EXTRA} "
            f"(missing: {', '.join(missing)}); install them with pip install '{EXTRA}'",
            "missing_extra",
        )
    errors: list[ErrorDetail] = list(fields_given(config))
    where = ("definition", "database")
    try:
        if not current_root().check(config.database, where).is_local:
            raise ValidationError.at(where, "a DuckDB file under the data root", "path_refused")
    except ValidationError as invalid:
        errors.extend(invalid.details)
    for i, query in enumerate(config.queries or ()):
        if (problem := source.sql_problem(query.sql)) is not None:
            errors.append(ErrorDetail(("definition", "queries", i, "sql"), problem, "sql"))
    asks = config.question is not None and config.queries is None
    if asks and (problem := suggester().problem()) is not None:
        errors.append(ErrorDetail(("definition", "question"), problem, "not_configured"))
    cap = sandbox.current_settings().timeout_seconds
    if config.timeout_seconds is not None and config.timeout_seconds > cap:
        why = f"at most {cap:g} s, the host's limit ({sandbox.ENV['timeout_seconds']})"
        errors.append(ErrorDetail(("definition", "timeoutSeconds"), why, "less_than_equal"))
    if errors:
        raise ValidationError(errors)


async def _suggested(
    ctx: RunContext, config: FlashboardConfig, open_db: Opener
) -> list[QueryConfig]:
    """The model's queries, asked once per run (remembered in the checkpoint). The file is
    opened only to read its tables: it is not held while the model answers."""
    asker = suggester()
    if (problem := asker.problem()) is not None:
        raise LlmNotConfigured(problem)

    async def ask() -> list[dict[str, Any]]:
        con, lock = await open_db()
        try:
            tables = tuple(await source.tables(con))
        finally:
            await source.close(con, lock)
        await ctx.progress({"phase": "asking"})
        request = SuggestRequest(config.question or "", tables, DEFAULT_QUERIES)
        answer = await asker.suggest(ctx, request)
        return [
            {"title": q.title, "sql": q.sql, "chart": q.chart}
            for q in list(answer)[: request.max_queries]
        ]

    queries = [QueryConfig(**item) for item in await ctx.step("queries", ask)]
    if not queries:
        raise NoQueryRan(f"{asker.name} suggested no query for the question")
    for i, query in enumerate(queries, 1):
        await ctx.log(
            "info",
            f"suggested query {i} of {len(queries)}: {query.title}",
            data={"query": i, "title": query.title, "sql": query.sql, "chart": query.chart},
        )
    return queries


def chart_of(query: QueryConfig, result: Mapping[str, Any]) -> dict[str, Any]:
    """The result's entry for ``query``: the chart chosen for its rows and its spec."""
    names = specs.unique_names([c["name"] for c in result["columns"]])
    columns = [
        {"name": n, "type": c["type"]} for n, c in zip(names, result["columns"], strict=True)
    ]
    rows = result["rows"][: charts.MAX_CHART_ROWS]
    shape = charts.shape_of(columns, rows)
    choice = charts.choose(shape, query.chart)
    return {
        "title": query.title,
        "type": choice.chart,
        "spec": specs.build(query.title, choice, shape.columns, rows, result["rowCount"]),
        "sql": query.sql,
        "rowCount": result["rowCount"],
        "truncated": result["rowCount"] > len(rows),
        "chosenBy": choice.reason,
    }


async def _charts(
    ctx: RunContext, con: Any, queries: Sequence[QueryConfig], timeout: float, suggested: bool
) -> list[dict[str, Any]]:
    drawn: list[dict[str, Any]] = []
    total = len(queries)
    for i, query in enumerate(queries, 1):
        where = f"query {i} of {total} ({query.title})"

        async def slow(i: int = i) -> None:
            await ctx.progress({"phase": "querying", "query": i, "queries": total})

        began = time.monotonic()
        try:
            result = await source.run_query(
                con, query.sql, charts.MAX_CHART_ROWS, timeout, where, i, slow
            )
        except (sandbox.SqlError, sandbox.SandboxRefused) as exc:
            if not suggested:
                raise
            await ctx.log("warning", f"{exc}; the chart is left out", data={"query": i})
            continue
        chart = chart_of(query, result)
        ms = round((time.monotonic() - began) * 1000)
        rows = f"{result['rowCount']:,} row{'' if result['rowCount'] == 1 else 's'}"
        await ctx.log(
            "info",
            f"{where}: {rows} in {ms} ms, a {chart['type']} chart",
            data={"query": i, "ms": ms, "rows": result["rowCount"], "chart": chart["type"]},
        )
        drawn.append(chart)
    return drawn


async def execute(ctx: RunContext) -> dict[str, Any]:
    config: FlashboardConfig = ctx.definition
    settings, data_root = sandbox.current_settings(), current_root()
    timeout = min(config.timeout_seconds or settings.timeout_seconds, settings.timeout_seconds)
    database = data_root.resolve(config.database, must_exist=True)
    if not database.is_file():
        raise PathRefused(config.database, "it is a directory, not a DuckDB file")

    async def waiting() -> None:
        await ctx.progress({"phase": "waiting", "database": config.database})

    def open_db() -> Awaitable[tuple[Any, threading.Lock]]:
        root = data_root.real_root()
        return source.open_read_only(database, root, settings, timeout, waiting)

    suggested = config.queries is None
    queries = await _suggested(ctx, config, open_db) if suggested else list(config.queries or ())
    con, lock = await open_db()
    try:
        drawn = await _charts(ctx, con, queries, timeout, suggested)
    finally:
        await source.close(con, lock)
    if not drawn:
        raise NoQueryRan("none of the suggested queries ran (see the log)")
    await ctx.progress({"phase": "writing", "charts": len(drawn)})
    bundle = await anyio.to_thread.run_sync(page.javascript_bundle)
    shown = [{"title": c["title"], "type": c["type"], "spec": c["spec"]} for c in drawn]
    html = page.render(config.title, shown, datetime.now(UTC), bundle)
    document = {"title": config.title, "charts": shown}
    path = await deliver(Dashboard(ctx.run_id, config.title, html, document))
    await ctx.log("info", f"dashboard written to {path} ({len(html):,} bytes)", data={"path": path})
    result: dict[str, Any] = {"title": config.title, "charts": drawn, "path": path}
    if config.question is not None:
        result["question"] = config.question
    return result


def describe(progress: Mapping[str, Any]) -> str | None:
    phase = progress.get("phase")
    if phase == "waiting":
        return f"waiting for {progress.get('database')}, which is in use"
    if phase == "asking":
        return "asking the model for queries"
    if phase == "querying":
        return f"query {progress.get('query')} of {progress.get('queries')}"
    if phase == "writing":
        return "writing the dashboard"
    return None


KIND = Kind(
    name="create_flashboard",
    executor=execute,
    config=FlashboardConfig,
    display_name="Create flashboard",
    description=(
        "Runs read-only queries on a DuckDB file under the data root (or asks the language "
        "model for them), picks a chart for each result, and writes a self-contained HTML "
        "dashboard with the Vega-Lite specs."
    ),
    # Queries only read: a pause interrupts one, and resume runs them all again (the
    # model's queries are remembered, not asked for twice).
    pausable=True,
    cancellable=True,
    describe_progress=describe,
    check=check,
    example={
        "title": "Sales overview",
        "database": "warehouse/sales.duckdb",
        "queries": [
            {"title": "Revenue", "sql": "SELECT sum(amount) AS revenue FROM orders"},
            {
                "title": "Revenue by month",
                "sql": "SELECT date_trunc('month', order_date) AS month, sum(amount) AS revenue "
                "FROM orders GROUP BY 1 ORDER BY 1",
            },
            {
                "title": "Orders by region",
                "sql": "SELECT region, count(*) AS orders FROM orders GROUP BY 1 ORDER BY 2 DESC",
                "chart": "bar",
            },
        ],
        "timeoutSeconds": 60,
    },
)
