"""schemathesis 4 against the app's own /openapi.json: every default check (server errors,
status codes, content types, response schemas, positive and negative data, ignored auth),
fixed seed, modest example counts. The log stream is included: its valid cases stream a
run that has finished (a live stream only ends when its run does), and schemathesis checks
each event against the document's ``itemSchema``.

A schema cannot say that a parent run must exist, that an idempotency key reused with a
different body conflicts, or that a cursor must belong to the run in the path; each valid
case is adjusted to honour those before it is sent (values of the wrong type are left
alone, so negative cases stay negative)."""

from __future__ import annotations

import anyio
import schemathesis
from api_support import API_KEY, KINDS
from hypothesis import HealthCheck, settings

from runkit import Runkit
from runkit_contrib import ApiKeys, asgi_app
from schemathesis_support import (  # search_provider: an autouse fixture
    finished_run,
    honour_cross_field_rules,
    search_provider,  # noqa: F401
)

runkit = Runkit("memory://", kinds=KINDS, autoload_plugins=False)
anyio.run(runkit.__aenter__)  # the memory store needs no closing
PARENT = anyio.run(runkit.create, "free").run
FINISHED = anyio.run(finished_run, runkit, "gate")
app = asgi_app(runkit, auth=ApiKeys({"fuzzer": API_KEY}))

schema = schemathesis.openapi.from_asgi("/openapi.json", app)
# NUL characters are refused by design (422; docs/http.md), so valid data never has them.
schema.config.generation.update(allow_x00=False, deterministic=True, max_examples=30)


@schema.parametrize()
@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms(case: schemathesis.Case) -> None:
    honour_cross_field_rules(case, str(PARENT.id), FINISHED)
    case.call_and_validate(headers={"X-API-Key": API_KEY})
