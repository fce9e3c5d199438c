"""docs/python-api.md documents every field of every public model: a field added to a model
without a line in its table fails here."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

import runkit

DOC = Path(__file__).parents[1] / "docs" / "python-api.md"

#: Models with a table of their own, and the properties documented beside their fields.
TABLES: dict[type, set[str]] = {
    runkit.LogEntry: {"cursor"},
    runkit.LogPage: set(),
    runkit.RunPage: {"has_next"},
    runkit.Created: {"replayed"},
    runkit.WorkerInfo: set(),
    runkit.Principal: set(),
    runkit.UserProfile: set(),
    runkit.RunQuery: set(),
    runkit.NewLogEntry: set(),
}


def _section(heading: str) -> str:
    text = DOC.read_text()
    start = text.index(f"### {heading}\n")
    end = text.find("\n### ", start + 1)
    return text[start : end if end != -1 else None]


def _documented(section: str) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", section))


@pytest.mark.parametrize("model", list(TABLES), ids=lambda m: m.__name__)
def test_each_field_has_a_row(model: type) -> None:
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", _section(f"`{model.__name__}`"), re.M))
    expected = {f.name for f in attrs.fields(model)} | TABLES[model]
    assert rows == expected


def test_every_run_field_is_documented() -> None:
    section = _documented(_section("`Run`"))
    missing = {f.name for f in attrs.fields(runkit.Run)} - section
    assert not missing


def test_settings_kind_and_policies_are_documented() -> None:
    section = _section("`Settings`, `Kind`, `RetryPolicy`, `ApprovalPolicy`")
    rows = set(re.findall(r"^\| `(\w+)` \| `([a-z_]+)` \|", section, re.M))
    for model in (runkit.Settings, runkit.Kind, runkit.RetryPolicy, runkit.ApprovalPolicy):
        for field in attrs.fields(model):
            assert (model.__name__, field.name) in rows, (model.__name__, field.name)
