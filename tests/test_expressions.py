"""The composing kinds' expressions (runkit.kinds.compose.expressions): JMESPath compiled
with precise errors, JMESPath truth, evaluation within bounds, and ``$expr`` markers."""

from __future__ import annotations

import json
import string
import time
from typing import Any

import jmespath
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runkit import ValidationError
from runkit.kinds.compose.expressions import (
    EXPR,
    MAX_EXPRESSION_CHARS,
    MAX_RESULT_BYTES,
    ExpressionError,
    child_markers,
    compile_expression,
    document,
    evaluate,
    fill_child,
    is_marker,
    markers,
    substitute,
    truthy,
)

LOC = ("definition", "steps", 1, "definition", "to", EXPR)

#: JSON values (no NaN or infinity: not JSON).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def error_of(source: Any) -> tuple[tuple[Any, ...], str, str]:
    with pytest.raises(ValidationError) as info:
        compile_expression(source, LOC)
    (detail,) = info.value.details
    return detail.loc, detail.msg, detail.type


# --- compiling ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "inputs.name",
        "steps.fetch.result.items[?price > `10`].name | sort(@)",
        "length(steps.*.status) == `3` && !contains(steps.*.status, 'failed')",
        "join(', ', inputs.tags)",
        "not_null(parent.x, inputs.x, 'default')",
        'steps."fetch-page".runId',
        "sort_by(inputs.people, &age)[-1].name",
    ],
)
def test_valid_expressions_compile(source: str) -> None:
    assert compile_expression(source, LOC).expression == source


@pytest.mark.parametrize(
    ("source", "message", "kind"),
    [
        (5, "an expression must be a string", "type_error"),
        (None, "an expression must be a string", "type_error"),
        ("", "the expression is empty", "expression"),
        ("a b", "not JMESPath: Unexpected token: b (at character 3)", "expression"),
        ("a[", "not JMESPath: it ends too early", "expression"),
        ('a."b', 'not JMESPath: Unclosed " delimiter (at character 3)', "expression"),
        ("foo(@)", "unknown function foo(); JMESPath has abs, avg", "expression"),
        ("length(@, @)", "length() takes 1 argument(s), not 2", "expression"),
        ("not_null()", "not_null() takes at least 1 argument(s), not 0", "expression"),
        ("`{bad`", "not JMESPath: the literal `{bad` is not JSON", "expression"),
        ("x" * (MAX_EXPRESSION_CHARS + 1), "expression longer than 2000 characters", "too_long"),
        ("(" * 900 + "a" + ")" * 900, "the expression is nested too deeply", "expression"),
    ],
)
def test_bad_expressions_are_validation_errors_at_their_loc(
    source: Any, message: str, kind: str
) -> None:
    loc, msg, type_ = error_of(source)
    assert loc == LOC
    assert msg.startswith(message), msg
    assert type_ == kind


def test_the_longest_expression_allowed_compiles() -> None:
    source = "a" * MAX_EXPRESSION_CHARS
    assert compile_expression(source, LOC).expression == source


def test_a_non_json_literal_warns_nothing(recwarn: pytest.WarningsRecorder) -> None:
    # jmespath itself accepts it with a deprecation warning; here it is simply an error.
    error_of("`not json`")
    assert not recwarn.list


# --- truth ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (False, False),
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (0, True),
        (0.0, True),
        ("false", True),
        ("0", True),
        ([False], True),
        ({"a": None}, True),
    ],
)
def test_jmespath_truth(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


@given(json_values)
def test_truth_is_what_a_jmespath_filter_keeps(value: Any) -> None:
    assert truthy(value) == bool(jmespath.search("[?@]", [value]))


# --- evaluating ----------------------------------------------------------------------------
DOC = document(
    {"tags": ["a", "b"], "n": 3},
    {"approved": True},
    {"fetch": {"status": "succeeded", "result": {"items": [1, 2]}, "error": None, "runId": "r1"}},
)


def test_the_document() -> None:
    assert evaluate("inputs.n", DOC) == 3
    assert evaluate("parent.approved", DOC) is True
    assert evaluate("steps.fetch.result.items[-1]", DOC) == 2
    assert evaluate("steps.missing.result", DOC) is None
    assert evaluate("keys(@)", DOC) == ["inputs", "parent", "steps"]
    assert evaluate("inputs", document({}, None, {})) == {}


def test_a_value_is_fresh() -> None:
    items = evaluate("steps.fetch.result.items", DOC)
    items.append(99)
    assert DOC["steps"]["fetch"]["result"]["items"] == [1, 2]
    literal = evaluate("`[1]`", DOC)
    literal.append(2)
    assert evaluate("`[1]`", DOC) == [1]


@given(json_values)
def test_a_literal_is_its_json(value: Any) -> None:
    source = "`" + json.dumps(value).replace("`", "\\`") + "`"
    if len(source) <= MAX_EXPRESSION_CHARS:
        assert evaluate(source, {}) == value


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_any_key_is_reached_by_a_quoted_identifier(inputs: dict[str, Any]) -> None:
    doc = document(inputs, None, {})
    for key, value in inputs.items():
        assert evaluate(f"inputs.{json.dumps(key)}", doc) == value


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("length(inputs.n)", "invalid type for value: 3"),
        ("to_number('nan')", r"not JSON \(NaN or infinity\)"),
        ("a b", "Unexpected token"),
    ],
)
def test_evaluation_errors_carry_the_loc(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message) as info:
        evaluate(source, DOC, LOC)
    assert info.value.loc == LOC


def test_the_result_is_bounded() -> None:
    doc = document({"blob": "x" * MAX_RESULT_BYTES}, None, {})
    with pytest.raises(ExpressionError, match="over 256 KiB"):
        evaluate("inputs.blob", doc)
    assert evaluate("length(inputs.blob)", doc) == MAX_RESULT_BYTES


def test_a_large_document_can_be_navigated() -> None:
    doc = document({}, None, {"page": {"result": {"html": "x" * 8_000_000, "title": "t"}}})
    assert evaluate("steps.page.result.title", doc) == "t"
    assert evaluate("length(steps.page.result.html)", doc) == 8_000_000


@pytest.mark.parametrize(
    ("source", "message"),
    [
        # Each stage doubles a value made of shared parts: exponential without the bound.
        ("[@, @]" + " | [@, @]" * 150 + " | to_string(@)", "too large a value"),
        ("join('', ['ab', 'ab'])" + " | join('', [@, @])" * 100, "too large a value"),
        ("inputs.tags" + " | [@, @][]" * 150, "more than 200,000 steps"),
    ],
)
def test_blow_ups_stop_early(source: str, message: str) -> None:
    assert len(source) <= MAX_EXPRESSION_CHARS
    started = time.monotonic()
    with pytest.raises(ExpressionError, match=message):
        evaluate(source, DOC)
    assert time.monotonic() - started < 10


# --- markers -------------------------------------------------------------------------------
def test_markers_are_objects_with_the_one_key() -> None:
    value = {
        "a": {EXPR: "x"},
        "b": [1, {EXPR: "y"}, {"c": {EXPR: 5}}],
        "data": {EXPR: "z", "other": 1},  # two keys: data, not a marker
    }
    assert list(markers(value, ("definition",))) == [
        (("definition", "a", EXPR), "x"),
        (("definition", "b", 1, EXPR), "y"),
        (("definition", "b", 2, "c", EXPR), 5),
    ]
    assert is_marker({EXPR: "x"}) and not is_marker({EXPR: "x", "y": 1})


def test_substitute_replaces_markers_and_nothing_else() -> None:
    value = {"to": {EXPR: "inputs.n"}, "cc": [{EXPR: "inputs.tags"}], "keep": {EXPR: 1, "x": 2}}
    filled = substitute(value, lambda source, loc: evaluate(source, DOC, loc), ("definition",))
    assert filled == {"to": 3, "cc": [["a", "b"]], "keep": {EXPR: 1, "x": 2}}
    assert value["to"] == {EXPR: "inputs.n"}  # unchanged
    # A replacement is final: a marker it contains stays data.
    escaped = substitute({EXPR: '`{"$expr": "inputs.n"}`'}, lambda s, loc: evaluate(s, DOC), ())
    assert escaped == {EXPR: "inputs.n"}


@given(json_values)
def test_substitute_without_markers_is_a_copy(value: Any) -> None:
    def never(source: Any, loc: Any) -> Any:
        raise AssertionError("no marker here")

    if any(True for _ in markers(value, ())):
        return
    copy = substitute(value, never, ())
    assert copy == value
    if isinstance(value, dict | list) and value:
        assert copy is not value


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@given(json_values, st.data())
def test_substitute_fills_every_marker_at_its_loc(value: Any, data: st.DataObject) -> None:
    # Put markers at random places of a random value, then check each is asked for with
    # the path that leads to it, and ends up replaced by what was answered.
    holder = {"root": value}
    paths: list[tuple[Any, ...]] = [("root",)]
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ("root",))]
    while stack:
        item, path = stack.pop()
        children = (
            item.items()
            if isinstance(item, dict)
            else enumerate(item)
            if isinstance(item, list)
            else ()
        )
        for key, child in children:
            paths.append((*path, key))
            stack.append((child, (*path, key)))
    chosen = data.draw(st.sets(st.sampled_from(paths), max_size=3))
    for path in sorted(chosen, key=len, reverse=True):
        parent = _at(holder, path[:-1])
        parent[path[-1]] = {EXPR: "/".join(map(str, path))}
    expected = list(markers(holder, ()))
    asked: list[tuple[Any, ...]] = []

    def answer(source: Any, loc: tuple[Any, ...]) -> Any:
        asked.append(loc)
        assert _at(holder, loc[:-1]) == {EXPR: source}
        return {"answer": source}

    filled = substitute(holder, answer, ())
    assert sorted(map(repr, asked)) == sorted(repr(loc) for loc, _ in expected)
    for loc, source in expected:
        assert _at(filled, loc[:-1]) == {"answer": source}


def test_a_composing_child_keeps_its_own_markers() -> None:
    inner = {
        "condition": "inputs.ok",
        "inputs": {"ok": {EXPR: "steps.fetch.status == 'succeeded'"}},
        "then": {"kind": "noop", "definition": {"x": {EXPR: "inputs.ok"}}},
    }
    loc = ("definition", "steps", 2, "definition")
    assert child_markers("conditional_branch", inner, loc) == [
        ((*loc, "inputs", "ok", EXPR), "steps.fetch.status == 'succeeded'")
    ]
    filled = fill_child("conditional_branch", inner, DOC, loc)
    assert filled["inputs"] == {"ok": True}
    assert filled["then"] == inner["then"]  # the inner run evaluates that one
    # Another kind has no fields of its own: every marker is the parent's.
    assert len(child_markers("noop", inner, loc)) == 2
    steps = {"steps": [{"name": "a", "kind": "noop", "definition": {"v": {EXPR: "x"}}}]}
    assert child_markers("call_automation", steps, loc) == []
    assert child_markers("call_automation", {EXPR: "inputs"}, loc) == [((*loc, EXPR), "inputs")]


def test_characters_in_identifiers() -> None:
    # Step names are free text; a name that is not an identifier is reached quoted.
    name = "fetch page #" + string.punctuation.replace('"', "").replace("\\", "")
    doc = document({}, None, {name: {"status": "succeeded"}})
    assert evaluate(f"steps.{json.dumps(name)}.status", doc) == "succeeded"
