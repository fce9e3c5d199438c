"""JSON text in and out of the API: response bodies written by orjson are the bytes the
standard library wrote, with its answer kept for what orjson refuses; request bodies parse
exactly as ``json.loads`` parsed them."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given

from json_support import json_values
from runkit import ValidationError
from runkit_contrib import _body, _json


def _standard(content: Any) -> bytes:
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


@given(json_values)
def test_orjson_writes_what_the_standard_library_wrote(value: Any) -> None:
    written = _json.dumps(value)
    assert json.loads(written) == json.loads(_standard(value))
    if not _floats_in(value):  # float text may differ in form ("1e+16" / "1e16"), not value
        assert written == _standard(value)


def _floats_in(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_floats_in(v) for v in value.values())
    if isinstance(value, list):
        return any(_floats_in(v) for v in value)
    return False


@pytest.mark.parametrize(
    "value",
    [{1: "a", 2: ["b"]}, {"big": 2**70}, [-(2**64)], {"nested": {3: {4: None}}}],
    ids=["int keys", "big int", "big negative", "nested int keys"],
)
def test_what_orjson_refuses_is_written_by_the_standard_library(value: Any) -> None:
    assert _json.dumps(value) == _standard(value)


def test_nan_and_infinities_are_written_as_null_not_refused() -> None:
    assert _json.dumps({"a": math.nan, "b": [math.inf, -math.inf]}) == b'{"a":null,"b":[null,null]}'


def test_json_response_renders_with_dumps() -> None:
    response = _json.JSONResponse({"é": [1, 2.5, None]}, status_code=201)
    assert response.body == _standard({"é": [1, 2.5, None]})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1}',
        '{"a": "\u00e9"}'.encode(),
        b'\xef\xbb\xbf{"a": 2}',  # a UTF-8 byte order mark
        '{"a": 3}'.encode("utf-16"),
        '{"a": 4}'.encode("utf-32-le"),
        b'{"a": 2.0, "b": 1.5}',
    ],
    ids=["plain", "utf-8", "utf-8 bom", "utf-16", "utf-32", "numbers"],
)
def test_a_body_parses_as_json_loads_parsed_it(raw: bytes) -> None:
    expected = json.loads(raw, parse_float=_body._number)
    assert _body._parse_object(raw) == expected


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"\xff{}", "json_invalid"),
        (b'{"a": NaN}', "json_invalid"),
        (b"[1]", "dict_type"),
        (b'{"a": "\\ud800"}', "string_unicode"),
    ],
)
def test_bad_bodies_are_still_refused(raw: bytes, kind: str) -> None:
    with pytest.raises(ValidationError) as info:
        _body._parse_object(raw)
    assert [(d.loc[0], d.type) for d in info.value.details] == [("body", kind)]
