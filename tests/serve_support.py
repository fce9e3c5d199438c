"""A real ``runkit serve`` for the tests that need one as a user runs it: a subprocess on a
free loopback port, keys made first with ``runkit keys create`` (so none is generated), the
test kinds on, the caller's own ``RUNKIT_`` settings and terminal hints left out. Shared by
the dashboard's browser tests, the client's and the command line's (tests/ui, tests/client).

A plain module, not a package (see tests/run_support.py). Nothing here talks to anything
but the server it starts on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

#: A cold start imports Starlette and uvicorn and migrates the database.
START_TIMEOUT = 60.0
KEY = re.compile(r"\brk_[A-Za-z0-9_-]{20,}")
_DROP = ("RUNKIT_", "FORCE_COLOR", "NO_COLOR", "COLUMNS", "LINES", "TTY_COMPATIBLE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def runkit_command() -> Path:
    """The ``runkit`` console script of this environment."""
    path = Path(sys.executable).with_name("runkit")
    assert path.exists(), f"no {path}: install runkit with its http extra"
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the caller's RUNKIT_ settings or terminal hints; the test
    kinds on, no plugin of the machine loaded; then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env["RUNKIT_ENABLE_TEST_KINDS"] = "1"
    env["RUNKIT_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return {**env, **extra}


def create_key(
    database: str, name: str, role: str, *flags: str, env: dict[str, str] | None = None
) -> str:
    """``runkit keys create`` for ``database``: the key it prints (once). ``flags``: more
    options of the command (a person's names)."""
    command = [str(runkit_command()), "keys", "create", "--name", name, "--role", role]
    command += ["--database", database, *flags]
    done = subprocess.run(
        command, env=env or clean_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    found = KEY.findall(done.stdout)
    assert len(found) == 1, f"no key in the output of {command}:\n{done.stdout}"
    return found[0]


@contextmanager
def serve_process(
    database: str,
    tmp: Path,
    *,
    env: dict[str, str] | None = None,
    workers: int = 2,
    options: Sequence[str] = (),
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``runkit serve`` on ``database``, answering: its process, base URL and log file.
    Stopped (SIGTERM, then SIGKILL) on the way out."""
    port = free_port()
    command = [str(runkit_command()), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--database", database, *options]
    log = tmp / "serve.log"
    with log.open("wb") as out:
        # Output to a file, not a pipe nobody reads: a full pipe would block the server.
        proc = subprocess.Popen(command, cwd=tmp, env=env or clean_env(), stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            text = log.read_text(errors="replace")
            assert proc.poll() is None, f"serve exited {proc.returncode}:\n{text}"
            try:
                httpx.get(f"{url}/openapi.json", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"serve not answering:\n{text}"
                time.sleep(0.1)  # polling a process that cannot tell us otherwise
        yield proc, url, log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
