"""What the tests of ``runkit runs …`` share: a real ``runkit serve`` (a subprocess on
loopback, a SQLite file, embedded workers, the test kinds) with a key made by ``runkit keys
create``, the command line run as a subprocess against it, and docs/cli.md's transcripts,
written from those runs (``RUNKIT_WRITE_DOCS=1``) or checked against them.

A plain module, not a package (see tests/run_support.py). Nothing here talks to anything
but the server it starts on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from serve_support import clean_env, create_key, runkit_command, serve_process
from serve_support import free_port as free_port  # the tests' port nothing listens on

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "cli.md"
WRITE_DOCS_ENV = "RUNKIT_WRITE_DOCS"


def cli_command() -> list[str]:
    """How to run ``runkit <args>``."""
    return [str(runkit_command())]


class Done:
    """A finished command: its argv (after ``runkit``), exit code, stdout and stderr."""

    def __init__(self, argv: Sequence[str], code: int, out: str, err: str) -> None:
        self.argv, self.code, self.out, self.err = list(argv), code, out, err

    def __repr__(self) -> str:
        return f"runkit {shlex.join(self.argv)} -> {self.code}\n{self.out}\n{self.err}"


class Server:
    """A running ``runkit serve`` and its admin key."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, key: str, log: Path) -> None:
        self.proc, self.url, self.key, self.log_path = proc, url, key, log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def env(self, **extra: str) -> dict[str, str]:
        return {**clean_env(), "RUNKIT_URL": self.url, "RUNKIT_API_KEY": self.key, **extra}

    def run(
        self,
        *argv: str,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 60,
    ) -> Done:
        """``runkit <argv>`` against this server, its output captured (not a terminal)."""
        done = subprocess.run(
            [*cli_command(), *argv],
            env=self.env() if env is None else env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Done(argv, done.returncode, done.stdout, done.stderr)

    def popen(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*cli_command(), *argv],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def http(self) -> httpx.Client:
        """The API itself, to set things up and check the CLI's answers."""
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.key}, timeout=10)


@contextmanager
def serving(tmp: Path, workers: int = 2) -> Iterator[Server]:
    """``runkit serve`` on a free loopback port with a SQLite file in ``tmp``."""
    database = f"sqlite:///{tmp / 'runkit.db'}"
    key = create_key(database, "admin", "admin")
    with serve_process(database, tmp, workers=workers, options=["--no-ui"]) as (proc, url, log):
        yield Server(proc, url, key, log)


# ------------------------------------------------------------------ transcripts -----------
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_CURSOR = re.compile(r"\b([0-9a-f]{8})-(\d+)\b")
_TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_SECONDS = re.compile(r"\b\d+\.\d\d s\b")
_DURATION = re.compile(r'"durationSeconds": [0-9.e+-]+')
_PORT = re.compile(r"127\.0\.0\.1:\d+")
_BLOCK = re.compile(
    r"(<!-- cli:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /cli:(?P=name) -->)", re.S
)


_HEADER = re.compile(r"^[A-Z]+(?: [A-Z]+)*(?: {2,}[A-Z]+(?: [A-Z]+)*)+$")
_HEADING = re.compile(r"[A-Z]+(?: [A-Z]+)*")


class Transcripts:
    """The docs' terminal transcripts: each command's output with ids, times, durations,
    ports and this machine's worker names replaced by fixed ones. A table's cells are
    replaced one by one and its columns aligned again, so it reads as the command prints
    it whatever the width of what was replaced."""

    def __init__(self, hosts: Sequence[str] = ()) -> None:
        self.ids: dict[str, str] = {}
        self.hosts = [h for h in hosts if h]
        self.blocks: dict[str, list[str]] = {}

    def _id(self, real: str) -> str:
        if real not in self.ids:
            self.ids[real] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"runkit-docs-{len(self.ids)}"))
        return self.ids[real]

    def normalize(self, text: str) -> str:
        text = _UUID.sub(lambda m: self._id(m.group()), text)
        prefixes = {real[:8]: fake[:8] for real, fake in self.ids.items()}
        text = _CURSOR.sub(lambda m: f"{prefixes.get(m.group(1), m.group(1))}-{m.group(2)}", text)
        text = _TIME.sub(lambda m: "2025-01-02T03:04:05" + (".250Z" if m.group(1) else "Z"), text)
        text = _SECONDS.sub("0.25 s", text)
        text = _DURATION.sub('"durationSeconds": 0.25', text)
        text = _PORT.sub("127.0.0.1:8000", text)
        for host in self.hosts:
            worker = re.compile(rf"\b{re.escape(host)}:\d+:[0-9a-f]+\b")
            text = worker.sub("build-7:4242:3f2a9c", text)
            text = text.replace(f'"host": "{host}"', '"host": "build-7"')
        return re.sub(r'"pid": \d+', '"pid": 4242', text)

    def output(self, text: str) -> list[str]:
        """A command's output, normalized; tables cell by cell (:meth:`_table`)."""
        lines, out = text.splitlines(), []
        i = 0
        while i < len(lines):
            if _HEADER.match(lines[i]):
                end = i + 1
                while end < len(lines) and lines[end].strip():
                    end += 1
                out += self._table(lines[i:end])
                i = end
            else:
                out += self.normalize(lines[i]).split("\n")
                i += 1
        return out

    def _table(self, lines: list[str]) -> list[str]:
        starts = [m.start() for m in _HEADING.finditer(lines[0])]
        bounds = list(zip(starts, [*starts[1:], None], strict=True))
        rows = [[line[a:b].strip() for a, b in bounds] for line in lines]
        for row in rows[1:]:
            row[:] = [self._cell(cell, column) for column, cell in zip(rows[0], row, strict=True)]
        widths = [max(len(row[c]) for row in rows) for c in range(len(starts))]
        return [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]

    def _cell(self, cell: str, column: str) -> str:
        if column == "HOST" and cell in self.hosts:
            return "build-7"
        if column == "PID" and cell.isdigit():
            return "4242"
        return self.normalize(cell)

    def add(self, name: str, done: Done, *, env: str = "") -> None:
        """Add a command (after ``env``, the variables shown before it) and what it printed
        (stdout, then stderr, as a terminal shows them when nothing interleaves) to the
        block ``name``."""
        command = f"$ {env} runkit" if env else "$ runkit"
        lines = [self.normalize(f"{command} {shlex.join(done.argv)}")]
        lines += self.output(done.out + done.err)
        if done.code:
            lines += ["$ echo $?", str(done.code)]
        self.blocks.setdefault(name, []).extend(lines)

    def check_or_write(self, doc: Path = DOC) -> None:
        """Write the blocks into ``doc`` (``RUNKIT_WRITE_DOCS=1``), else check the doc shows
        the same (blank runs aside: widths vary with a machine's host name and pids)."""
        text = doc.read_text(encoding="utf-8")
        found = {m.group("name"): m.group("body") for m in _BLOCK.finditer(text)}
        missing = sorted(set(self.blocks) - set(found))
        assert not missing, f"{doc} has no block for {missing}: add <!-- cli:NAME --> markers"
        rendered = {
            name: "```console\n" + "\n".join(lines) + "\n```\n"
            for name, lines in self.blocks.items()
        }
        if os.environ.get(WRITE_DOCS_ENV) == "1":

            def put(m: re.Match[str]) -> str:
                body = rendered.get(m.group("name"), m.group("body"))
                return m.group(1) + body + m.group(4)

            doc.write_text(_BLOCK.sub(put, text), encoding="utf-8")
            return
        for name, body in rendered.items():
            assert _loose(found[name]) == _loose(body), (
                f"docs/cli.md's block {name!r} no longer matches the command's output; "
                f"run the tests with {WRITE_DOCS_ENV}=1 to rewrite it. Now:\n{body}"
            )


def _loose(text: str) -> str:
    return "\n".join(re.sub(r" {2,}", "  ", line).rstrip() for line in text.strip().splitlines())
