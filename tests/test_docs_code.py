"""The code in README.md and docs/*.md runs as written.

Convention: every ```python block is a complete program. It is written to a file in a fresh
temporary working directory and executed there by this interpreter in a subprocess (no
RUNKIT_* variable, so no test kinds; PYTHONPATH untouched; a timeout), twice in a row, as a
reader runs an example again: both runs must exit 0. A block opened with ```python fragment
is only compiled (top-level await allowed), never run. Any other language is not checked.
"""

from __future__ import annotations

import ast
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PYTHON = frozenset({"python", "py", "python3"})
RUN_TIMEOUT = 60.0

# A fence: up to 3 spaces of indent (more is an indented code block, not a fence), 3 or more
# backticks or tildes, then the info string.
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@attrs.frozen
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    language: str
    attributes: tuple[str, ...]
    code: str

    @property
    def id(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    def source(self) -> str:
        # Blank lines in front, so that a traceback's line numbers are the document's.
        return "\n" * self.line + self.code


def fenced_blocks(document: Path) -> list[Block]:
    blocks = []
    lines = document.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        words = opening["info"].split()
        body: list[str] = []
        for j in range(i + 1, len(lines)):
            closing = _FENCE.match(lines[j])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            # CommonMark strips up to the fence's own indent from each content line.
            body.append(re.sub(rf"^ {{0,{indent}}}", "", lines[j]))
        else:
            raise AssertionError(f"{document.name}:{i + 1}: code fence never closed")
        language = words[0].lower() if words else ""
        blocks.append(Block(document, i + 1, language, tuple(words[1:]), "\n".join(body) + "\n"))
        i = j + 1
    return blocks


PYTHON_BLOCKS = [b for doc in DOCUMENTS for b in fenced_blocks(doc) if b.language in PYTHON]
PROGRAMS = [b for b in PYTHON_BLOCKS if "fragment" not in b.attributes]


def test_blocks_are_found() -> None:
    """Guards the collection itself: a parser that finds nothing would pass every document.
    The README is the one that must have programs (the asynchronous and the synchronous
    quick start); a docs page may well have fragments only."""
    readme = [b for b in PROGRAMS if b.document.name == "README.md"]
    assert len(readme) >= 2, [b.id for b in readme]
    assert len(PYTHON_BLOCKS) > len(readme), "no ```python block found in docs/*.md"


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_block_compiles(block: Block) -> None:
    # A misspelt `fragment` would turn a fragment into a program, or a word meant as
    # something else into nothing: only the words this file understands are allowed.
    assert set(block.attributes) <= {"fragment"}, f"{block.id}: unknown {block.attributes}"
    # A fragment may show a statement of an async function (`await ...`) on its own.
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if "fragment" in block.attributes else 0
    compile(block.source(), block.id, "exec", flags=flags)


def run_program(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A reader's environment: no test kinds, no database or keys set up by the test run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNKIT_")}
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("block", PROGRAMS, ids=lambda b: b.id)
def test_program_runs(block: Block, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # Outside the working directory, so that the program cannot import itself by accident;
    # named after the block, so that a traceback says where it comes from.
    program = tmp_path / (re.sub(r"\W", "_", block.id) + ".py")
    program.write_text(block.source(), encoding="utf-8")
    for attempt in ("first", "second"):
        done = run_program(program, work)
        assert done.returncode == 0, (
            f"{block.id} failed on its {attempt} run (exit {done.returncode}):\n"
            f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
        )


def test_quickstart_is_the_readme_example() -> None:
    """examples/quickstart.py is the README's program, character for character (the README
    block is what test_program_runs executes)."""
    example = (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
    assert example in [b.code for b in PROGRAMS if b.document.name == "README.md"]


@pytest.mark.slow
def test_quickstart_replays_its_run(tmp_path: Path) -> None:
    """Run again, the quick start replays the run it created (the idempotency key) and still
    prints its result and logs."""
    outputs = []
    for _ in range(2):
        done = run_program(ROOT / "examples" / "quickstart.py", tmp_path)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert "succeeded {'greeted': 'Ada'}" in outputs[1]
    assert "info: hello Ada" in outputs[1]
    assert outputs[1] == outputs[0]
    with closing(sqlite3.connect(tmp_path / "runs.db")) as db:
        assert db.execute("SELECT count(*) FROM runkit_runs").fetchone() == (1,)
