"""Queries for a question: what ``create_flashboard`` asks a language model when the
definition gives a ``question`` instead of ``queries``.

A suggester is any object with ``name``, ``problem()`` (None when it can answer; otherwise
what to configure: a 422 at create time) and ``async suggest(ctx, request)``, which returns
up to ``request.max_queries`` queries (:class:`~.config.QueryConfig`). The host may set its
own (:class:`~.settings.FlashboardSettings`); the default, :class:`LlmSuggester`, asks
runkit's language-model layer (:mod:`runkit.kinds.llm`), imported when first used, through
its ``problem()`` and ``complete_json(ctx, *, system, prompt, schema, validate, purpose)``:
the model's JSON answer checked against :data:`ANSWER_SCHEMA` and by :func:`parse_answer`,
the model asked once more when either refuses it, then ``ModelOutputInvalid``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from ...authoring import RunContext
from ...domain.errors import ValidationError
from ...domain.kind import structure_config
from .config import CHART_TYPES, MAX_QUERIES, MAX_SQL, MAX_TITLE, QueryConfig
from .source import Table, sql_problem

LLM_MODULE = "runkit.kinds.llm"
#: Most characters of table descriptions given to the model.
MAX_SCHEMA_CHARS = 20_000
#: Queries asked for when the definition gives a question.
DEFAULT_QUERIES = 4


@attrs.frozen
class SuggestRequest:
    """What the model is told: the ``question``, the database's ``tables``, and how many
    queries it may answer with."""

    question: str
    tables: tuple[Table, ...]
    max_queries: int = DEFAULT_QUERIES

    def prompt(self) -> str:
        lines: list[str] = []
        used = 0
        for table in self.tables:
            line = table.describe()
            if used + len(line) > MAX_SCHEMA_CHARS:
                lines.append(f"- ... and {len(self.tables) - len(lines)} more tables")
                break
            lines.append(line)
            used += len(line) + 1
        tables = "\n".join(lines) or "(the database has no tables)"
        return f"Question: {self.question}\n\nTables (DuckDB):\n{tables}\n"


SYSTEM = f"""You write DuckDB SQL for a dashboard that answers a question about a database.
Answer with JSON only: {{"queries": [{{"title": "...", "sql": "...", "chart": "..."}}]}}.
- One to {{max_queries}} queries; each is one chart with a short title (at most {MAX_TITLE}
  characters).
- Each sql is exactly one read-only query (SELECT, or WITH ... SELECT) over the tables
  listed, with no semicolon, no other statement, and no file or URL.
- Aggregate: a chart shows at most 60 categories or 1000 rows. Give result columns clear
  names. Put the x column first (a date for a trend, a category for a comparison), then the
  measures.
- chart is one of {", ".join(CHART_TYPES)}, or null to let the dashboard decide. "number"
  is one row with one number; "scatter" is two numeric columns.
"""

#: The JSON schema of the answer (for a model's structured output).
ANSWER_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "queries": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_QUERIES,
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE},
                    "sql": {"type": "string", "minLength": 1, "maxLength": MAX_SQL},
                    "chart": {"enum": [*CHART_TYPES, None]},
                },
                "required": ["title", "sql"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["queries"],
    "additionalProperties": False,
}


def parse_answer(answer: Any, max_queries: int = MAX_QUERIES) -> list[QueryConfig]:
    """The model's ``answer`` (parsed JSON) as queries, at most ``max_queries`` of them.
    Raises ValueError saying what is wrong, in words the model can act on."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("queries"), list):
        raise ValueError('the answer must be a JSON object {"queries": [...]}')
    items = answer["queries"][:max_queries]
    if not items:
        raise ValueError("the answer has no query")
    queries = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and item.get("chart", "") is None:
            item = {k: v for k, v in item.items() if k != "chart"}
        try:
            query: QueryConfig = structure_config(QueryConfig, item, ("queries", i))
        except ValidationError as invalid:
            raise ValueError(str(invalid)) from None
        problem = sql_problem(query.sql)
        if problem is not None:
            raise ValueError(f"queries.{i}.sql: {problem}")
        queries.append(query)
    return queries


@runtime_checkable
class QuerySuggester(Protocol):
    name: str

    def problem(self) -> str | None:
        """None when it can answer; otherwise what must be configured (name the setting):
        runs with a ``question`` are then refused at create time with this text."""
        ...

    async def suggest(self, ctx: RunContext, request: SuggestRequest) -> Sequence[QueryConfig]:
        """Queries that answer ``request.question`` (at most ``request.max_queries``)."""
        ...


class LlmSuggester:
    """Asks runkit's language-model layer (:data:`LLM_MODULE`)."""

    name = "llm"

    def _layer(self) -> Any:
        try:
            return importlib.import_module(LLM_MODULE)
        except ImportError:
            return None

    def problem(self) -> str | None:
        layer = self._layer()
        if layer is None or not callable(getattr(layer, "complete_json", None)):
            return (
                f"a question needs runkit's language-model layer ({LLM_MODULE}), which this "
                "installation does not have: give queries instead"
            )
        problem = getattr(layer, "problem", None)
        return problem() if callable(problem) else None

    async def suggest(self, ctx: RunContext, request: SuggestRequest) -> Sequence[QueryConfig]:
        layer = self._layer()
        answer: Sequence[QueryConfig] = await layer.complete_json(
            ctx,
            system=SYSTEM.replace("{max_queries}", str(request.max_queries)),
            prompt=request.prompt(),
            schema=ANSWER_SCHEMA,
            validate=functools.partial(parse_answer, max_queries=request.max_queries),
            purpose="queries for a dashboard",
        )
        return answer
