"""The SQL store's JSON codec (``storage.sql.jsoncodec``): orjson's speed writing, the
standard library's values."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given

from json_support import json_values
from runkit.domain.models import Run
from runkit.domain.states import Status
from runkit.storage.sql import jsoncodec
from runkit.storage.sql.store import SqlStore


@given(json_values)
def test_any_json_value_comes_back_as_the_standard_library_writes_it(value: Any) -> None:
    text = jsoncodec.dumps(value)
    assert isinstance(text, str)
    assert json.loads(text) == json.loads(json.dumps(value))


class Colour(enum.StrEnum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        {1: "one", None: "none", 2.5: "x"},  # keys that are not strings: made strings
        [2**70, -(2**80)],  # past 64 bits
        {"colour": Colour.RED},  # a str subclass
    ],
)
def test_values_orjson_writes_differently_or_refuses_read_back_the_same(value: Any) -> None:
    assert json.loads(jsoncodec.dumps(value)) == json.loads(json.dumps(value))


def test_non_string_keys_and_huge_integers_are_the_standard_librarys_text() -> None:
    for value in ({1: "one", None: "none"}, [2**70]):
        assert jsoncodec.dumps(value) == json.dumps(value)


@pytest.mark.parametrize("value", [datetime(2026, 1, 1, tzinfo=UTC), Point(1), {1, 2}, object()])
def test_what_the_standard_library_refuses_is_still_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        jsoncodec.dumps({"v": value})


def test_the_lenient_cases_are_the_documented_ones() -> None:
    run_id = uuid4()
    assert json.loads(jsoncodec.dumps({"id": run_id})) == {"id": str(run_id)}
    assert json.loads(jsoncodec.dumps([math.nan, math.inf])) == [None, None]


def test_huge_integers_read_back_whole() -> None:
    """Reading stays with the standard library: orjson would read this as a float."""
    assert json.loads(jsoncodec.dumps({"n": 123456789012345678901234567890})) == {
        "n": 123456789012345678901234567890
    }


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_store_round_trips_values_only_the_fallback_writes(
    backend: str, request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    url = (
        f"sqlite:///{tmp_path}/codec.db"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    definition = {"big": 2**70, "nested": {"colour": Colour.RED, "list": [1, "two", None]}}
    run = Run(
        id=uuid4(),
        kind="noop",
        status=Status.QUEUED,
        created_at=now,
        updated_at=now,
        definition=definition,
    )
    async with SqlStore(url, create_schema=True) as store:
        await store.insert(run, [])
        got = await store.get(run.id)
    assert got is not None
    assert got.definition == {"big": 2**70, "nested": {"colour": "red", "list": [1, "two", None]}}
    assert isinstance(got.id, UUID)


@given(json_values)
def test_reading_is_the_standard_librarys(value: Any) -> None:
    text = json.dumps(value)
    assert jsoncodec.loads(text) == json.loads(text)
    assert jsoncodec.loads(text.encode()) == json.loads(text)  # psycopg hands bytes


def test_empty_objects_and_arrays_are_fresh_each_time() -> None:
    for text in ("{}", b"{}", "[]", b"[]"):
        first, second = jsoncodec.loads(text), jsoncodec.loads(text)
        assert first == json.loads(text) and first is not second
        if isinstance(first, list):
            first.append(1)
        else:
            first.update(a=1)
        assert jsoncodec.loads(text) == json.loads(text)  # a caller's change stays its own
    assert math.isnan(jsoncodec.loads("[NaN]")[0])  # what SQLite kept, as before
