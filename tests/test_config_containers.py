"""Kind configs take JSON arrays for their list and set fields and JSON objects for their
mappings, nothing else: cattrs iterates what it is given, so a string given for a list
field became its characters and an object its keys (``domain.kind._guard_containers``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runkit import Kind, Runkit, ValidationError
from runkit.domain.kind import structure_config


@attrs.frozen
class Item:
    x: int


@attrs.frozen
class Config:
    tags: list[str] = attrs.field(factory=list)
    frozen_tags: tuple[str, ...] = ()
    seq: Sequence[str] = ()
    counts: dict[str, int] = attrs.field(factory=dict)
    view: Mapping[str, int] = attrs.field(factory=dict)
    names: frozenset[str] = frozenset()
    numbers: set[int] = attrs.field(factory=set)
    abstract: Set[int] = frozenset()
    nested: list[list[str]] = attrs.field(factory=list)
    items: list[Item] = attrs.field(factory=list)


ARRAYS = ("tags", "frozenTags", "seq", "names", "numbers", "abstract", "nested", "items")
OBJECTS = ("counts", "view")


def _details(definition: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        structure_config(Config, definition, ("definition",))
    return [(d.loc, d.msg) for d in caught.value.details]


@pytest.mark.parametrize("field", ARRAYS)
@pytest.mark.parametrize("value", ["abc", "", {"a": 1}, 5, True])
def test_an_array_field_refuses_what_is_not_an_array(field: str, value: Any) -> None:
    assert _details({field: value}) == [
        (("definition", field), f"expected a list, got {type(value).__name__}")
    ]


@pytest.mark.parametrize("field", OBJECTS)
@pytest.mark.parametrize("value", ["abc", [["a", 1]], 5, None])
def test_an_object_field_refuses_what_is_not_an_object(field: str, value: Any) -> None:
    assert _details({field: value}) == [
        (("definition", field), f"expected an object, got {type(value).__name__}")
    ]


def test_nested_containers_are_guarded_with_their_index() -> None:
    assert _details({"nested": [["a"], "bc"]}) == [
        (("definition", "nested", 1), "expected a list, got str")
    ]
    assert _details({"items": [{"x": 1}, {"x": "no"}]}) == [
        (("definition", "items", 1, "x"), "expected int, got str")
    ]


@given(
    tags=st.lists(st.text(max_size=5), max_size=4),
    counts=st.dictionaries(st.text(max_size=5), st.integers(), max_size=4),
    numbers=st.lists(st.integers(), max_size=4),
)
def test_arrays_and_objects_structure_as_before(
    tags: list[str], counts: dict[str, int], numbers: list[int]
) -> None:
    got = structure_config(
        Config,
        {
            "tags": tags,
            "frozenTags": tags,
            "seq": tags,
            "counts": counts,
            "view": counts,
            "names": tags,
            "numbers": numbers,
            "abstract": numbers,
            "nested": [tags],
            "items": [{"x": n} for n in numbers],
        },
        ("definition",),
    )
    assert got.tags == tags and got.frozen_tags == tuple(tags) and tuple(got.seq) == tuple(tags)
    assert got.counts == counts and dict(got.view) == counts
    assert got.names == frozenset(tags) and isinstance(got.names, frozenset)
    assert got.numbers == set(numbers) and isinstance(got.numbers, set)
    assert got.abstract == frozenset(numbers) and isinstance(got.abstract, frozenset)
    assert got.nested == [tags] and got.items == [Item(n) for n in numbers]


@pytest.mark.anyio
async def test_a_create_with_a_string_for_a_list_is_a_422_not_a_list_of_letters() -> None:
    async def noop(ctx: Any) -> dict[str, Any]:
        return {}

    kind = Kind("listy", executor=noop, config=Config)
    async with Runkit("memory://", kinds=[kind], autoload_plugins=False) as rk:
        with pytest.raises(ValidationError) as caught:
            await rk.create("listy", {"tags": "example.com"})
        assert [d.loc for d in caught.value.details] == [("definition", "tags")]
        created = await rk.create("listy", {"tags": ["example.com"]})
        assert created.run.definition == {"tags": ["example.com"]}
