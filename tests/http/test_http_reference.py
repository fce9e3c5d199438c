"""docs/http-reference.md is what the generator renders from the OpenAPI document, and the
generator's document does not depend on the environment it runs in."""

from __future__ import annotations

from pathlib import Path

import pytest

from runkit_contrib._reference import reference_document, render_reference

PAGE = Path(__file__).resolve().parents[2] / "docs" / "http-reference.md"


def test_reference_is_up_to_date() -> None:
    expected = render_reference(reference_document())
    assert PAGE.read_text(encoding="utf-8") == expected, "regenerate: python docs/generate.py"


@pytest.mark.parametrize("test_kinds", ["1", "0"])
def test_reference_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch, test_kinds: str
) -> None:
    baseline = reference_document()
    monkeypatch.setenv("RUNKIT_ENABLE_TEST_KINDS", test_kinds)
    monkeypatch.delenv("RUNKIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    assert reference_document() == baseline
    kinds = [n for n in baseline["components"]["schemas"] if n.startswith("CreateRun.")]
    assert kinds == [
        "CreateRun.agent_fetch_page",
        "CreateRun.agent_search",
        "CreateRun.approval_gate",
        "CreateRun.call_agent",
        "CreateRun.call_automation",
        "CreateRun.conditional_branch",
        "CreateRun.create_flashboard",
        "CreateRun.dlt_extract",
        "CreateRun.duckdb_transform",
        "CreateRun.explain_schema",
        "CreateRun.fetch_page",
        "CreateRun.file_sync",
        "CreateRun.generate_query",
        "CreateRun.http_request",
        "CreateRun.web_search",
    ]


def test_reference_covers_every_operation_and_schema() -> None:
    doc = reference_document()
    text = render_reference(doc)
    for path, item in doc["paths"].items():
        for method in item:
            assert f"### {method.upper()} {path}\n" in text
    for name in doc["components"]["schemas"]:
        assert f"### {name}\n" in text
    # Bounds, the SSE events and the new fields are spelled out, not just named.
    assert "| `limit` | query | integer | no | >= 1; <= 100; default `100` |" in text
    assert "| `execute` | query | boolean | no | default `false` |" in text
    assert "`text/event-stream`, each event [LogStreamEvent](#logstreamevent)" in text
    assert '| `event` | `"end"` | yes |' in text
    assert "| `approvals` | array of [Approval](#approval) | yes |" in text
    assert "/work/" not in text
