"""Secrets an executor logs or raises are redacted before they are stored: planted secrets
are searched for in what the store holds (the SQLite file itself) and must not be found;
harmless lines must come back as they were logged. A kind's secret definition fields are
masked in the HTTP run resource and reach the executor intact."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from run_support import wait_status
from runkit import Kind, NewLogEntry, Runkit, Status
from runkit.domain.redact import MAX_MESSAGE_CHARS, REDACTED, clean, mask_fields
from runkit.engine import RunContext, embedded_workers
from runkit_contrib import ApiKeys, asgi_app

sys.path.insert(0, str(Path(__file__).parent / "http"))
from api_support import API_KEY, AUTH, BASE

pytestmark = pytest.mark.anyio

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
PEM_BODY = "MIIEpAIBAAKCAQEA75plantedKeyBody0123456789"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"

#: (what the executor logs, the secrets that must leave no trace): the leaks a probe found.
LEAKS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "short bearer token": ({"message": "Authorization: Bearer xyz9"}, ["xyz9"]),
    "JSON in a message": ({"message": 'sent {"password": "hunter2x"}'}, ["hunter2x"]),
    "password in prose": ({"message": "password is hunter3y"}, ["hunter3y"]),
    "AWS access key id": ({"message": "using AKIAIOSFODNN7PLANTED"}, ["AKIAIOSFODNN7PLANTED"]),
    "AWS secret key": (
        {"message": "aws_secret_access_key=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"},
        ["wJalrXUtnFEMI", "PLANTEDKEY"],
    ),
    "secret data keys": (
        {"message": "creds", "data": {"aws_access_key_id": "plantedid42", "pwd": "plantedpw42"}},
        ["plantedid42", "plantedpw42"],
    ),
    "header as a pair": (
        {"message": "headers", "data": {"headers": [["Authorization", "Bearer q7"]]}},
        ["q7"],
    ),
    "GitHub token": (
        {"message": "cloning with ghp_PlantedGitHubToken0123456789abcdefghij"},
        ["ghp_PlantedGitHubToken0123456789abcdefghij", "PlantedGitHubToken"],
    ),
    "JWT": ({"message": f"session {JWT} renewed"}, [JWT, JWT.split(".")[2]]),
    "PEM private key": (
        {
            "message": "loaded key",
            "data": {
                "key": None,
                "pem": PEM,
            },
        },
        [PEM_BODY],
    ),
    "cookie header": ({"message": "Cookie: sessionid=plantedsession7"}, ["plantedsession7"]),
    "event field": (
        {"message": "logged in", "event": "login token=plantedevent9"},
        ["plantedevent9"],
    ),
}
#: Lines without secrets: they must be stored exactly as logged.
HARMLESS: dict[str, dict[str, Any]] = {
    "password reset": {"message": "password reset email sent"},
    "password refused": {"message": "the password is incorrect"},
    "a UUID": {"message": "run 7f3c2a1e-9b8d-4c6f-a2e1-0d9c8b7a6f5e started"},
    "a git commit sha": {"message": "at commit 773025cbd8a1f0e2b3c4d5e6f708192a3b4c5d6e"},
    "a normal URL": {"message": "GET https://example.org/a/b?page=2&sort=name 200"},
    "token counts": {"message": "tokens used: 1234", "data": {"model": "small", "n": 3}},
    "the bearer of news": {"message": "the bearer of good news arrived"},
    "structured data": {"message": "fetched", "data": {"pages": 3, "url": "https://x.org/a"}},
    "a file path": {"message": "wrote /data/out/2024-05-01/part-0001.parquet (1.2 MiB)"},
}
#: What the failed run raises: its error is cleaned like the log.
ERROR_SECRET = "AKIAERRORPLANTED0000"


def _trace(entries: list[Any], secrets: list[str]) -> list[str]:
    text = repr([(e.message, e.event, e.data) for e in entries])
    return [s for s in secrets if s in text]


async def _logger(ctx: RunContext) -> dict[str, Any]:
    for name in ctx.definition["cases"]:
        case = LEAKS[name][0] if name in LEAKS else HARMLESS[name]
        await ctx.log("info", case["message"], event=case.get("event"), data=case.get("data"))
    raise RuntimeError(f"connect failed with key {ERROR_SECRET}: password is hunter4z")


async def _log_every_case(rk: Runkit) -> tuple[Any, list[Any]]:
    cases = [*LEAKS, *HARMLESS]
    run = (await rk.create("logger", {"cases": cases}, execute=True)).run
    async with embedded_workers(rk, concurrency=1):
        failed = await wait_status(rk, run.id, {Status.FAILED}, within=20)
    page = await rk.logs(run.id, limit=500)
    mine = [e for e in page.entries if e.event != "status.changed"][: len(cases)]
    return failed, mine


def _check(failed: Any, entries: list[Any]) -> None:
    by_case = dict(zip([*LEAKS, *HARMLESS], entries, strict=True))
    leaked = {n: t for n, (_, s) in LEAKS.items() if (t := _trace([by_case[n]], s))}
    assert leaked == {}
    changed = {
        n: (e.message, e.event, e.data)
        for n, case in HARMLESS.items()
        if ((e := by_case[n]).message, e.event, e.data)
        != (case["message"], case.get("event"), case.get("data", {}))
    }
    assert changed == {}
    assert ERROR_SECRET not in repr(failed.error) and "hunter4z" not in repr(failed.error)
    assert failed.error["type"] == "RuntimeError" and REDACTED in failed.error["message"]


async def test_the_probe_cases_on_the_memory_store() -> None:
    kinds = [Kind("logger", executor=_logger)]
    async with Runkit("memory://", kinds=kinds, autoload_plugins=False) as rk:
        failed, entries = await _log_every_case(rk)
        _check(failed, entries)
        attempt_failed = [e for e in (await rk.logs(failed.id)).entries if e.event]
        assert not _trace(attempt_failed, [ERROR_SECRET, "hunter4z"])


async def test_the_probe_cases_never_reach_the_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    kinds = [Kind("logger", executor=_logger)]
    async with Runkit(f"sqlite:///{db}", kinds=kinds, autoload_plugins=False) as rk:
        failed, entries = await _log_every_case(rk)
        _check(failed, entries)
    stored = _database_bytes(tmp_path)
    secrets = [s for _, found in LEAKS.values() for s in found if len(s) >= 4]
    for secret in [*secrets, ERROR_SECRET, "hunter4z"]:
        assert secret.encode() not in stored, f"{secret} was persisted"


@pytest.mark.parametrize("name", list(LEAKS))
def test_each_leak_is_cleaned(name: str) -> None:
    case, secrets = LEAKS[name]
    entry = clean(NewLogEntry(case["message"], event=case.get("event"), data=case.get("data")))
    assert _trace([entry], secrets) == []


@pytest.mark.parametrize("name", list(HARMLESS))
def test_each_harmless_line_is_kept(name: str) -> None:
    case = HARMLESS[name]
    entry = NewLogEntry(case["message"], data=case.get("data", {}))
    assert clean(entry) is entry


# ---------------------------------------------------------------- the earlier planted set ---
SECRETS = [
    "hunter2-planted-password",
    "sk-planted-token-0123456789",
    "rk_plantedApiKey0123456789abcdef",
    "Zm9vYmFyOnBsYW50ZWQ=",  # a basic-auth credential
    "planted-cookie-value-42",
]


async def leaky(ctx: RunContext) -> dict[str, Any]:
    await ctx.log("info", f"calling https://bob:{SECRETS[0]}@db.internal/x")
    await ctx.log("info", f"Authorization: Bearer {SECRETS[1]}")
    await ctx.log("info", f"using key {SECRETS[2]}", data={"nested": {"api_key": "x" + SECRETS[2]}})
    await ctx.log("info", "headers", data={"headers": {"Authorization": f"Basic {SECRETS[3]}"}})
    await ctx.log("info", "cookies", data={"Cookie": SECRETS[4], "count": 3})
    raise RuntimeError(f"connect failed: password={SECRETS[0]} token={SECRETS[1]}")


async def test_planted_secrets_never_reach_the_database(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    kinds = [Kind("leaky", executor=leaky)]
    async with Runkit(f"sqlite:///{db}", kinds=kinds, autoload_plugins=False) as rk:
        run = (await rk.create("leaky", execute=True)).run
        async with embedded_workers(rk, concurrency=1):
            await wait_status(rk, run.id, {Status.FAILED}, within=20)
        page = await rk.logs(run.id, limit=500)
        messages = [e.message for e in page.entries]
        assert "calling https://bob:[redacted]@db.internal/x" in messages
        assert page.entries[-2].event == "attempt.failed"
        assert (await rk.get(run.id)).error is not None
    stored = _database_bytes(tmp_path)
    for secret in SECRETS:
        assert secret.encode() not in stored, f"{secret} was persisted"


def _database_bytes(folder: Path) -> bytes:
    """The SQLite file with its WAL: every byte the store persisted."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("runs.db"))


def test_cleaning_keeps_the_harmless_and_bounds_sizes() -> None:
    plain = NewLogEntry("fetched 3 pages", data={"pages": 3, "url": "https://example.org/a"})
    assert clean(plain) is plain
    huge = clean(NewLogEntry("x" * (MAX_MESSAGE_CHARS + 10), data={"n": 1}))
    assert len(huge.message) == MAX_MESSAGE_CHARS and huge.data == {"n": 1, "truncated": True}
    bulky = clean(NewLogEntry("big", data={"blob": "y" * (MAX_MESSAGE_CHARS + 1)}))
    assert bulky.data == {"truncated": True}


def test_known_secret_values_are_redacted_wherever_they_occur() -> None:
    entry = NewLogEntry("dsn is ready", data={"note": "used s3cr3t-dsn-value twice"})
    cleaned = clean(entry, secrets=["s3cr3t-dsn-value"])
    assert cleaned.data == {"note": f"used {REDACTED} twice"}


def test_cleaning_stays_cheap() -> None:
    """A log line and a 10 KiB data dict, the engine's per-entry cost (generous bounds:
    the machine may be busy)."""
    line = NewLogEntry("GET https://api.example.org/v1/items?page=3 returned 200 in 183 ms")
    data = NewLogEntry("page", data={"items": [{"id": i, "name": "x" * 60} for i in range(120)]})
    clean(line)
    for entry, bound in ((line, 0.002), (data, 0.05)):
        start = time.perf_counter()
        for _ in range(20):
            clean(entry)
        assert (time.perf_counter() - start) / 20 < bound


# ---------------------------------------------------------------- secret definition fields --
@attrs.frozen
class Source:
    url: str
    api_key: str


@attrs.frozen
class SyncConfig:
    name: str
    password: str
    source: Source


async def _sync(ctx: RunContext) -> dict[str, Any]:
    config: SyncConfig = ctx.definition
    # A careless executor: the secret values go to its log, progress and result.
    await ctx.log("info", f"connecting with {config.password}", data={"key": config.source.api_key})
    await ctx.progress({"using": config.source.api_key})
    return {"sawPassword": config.password == "pl4nted-pw", "sawKey": config.source.api_key}


SYNC = Kind(
    "secret_sync", executor=_sync, config=SyncConfig, secret_fields=("password", "source.api_key")
)


async def test_secret_definition_fields_are_masked_for_clients_not_the_executor() -> None:
    definition = {
        "name": "nightly",
        "password": "pl4nted-pw",
        "source": {"url": "https://example.org", "apiKey": "pl4nted-key"},
    }
    async with Runkit("memory://", kinds=[SYNC], autoload_plugins=False) as rk:
        app = asgi_app(rk, auth=ApiKeys({"tester": API_KEY}))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            created = await client.post(
                BASE, json={"kind": "secret_sync", "definition": definition}, headers=AUTH
            )
            assert created.status_code == 201, created.text
            run_id = created.json()["id"]
            async with embedded_workers(rk, concurrency=1):
                await client.post(f"{BASE}/{run_id}/execute", headers=AUTH)
                await wait_status(rk, run_id, {Status.SUCCEEDED}, within=20)
            shown = (await client.get(f"{BASE}/{run_id}", headers=AUTH)).json()
            listed = (await client.get(BASE, headers=AUTH)).json()["runs"]
        masked = {
            "name": "nightly",
            "password": REDACTED,
            "source": {"url": "https://example.org", "apiKey": REDACTED},
        }
        assert created.json()["definition"] == masked
        assert shown["definition"] == masked and listed[0]["definition"] == masked
        # Stored intact: the executor saw the real values.
        assert (await rk.get(run_id)).definition == definition
        # ... and whatever it wrote shows them masked: log, progress, result.
        assert shown["result"] == {"sawPassword": True, "sawKey": REDACTED}
        assert shown["progress"] == {"using": REDACTED}
        page = await rk.logs(run_id, limit=100)
        entries = [e for e in page.entries if e.event is None]
        assert entries[0].message == f"connecting with {REDACTED}"
        assert entries[0].data == {"key": REDACTED}


def test_masking_skips_what_is_not_there() -> None:
    definition = {"a": {"b": 1}, "items": [{"token": "t"}, {"other": 2}], "none": None}
    masked = mask_fields(definition, [("a", "b"), ("items", "*", "token"), ("none",), ("x",)])
    assert masked == {
        "a": {"b": REDACTED},
        "items": [{"token": REDACTED}, {"other": 2}],
        "none": None,
    }
    assert definition["a"] == {"b": 1}


def test_a_secret_field_the_config_lacks_is_refused() -> None:
    from runkit import ConfigurationError, KindRegistry

    bad = Kind("bad_secret", executor=_sync, config=SyncConfig, secret_fields=("passwrd",))
    with pytest.raises(ConfigurationError, match="passwrd"):
        KindRegistry().register(bad)


def test_known_secrets_are_masked_from_four_characters_and_keys_are_kept() -> None:
    from runkit.domain.redact import mask_values, redact_text

    # "hunter2" is too short to be masked when merely found, but a secret field's value is
    # known to be secret.
    assert redact_text("pw hunter2 ok", ["hunter2"]) == f"pw {REDACTED} ok"
    assert redact_text("a abc b", ["abc"]) == "a abc b"  # shorter than 4: would mask words
    value = {"password": True, "rows": [{"note": "used hunter2"}], "n": 3}
    assert mask_values(value, ["hunter2"]) == {
        "password": True,  # an executor's own key: not guessed at
        "rows": [{"note": f"used {REDACTED}"}],
        "n": 3,
    }
    assert mask_values(value, []) is value
