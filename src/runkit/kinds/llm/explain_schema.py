"""``explain_schema``: a schema (a DuckDB file under the data root, or DDL text) explained in
words by a language model, table by table, beside the facts DuckDB reads from it.

The tables, their columns and row counts come from DuckDB (:mod:`.schema_source`), never
from the model; the model writes a summary of each table and an overview, as JSON checked by
:meth:`~.client.Llm.complete_json` (every table must have its summary). ``sampleRows`` rows
of each table are shown to the model so that it can tell what the columns hold (0: none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ...authoring import Kind, KindChecks, RunContext
from ...domain.errors import ValidationError
from .client import Llm
from .common import MAX_DDL, check_common
from .errors import OutputRejected
from .options import MAX_TOKENS, MODEL, TEMPERATURE, ModelOptions
from .schema_source import MAX_TABLES, Table, describe, open_source

MAX_SAMPLE_ROWS = 20

SYSTEM = (
    "You explain database schemas to people who will query them. For each table, write a "
    "summary of one to three sentences: what a row is, its key columns, how it relates to "
    "the other tables. Then write an overview of the whole schema in a short paragraph. "
    "Reply with only a JSON object, no other text:\n"
    '{"overview": "<the overview>", "tables": [{"name": "<the table name as given>", '
    '"summary": "<the summary>"}]}\n'
    "with one entry in tables for every table of the schema."
)


def _names(_: Any, attribute: attrs.Attribute[Any], value: list[str] | None) -> None:
    if value is None:
        return
    if not value:
        raise ValueError("name at least one table, or leave tables null for all")
    if len(value) > MAX_TABLES:
        raise ValueError(f"at most {MAX_TABLES} tables")
    for name in value:
        if not name.strip() or len(name) > 255:
            raise ValueError(f"{name!r} is not a table name")


@attrs.frozen
class ExplainSchemaConfig:
    """``{database | schema, tables, sampleRows, model, temperature, maxTokens}``: one of
    ``database`` (a DuckDB file under the data root, read-only) or ``schema`` (DDL text) is
    required. ``tables``: the tables to explain (``name`` or ``schema.name``; null: all).
    ``sampleRows``: rows of each table shown to the model (0 to 20; 0: none)."""

    database: str | None = None
    schema: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.max_len(MAX_DDL))
    )
    tables: list[str] | None = attrs.field(default=None, validator=_names)
    sample_rows: int = attrs.field(
        default=3, validator=[attrs.validators.ge(0), attrs.validators.le(MAX_SAMPLE_ROWS)]
    )
    model: str | None = attrs.field(default=None, validator=MODEL)
    temperature: float | None = attrs.field(default=None, validator=TEMPERATURE)
    max_tokens: int | None = attrs.field(default=None, validator=MAX_TOKENS)


def check(config: ExplainSchemaConfig, checks: KindChecks) -> None:
    errors = check_common(config, "explain_schema")
    if errors:
        raise ValidationError(errors)


def _summaries(tables: list[Table]) -> Any:
    """The validator of the model's answer: ``{"overview", "summaries": {name: text}}``."""
    wanted = {t.name.lower(): t.name for t in tables}

    def validate(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise OutputRejected('expected a JSON object {"overview": ..., "tables": [...]}')
        overview = value.get("overview")
        if not isinstance(overview, str) or not overview.strip():
            raise OutputRejected('"overview" must be a non-empty string')
        entries = value.get("tables")
        if not isinstance(entries, list):
            raise OutputRejected('"tables" must be a list of {"name", "summary"} objects')
        found: dict[str, str] = {}
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise OutputRejected('each entry of "tables" must be {"name", "summary"}')
            name, summary = entry.get("name"), entry.get("summary")
            if not isinstance(name, str) or not isinstance(summary, str) or not summary.strip():
                raise OutputRejected('each entry of "tables" needs a name and a summary')
            key = name.strip().strip('"').lower()
            if key in wanted:
                found[wanted[key]] = summary.strip()
        missing = [n for n in wanted.values() if n not in found]
        if missing:
            raise OutputRejected("no summary for the table(s) " + ", ".join(missing))
        return {"overview": overview.strip(), "summaries": found}

    return validate


async def execute(ctx: RunContext) -> dict[str, Any]:
    config: ExplainSchemaConfig = ctx.definition
    llm = Llm(ctx, ModelOptions.of(config))
    await ctx.progress({"phase": "schema"})
    async with open_source(config.database, config.schema) as source:
        tables = await source.tables(config.tables, config.sample_rows)
    await ctx.log(
        "info",
        f"read {len(tables)} table{'s' if len(tables) != 1 else ''}",
        data={"tables": len(tables)},
    )
    sampled = " and sample rows" if config.sample_rows else ""
    messages = [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"Schema (with row counts{sampled}):\n```sql\n{describe(tables)}\n```",
        },
    ]
    answer = await llm.complete_json(messages, _summaries(tables), purpose="explain the schema")
    summaries = answer.value["summaries"]
    return {
        "tables": [
            {
                "name": table.name,
                "columns": [column.to_json() for column in table.columns],
                "rowCount": table.row_count,
                "summary": summaries[table.name],
            }
            for table in tables
        ],
        "overview": answer.value["overview"],
        "usage": llm.usage.to_json(),
    }


def describe_progress(progress: Mapping[str, Any]) -> str | None:
    if progress.get("phase") == "schema":
        return "reading the schema"
    if progress.get("phase") == "model":
        return f"asking the model (call {progress.get('call')})"
    return None


KIND = Kind(
    name="explain_schema",
    executor=execute,
    config=ExplainSchemaConfig,
    display_name="Explain a schema",
    description=(
        "Reads the tables of a DuckDB database (or DDL) and has a language model explain "
        "each one and the whole, beside the columns and row counts DuckDB reports."
    ),
    cancellable=True,
    timeout_seconds=900.0,
    describe_progress=describe_progress,
    check=check,
    example={"database": "warehouse/sales.duckdb", "tables": None, "sampleRows": 3},
)
