"""Which chart a query's result gets, from its shape: one table of rules (:data:`RULES`,
the first that matches wins) over what kinds of columns the result has and how many rows.

A column is ``quantitative`` (DuckDB's integer, floating and decimal types), ``temporal``
(``DATE`` and the ``TIMESTAMP`` types), ``nominal`` (text, booleans, enums, UUIDs, times of
day, intervals) or ``other`` (lists, structs, maps, blobs: a table shows them as text).

A chart's **layout** says which column goes where (:func:`layout`): it serves the rules'
choice and a suggested chart alike. A suggestion (the definition's ``chart``, or the
model's) is kept when its layout fits the result; otherwise the rules decide.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

QUANTITATIVE, TEMPORAL, NOMINAL, OTHER = "quantitative", "temporal", "nominal", "other"
#: Rows a chart holds (and the spec's inline data): the first ones, in the query's order.
MAX_CHART_ROWS = 1000
#: Rows a table shows.
MAX_TABLE_ROWS = 50
#: Columns a table shows.
MAX_TABLE_COLUMNS = 20
#: Bars (distinct x values) a bar chart may have; more are a table.
MAX_BARS = 60
#: Series (lines, areas, bar groups, scatter colours) a chart may have; more are a table.
MAX_SERIES = 12

_NUMBERS = re.compile(
    r"^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|REAL|DECIMAL(\(.*\))?"
    r"|NUMERIC(\(.*\))?|INT[1248]?|SHORT|LONG|VARINT|BIGNUM)$"
)
_NESTED = re.compile(r"^(STRUCT|MAP|UNION|LIST)\b|\]$")


def measure(duckdb_type: str) -> str:
    """The kind of a column of DuckDB type ``duckdb_type`` (as ``description`` names it)."""
    name = duckdb_type.strip().upper()
    if _NESTED.search(name) or name in ("BLOB", "BYTEA", "BIT", "BITSTRING", "GEOMETRY"):
        return OTHER
    if _NUMBERS.match(name):
        return QUANTITATIVE
    if name == "DATE" or name.startswith("TIMESTAMP"):
        return TEMPORAL
    return NOMINAL


@attrs.frozen
class Column:
    """A result column: its ``name`` (unique within the result) and its kind."""

    name: str
    measure: str


@attrs.frozen
class Shape:
    """What the rules look at: the columns in order, the rows held, and the number of
    distinct values each nominal or temporal column has in them."""

    columns: tuple[Column, ...]
    rows: int
    distinct: Mapping[str, int] = attrs.field(factory=dict)

    def of(self, kind: str) -> list[Column]:
        return [c for c in self.columns if c.measure == kind]

    @property
    def counts(self) -> tuple[int, int, int, int]:
        """(temporal, quantitative, nominal, other) columns."""
        return (
            len(self.of(TEMPORAL)),
            len(self.of(QUANTITATIVE)),
            len(self.of(NOMINAL)),
            len(self.of(OTHER)),
        )


def shape_of(columns: Sequence[Mapping[str, str]], rows: Sequence[Sequence[Any]]) -> Shape:
    """The shape of a result with ``columns`` (``{"name", "type"}``, names made unique
    first) and ``rows``."""
    cols = tuple(Column(c["name"], measure(c["type"])) for c in columns)
    distinct = {
        c.name: len({_hashable(row[i]) for row in rows})
        for i, c in enumerate(cols)
        if c.measure in (NOMINAL, TEMPORAL)
    }
    return Shape(cols, len(rows), distinct)


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, list | dict) else value


@attrs.frozen
class Layout:
    """Where the columns go. ``x``: the axis (a bar's category, a line's time); ``y``: the
    measures (several: one series each); ``series``: a column whose values split the
    marks into series (colours, bar groups); ``value``: a single number's column."""

    chart: str
    x: Column | None = None
    y: tuple[Column, ...] = ()
    series: Column | None = None
    value: Column | None = None


# ------------------------------------------------------------------ layouts ---------------
def _number(shape: Shape) -> Layout | None:
    numbers = shape.of(QUANTITATIVE)
    return Layout("number", value=numbers[0]) if shape.rows >= 1 and numbers else None


#: What :func:`_series_of` answers when the nominal columns cannot be laid out.
_UNFIT = Column("", OTHER)


def _series_of(shape: Shape, used: Sequence[Column], y: Sequence[Column]) -> Column | None:
    """The nominal column that splits the one measure ``y`` into series (None: there is no
    nominal column left); :data:`_UNFIT` when there are several, or too many series."""
    rest = [c for c in shape.of(NOMINAL) if c not in used]
    if not rest:
        return None
    if len(rest) > 1 or len(y) > 1 or shape.distinct.get(rest[0].name, 0) > MAX_SERIES:
        return _UNFIT
    return rest[0]


def _over_x(chart: str, shape: Shape, x: Column | None) -> Layout | None:
    if x is None:
        return None
    y = tuple(c for c in shape.of(QUANTITATIVE) if c != x)
    if not y or len(y) > MAX_SERIES or shape.of(OTHER):
        return None
    if any(c != x for c in shape.of(TEMPORAL)):  # a time left out would mislead
        return None
    series = _series_of(shape, [x], y)
    if series is _UNFIT:
        return None
    return Layout(chart, x=x, y=y, series=series)


def _line(chart: str) -> Callable[[Shape], Layout | None]:
    def layout(shape: Shape) -> Layout | None:
        temporal, numbers, nominal = shape.of(TEMPORAL), shape.of(QUANTITATIVE), shape.of(NOMINAL)
        x = temporal[0] if temporal else nominal[0] if nominal else numbers[0] if numbers else None
        return _over_x(chart, shape, x)

    return layout


def _bar(shape: Shape) -> Layout | None:
    temporal, numbers, nominal = shape.of(TEMPORAL), shape.of(QUANTITATIVE), shape.of(NOMINAL)
    x = temporal[0] if temporal else nominal[0] if nominal else numbers[0] if numbers else None
    if x is not None and shape.distinct.get(x.name, shape.rows) > MAX_BARS:
        return None
    return _over_x("bar", shape, x)


def _scatter(shape: Shape) -> Layout | None:
    numbers = shape.of(QUANTITATIVE)
    if len(numbers) != 2 or shape.of(OTHER) or shape.of(TEMPORAL):
        return None
    series = _series_of(shape, [], numbers[:1])
    if series is _UNFIT:
        return None
    return Layout("scatter", x=numbers[0], y=(numbers[1],), series=series)


def _table(shape: Shape) -> Layout:
    return Layout("table")


#: How each chart lays out a result, or None when it does not fit.
LAYOUTS: Mapping[str, Callable[[Shape], Layout | None]] = {
    "number": _number,
    "line": _line("line"),
    "area": _line("area"),
    "bar": _bar,
    "scatter": _scatter,
    "table": _table,
}


# ------------------------------------------------------------------ the rules -------------
#: A count in a rule: exactly this many, any number in the range, or None for any.
Count = int | range | None
ANY: Count = None
SOME: Count = range(1, 2**31)  # one or more


def _fits(count: int, pattern: Count) -> bool:
    return pattern is None or (count in pattern if isinstance(pattern, range) else count == pattern)


@attrs.frozen
class Rule:
    """``chart`` for results with this many temporal, quantitative, nominal and other
    columns and rows, when its layout fits the result (otherwise the next rule)."""

    name: str
    temporal: Count
    quantitative: Count
    nominal: Count
    other: Count
    rows: Count
    chart: str

    def matches(self, shape: Shape) -> bool:
        pattern = (self.temporal, self.quantitative, self.nominal, self.other, self.rows)
        return all(map(_fits, (*shape.counts, shape.rows), pattern))


#: The rules, in order; the last always matches. Stacked areas are left to suggestions:
#: stacking is right only when the series are parts of a whole, which no shape tells.
RULES: tuple[Rule, ...] = (
    #    name                                temporal quant nominal other rows  chart
    Rule("no rows",                          ANY,     ANY,  ANY,    ANY,  0,    "table"),
    Rule("one row with one number",          0,       1,    0,      0,    1,    "number"),
    Rule("a time and numbers",               1,       SOME, 0,      0,    ANY,  "line"),
    Rule("a time, a category and a number",  1,       1,    1,      0,    ANY,  "line"),
    Rule("a category and numbers",           0,       SOME, 1,      0,    ANY,  "bar"),
    Rule("two categories and a number",      0,       1,    2,      0,    ANY,  "bar"),
    Rule("two numbers",                      0,       2,    0,      0,    ANY,  "scatter"),
    Rule("anything else",                    ANY,     ANY,  ANY,    ANY,  ANY,  "table"),
)  # fmt: skip


@attrs.frozen
class Choice:
    """The chart chosen, its layout, and why: ``"suggestion"`` or the rule's name."""

    layout: Layout
    reason: str

    @property
    def chart(self) -> str:
        return self.layout.chart


def choose(shape: Shape, suggestion: str | None = None) -> Choice:
    """The chart for ``shape``: ``suggestion`` if it fits (an empty result is always a
    table), otherwise the first rule that matches and whose layout fits (the last rule, a
    table, always does)."""
    if suggestion is not None and shape.rows and (fits := LAYOUTS[suggestion](shape)):
        return Choice(fits, "suggestion")
    for rule in RULES:
        if rule.matches(shape) and (fits := LAYOUTS[rule.chart](shape)):
            return Choice(fits, rule.name)
    raise AssertionError("the last rule always matches")  # pragma: no cover
