"""What `make serve` does, end to end: the installed `runkit serve` command with the test
kinds and embedded workers on a SQLite file answers its docs page, runs a run created over
HTTP to the end, serves its logs, and stops cleanly on SIGINT (Ctrl-C) and on SIGTERM.

"Cleanly" is read from the database, not from uvicorn's wording: a worker leaves the worker
registry only on a graceful stop (a killed one leaves its row to expire).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

API_KEY = "rk_test_serve_smoke"
START_TIMEOUT = 60.0  # a cold start imports Starlette, uvicorn and migrates the database
RUN_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0  # uvicorn's shutdown, then the embedded workers' graceful stop


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    def __init__(
        self, proc: subprocess.Popen[bytes], base: str, database: Path, output: Path
    ) -> None:
        self.proc, self.base, self.database, self.output = proc, base, database, output

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{self.log()}"
            try:
                httpx.get(f"{self.base}/openapi.json", timeout=5)
                return
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"not answering:\n{self.log()}"
                time.sleep(0.1)

    def registered_workers(self) -> int:
        with closing(sqlite3.connect(self.database)) as db:
            count: int = db.execute("SELECT count(*) FROM runkit_workers").fetchone()[0]
            return count

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_TIMEOUT} s after {sig.name}:\n{self.log()}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # The console script `make serve` runs, from the environment the tests run in.
    runkit = Path(sys.executable).with_name("runkit")
    assert runkit.exists(), f"no {runkit}: install runkit with its http extra"
    port = free_port()
    database = tmp_path / "runkit.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNKIT_")}
    # A key of our own, so that none is generated: the banner's wording is not this test's.
    env.update(RUNKIT_API_KEYS=API_KEY, RUNKIT_ENABLE_TEST_KINDS="1")
    command = [str(runkit), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "4", "--database", f"sqlite:///{database}"]
    output = tmp_path / "serve.log"
    with output.open("wb") as out:
        # Output to a file, not a pipe nobody reads: a full pipe would block the server.
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        yield Server(proc, f"http://127.0.0.1:{port}", database, output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


def run_to_the_end(server: Server, client: httpx.Client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200, docs.text
    assert docs.headers["content-type"].startswith("text/html")
    assert "/api/v1/action-runs" in docs.text

    runs = "/api/v1/action-runs"
    created = client.post(runs, json={"kind": "emit_logs", "definition": {"count": 3}})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    executed = client.post(f"{runs}/{run_id}/execute")
    assert executed.is_success, executed.text

    deadline = time.monotonic() + RUN_TIMEOUT
    while (run := client.get(f"{runs}/{run_id}").json())["status"] not in {
        "succeeded",
        "failed",
        "cancelled",
        "rejected",
    }:
        assert time.monotonic() < deadline, f"still {run['status']}:\n{server.log()}"
        time.sleep(0.1)
    assert run["status"] == "succeeded", run

    logs = client.get(f"{runs}/{run_id}/logs")
    assert logs.status_code == 200, logs.text
    messages = [entry["message"] for entry in logs.json()["entries"]]
    assert {"entry 0", "entry 1", "entry 2"} <= set(messages), messages


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_serve_runs_a_run_and_stops_cleanly(server: Server, sig: signal.Signals) -> None:
    server.wait_until_answering()
    with httpx.Client(base_url=server.base, headers={"X-API-Key": API_KEY}, timeout=10) as client:
        assert client.get("/api/v1/action-runs").status_code == 200
        run_to_the_end(server, client)
    assert server.registered_workers() == 1, server.log()
    code = server.stop(sig)
    if sig == signal.SIGINT:
        assert code == 0, server.log()
    else:
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again so that the
        # process ends "killed by SIGTERM", as a supervisor expects (systemd counts it clean).
        assert code in (0, -signal.SIGTERM), server.log()
    assert server.registered_workers() == 0, f"no graceful stop:\n{server.log()}"
