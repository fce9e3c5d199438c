"""The shared suite, its second half: every refusal the API answers, through every framework
host and on every store (see conftest.py): 422s with their exact ``loc`` (and, for the
create body's envelope, their exact ``msg`` and ``type``), raw bodies that are not JSON
objects, credentials and CSRF, 404, 405, 409, 413, 415, 500 and 503."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from runkit import Runkit, StorageUnavailable

from .clients import FrameworkClient
from .conftest import API_KEY, MAX_BODY
from .support import AUTH, COOKIE, awaiting_approval, create, detail_locs, post

pytestmark = pytest.mark.anyio

JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}
EXTRA = "extra field not permitted"


# ------------------------------------------------------------------ validation: 422 -------
@pytest.mark.parametrize(
    ("method", "path", "params", "expected"),
    [
        ("GET", "", {"limit": "0"}, [["query", "limit"]]),
        ("GET", "", {"limit": "101"}, [["query", "limit"]]),
        ("GET", "", {"limit": "ten"}, [["query", "limit"]]),
        ("GET", "", {"offset": "-1"}, [["query", "offset"]]),
        ("GET", "", {"status": "nope"}, [["query", "status"]]),
        ("GET", "", {"parent_action_run_id": "x"}, [["query", "parent_action_run_id"]]),
        ("GET", "/not-a-uuid", {}, [["path", "run_id"]]),
        ("POST", "/not-a-uuid/cancel", {}, [["path", "run_id"]]),
        ("POST", "/not-a-uuid/approve", {}, [["path", "run_id"]]),
        ("DELETE", "/not-a-uuid", {}, [["path", "run_id"]]),
        ("GET", "/not-a-uuid/logs", {"limit": "0"}, [["path", "run_id"]]),
        # Shape before existence: the run is never looked up for these.
        ("GET", f"/{uuid.UUID(int=1)}/logs", {"limit": "501"}, [["query", "limit"]]),
        ("GET", f"/{uuid.UUID(int=1)}/logs", {"limit": "0"}, [["query", "limit"]]),
        ("GET", f"/{uuid.UUID(int=1)}/logs", {"limit": "x"}, [["query", "limit"]]),
        ("GET", f"/{uuid.UUID(int=1)}/logs", {"after": "bad"}, [["query", "after"]]),
        ("GET", f"/{uuid.UUID(int=1)}/logs/stream", {"after": "bad"}, [["query", "after"]]),
    ],
)
async def test_query_and_path_422(
    host: FrameworkClient, method: str, path: str, params: dict[str, str], expected: Any
) -> None:
    response = await host.http.request(method, host.api(path), params=params, headers=AUTH)
    assert detail_locs(response) == expected


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"limit": "0"}, {"msg": "must be >= 1", "type": "greater_than_equal"}),
        ({"limit": "501"}, {"msg": "must be <= 500", "type": "less_than_equal"}),
        ({"limit": "ten"}, {"msg": "Input should be a valid integer", "type": "int_parsing"}),
    ],
)
async def test_logs_limit_422_detail(
    host: FrameworkClient, params: dict[str, str], detail: dict[str, str]
) -> None:
    response = await host.http.get(host.api(f"/{uuid.uuid4()}/logs"), params=params, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": [{"loc": ["query", "limit"], **detail}]}


async def test_malformed_run_id_422_detail(host: FrameworkClient) -> None:
    response = await host.http.get(host.api("/not-a-uuid"), headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": [
            {
                "loc": ["path", "run_id"],
                "msg": "not a valid UUID: 'not-a-uuid'",
                "type": "uuid_parsing",
            }
        ]
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "no_such_kind"}, [["body", "kind"]]),
        ({}, [["body", "kind"]]),
        ({"kind": 5}, [["body", "kind"]]),
        ({"kind": None}, [["body", "kind"]]),
        pytest.param(
            {"kind": "t_echo", "definition": {"seconds": -1}},
            [["body", "definition", "seconds"]],
            id="validator",
        ),
        ({"kind": "t_echo", "definition": {"seconds": "1"}}, [["body", "definition", "seconds"]]),
        ({"kind": "t_echo", "definition": {}}, [["body", "definition", "seconds"]]),
        ({"kind": "t_echo", "definition": {"seconds": 1, "x": 2}}, [["body", "definition", "x"]]),
        ({"kind": "t_echo", "definition": []}, [["body", "definition"]]),
        ({"kind": "t_noop", "definition": []}, [["body", "definition"]]),
        ({"kind": "t_noop", "extra": 1}, [["body", "extra"]]),
        ({"kind": "t_noop", "idempotency_key": "k"}, [["body", "idempotency_key"]]),
        ({"kind": "t_noop", "idempotencyKey": ""}, [["body", "idempotencyKey"]]),
        ({"kind": "t_noop", "idempotencyKey": 5}, [["body", "idempotencyKey"]]),
        ({"kind": "t_noop", "concurrencyKey": "k" * 256}, [["body", "concurrencyKey"]]),
        ({"kind": "t_noop", "parentActionRunId": "x"}, [["body", "parentActionRunId"]]),
        ({"kind": "t_noop", "actionId": 7}, [["body", "actionId"]]),
        ({"kind": "t_noop", "definition": {"a": "nul\x00"}}, [["body", "definition", "a"]]),
    ],
)
async def test_create_body_422(host: FrameworkClient, body: dict[str, Any], expected: Any) -> None:
    response = await host.http.post(host.api(), json=body, headers=AUTH)
    assert detail_locs(response) == expected


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, (["body", "kind"], "field required", "missing")),
        ({"kind": 5}, (["body", "kind"], "must be a string", "string_type")),
        ({"kind": ["t_noop"]}, (["body", "kind"], "must be a string", "string_type")),
        ({"kind": "t_noop", "z": 1}, (["body", "z"], EXTRA, "extra_forbidden")),
        # One problem is answered, the first: unknown keys (in key order), then the kind.
        ({"b": 1, "a": 2}, (["body", "a"], EXTRA, "extra_forbidden")),
        ({"kind": 5, "z": 1}, (["body", "z"], EXTRA, "extra_forbidden")),
        # Values the core checks answer what the core says, after the envelope is sound.
        ({"kind": "nope", "idempotencyKey": 5}, (["body", "kind"], None, None)),
    ],
)
async def test_create_envelope_422_detail(
    host: FrameworkClient, body: dict[str, Any], detail: tuple[list[str], str | None, str | None]
) -> None:
    response = await host.http.post(host.api(), json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    loc, msg, kind = detail
    assert problem["loc"] == loc
    if msg is not None:
        assert (problem["msg"], problem["type"]) == (msg, kind)


async def test_create_envelope_checked_before_execute_query(host: FrameworkClient) -> None:
    response = await host.http.post(
        host.api(), params={"execute": "maybe"}, json={"kind": 5}, headers=AUTH
    )
    assert detail_locs(response) == [["body", "kind"]]


async def test_idempotency_key_header_must_agree(host: FrameworkClient) -> None:
    body = {"kind": "t_noop", "idempotencyKey": "a"}
    response = await host.http.post(host.api(), json=body, headers={**AUTH, "Idempotency-Key": "b"})
    assert detail_locs(response) == [["header", "idempotency-key"]]
    first = await create(host, {"kind": "t_noop"}, **{"Idempotency-Key": "c"})
    assert first["idempotencyKey"] == "c"


@pytest.mark.parametrize(
    ("content", "ctype", "status", "expected"),
    [
        (b"{bad json", "application/json", 422, [["body"]]),
        (b'{"kind": "t_noop",', "application/json", 422, [["body"]]),
        (b"[1, 2]", "application/json", 422, [["body"]]),
        (b'"text"', "application/json", 422, [["body"]]),
        (b"\xff\xfe{}", "application/json", 422, [["body"]]),
        (b"[" * 2000 + b"]" * 2000, "application/json", 422, [["body"]]),  # under MAX_BODY
        (b"", "application/json", 422, [["body"]]),
        (b'{"kind": "t_noop"}', "text/plain", 415, None),
        (b'{"kind": "t_noop"}', None, 415, None),
        (b'{"kind": "t_noop"}', "application/vnd.api+json", 201, None),
    ],
)
async def test_raw_bodies(
    host: FrameworkClient, content: bytes, ctype: str | None, status: int, expected: Any
) -> None:
    headers = dict(AUTH)
    if ctype:
        headers["Content-Type"] = ctype
    response = await host.http.post(host.api(), content=content, headers=headers)
    assert response.status_code == status, response.text
    if expected is not None:
        assert detail_locs(response) == expected
    else:
        assert response.headers["content-type"] == "application/json"


async def test_deep_json_is_422(host: FrameworkClient) -> None:
    body = b'{"kind": "t_noop", "definition": ' + b'{"a": ' * 100 + b"1" + b"}" * 100 + b"}"
    response = await host.http.post(host.api(), content=body, headers=JSON_HEADERS)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "json_too_deep"


async def test_decision_body_422(host: FrameworkClient, runkit: Runkit) -> None:
    run = await awaiting_approval(runkit)
    response = await post(host, str(run.id), "reject", json={"why": 1})
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": [
            {"loc": ["body", "why"], "msg": "extra field not permitted", "type": "extra_forbidden"}
        ]
    }
    response = await post(host, str(run.id), "approve", json=[1])
    assert detail_locs(response) == [["body"]]
    response = await post(host, str(run.id), "approve", json={"reason": 5})
    assert detail_locs(response) == [["body", "reason"]]
    got = await host.http.get(host.api(f"/{run.id}"), headers=AUTH)
    assert got.json()["status"] == "awaiting_approval"  # none of them decided anything


async def test_cursor_of_another_run_422(host: FrameworkClient) -> None:
    run = await create(host, {"kind": "t_noop"})
    other = await create(host, {"kind": "t_noop"})
    response = await host.http.get(
        host.api(f"/{run['id']}/logs"), params={"after": f"{other['id'][:8]}-1"}, headers=AUTH
    )
    assert detail_locs(response) == [["query", "after"]]
    assert response.json()["detail"][0]["type"] == "cursor_mismatch"


# ------------------------------------------------------------------ auth and CSRF ---------
@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {API_KEY}"}, {"X-API-Key": API_KEY}, COOKIE],
    ids=["bearer", "x-api-key", "cookie"],
)
async def test_each_credential_carrier(host: FrameworkClient, headers: dict[str, str]) -> None:
    assert (await host.http.get(host.api(), headers=headers)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "wrong"},
        {"Cookie": "vai_token=wrong"},
        {"Cookie": f"vai_token={API_KEY}"},  # API keys are not session cookies
    ],
    ids=["anonymous", "bad-bearer", "basic", "bad-key", "bad-cookie", "key-as-cookie"],
)
async def test_refused_401(host: FrameworkClient, headers: dict[str, str]) -> None:
    response = await host.http.get(host.api(), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert isinstance(response.json()["detail"], str)


async def test_anonymous_learns_nothing_of_its_input(host: FrameworkClient) -> None:
    """Authentication comes first: a malformed request without credentials is a 401."""
    for response in [
        await host.http.get(host.api("/not-a-uuid")),
        await host.http.post(host.api(), json={"kind": 5}),
        await host.http.get(host.api(), params={"limit": "x"}),
    ]:
        assert response.status_code == 401, response.text


async def test_cookie_post_without_csrf_proof_403(host: FrameworkClient) -> None:
    response = await host.http.post(host.api(), json={"kind": "t_noop"}, headers=COOKIE)
    assert response.status_code == 403
    cross_site = {**COOKIE, "Origin": "https://evil.example"}
    response = await host.http.post(host.api(), json={"kind": "t_noop"}, headers=cross_site)
    assert response.status_code == 403
    assert (await host.http.get(host.api(), headers=COOKIE)).json()["total"] == 0


@pytest.mark.parametrize(
    "proof",
    [{"X-Runkit-CSRF": "1"}, {"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://testserver"}],
    ids=["header", "fetch-metadata", "same-origin"],
)
async def test_cookie_post_with_csrf_proof(host: FrameworkClient, proof: dict[str, str]) -> None:
    response = await host.http.post(
        host.api(), json={"kind": "t_noop"}, headers={**COOKIE, **proof}
    )
    assert response.status_code == 201, response.text
    assert response.json()["triggerSourceId"] == "cookie-user"


# ------------------------------------------------------------------ 404 ... 503 -----------
async def test_unknown_run_404(host: FrameworkClient) -> None:
    for method, suffix in [("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("GET", "/logs")]:
        url = host.api(f"/{uuid.uuid4()}{suffix}")
        response = await host.http.request(method, url, headers=AUTH)
        assert response.status_code == 404, (method, suffix)
        assert "not found" in response.json()["detail"]


async def test_unknown_path_under_prefix_404(host: FrameworkClient) -> None:
    response = await host.http.get(f"{host.prefix}/api/v1/nothing-here", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}  # runkit's JSON, not the host's page


async def test_wrong_method_405(host: FrameworkClient) -> None:
    response = await host.http.put(host.api(), headers=AUTH)
    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed"}
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["allow"].split(",")}


async def test_illegal_transition_409(host: FrameworkClient) -> None:
    run_id = (await create(host, {"kind": "t_noop"}))["id"]
    response = await post(host, run_id, "resume")
    assert response.status_code == 409
    body = response.json()
    assert set(body) == {"detail", "status", "allowed"}
    assert "pending" in body["detail"] and "resume" in body["detail"]
    assert body["status"] == "pending"
    assert isinstance(body["allowed"], list) and "execute" in body["allowed"]
    assert "resume" not in body["allowed"]


async def test_body_over_limit_413(host: FrameworkClient) -> None:
    body = {"kind": "t_noop", "definition": {"pad": "x" * MAX_BODY}}
    response = await host.http.post(host.api(), json=body, headers=AUTH)
    assert response.status_code == 413
    assert isinstance(response.json()["detail"], str)


async def test_body_limit_is_exact(host: FrameworkClient) -> None:
    body = b'{"kind": "t_noop"}'
    exact = body + b" " * (MAX_BODY - len(body))
    response = await host.http.post(host.api(), content=exact, headers=JSON_HEADERS)
    assert response.status_code == 201, response.text
    response = await host.http.post(host.api(), content=exact + b" ", headers=JSON_HEADERS)
    assert response.status_code == 413


async def test_streamed_body_over_limit_413(host: FrameworkClient) -> None:
    """No Content-Length (chunked): the limit is enforced while the framework relays the
    body, not trusted from a header."""

    async def chunks() -> Any:
        yield b'{"kind": "t_noop", "definition": {"pad": "'
        for _ in range(MAX_BODY // 512 + 1):
            yield b"x" * 512
        yield b'"}}'

    response = await host.http.post(host.api(), content=chunks(), headers=JSON_HEADERS)
    assert response.status_code == 413


async def test_unexpected_error_is_generic_500(
    host: FrameworkClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(host.runkit, "list", boom)
    response = await host.http.get(host.api(), headers=AUTH)
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert "secret internals" in caplog.text  # logged server side


async def test_storage_unavailable_is_503(
    host: FrameworkClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: Any, **kwargs: Any) -> Any:
        raise StorageUnavailable("postgresql://user:pw@db/x refused")

    monkeypatch.setattr(host.runkit, "get", down)
    response = await host.http.get(host.api(f"/{uuid.uuid4()}"), headers=AUTH)
    assert response.status_code == 503
    assert response.json() == {"detail": "storage unavailable"}
    assert response.headers["retry-after"] == "5"
