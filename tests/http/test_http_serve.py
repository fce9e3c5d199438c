"""``runkit serve``: first start creates the database and a key (printed once, hashed at
rest in the key store beside the database); the banner says where the API, the docs and
the key store are; a later start says a key exists and how to make another
(``runkit keys create``); the API answers with those keys and refuses without them."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from runkit import ConfigurationError
from runkit_contrib._keystore import create_key, read_keys, revoke_key
from runkit_contrib._serve import KeySetup, banner, key_file_for, load_api_keys

CLI = [sys.executable, "-m", "runkit_contrib._cli"]


# ------------------------------------------------------------------ where the store lives --
def test_key_store_beside_a_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "data" / "runs.db"
    assert key_file_for(f"sqlite:///{db}", {}) == tmp_path / "data" / "runs.db.api-keys"
    relative = key_file_for("sqlite:///runkit.db", {})
    assert relative == Path.cwd().resolve() / "runkit.db.api-keys"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (
            "postgresql+psycopg://ann:s3cret@db.internal:6543/runs",
            "postgresql-db.internal-6543-runs",
        ),
        ("postgresql://ann:s3cret@db.internal/runs", "postgresql-db.internal-5432-runs"),
        ("postgresql:///runs?host=/var/run/postgresql", "postgresql-_var_run_postgresql-5432-runs"),
        ("memory://", "memory"),
        ("sqlite://", "sqlite-memory"),
        ("sqlite:///:memory:", "sqlite-memory"),
    ],
)
def test_key_store_of_other_databases_in_config_dir(tmp_path: Path, url: str, name: str) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    path = key_file_for(url, env)
    assert path == tmp_path / "xdg" / "runkit" / f"{name}.api-keys"
    assert "s3cret" not in str(path) and "ann" not in path.name
    # No XDG_CONFIG_HOME (or a relative one, which the XDG spec says to ignore): ~/.config.
    home = {"HOME": str(tmp_path / "home")}
    expected = tmp_path / "home" / ".config" / "runkit" / f"{name}.api-keys"
    assert key_file_for(url, home) == expected
    assert key_file_for(url, {**home, "XDG_CONFIG_HOME": "relative/dir"}) == expected


def test_key_file_variable_overrides(tmp_path: Path) -> None:
    env = {"RUNKIT_KEY_FILE": str(tmp_path / "k"), "XDG_CONFIG_HOME": str(tmp_path)}
    assert key_file_for("sqlite:///x.db", env) == tmp_path / "k"
    assert key_file_for("postgresql://h/db", env) == tmp_path / "k"


# ------------------------------------------------------------------ the store itself -------
def test_first_start_generates_once_and_keeps_salted_hashes_only(tmp_path: Path) -> None:
    store = tmp_path / "nested" / "runkit.db.api-keys"
    first = load_api_keys(store, {}, interactive=True)
    key = first.generated
    assert key is not None and key.startswith("rk_") and len(first.keys) == 1
    text = store.read_text()
    assert key not in text and hashlib.sha256(key.encode()).hexdigest() not in text
    [stored] = read_keys(store)
    assert stored.id == "default" and stored.roles == {"admin"} and stored.matches(key)
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    assert oct(store.parent.stat().st_mode & 0o777) == "0o700"
    again = load_api_keys(store, {})
    assert again.generated is None and again.generated_file is None and len(again.keys) == 1
    from_env = load_api_keys(store, {"RUNKIT_API_KEYS": "a, b,"})
    assert from_env.from_env and len(from_env.keys) == 2 and from_env.generated is None


def test_first_key_off_a_terminal_goes_to_a_private_file_not_the_output(tmp_path: Path) -> None:
    store = tmp_path / "runkit.db.api-keys"
    setup = load_api_keys(store, {}, interactive=False)
    assert setup.generated is None and setup.generated_file is not None
    key = setup.generated_file.read_text().strip()
    assert key.startswith("rk_") and read_keys(store)[0].matches(key)
    assert oct(setup.generated_file.stat().st_mode & 0o777) == "0o600"
    text = banner(host="127.0.0.1", port=1, database="sqlite:///x.db", setup=setup)
    assert key not in text and str(setup.generated_file) in text


def test_a_store_whose_keys_are_all_revoked_gets_a_new_first_key(tmp_path: Path) -> None:
    store = tmp_path / "k"
    load_api_keys(store, {}, interactive=True)
    revoke_key(store, "default")
    fresh = load_api_keys(store, {}, interactive=True)
    assert fresh.generated is not None
    assert [(k.id, k.revoked is None) for k in read_keys(store)] == [
        ("default", False),
        ("default-2", True),
    ]


def test_create_key_appends(tmp_path: Path) -> None:
    store = tmp_path / "runkit.db.api-keys"
    stored, key = create_key(store, "deploy-bot")
    assert stored.id == "deploy-bot" and key.startswith("rk_") and stored.roles == {"operate"}
    other, other_key = create_key(store, roles=["read"], tenant="acme")
    # A random id: never derived from the key (a weak one could be guessed offline).
    assert (
        other.id.startswith("key-")
        and other.id[4:] not in hashlib.sha256(other_key.encode()).hexdigest()
    )
    assert [k.id for k in read_keys(store)] == ["deploy-bot", other.id]
    assert read_keys(store)[1].tenant == "acme" and read_keys(store)[1].matches(other_key)
    assert key not in store.read_text() and other_key not in store.read_text()
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ConfigurationError, match="already"):
        create_key(store, "deploy-bot")
    with pytest.raises(ConfigurationError, match="invalid key id"):
        create_key(store, "two words")
    with pytest.raises(ConfigurationError, match="unknown role"):
        create_key(store, "x", roles=["root"])
    with pytest.raises(ConfigurationError, match="invalid tenant"):
        create_key(store, "y", tenant="a b")
    assert len(load_api_keys(store, {}).keys) == 2


def test_malformed_store_names_the_line(tmp_path: Path) -> None:
    store = tmp_path / "keys"
    store.write_text("# comment\nok " + "a" * 64 + "\nbroken roles\n")
    with pytest.raises(ConfigurationError, match=r"keys:3"):
        read_keys(store)
    store.write_text("ok roles=read hash=md5$00$11\n")
    with pytest.raises(ConfigurationError, match=r"keys:1: hash must be"):
        read_keys(store)


# ------------------------------------------------------------------ the banner -------------
def test_banner_says_where_everything_is(tmp_path: Path) -> None:
    store = tmp_path / "runkit.db.api-keys"
    first = load_api_keys(store, {}, interactive=True)
    text = banner(host="0.0.0.0", port=8123, database="sqlite:///runkit.db", setup=first)
    assert "http://127.0.0.1:8123/api/v1" in text
    assert "http://127.0.0.1:8123/docs" in text
    assert str(store) in text
    assert first.generated is not None and first.generated in text

    later = banner(
        host="127.0.0.1",
        port=8000,
        database="postgresql://ann:s3cret@db/runs",
        setup=load_api_keys(store, {}),
    )
    assert "rk_" not in later and "s3cret" not in later
    assert str(store) in later and "runkit keys create" in later

    env = KeySetup(load_api_keys(store, {"RUNKIT_API_KEYS": "k"}).keys, store, from_env=True)
    assert "RUNKIT_API_KEYS" in banner(host="::", port=1, database="memory://", setup=env)


# ------------------------------------------------------------------ the real thing ---------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNKIT_")}
    env["RUNKIT_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")  # never the developer's own
    return env


@contextmanager
def serving(tmp_path: Path, port: int) -> Iterator[list[str]]:
    """``runkit serve`` in ``tmp_path`` until its API answers; yields its banner lines."""
    cmd = [*CLI, "serve", "--port", str(port), "--workers", "0"]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "serve exited:\n" + "".join(lines)
            lines.append(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        yield lines
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _printed_key(lines: list[str]) -> str | None:
    keys = [line.strip() for line in lines if line.strip().startswith("rk_")]
    assert len(keys) <= 1, keys
    return keys[0] if keys else None


def _first_key(tmp_path: Path, lines: list[str]) -> str:
    """The key a first start made: the output is a pipe, not a terminal, so the key is in
    a private file the banner names, never in the output."""
    assert _printed_key(lines) is None, lines
    path = tmp_path / "runkit.db.api-keys.first-key"
    assert str(path) in "".join(lines)
    return path.read_text().strip()


@pytest.mark.timeout(120)
def test_serve_starts_and_authenticates(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    store = tmp_path / "runkit.db.api-keys"
    with serving(tmp_path, port) as lines:
        text = "".join(lines)
        assert f"{base}/api/v1" in text and f"{base}/docs" in text and str(store) in text
        key = _first_key(tmp_path, lines)
        runs = f"{base}/api/v1/action-runs"
        assert httpx.get(runs, headers={"X-API-Key": key}).status_code == 200
        assert httpx.get(runs).status_code == 401
        home = httpx.get(base + "/")
        assert home.status_code == 307 and home.headers["location"] == "/ui/"
        assert f"{base}/ui/" in text
        assert httpx.get(f"{base}/docs").status_code == 200
        # The cookie carrier: a session made from the key authenticates every endpoint.
        signed_in = httpx.post(f"{base}/api/v1/sessions", json={"apiKey": key})
        assert signed_in.status_code == 200
        cookie = signed_in.cookies["vai_token"]
        assert key not in cookie
        with httpx.Client(base_url=base, cookies={"vai_token": cookie}) as browser:
            assert browser.get("/api/v1/action-runs").status_code == 200
            assert browser.get("/ui/").status_code == 200
    assert (tmp_path / "runkit.db").exists()
    assert [k.id for k in read_keys(store)] == ["default"] and read_keys(store)[0].matches(key)
    assert oct((tmp_path / "runkit.db").stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / "runkit-api-keys").exists()  # nothing loose in the directory

    created = subprocess.run(
        [*CLI, "keys", "create", "--name", "ci"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    second = _printed_key(created.stdout.splitlines())
    assert second and second != key and str(store) in created.stdout
    assert [k.id for k in read_keys(store)] == ["default", "ci"]

    with serving(tmp_path, port) as lines:
        text = "".join(lines)
        assert _printed_key(lines) is None, text  # a key is shown once, when it is made
        assert str(store) in text and "runkit keys create" in text
        for each in (key, second):
            response = httpx.get(f"{base}/api/v1/kinds", headers={"X-API-Key": each})
            assert response.status_code == 200

    again = subprocess.run(
        [*CLI, "keys", "create", "--name", "ci"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert again.returncode == 1 and "already" in again.stderr and "rk_" not in again.stdout
