"""runkit_contrib is a client of runkit's public API: every import of runkit in it is
``import runkit`` or ``from runkit import <names in runkit.__all__>``, and an attribute read
off ``runkit`` is a public name too. So the core can reorganise its modules (issue #8)
without breaking the HTTP layer, and the HTTP layer cannot lean on what is not public.

Imports are read with ``ast`` wherever they are written (module level or in a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import runkit

CONTRIB = Path(__file__).resolve().parents[2] / "src" / "runkit_contrib"
PUBLIC = frozenset(runkit.__all__)


def violations(source: str) -> list[str]:
    """Each import of (or reach into) runkit in ``source`` that is not public."""
    found: list[str] = []
    aliases = set()  # the names ``import runkit [as x]`` binds
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "runkit":
                    aliases.add(alias.asname or "runkit")
                elif alias.name.startswith("runkit."):
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("runkit."):
                found.append(f"line {node.lineno}: from {node.module} import ...")
            elif node.module == "runkit":
                for alias in node.names:
                    if alias.name not in PUBLIC:
                        found.append(f"line {node.lineno}: from runkit import {alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr not in PUBLIC
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def contrib_modules() -> list[Path]:
    return sorted(CONTRIB.rglob("*.py"))


def test_every_contrib_module_is_read() -> None:
    names = {p.relative_to(CONTRIB).as_posix() for p in contrib_modules()}
    assert {"_routes.py", "_wire.py", "_openapi.py", "frameworks/django.py"} <= names


@pytest.mark.parametrize("path", contrib_modules(), ids=lambda p: p.relative_to(CONTRIB).as_posix())
def test_contrib_imports_only_public_runkit_names(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "from runkit.domain import inputs",
        "from runkit.domain.states import TERMINAL",
        "import runkit.domain.kind",
        "from runkit.engine import embedded_workers",
        "from runkit import Runkit, TERMINAL",
        "from runkit import *",
        "import runkit\nrunkit.domain.states.TERMINAL",
        "import runkit as rk\nrk.storage",
        "def f():\n    from runkit.storage.memory import MemoryStore",
    ],
)
def test_the_check_finds_private_imports(source: str) -> None:
    assert violations(source), source


@pytest.mark.parametrize(
    "source",
    [
        "import runkit",
        "from runkit import Runkit, Status, camel",
        "import runkit\nrunkit.Run",
        "from runkit_contrib._wire import converter",
        "from ._wire import converter",
    ],
)
def test_the_check_accepts_public_imports(source: str) -> None:
    assert violations(source) == []
