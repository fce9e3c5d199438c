"""``runkit serve``: first start creates the database and a key (printed once, hashed at
rest); the API answers with that key and refuses without it."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from runkit_contrib._auth import hash_key
from runkit_contrib._serve import key_file_for, load_api_keys


def test_key_file_holds_hashes_only(tmp_path: Path) -> None:
    out = io.StringIO()
    key_file = tmp_path / "runkit-api-keys"
    load_api_keys(key_file, {}, out)
    key = next(w for w in out.getvalue().split() if w.startswith("rk_"))
    assert key not in key_file.read_text() and hash_key(key) in key_file.read_text()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    again = io.StringIO()
    assert len(load_api_keys(key_file, {}, again)) == 1 and again.getvalue() == ""
    assert len(load_api_keys(key_file, {"RUNKIT_API_KEYS": "a, b,"}, again)) == 2
    assert key_file_for("sqlite:///x/y.db") == Path("x").resolve() / "runkit-api-keys"


@pytest.mark.timeout(60)
def test_serve_starts_and_authenticates(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "RUNKIT_API_KEYS"}
    env["RUNKIT_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    cmd = [sys.executable, "-m", "runkit_contrib._cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert proc.stdout is not None
        key = ""
        deadline = time.monotonic() + 30
        while not key and time.monotonic() < deadline:
            line = proc.stdout.readline()
            key = line.strip() if line.strip().startswith("rk_") else ""
        assert key, "no key printed"
        base = f"http://127.0.0.1:{port}/api/v1/action-runs"
        while time.monotonic() < deadline:
            try:
                r = httpx.get(base, headers={"X-API-Key": key})
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r.status_code == 200, r.text
        assert httpx.get(base).status_code == 401
        assert (tmp_path / "runkit.db").exists()
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
