"""Array literals of the driver path (``storage/sql/arrays.py``): whatever the values, the
server reads back exactly what was given."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Json
from sqlalchemy.dialects import postgresql

from runkit.storage.sql.arrays import literal
from runkit.storage.sql.driver import Statement
from runkit.storage.sql.schema import runs
from sql_fixtures import PG_URL

# PostgreSQL text holds any character but NUL.
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection[Any]]:
    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        connection = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL is required at {PG_URL}: {err}")
    with connection:
        connection.execute("SET TIME ZONE 'UTC'")
        yield connection


def _back(conn: psycopg.Connection[Any], values: list[Any], cast: str) -> list[Any]:
    text = literal(values)
    assert text is not None
    rows = conn.execute(f"SELECT unnest(%s::{cast}[])", (text,)).fetchall()
    return [row[0] for row in rows]


SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(st.lists(st.none() | TEXT, max_size=8))
def test_any_text_and_null_survive(conn: psycopg.Connection[Any], values: list[str | None]) -> None:
    # Quotes, backslashes, braces, commas, "NULL" and "" are elements like any other.
    assert _back(conn, values, "text") == values


@SETTINGS
@given(st.lists(JSON_VALUES, max_size=5))
def test_json_values_survive(conn: psycopg.Connection[Any], values: list[Any]) -> None:
    back = _back(conn, [Json(v) for v in values], "json")
    assert back == values  # psycopg parses json: the same values


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.uuids(),
            st.datetimes(timezones=st.just(UTC)),
            st.integers(-(2**63), 2**63 - 1),
            st.booleans(),
        ),
        max_size=6,
    )
)
def test_uuids_times_integers_and_booleans_survive(
    conn: psycopg.Connection[Any], rows: list[tuple[UUID, datetime, int, bool]]
) -> None:
    assert _back(conn, [r[0] for r in rows], "uuid") == [r[0] for r in rows]
    assert _back(conn, [r[1] for r in rows], "timestamptz") == [r[1] for r in rows]
    assert _back(conn, [r[2] for r in rows], "bigint") == [r[2] for r in rows]
    assert _back(conn, [r[3] for r in rows], "boolean") == [r[3] for r in rows]


def test_a_json_wrapper_with_its_own_dumps_is_written_with_it() -> None:
    text = literal([Json({"a": 1}, dumps=lambda obj: json.dumps(obj, separators=(",", ":")))])
    assert text == '{"{\\"a\\":1}"}'


def test_a_type_it_does_not_know_leaves_the_list_to_psycopg() -> None:
    assert literal([1.5]) is None
    assert literal(["a", b"bytes"]) is None


_CASTS = {type(None): "text", str: "text", UUID: "uuid", int: "bigint", datetime: "timestamptz"}


@SETTINGS
@given(
    st.none()
    | TEXT
    | st.uuids()
    | st.integers(-(2**63), 2**63 - 1)
    | st.datetimes(timezones=st.just(UTC)),
    st.integers(2, 6),
)
def test_one_value_throughout_is_written_once_and_repeated(
    conn: psycopg.Connection[Any], value: Any, n: int
) -> None:
    """A batch's NULLs, kind and time: one column holding one value, written once."""
    values = [value] * n
    assert _back(conn, values, _CASTS[type(value)]) == values
    assert literal(values) == "{" + ",".join([(literal([value]) or "")[1:-1]] * n) + "}"


def test_a_repeated_json_value_or_boolean_is_written_item_by_item() -> None:
    # Booleans equal integers, and equal JSON wrappers are distinct objects: neither takes
    # the shortcut. One wrapper object throughout (a column processed once) does.
    assert literal([True, 1]) == '{"t","1"}'
    assert literal([Json({"a": 1}), Json({"a": True})]) == '{"{\\"a\\":1}","{\\"a\\":true}"}'
    same = Json({"a": 1})
    assert literal([same, same]) == '{"{\\"a\\":1}","{\\"a\\":1}"}'


def test_a_column_of_one_value_is_processed_once_as_each_would_be() -> None:
    """``Statement.column`` processes a value held throughout once; the parameters are
    those processing each value gives, times of other offsets and near-equal values too."""
    stmt = sa.insert(runs)
    given = {"created_at": None, "definition": {}, "approvals": [], "kind": "k", "retry_count": 1}
    compiled = Statement(stmt, postgresql.psycopg.dialect(), tuple(given))
    utc = datetime(2026, 12, 1, 12, tzinfo=UTC)
    plus2 = utc.astimezone(timezone(timedelta(hours=2)))
    columns: dict[str, list[Any]] = {
        "created_at": [utc, plus2, utc],
        "definition": [{}, {}, {"a": 1}],
        "approvals": [[], [], []],
        "kind": ["k", "k", "k"],
        "retry_count": [1, True, 1.0],
    }
    rows = [{name: values[i] for name, values in columns.items()} for i in range(3)]
    for name in columns:
        one_by_one = [compiled.params(row)[name] for row in rows]
        got = compiled.column(name, rows)
        assert [str(getattr(v, "obj", v)) for v in got] == [
            str(getattr(v, "obj", v)) for v in one_by_one
        ], name
