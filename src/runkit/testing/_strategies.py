"""Hypothesis strategies for runkit's models (for round-trip and property tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from ..domain.models import Run
from ..domain.states import Status

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)

#: JSON values as runkit stores them (finite floats; objects with string keys).
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(_text, json_values, max_size=5)

timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
keys = st.none() | st.text(min_size=1, max_size=255)


@st.composite
def runs(draw: st.DrawFn) -> Run:
    created = draw(timestamps)
    started = draw(st.none() | st.just(created + timedelta(seconds=draw(st.integers(0, 999)))))
    return Run(
        id=draw(st.uuids()),
        kind=draw(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)),
        status=draw(st.sampled_from(Status)),
        created_at=created,
        updated_at=draw(timestamps),
        definition=draw(json_objects),
        action_id=draw(st.none() | _text),
        idempotency_key=draw(keys),
        concurrency_key=draw(keys),
        parent_action_run_id=draw(st.none() | st.uuids()),
        progress=draw(json_objects),
        result=draw(st.none() | json_objects),
        error=draw(st.none() | json_objects),
        retry_count=draw(st.integers(0, 1000)),
        interrupt_count=draw(st.integers(0, 1000)),
        trigger_method=draw(st.none() | st.sampled_from(["ui", "api", "system"])),
        trigger_source_type=draw(st.none() | st.sampled_from(["user", "api_key"])),
        trigger_source_id=draw(st.none() | _text),
        started_at=started,
        completed_at=draw(st.none() | timestamps),
        attempt=draw(st.integers(0, 1000)),
        status_reason=draw(st.none() | _text),
    )
