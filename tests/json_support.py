"""Hypothesis strategies of JSON values, shared by the tests of runkit's JSON writers."""

from __future__ import annotations

from hypothesis import strategies as st

#: Any JSON value: integers past 64 bits too (orjson refuses them, the fallbacks write
#: them); no NaN or infinities (JSON has no form for them).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
