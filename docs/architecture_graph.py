"""The import graph of runkit's wings, read from the source with ``ast``.

``docs/generate.py`` draws docs/architecture.md's picture with it, and
tests/test_architecture.py checks that every import points down the wings' order. An import
counts wherever it is written (module level or inside a function); only those under
``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: The wings, lowest first: a module may import from its own wing and the ones before it.
#: (module prefix, wing); the longest matching prefix wins.
WINGS: list[tuple[str, str]] = [
    ("runkit.domain", "domain"),
    ("runkit.authoring", "authoring"),
    ("runkit.hookspecs", "authoring"),
    ("runkit.storage", "storage"),
    ("runkit.kinds", "kinds"),
    ("runkit.engine", "engine"),
    ("runkit.service", "service"),
    ("runkit.testing", "testing"),
    ("runkit", "public"),
    ("runkit_contrib", "contrib"),
    ("runkit.client", "client"),
]
ORDER = ["domain", "authoring", "storage", "kinds", "engine", "service", "testing", "public"]
ORDER += ["contrib", "client"]

WHAT = {
    "domain": "models, states and moves, keys, cursor, errors: no I/O",
    "authoring": "what a kind author imports",
    "storage": "the Store contract, memory, SQL, migrations",
    "kinds": "built-in action kinds",
    "engine": "workers, run contexts, wake-ups",
    "service": "the Runkit facade, its Mover, WorkerOps, plugins",
    "testing": "conformance suite, strategies",
    "public": "runkit's public names, the CLI",
    "contrib": "HTTP: ASGI app, wire format, OpenAPI, serve, the dashboard",
    "client": "the HTTP client and `runkit runs`, on contrib's wire format",
}


def wing_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for prefix, wing in WINGS:
        matches = module == prefix or module.startswith(prefix + ".")
        if matches and (best is None or len(prefix) > best[0]):
            best = (len(prefix), wing)
    return best[1] if best else None


@functools.cache
def modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in ("runkit", "runkit_contrib"):
        for path in sorted((SRC / package).rglob("*.py")):
            parts = list(path.relative_to(SRC).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, path: Path) -> set[str]:
    """The runkit modules ``module`` imports (resolved, at any depth, not type-only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from pkg import module` names the submodule; `from pkg import name`, pkg.
            known = modules()
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known.keys()
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in modules() and name != module}


def wing_edges() -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(from wing, to wing) -> the module imports that make the edge."""
    edges: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for module, path in modules().items():
        source = wing_of(module)
        for target in imports_of(module, path):
            dest = wing_of(target)
            if source and dest and source != dest:
                edges[(source, dest)].add((module, target))
    return edges


def upward_imports() -> list[str]:
    """Imports that point up the order (a wing importing a later one): each is a cycle in
    the making. Empty when the layering holds."""
    bad = []
    for (source, dest), pairs in sorted(wing_edges().items()):
        if ORDER.index(dest) > ORDER.index(source):
            bad.extend(f"{a} -> {b} ({source} -> {dest})" for a, b in sorted(pairs))
    return bad


def mermaid() -> str:
    lines = ["flowchart TD"]
    for wing in ORDER:
        lines.append(f'    {wing}["{wing}<br/><small>{WHAT[wing]}</small>"]')
    for source, dest in sorted(wing_edges()):
        lines.append(f"    {source} --> {dest}")
    return "\n".join(lines)


def render(template: str) -> str:
    start, end = "<!-- generated:wings -->", "<!-- /generated:wings -->"
    head, _, rest = template.partition(start)
    _, _, tail = rest.partition(end)
    return f"{head}{start}\n```mermaid\n{mermaid()}\n```\n{end}{tail}"
