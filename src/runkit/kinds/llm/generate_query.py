"""``generate_query``: a question in words, answered with one SQL query that a language model
writes for a schema (a DuckDB file under the data root, or DDL text).

The schema is read through the DuckDB sandbox (:mod:`.schema_source`) and described to the
model; its answer (``{"sql", "explanation"}``, checked by :meth:`~.client.Llm.complete_json`)
is checked by DuckDB: parsed, one read-only query, planned with ``EXPLAIN`` against the
schema (another dialect is first translated to DuckDB's with sqlglot). A query that fails
is shown to the model with DuckDB's error, up to :data:`MAX_FIXES` times; one still invalid
then is returned with ``valid: false`` and the error. With ``execute``, a valid query runs
read-only in the sandbox and the result shows its first ``previewRows`` rows.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import attrs

from ...authoring import Kind, KindChecks, RunContext, not_blank
from ...domain.errors import ErrorDetail, ValidationError
from .client import Llm
from .common import MAX_DDL, check_common
from .errors import OutputRejected
from .options import MAX_TOKENS, MODEL, TEMPERATURE, ModelOptions
from .schema_source import Source, describe, open_source

MAX_QUESTION = 4000
MAX_PREVIEW_ROWS = 1000
#: How many times a query DuckDB refuses is sent back to the model with the error.
MAX_FIXES = 2

SYSTEM = (
    "You write SQL for {dialect}. Answer the user's question with exactly one read-only "
    "query (SELECT, or WITH ... SELECT) over the schema below; use only its tables and "
    "columns. Reply with only a JSON object, no other text:\n"
    '{{"sql": "<the query>", "explanation": "<one or two sentences: how the query answers '
    'the question>"}}'
)
FIX = (
    "That query does not work: {error}\n"
    "Fix it and reply with the same JSON object (sql, explanation), nothing else."
)


@attrs.frozen
class GenerateQueryConfig:
    """``{question, database | schema, dialect, execute, previewRows, model, temperature,
    maxTokens}``: ``question`` and one of ``database`` (a DuckDB file under the data root,
    read-only) or ``schema`` (DDL text) are required. ``dialect``: the SQL dialect wanted
    (``duckdb``; another sqlglot knows, such as ``postgres``, needs sqlglot installed).
    ``execute``: run a valid query (``duckdb`` only) and show ``previewRows`` rows."""

    question: str = attrs.field(
        validator=attrs.validators.and_(
            attrs.validators.min_len(1), attrs.validators.max_len(MAX_QUESTION), not_blank
        )
    )
    database: str | None = None
    schema: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.max_len(MAX_DDL))
    )
    dialect: str = attrs.field(
        default="duckdb",
        validator=attrs.validators.and_(attrs.validators.min_len(1), attrs.validators.max_len(40)),
    )
    execute: bool = False
    preview_rows: int = attrs.field(
        default=20, validator=[attrs.validators.ge(0), attrs.validators.le(MAX_PREVIEW_ROWS)]
    )
    model: str | None = attrs.field(default=None, validator=MODEL)
    temperature: float | None = attrs.field(default=None, validator=TEMPERATURE)
    max_tokens: int | None = attrs.field(default=None, validator=MAX_TOKENS)


def _dialect_problem(config: GenerateQueryConfig) -> str | None:
    if config.dialect == "duckdb":
        return None
    if config.execute:
        return "execute runs the query with DuckDB: it needs dialect 'duckdb'"
    if importlib.util.find_spec("sqlglot") is None:
        return f"dialect {config.dialect!r} needs sqlglot (pip install sqlglot); 'duckdb' does not"
    from sqlglot.dialects.dialect import Dialect

    if Dialect.get(config.dialect) is None:
        known = ", ".join(sorted(d for d in Dialect.classes if d))
        return f"unknown dialect {config.dialect!r} (known: {known})"
    return None


def check(config: GenerateQueryConfig, checks: KindChecks) -> None:
    errors = check_common(config, "generate_query")
    why = _dialect_problem(config)
    if why is not None:
        errors.append(ErrorDetail(("definition", "dialect"), why, "value_error"))
    if errors:
        raise ValidationError(errors)


def _shape(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise OutputRejected('expected a JSON object {"sql": ..., "explanation": ...}')
    sql, explanation = value.get("sql"), value.get("explanation", "")
    if not isinstance(sql, str) or not sql.strip():
        raise OutputRejected('"sql" must be the query, a non-empty string')
    if not isinstance(explanation, str):
        raise OutputRejected('"explanation" must be a string')
    return {"sql": sql.strip().rstrip(";").strip(), "explanation": explanation.strip()}


async def _check(source: Source, sql: str, dialect: str) -> str | None:
    """What is wrong with ``sql`` (None: valid), in words for the model."""
    if dialect != "duckdb":
        import sqlglot
        from sqlglot.errors import SqlglotError

        try:
            translated = sqlglot.transpile(sql, read=dialect, write="duckdb")
        except SqlglotError as exc:
            return f"it does not parse as {dialect}: {exc}"
        if len(translated) != 1:
            return f"{len(translated)} statements: write exactly one query"
        sql = translated[0]
    return await source.check_query(sql)


async def execute(ctx: RunContext) -> dict[str, Any]:
    config: GenerateQueryConfig = ctx.definition
    llm = Llm(ctx, ModelOptions.of(config))
    await ctx.progress({"phase": "schema"})
    async with open_source(config.database, config.schema) as source:
        schema = describe(await source.tables(None, sample_rows=0))
        messages: list[Any] = [
            {"role": "system", "content": SYSTEM.format(dialect=_dialect_name(config.dialect))},
            {"role": "user", "content": f"Schema:\n```sql\n{schema}\n```\n\n{config.question}"},
        ]
        error: str | None = None
        for attempt in range(1, MAX_FIXES + 2):
            purpose = "write the query" if attempt == 1 else f"fix the query ({attempt - 1})"
            answer = await llm.complete_json(messages, _shape, purpose=purpose)
            sql, explanation = answer.value["sql"], answer.value["explanation"]
            await ctx.progress({"phase": "checking", "query": attempt})
            error = await _check(source, sql, config.dialect)
            if error is None:
                await ctx.log("info", f"query {attempt} is valid", data={"query": attempt})
                break
            error = llm.mask(error)
            await ctx.log(
                "warning",
                f"query {attempt} is not valid: {error}",
                event="llm.query_invalid",
                data={"query": attempt},
            )
            messages = [*answer.messages, {"role": "user", "content": FIX.format(error=error)}]
        result: dict[str, Any] = {"sql": sql, "explanation": explanation, "valid": error is None}
        if error is not None:
            result["error"] = error
        elif config.execute:
            await ctx.progress({"phase": "running"})
            result.update(await source.preview(sql, config.preview_rows))
    result["usage"] = llm.usage.to_json()
    return result


def _dialect_name(dialect: str) -> str:
    return "DuckDB" if dialect == "duckdb" else f"the {dialect} SQL dialect"


def describe_progress(progress: Mapping[str, Any]) -> str | None:
    phase = progress.get("phase")
    if phase == "schema":
        return "reading the schema"
    if phase == "model":
        return f"asking the model (call {progress.get('call')})"
    if phase == "checking":
        return f"checking query {progress.get('query')}"
    if phase == "running":
        return "running the query"
    return None


KIND = Kind(
    name="generate_query",
    executor=execute,
    config=GenerateQueryConfig,
    display_name="Generate a query",
    description=(
        "Asks a language model for one SQL query that answers a question about a DuckDB "
        "database (or DDL), checks it with DuckDB, and runs it read-only if asked."
    ),
    cancellable=True,
    timeout_seconds=900.0,
    describe_progress=describe_progress,
    check=check,
    example={
        "question": "Which three regions had the most revenue in November 2026?",
        "database": "warehouse/sales.duckdb",
        "dialect": "duckdb",
        "execute": True,
        "previewRows": 20,
    },
)
