"""The layout holds: imports point down the wings, contrib uses public names only, modules
stay small, and docs/architecture.md's picture is the code's (docs/architecture_graph.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500


def _graph() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "architecture_graph", ROOT / "docs" / "architecture_graph.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("architecture_graph", module)
    spec.loader.exec_module(module)
    return module


def test_every_import_points_down_the_wings() -> None:
    assert _graph().upward_imports() == []


def test_every_module_belongs_to_a_wing() -> None:
    graph = _graph()
    assert [m for m in graph.modules() if graph.wing_of(m) is None] == []


def test_contrib_imports_only_public_runkit_names() -> None:
    edges = _graph().wing_edges()
    reached = {
        dest: sorted(pairs) for (source, dest), pairs in edges.items() if source == "contrib"
    }
    assert set(reached) <= {"public"}, reached


def test_the_client_imports_public_runkit_names_and_the_wire_format() -> None:
    """The client reads answers with contrib's wire format (one mapping of the JSON), and
    otherwise uses runkit as any program would."""
    edges = _graph().wing_edges()
    reached = {dest: sorted(pairs) for (source, dest), pairs in edges.items() if source == "client"}
    assert set(reached) <= {"public", "contrib"}, reached


def test_the_built_in_kinds_import_only_the_author_surface() -> None:
    edges = _graph().wing_edges()
    assert {dest for (source, dest) in edges if source == "kinds"} <= {"authoring", "domain"}


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "src").rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_architecture_picture_is_current() -> None:
    page = ROOT / "docs" / "architecture.md"
    text = page.read_text(encoding="utf-8")
    assert _graph().render(text) == text, "run: python docs/generate.py"
