"""schemathesis 4 through every mounted framework: the host serves runkit's document at
``/runkit/openapi.json`` whose ``servers`` says ``/runkit``, and every operation called
through the host must pass every default check, as the bare app does in
tests/http/test_http_schemathesis.py (which this mirrors; it owns the bare-app run).

Module level, like that test: schemathesis builds its tests at collection. Each host is
built the way clients.py builds it. schemathesis' ASGI client runs the host's lifespan around
every call, so this also shows that each host can open and close runkit again and again.

Like the bare-app test, valid cases are first adjusted to the cross-field rules a schema
cannot state (a parent run must exist, a reused idempotency key must repeat its body, a
log cursor must belong to the run in the path); wrongly typed values are left alone, so
negative cases stay negative. The log stream is included too: its valid cases stream a
finished run, whose every event is checked against the document's ``itemSchema``."""

from __future__ import annotations

import re
from collections.abc import Callable

import anyio
import schemathesis
from hypothesis import HealthCheck, settings

from runkit import Runkit
from runkit_contrib import ApiKeys, asgi_app
from schemathesis_support import (  # search_provider: an autouse fixture
    finished_run,
    honour_cross_field_rules,
    search_provider,  # noqa: F401
)

from .clients import CLIENTS, PREFIX, FrameworkClient
from .conftest import API_KEY, KINDS

MAX_EXAMPLES = 25


def _conformance_test(client_cls: type[FrameworkClient]) -> Callable[..., None]:
    runkit = Runkit("memory://", kinds=KINDS, autoload_plugins=False)
    parent = str(anyio.run(runkit.create, "t_noop").run.id)
    finished = anyio.run(finished_run, runkit, "t_gate")
    app = asgi_app(runkit, auth=ApiKeys({"fuzzer": API_KEY}))
    host = client_cls(runkit, app).app
    schema = schemathesis.openapi.from_asgi(f"{PREFIX}/openapi.json", host)
    # NUL characters are refused by design (422; docs/http.md): valid data never has them.
    schema.config.generation.update(allow_x00=False, deterministic=True, max_examples=MAX_EXAMPLES)

    @schema.parametrize()
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def test(case: schemathesis.Case) -> None:
        assert case.path.startswith("/api/v1/"), case.path  # relative to servers' /runkit
        honour_cross_field_rules(case, parent, finished)
        _routable_by_the_host(case)
        response = case.call_and_validate(headers={"X-API-Key": API_KEY})
        assert f"testserver{PREFIX}/api/v1/" in str(response.request.url)  # through the host

    test.__name__ = f"test_mounted_in_{client_cls.__name__}"
    return test


def _routable_by_the_host(case: schemathesis.Case) -> None:
    """A path parameter holding a line break never reaches runkit through a host: Starlette's
    ``Mount`` (FastAPI's ``mount``, and the routers built on it) matches ``.*``, which stops
    at a newline, so the host answers its own 404 (text/plain), outside runkit's document.
    The bare app answers these itself (tests/http/test_http_schemathesis.py); here the
    line breaks are dropped (schemathesis hands them over percent-encoded), so the case
    still exercises runkit's own handling."""
    for name, value in (case.path_parameters or {}).items():
        if isinstance(value, str):
            kept = re.sub(r"%0[AaDd]|[\r\n]", "", value)
            if kept != value:
                case.path_parameters[name] = kept or "x"


for _cls in CLIENTS:
    globals()[f"test_mounted_in_{_cls.name}_conforms"] = _conformance_test(_cls)
