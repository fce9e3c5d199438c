"""Every example in examples/ starts under a real uvicorn (lifespan on, a socket, SQLite),
serves its host page and runkit under ``/runkit``, executes a run with the workers its
host lifespan started, and shuts down cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "example-key-0123456789"
AUTH = {"X-API-Key": KEY}
EXAMPLES = [
    "examples.fastapi_app:app",
    "examples.starlette_app:app",
    "examples.litestar_app:app",
    "examples.django_app.asgi:application",
    "examples.quart_app:app",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_up(client: httpx.Client, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        assert proc.poll() is None, "uvicorn exited during startup"
        try:
            client.get("/runkit/openapi.json")
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("target", EXAMPLES, ids=[t.split(":")[0].split(".")[1] for t in EXAMPLES])
def test_example_serves_under_uvicorn(target: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "RUNKIT_API_KEYS": KEY,
        "RUNKIT_DATABASE_URL": f"sqlite:///{tmp_path / 'runkit.db'}",
        "RUNKIT_WORKERS": "1",
        "RUNKIT_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "-m", "uvicorn", target, "--port", str(port), "--lifespan", "on"]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until_up(client, proc, time.monotonic() + 30)
            assert client.get("/").status_code == 200
            spec = client.get("/runkit/openapi.json").json()
            assert spec["servers"] == [{"url": "/runkit"}]
            assert client.get("/runkit/api/v1/action-runs").status_code == 401

            body = {"kind": "greet", "definition": {"name": "Ada"}}
            created = client.post("/runkit/api/v1/action-runs", json=body, headers=AUTH)
            assert created.status_code == 201, created.text
            location = created.headers["location"]
            assert location.startswith("/runkit/api/v1/action-runs/")
            assert client.post(f"{location}/execute", headers=AUTH).status_code == 200
            deadline = time.monotonic() + 15
            while (run := client.get(location, headers=AUTH).json())["status"] != "succeeded":
                assert time.monotonic() < deadline, run
                time.sleep(0.05)
            assert run["result"] == {"greeting": "Hello, Ada!"}
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    # uvicorn >= 0.29 re-raises the SIGTERM it handled, after a graceful shutdown.
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Application startup complete" in output, output
    assert "Application shutdown complete" in output, output
