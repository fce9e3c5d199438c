"""What every example shares: the Runkit (from the environment), one example kind, and the
runkit ASGI app over it.

Environment:

- ``RUNKIT_API_KEYS``: comma-separated API keys (required: the API refuses anonymous
  callers, and an example that started without keys would answer nothing but 401).
- ``RUNKIT_DATABASE_URL``: default ``sqlite:///runkit.db`` (created and migrated on start).
- ``RUNKIT_WORKERS``: embedded worker slots in the web process, default 2 (0: run
  ``runkit worker`` separately).
"""

from __future__ import annotations

import os
from typing import Any

import attrs
from starlette.applications import Starlette

import runkit
import runkit_contrib

PREFIX = "/runkit"


@attrs.frozen
class GreetConfig:
    name: str


async def greet(ctx: Any) -> dict[str, Any]:
    config: GreetConfig = ctx.definition
    await ctx.log("info", f"greeting {config.name}")
    return {"greeting": f"Hello, {config.name}!"}


GREET = runkit.Kind("greet", greet, GreetConfig, description="Says hello to `name`.")


def api_keys() -> runkit_contrib.ApiKeys:
    keys = [k.strip() for k in os.environ.get("RUNKIT_API_KEYS", "").split(",") if k.strip()]
    if not keys:
        raise RuntimeError("set RUNKIT_API_KEYS (comma-separated API keys) to run the examples")
    return runkit_contrib.ApiKeys(keys)


def workers() -> int:
    return int(os.environ.get("RUNKIT_WORKERS", "2"))


def make_runkit() -> runkit.Runkit:
    database = os.environ.get("RUNKIT_DATABASE_URL", "sqlite:///runkit.db")
    return runkit.Runkit(database, kinds=[GREET])


def make_runkit_app(rk: runkit.Runkit) -> Starlette:
    return runkit_contrib.asgi_app(rk, auth=api_keys())
