"""The definition of a ``create_flashboard`` run: ``{title, database, question | queries,
timeoutSeconds}``. Each bound is an attrs validator (the JSON schema shows it) that reports
its own field, so a 422 points at ``queries.1.sql`` rather than at ``queries.1``. That exactly
one of ``question`` and ``queries`` is given is checked at create time (:func:`fields_given`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs
from cattrs.errors import AttributeValidationNote, ClassValidationError

from ...authoring import not_blank
from ...domain.errors import ErrorDetail
from .source import PARENT

MAX_TITLE = 200
MAX_QUESTION = 2000
MAX_SQL = 100_000
#: Charts in one dashboard, given or suggested.
MAX_QUERIES = 12
ChartType = Literal["bar", "line", "area", "scatter", "table", "number"]
CHART_TYPES: tuple[str, ...] = ("bar", "line", "area", "scatter", "table", "number")

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


@attrs.frozen
class _Field:
    """Runs ``_validators`` on a field of ``owner`` and raises as cattrs does for a field,
    so that the 422 names the field inside a list item (a plain attrs validator's error
    points at the item). ``_validators``: read by the schema generator, like ``and_``'s."""

    owner: str
    _validators: tuple[Validator, ...]

    def __call__(self, instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        for validator in self._validators:
            try:
                validator(instance, attribute, value)
            except ValueError as error:
                note = AttributeValidationNote(
                    f"{self.owner}.{attribute.name}", attribute.name, str
                )
                error.add_note(note)
                raise ClassValidationError(
                    f"While structuring {self.owner}", [error], object
                ) from None


def _check_sql(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if PARENT.search(value):
        raise ValueError("'..' in a path is refused: name files from the data root, '~/dir/x'")


def _text(owner: str, most: int) -> _Field:
    return _Field(owner, (attrs.validators.min_len(1), attrs.validators.max_len(most), not_blank))


@attrs.frozen
class QueryConfig:
    """One chart: its ``title``, one DuckDB ``SELECT`` (or ``FROM``, ``WITH``, ``VALUES``)
    and, optionally, the ``chart`` it should be; the rules decide when it is absent or
    does not fit the result's columns."""

    title: str = attrs.field(validator=_text("QueryConfig", MAX_TITLE))
    sql: str = attrs.field(
        validator=_Field(
            "QueryConfig",
            (
                attrs.validators.min_len(1),
                attrs.validators.max_len(MAX_SQL),
                not_blank,
                _check_sql,
            ),
        )
    )
    chart: ChartType | None = None


@attrs.frozen
class FlashboardConfig:
    """``{title, database, question | queries, timeoutSeconds}``. ``database``: a DuckDB
    file under the data root, opened read-only. Give either ``queries`` (1 to 12) or a
    ``question`` the language model answers with queries. ``timeoutSeconds`` bounds each
    query (null: the host's DuckDB limit, also its cap)."""

    title: str = attrs.field(validator=_text("FlashboardConfig", MAX_TITLE))
    database: str = attrs.field(validator=attrs.validators.min_len(1))
    question: str | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(
            attrs.validators.and_(
                attrs.validators.min_len(1), attrs.validators.max_len(MAX_QUESTION), not_blank
            )
        ),
    )
    queries: list[QueryConfig] | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(
            attrs.validators.and_(
                attrs.validators.min_len(1), attrs.validators.max_len(MAX_QUERIES)
            )
        ),
    )
    timeout_seconds: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0.0))
    )


def fields_given(config: FlashboardConfig) -> Sequence[ErrorDetail]:
    """The problems with which of ``question`` and ``queries`` the definition gives."""
    if config.question is not None and config.queries is not None:
        why = "give either question or queries, not both"
        return [ErrorDetail(("definition", "question"), why, "value_error")]
    if config.question is None and config.queries is None:
        why = "field required: give queries, or a question for the language model to answer"
        return [ErrorDetail(("definition", "queries"), why, "missing")]
    return []
