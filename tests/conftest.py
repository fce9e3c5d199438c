from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# The SQL fixtures (a SQLite file per test, a fresh PostgreSQL schema per test) live in
# their own module; PostgreSQL being unreachable fails those tests, it never skips them.
from sql_fixtures import pg_url, sqlite_url  # noqa: F401
from web_support import refused, server  # noqa: F401 (the web tests' loopback servers)

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "nightly",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
