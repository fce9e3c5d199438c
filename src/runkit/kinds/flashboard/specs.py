"""Vega-Lite specs for the charts :mod:`.charts` chooses, each with its data inline
(``data.values``; never ``data.url``, so rendering one reads nothing else).

The rows are the query's, as ``{column: value}`` objects, in the query's order (bars and
ordinal axes keep it: ``sort: null``). Numbers a chart plots are JSON numbers (a DECIMAL or
a huge integer, which the result keeps exact as a string, becomes the nearest double).
A table is drawn by Vega-Lite as a grid of text marks, from the rows in long form
(``{row, column, cell}``, each cell as text).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .charts import (
    MAX_TABLE_COLUMNS,
    MAX_TABLE_ROWS,
    NOMINAL,
    OTHER,
    QUANTITATIVE,
    TEMPORAL,
    Choice,
    Column,
    Layout,
)

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
HEIGHT = 260
#: Lines with at most this many rows mark each point (more would crowd the line).
MAX_POINTS = 100
_FIELD_SYNTAX = re.compile(r"""([\\.\[\]"'])""")
CONFIG: dict[str, Any] = {
    "font": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "view": {"stroke": None},
    "title": {"anchor": "start", "fontSize": 15, "subtitleColor": "#6b7280", "offset": 10},
    "axis": {"labelFontSize": 11, "titleFontSize": 12, "titleColor": "#374151"},
    "legend": {"labelFontSize": 11, "titleFontSize": 12},
    "range": {"category": {"scheme": "tableau10"}},
}


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with blanks named by position and repeats numbered: ``a``, ``a (2)``."""
    out: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(names, 1):
        base = name if name.strip() else f"column {i}"
        candidate, n = base, 1
        while candidate in seen:
            n += 1
            candidate = f"{base} ({n})"
        seen.add(candidate)
        out.append(candidate)
    return out


def field(name: str) -> str:
    """``name`` as a Vega-Lite field reference: ``.``, ``[`` and ``]`` would read as a
    nested path (``a.b``) and a quote as the start of a quoted one (``["a"]``), so they
    are escaped, and so is ``\\``."""
    return _FIELD_SYNTAX.sub(r"\\\1", name)


def title_of(name: str) -> str:
    """``name`` as an axis or tooltip title. Vega-Lite writes a title into its tooltip
    expression without escaping a backslash (a column named ``q\\`` broke the whole
    chart), so a backslash is shown as U+29F5, which looks the same."""
    return name.replace("\\", "\u29f5")


def number(value: Any) -> float | int | None:
    """A plotted value: numbers as they are, exact strings (decimals, huge integers) as the
    nearest double; None for what is no finite number."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def cell(value: Any) -> str:
    """A table cell: text as it is, NULL for null, anything else as compact JSON."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def records(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The rows as objects, plotted numbers as numbers, nested values as JSON text."""

    def convert(column: Column, value: Any) -> Any:
        if column.measure == QUANTITATIVE:
            return number(value)
        if column.measure == OTHER and value is not None:
            return cell(value)
        return value

    return [{c.name: convert(c, v) for c, v in zip(columns, row, strict=False)} for row in rows]


def _unused(base: str, taken: Sequence[str]) -> str:
    name = base
    while name in taken:
        name = f"_{name}"
    return name


def build(
    title: str,
    choice: Choice,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    row_count: int,
) -> dict[str, Any]:
    """The Vega-Lite spec of ``choice`` for the result's ``columns`` and held ``rows``
    (``row_count``: how many the query returned, which the subtitle tells when more)."""
    layout = choice.layout
    shown = min(len(rows), MAX_TABLE_ROWS) if layout.chart == "table" else len(rows)
    notes = [f"the first {shown:,} of {row_count:,} rows"] if row_count > shown else []
    if layout.chart == "table" and len(columns) > MAX_TABLE_COLUMNS:
        notes.append(f"the first {MAX_TABLE_COLUMNS} of {len(columns)} columns")
    if layout.value is not None and not notes:
        notes.append(layout.value.name)
    heading: dict[str, Any] = {"text": title}
    if notes:
        heading["subtitle"] = ", ".join(notes)
    spec: dict[str, Any] = {"$schema": SCHEMA, "title": heading, "config": CONFIG}
    if layout.chart == "table":
        return spec | _table(columns, rows[:shown])
    values = records(columns, rows)
    if layout.value is not None:  # the first row's value (a number is one row's)
        return spec | _number(layout.value, values[0])
    body = {"data": {"values": values}, "width": "container", "height": HEIGHT}
    return spec | body | _plot(layout, columns, values)


def _number(value: Column, record: Mapping[str, Any]) -> dict[str, Any]:
    shown = record.get(value.name)
    ref = {"field": field(value.name), "title": title_of(value.name)}
    text: dict[str, Any] = ref | {"type": "quantitative", "format": ",~f"}
    if not isinstance(shown, int | float):  # an exact decimal or huge integer, or NULL
        text = ref | {"type": "nominal"}
        shown = cell(shown)
    return {
        "data": {"values": [{value.name: shown}]},
        "width": "container",
        "height": 70,
        "mark": {"type": "text", "align": "left", "baseline": "middle", "x": 0, "y": 35},
        "encoding": {"text": text},
        "config": CONFIG | {"text": {"fontSize": 44, "fontWeight": "bold", "color": "#111827"}},
    }


def _table(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    if not rows:
        names = ", ".join(c.name for c in columns)[:200]
        return {
            "data": {"values": [{"note": "no rows", "columns": names}]},
            "width": "container",
            "height": 24,
            "mark": {"type": "text", "align": "left", "baseline": "middle", "x": 0, "y": 12},
            "encoding": {"text": {"field": "note", "type": "nominal"}},
        }
    shown = columns[:MAX_TABLE_COLUMNS]
    values = [
        {"row": r, "column": c.name, "cell": cell(value)}
        for r, row in enumerate(rows, 1)
        for c, value in zip(shown, row, strict=False)
    ]
    axis = {
        "orient": "top",
        "title": None,
        "labelAngle": 0,
        "labelLimit": 150,
        "labelFontWeight": "bold",
        "domain": False,
        "ticks": False,
    }
    return {
        "data": {"values": values},
        "width": {"step": 160},
        "height": {"step": 22},
        "mark": {"type": "text", "limit": 150, "fontSize": 12},
        "encoding": {
            "x": {"field": "column", "type": "nominal", "sort": [c.name for c in shown]}
            | {"axis": axis},
            "y": {"field": "row", "type": "ordinal", "axis": None},
            "text": {"field": "cell", "type": "nominal"},
        },
    }


def _axis(column: Column, chart: str, values: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ref: dict[str, Any] = {"field": field(column.name), "title": title_of(column.name)}
    if column.measure == TEMPORAL:
        if chart == "bar":  # one band per day, labelled as dates
            return ref | {"type": "ordinal", "timeUnit": "yearmonthdate"}
        return ref | {"type": "temporal"}
    if column.measure == NOMINAL or chart == "bar":
        labels = {str(v.get(column.name)) for v in values}
        short = len(labels) <= 12 and max(map(len, labels), default=0) <= 10
        axis = {"labelLimit": 140, "labelAngle": 0 if short else -40}
        return (
            ref
            | {"type": "nominal" if chart == "bar" else "ordinal", "sort": None}
            | {"axis": axis}
        )
    return ref | {"type": "quantitative", "scale": {"zero": chart != "scatter"}}


def _plot(
    layout: Layout, columns: Sequence[Column], values: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    assert layout.x is not None and layout.y
    chart = layout.chart
    encoding: dict[str, Any] = {"x": _axis(layout.x, chart, values)}
    spec: dict[str, Any] = {}
    series: dict[str, Any] | None = None
    if len(layout.y) > 1:  # several measures: one series each, folded into long form
        taken = [c.name for c in columns]
        key, value = _unused("measure", taken), _unused("value", taken)
        spec["transform"] = [{"fold": [field(c.name) for c in layout.y], "as": [key, value]}]
        title = title_of(", ".join(c.name for c in layout.y))
        encoding["y"] = {"field": value, "type": "quantitative", "title": title}
        series = {
            "field": key,
            "type": "nominal",
            "title": None,
            "sort": [c.name for c in layout.y],
        }
    else:
        y = layout.y[0]
        encoding["y"] = {"field": field(y.name), "type": "quantitative", "title": title_of(y.name)}
        if chart == "scatter":
            encoding["y"]["scale"] = {"zero": False}
        if layout.series is not None:
            series = {"field": field(layout.series.name), "type": "nominal"} | {
                "title": title_of(layout.series.name)
            }
    if series is not None:
        encoding["color"] = series
        if chart == "bar":
            # Titled as the series: an untitled encoding's tooltip is titled with its field
            # reference, escapes and all, which Vega-Lite quotes wrongly (``\"``).
            encoding["xOffset"] = {
                "field": series["field"],
                "type": "nominal",
                "sort": None,
                "title": series["title"],
            }
    marks: dict[str, dict[str, Any]] = {
        "bar": {"type": "bar", "tooltip": True},
        "line": {"type": "line", "point": len(values) <= MAX_POINTS, "tooltip": True},
        "area": {"type": "area", "line": True, "opacity": 0.75, "tooltip": True},
        "scatter": {"type": "point", "filled": True, "size": 50, "tooltip": True},
    }
    return spec | {"mark": marks[chart], "encoding": encoding}
