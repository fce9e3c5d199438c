"""``models.replace``, the hot paths' ``attrs.evolve`` for runs: the same run, or the same
error, for any changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runkit.domain.models import Run, replace
from runkit.domain.states import Status

NOW = datetime(2026, 12, 1, tzinfo=UTC)
RUN = Run(
    id=uuid4(),
    kind="noop",
    status=Status.RUNNING,
    created_at=NOW,
    updated_at=NOW,
    definition={"a": 1},
    attempt=2,
    approvals=({"by": "x"},),
)
_NAMES = [a.name for a in attrs.fields(Run)]


@given(
    st.dictionaries(
        st.sampled_from(_NAMES),
        st.none() | st.integers() | st.text() | st.dictionaries(st.text(), st.integers()),
        max_size=6,
    )
)
def test_replace_is_evolve(changes: dict[str, Any]) -> None:
    new = replace(RUN, **changes)
    assert new == attrs.evolve(RUN, **changes)
    assert all(getattr(new, k) is v for k, v in changes.items())
    assert new is not RUN


def test_replace_refuses_an_unknown_field_as_evolve_does() -> None:
    with pytest.raises(TypeError, match="nope"):
        replace(RUN, nope=1)
    with pytest.raises(TypeError):
        attrs.evolve(RUN, nope=1)
