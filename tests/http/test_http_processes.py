"""Two API processes and a worker process on one PostgreSQL: a run created through one API
process, executed by the worker, streamed live through the other (issue #4)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

KEY = "rk_cross_process_test_key"
HEADERS = {"X-API-Key": KEY}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def fleet(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two `runkit serve --workers 0` processes and one `runkit worker`, all on pg_url."""
    env = {
        **os.environ,
        "RUNKIT_API_KEYS": KEY,
        "RUNKIT_ENABLE_TEST_KINDS": "1",
        "RUNKIT_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    ports = [_free_port(), _free_port()]
    serve = [sys.executable, "-m", "runkit", "serve", "--workers", "0", "--database", pg_url]
    commands = [[*serve, "--port", str(port)] for port in ports]
    commands.append([sys.executable, "-m", "runkit", "worker", "--database", pg_url])
    logs = [open(tmp_path / f"proc-{i}.log", "wb") for i in range(len(commands))]  # noqa: SIM115
    procs = [
        subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        for cmd, log in zip(commands, logs, strict=True)
    ]
    try:
        bases = [f"http://127.0.0.1:{port}/api/v1/action-runs" for port in ports]
        deadline = time.monotonic() + 60
        for base in bases:
            while True:
                try:
                    if httpx.get(base, headers=HEADERS).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "proc-0.log").read_text()
                time.sleep(0.2)
        yield bases[0], bases[1]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


def test_created_in_one_api_streamed_live_through_another(fleet: tuple[str, str]) -> None:
    api_one, api_two = fleet
    count = 25
    created = httpx.post(
        api_one,
        headers=HEADERS,
        json={"kind": "emit_logs", "definition": {"count": count, "intervalSeconds": 0.04}},
    )
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]

    events: list[tuple[str, str, str]] = []  # (event, id, data)
    with httpx.stream(
        "GET", f"{api_two}/{run_id}/logs/stream", headers=HEADERS, timeout=60
    ) as stream:
        assert stream.status_code == 200
        # The stream is open before the run is executed: what follows arrives live.
        executed = httpx.post(f"{api_one}/{run_id}/execute", headers=HEADERS)
        assert executed.status_code == 200, executed.text
        event, ident, data = "message", "", ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("id:"):
                ident = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data = line.partition(":")[2].strip()
            elif line == "" and data:
                events.append((event, ident, data))
                if event == "end":
                    break
                event, ident, data = "message", "", ""

    logs = [json.loads(data) for event, _, data in events if event == "log"]
    seqs = [int(entry["id"].rpartition("-")[2]) for entry in logs]
    assert seqs == list(range(1, len(logs) + 1)), "a gap or a duplicate in the stream"
    assert [e["data"]["i"] for e in logs if e["event"] is None] == list(range(count))
    assert {e["workerId"] for e in logs if e["event"] is None} != {None}
    end = json.loads(events[-1][2])
    assert events[-1][0] == "end" and end["status"] == "succeeded"
    final = httpx.get(f"{api_two}/{run_id}/logs?limit=500", headers=HEADERS).json()
    assert [e["id"] for e in final["entries"]] == [e["id"] for e in logs]
