"""The endpoints of the Action Runs API, over :class:`runkit.Runkit`: the thirteen of the
runs resource and its batch create (``_batch``), and the kinds and workers listings.

Every handler authenticates first (so an anonymous probe learns nothing, not even that its
input was malformed), then validates, then asks the ``authorize`` hook, then acts. Every
exception becomes an answer through :func:`._errors.to_response`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from runkit import Cursor, Principal, Run, Runkit, RunNotFound, RunPage, UserProfile

from . import _batch
from ._auth import AuthConfig, authenticate
from ._body import (
    MAX_KEY,
    bounded,
    decode,
    json_object,
    path_uuid,
    query_bool,
    query_int,
    query_text,
)
from ._errors import HttpError, invalid, to_response
from ._json import JSONResponse
from ._kinds import kinds_to_wire
from ._roles import permits
from ._sse import EventStreamResponse, LogHub, StreamSettings
from ._wire import (
    CreateRun,
    ReasonBody,
    log_page_to_wire,
    run_page_to_wire,
    workers_to_wire,
)

#: ``authorize(principal, action, run)`` -> bool (or an awaitable of one). ``principal`` is
#: None for anonymous callers; ``run`` is None for "list", "create", "kinds", "workers", and
#: for "execute" asked on behalf of a create with ``?execute=true``.
Authorize = Callable[[Principal | None, str, Run | None], bool | Awaitable[bool]]

#: Who decides approvals when anonymous access is on: a user with no id or groups, so an
#: approval policy naming approvers refuses it (None would mean runkit itself).
ANONYMOUS = Principal("anonymous", kind="user")

_ACTIONS = ("execute", "pause", "resume", "cancel", "retry")
#: Refusals of actions that concern no run, where "not allowed to <action> runs" misleads.
_REFUSED = {
    "kinds": "not allowed to list kinds",
    "workers": "not allowed to list workers",
    "execute": "not allowed to execute runs (create with execute=true)",
}
Handler = Callable[[Request, Principal | None], Awaitable[Response]]


@attrs.frozen
class ApiConfig:
    runkit: Runkit
    auth: AuthConfig
    max_body_bytes: int
    authorize: Authorize | None
    stream: StreamSettings
    #: A list page stops adding runs once their stored JSON passes this (at least one run).
    max_page_bytes: int = 8 << 20


class Api:
    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.rk = config.runkit
        self.hub = LogHub(config.runkit, config.stream)
        #: The path of a run's route up to its id, by the request's ``root_path``: Starlette's
        #: url_for walks every route and builds a URL (a POST's server CPU under uvicorn
        #: went from 528 to 456 µs without it).
        self._run_paths: dict[str, str] = {}

    def routes(self) -> list[BaseRoute]:
        base = "/api/v1/action-runs"
        one = base + "/{run_id}"
        table: dict[str, dict[str, Handler]] = {
            base: {"GET": self.list_runs, "POST": self.create_run},
            # Before the run's routes: ":batch" is never taken for a run id.
            base + ":batch": {"POST": self.create_runs},
            one: {"GET": self.get_run, "DELETE": self.delete_run},
            one + "/approve": {"POST": self.decide("approve")},
            one + "/reject": {"POST": self.decide("reject")},
            one + "/logs": {"GET": self.get_logs},
            one + "/logs/stream": {"GET": self.stream_logs},
        }
        for action in _ACTIONS:
            table[f"{one}/{action}"] = {"POST": self.act(action)}
        table["/api/v1/kinds"] = {"GET": self.list_kinds}
        table["/api/v1/workers"] = {"GET": self.list_workers}
        return [self._route(path, handlers) for path, handlers in table.items()]

    def _route(self, path: str, handlers: dict[str, Handler]) -> Route:
        """One route a path, whatever its methods, so a 405 lists them all in ``Allow``."""
        wrapped = {
            method: self._wrap(handler, "body" if method == "POST" else "query")
            for method, handler in handlers.items()
        }

        async def endpoint(request: Request) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await wrapped[method](request)

        if path.startswith("/api/v1/action-runs"):
            name = path.removeprefix("/api/v1/action-runs").strip("/").replace("{run_id}", "run")
            name = name.replace("/", "_").replace(":", "runs_") or "runs"
        else:
            name = path.removeprefix("/api/v1/")
        return Route(path, endpoint, methods=list(handlers), name=name)

    def _wrap(self, handler: Handler, source: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                principal = await authenticate(request, self.config.auth)
                return await handler(request, principal)
            except Exception as exc:  # one translation table; nothing escapes as a trace
                return to_response(exc, source)

        return endpoint

    # ------------------------------------------------------------------ authorization ----
    async def allowed(self, principal: Principal | None, action: str, run: Run | None) -> bool:
        """Whether ``principal`` may do ``action`` (to ``run``): what every route asks, for
        the dashboard's pages (which buttons to show) too."""
        return await self._allowed(principal, action, run)

    async def page_users(self, page: RunPage) -> dict[str, UserProfile]:
        """The people among ``page``'s creators: the host's ``runkit_resolve_users`` answers
        (``page.users``) first, then the authenticators that know people (a key store whose
        keys name their owner), for the ids the host left out."""
        users = dict(page.users)
        wanted = {
            r.trigger_source_id
            for r in page.runs
            if r.trigger_source_type == "user" and r.trigger_source_id
        } - users.keys()
        for verifier in self.config.auth.authenticators:
            lookup = getattr(verifier, "users", None)
            if not wanted or lookup is None:
                continue
            for uid, profile in lookup(sorted(wanted)).items():
                if uid in wanted:
                    users[uid] = profile
                    wanted.discard(uid)
        return users

    async def _allowed(self, principal: Principal | None, action: str, run: Run | None) -> bool:
        """The key's tenant and roles first (built in), then the host's hook, which can only
        narrow what they allow."""
        if not (_in_tenant(principal, run) and permits(principal, action)):
            return False
        if self.config.authorize is None:
            return True
        answer = self.config.authorize(principal, action, run)
        if inspect.isawaitable(answer):
            answer = await answer
        return bool(answer)

    async def _guard(self, principal: Principal | None, action: str, run: Run | None) -> None:
        if await self._allowed(principal, action, run):
            return
        # A run the caller may not even see is "not found": its existence is not leaked.
        if run is not None and (action == "get" or not await self._allowed(principal, "get", run)):
            raise RunNotFound(run.id)
        if run is not None:
            raise HttpError(403, f"not allowed to {action} run {run.id}")
        raise HttpError(403, _REFUSED.get(action, f"not allowed to {action} runs"))

    async def _visible_run(self, request: Request, principal: Principal | None, action: str) -> Run:
        run = await self.rk.get(_run_id(request))
        await self._guard(principal, action, run)
        return run

    async def _run_json(self, run: Run, status: int = 200, **kw: Any) -> JSONResponse:
        shown = self.rk.kinds.shown_definition(run)
        written = _batch.run_json(run, await self.rk.display_status(run), shown)
        return JSONResponse(written, status_code=status, **kw)

    def _run_path(self, request: Request, run_id: str) -> str:
        root = request.scope.get("root_path", "")
        prefix = self._run_paths.get(root)
        if prefix is None:
            path = str(request.url_for("run", run_id="-").path)
            prefix = self._run_paths[root] = path[:-1]
        return prefix + run_id

    # ------------------------------------------------------------------ handlers ---------
    async def list_runs(self, request: Request, principal: Principal | None) -> Response:
        page = await self.rk.list(
            action_id=query_text(request, "action_id"),
            kind=query_text(request, "kind"),
            status=query_text(request, "status"),
            parent_action_run_id=query_text(request, "parent_action_run_id"),
            # A tenant's keys list only its runs, filtered by the store: exact counts.
            tenant=principal.tenant if principal is not None else None,
            limit=query_int(request, "limit", 100),
            offset=query_int(request, "offset", 0),
        )
        await self._guard(principal, "list", None)
        page = _within_budget(page, self.config.max_page_bytes)
        shown = page
        if self.config.authorize is not None:
            runs = tuple([r for r in page.runs if await self._allowed(principal, "get", r)])
            ids = {r.trigger_source_id for r in runs}
            users = {k: v for k, v in page.users.items() if k in ids}
            shown = attrs.evolve(page, runs=runs, users=users)
        shown = attrs.evolve(shown, users=await self.page_users(shown))
        statuses = await self.rk.display_statuses(shown.runs)
        # Paging follows the unfiltered page (docs/http.md).
        definitions = [self.rk.kinds.shown_definition(r) for r in shown.runs]
        return JSONResponse(run_page_to_wire(shown, statuses, definitions, has_next=page.has_next))

    async def create_run(self, request: Request, principal: Principal | None) -> Response:
        body = decode(
            await json_object(request, self.config.max_body_bytes, required=True), CreateRun
        )
        execute = query_bool(request, "execute", False)
        if isinstance(body.kind, str) and len(body.kind) > MAX_KEY:
            # Registered kinds have short names: a longer one is refused before it is echoed.
            raise invalid(
                ("body", "kind"), f"must be at most {MAX_KEY} characters", "string_too_long"
            )
        idempotency_key = _idempotency_key(request, body)
        await self._guard(principal, "create", None)
        if execute:
            # Queueing is its own permission: a caller allowed to create but not to execute
            # must not get around the hook by asking for both at once.
            await self._guard(principal, "execute", None)
        created = await self.rk.create(
            body.kind,
            body.definition,
            idempotency_key=idempotency_key,
            concurrency_key=body.concurrency_key,
            parent_action_run_id=body.parent_action_run_id,
            action_id=body.action_id,
            principal=principal,
            execute=execute,
        )
        location = self._run_path(request, str(created.run.id))
        if created.created:
            return await self._run_json(created.run, 201, headers={"Location": location})
        return await self._run_json(
            created.run, 200, headers={"Location": location, "Idempotent-Replayed": "true"}
        )

    async def create_runs(self, request: Request, principal: Principal | None) -> Response:
        """``POST /api/v1/action-runs:batch`` (``_batch``): checked as ``create_run`` checks
        one body, in the same order, for every item; then written in one transaction."""
        items = await _batch.read_items(request, self.config.max_body_bytes)
        execute = query_bool(request, "execute", False)
        _batch.no_key_header(request)
        await self._guard(principal, "create", None)
        if execute:
            await self._guard(principal, "execute", None)
        answers = await _batch.create_all(self.rk, items, execute=execute, principal=principal)
        return await _batch.answer(self.rk, answers)

    async def get_run(self, request: Request, principal: Principal | None) -> Response:
        return await self._run_json(await self._visible_run(request, principal, "get"))

    async def delete_run(self, request: Request, principal: Principal | None) -> Response:
        run = await self._visible_run(request, principal, "delete")
        await self.rk.delete(run.id, principal=principal)
        return Response(status_code=204)

    def act(self, action: str) -> Handler:
        async def handler(request: Request, principal: Principal | None) -> Response:
            run = await self._visible_run(request, principal, action)
            method = getattr(self.rk, action)
            return await self._run_json(await method(run.id, principal=principal))

        return handler

    def decide(self, decision: str) -> Handler:
        async def handler(request: Request, principal: Principal | None) -> Response:
            run_id = _run_id(request)
            raw = await json_object(request, self.config.max_body_bytes, required=False)
            body = decode(raw, ReasonBody)
            await self._visible_run(request, principal, decision)
            method = self.rk.approve if decision == "approve" else self.rk.reject
            new = await method(run_id, principal=principal or ANONYMOUS, reason=body.reason)
            return await self._run_json(new)

        return handler

    async def get_logs(self, request: Request, principal: Principal | None) -> Response:
        run_id = _run_id(request)
        limit = query_int(request, "limit", 100)
        after = query_text(request, "after")
        bounded(limit, "limit", 1, 500)
        cursor = Cursor.parse(after, run_id)  # 422 before the run is looked up
        run = await self._visible_run(request, principal, "logs")
        page = await self.rk.logs(run.id, after=cursor, limit=limit)
        return JSONResponse(log_page_to_wire(page))

    async def stream_logs(self, request: Request, principal: Principal | None) -> Response:
        run_id = _run_id(request)
        # The header wins: EventSource resends the original URL (with its ``after``) on every
        # reconnect, and only Last-Event-ID says how far it got.
        # A malformed ``after`` is a 422 even when the header overrides it.
        after = Cursor.parse(query_text(request, "after"), run_id)
        header = request.headers.get("last-event-id")
        if header is not None and header.strip():
            after = Cursor.parse(header.strip(), run_id, ("header", "last-event-id"))
        run = await self._visible_run(request, principal, "logs")
        if run.status.terminal and not (await self.rk.logs(run.id, after=after, limit=1)).entries:
            return Response(status_code=204)  # already ended: EventSource stops on 204
        settings = self.config.stream
        # Anonymous callers share one allowance; a principal's is keyed by kind and id.
        key = None if principal is None else (principal.kind, principal.id)
        refusal = self.hub.slots.refusal(key)
        if refusal is not None:
            raise HttpError(429, refusal, {"Retry-After": str(settings.busy_retry_after)})
        return EventStreamResponse(
            self.hub.events(run.id, after.seq),
            send_timeout=settings.send_timeout,
            companion=self.hub.serve,
            on_close=self.hub.slots.take(key),
        )

    async def list_kinds(self, request: Request, principal: Principal | None) -> Response:
        await self._guard(principal, "kinds", None)
        return JSONResponse(kinds_to_wire(self.rk))

    async def list_workers(self, request: Request, principal: Principal | None) -> Response:
        await self._guard(principal, "workers", None)
        workers = sorted(await self.rk.workers(), key=lambda w: (w.started_at, w.id))
        return JSONResponse(workers_to_wire(workers))


_KEY_HEADER = ("header", "idempotency-key")


def _in_tenant(principal: Principal | None, run: Run | None) -> bool:
    """A tenant's principal sees only its tenant's runs (the rest answer 404)."""
    return (
        run is None
        or principal is None
        or principal.tenant is None
        or (run.tenant == principal.tenant)
    )


def _within_budget(page: RunPage, max_bytes: int) -> RunPage:
    """``page`` cut short once its runs' JSON passes ``max_bytes`` (definitions up to 1 MiB
    each would make a 100-run page 100 MiB). The answer's ``limit`` becomes the runs it
    holds, so ``offset + limit`` still names the next page and ``hasNext`` stays true."""
    size = 0
    for i, run in enumerate(page.runs):
        size += _json_size(run)
        if size > max_bytes and i > 0:
            return attrs.evolve(page, runs=page.runs[:i], limit=i)
    return page


def _json_size(run: Run) -> int:
    """About the bytes ``run`` takes on the wire: its free-form fields, plus the rest."""
    fields = (run.definition, run.progress, run.result, run.error)
    return 1024 + sum(len(json.dumps(f, separators=(",", ":"))) for f in fields if f)


def _run_id(request: Request) -> UUID:
    return path_uuid(request, "run_id")


def _idempotency_key(request: Request, body: CreateRun) -> Any:
    """The body's ``idempotencyKey``, or the IETF ``Idempotency-Key`` header; both must agree.

    The header must be printable ASCII: HTTP carries header bytes with no charset (servers
    read them as Latin-1), so a UTF-8 key there would be stored as mojibake. A key with other
    characters goes in the body, which is UTF-8 JSON."""
    header = request.headers.get("idempotency-key")
    value = body.idempotency_key
    if header is not None:
        if not all(" " <= c <= "~" for c in header):
            raise invalid(
                _KEY_HEADER,
                "must be printable ASCII; send other characters in the body's idempotencyKey",
                "string_ascii",
            )
        if not 1 <= len(header) <= MAX_KEY:
            raise invalid(_KEY_HEADER, f"must be 1 to {MAX_KEY} characters", "string_length")
        if value is not None and header != value:
            raise invalid(_KEY_HEADER, "differs from body idempotencyKey", "value_error")
    return value if value is not None else header
