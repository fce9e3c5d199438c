"""conditional_branch and call_automation as runs: children made once, durable waits, failure
and cancellation, automations from a host hook, and create-time validation with precise locs.
Embedded workers on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

import runkit
from run_support import FAST, SETTINGS, wait_status
from runkit import Fatal, Kind, Run, Runkit, Status, ValidationError
from runkit.engine import RunContext, embedded_workers
from runkit.kinds import builtin_plugins

pytestmark = pytest.mark.anyio

TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.REJECTED}


@pytest.fixture(autouse=True)
def _test_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNKIT_ENABLE_TEST_KINDS", "1")


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    value: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return value


# --- kinds and a host hook used only here ------------------------------------------------------
async def _echo(ctx: RunContext) -> dict[str, Any]:
    return {"value": ctx.definition.get("value")}


async def _boom(ctx: RunContext) -> None:
    raise Fatal(f"boom: {ctx.definition.get('why', 'no reason')}")


async def _block(ctx: RunContext) -> None:
    await anyio.sleep(3600)


class Host:
    """Kinds for the tests, and a ``runkit_resolve_automation`` hook over ``automations``."""

    def __init__(self) -> None:
        self.automations: dict[str, list[dict[str, Any]]] = {}
        self.resolved: list[str] = []

    @runkit.hookimpl
    def runkit_register_kinds(self, register: Callable[[Kind], None]) -> None:
        register(Kind("echo", _echo))
        register(Kind("boom", _boom))
        register(Kind("block", _block))

    @runkit.hookimpl
    def runkit_resolve_automation(self, automation_id: str) -> list[dict[str, Any]] | None:
        self.resolved.append(automation_id)
        steps = self.automations.get(automation_id)
        return None if steps is None else [dict(s) for s in steps]


class KindsOnly:
    @runkit.hookimpl
    def runkit_register_kinds(self, register: Callable[[Kind], None]) -> None:
        Host.runkit_register_kinds(Host(), register)


@pytest.fixture
def host() -> Host:
    return Host()


@pytest.fixture
async def rk(url: str, host: Host) -> AsyncIterator[Runkit]:
    async with (
        Runkit(url, plugins=[host], settings=SETTINGS, autoload_plugins=False) as instance,
        embedded_workers(instance, concurrency=4, **FAST),
    ):
        yield instance


@pytest.fixture
async def bare(host: Host) -> AsyncIterator[Runkit]:
    """No worker: for what a create says."""
    async with Runkit("memory://", plugins=[host], autoload_plugins=False) as instance:
        yield instance


async def run(rk: Runkit, kind: str, definition: dict[str, Any], within: float = 20.0) -> Run:
    created = await rk.create(kind, definition, execute=True)
    return await wait_status(rk, created.run.id, TERMINAL, within)


async def children(rk: Runkit, run: Run) -> list[Run]:
    return list((await rk.list(parent_action_run_id=run.id)).runs)


async def create_error(rk: Runkit, kind: str, definition: dict[str, Any]) -> dict[Any, str]:
    with pytest.raises(ValidationError) as info:
        await rk.create(kind, definition)
    return {detail.loc: detail.msg for detail in info.value.details}


def step(name: str, kind: str = "echo", continue_on_error: bool = False, **definition: Any) -> Any:
    out: dict[str, Any] = {"name": name, "kind": kind, "definition": definition}
    if continue_on_error:
        out["continueOnError"] = True
    return out


# --- registration ----------------------------------------------------------------------------
async def test_the_kinds_are_built_in(bare: Runkit) -> None:
    import runkit.kinds.compose as compose

    assert compose in builtin_plugins()
    for name in ("conditional_branch", "call_automation"):
        kind = bare.kinds.require(name)
        assert kind.display_name and kind.description and kind.example and kind.check
        assert bare.kinds.owner(name) == "runkit.kinds.compose"
        # The example passes every create-time check (no worker runs it here).
        await bare.create(name, dict(kind.example))
    progress = {"stepsDone": 2, "stepsTotal": 5, "message": "2 of 5 steps done"}
    describe = bare.kinds.require("call_automation").describe_progress
    assert describe is not None and describe(progress) == "2 of 5 steps done"


# --- call_automation: sequence and parallel ----------------------------------------------------
async def test_sequence_uses_earlier_steps(rk: Runkit) -> None:
    done = await run(
        rk,
        "call_automation",
        {
            "inputs": {"user": "ada"},
            "steps": [
                step("first", value={"$expr": "inputs.user"}),
                step(
                    "second",
                    value={
                        "from": {"$expr": "steps.first.result.value"},
                        "status": {"$expr": "steps.first.status"},
                        "run": {"$expr": "steps.first.runId"},
                        "parent": {"$expr": "parent"},
                    },
                ),
                step("third", "emit_logs", count={"$expr": "length(keys(steps))"}),
            ],
        },
    )
    assert done.status is Status.SUCCEEDED, done.error
    result = done.result or {}
    first, second, third = result["steps"]
    assert [s["name"] for s in result["steps"]] == ["first", "second", "third"]
    assert first["result"] == {"value": "ada"} and first["status"] == "succeeded"
    assert second["result"]["value"] == {
        "from": "ada",
        "status": "succeeded",
        "run": first["runId"],
        "parent": None,
    }
    assert third["result"] == {"count": 2}
    kids = await children(rk, done)
    assert [str(c.id) for c in kids] == [s["runId"] for s in result["steps"]]
    assert all(c.parent_action_run_id == done.id for c in kids)
    # A child was started after its predecessor had finished.
    assert kids[0].completed_at is not None and kids[1].created_at >= kids[0].completed_at
    assert done.progress == {"stepsDone": 3, "stepsTotal": 3, "message": "3 of 3 steps done"}
    assert await rk.display_status(done) == "Succeeded"


async def test_parallel_starts_every_step_at_once(rk: Runkit) -> None:
    done = await run(
        rk,
        "call_automation",
        {
            "mode": "parallel",
            "inputs": {"n": 2},
            "steps": [
                step("a", value={"$expr": "steps"}),
                step("b", "emit_logs", count={"$expr": "inputs.n"}),
                step("c", "sleep", seconds=0.3),
            ],
        },
    )
    assert done.status is Status.SUCCEEDED, done.error
    a, b, c = (done.result or {})["steps"]
    assert a["result"] == {"value": {}}  # no step is done when parallel steps start
    assert b["result"] == {"count": 2} and c["status"] == "succeeded"
    kids = await children(rk, done)
    last_start = max(k.created_at for k in kids)
    assert all(k.completed_at is not None and k.completed_at >= last_start for k in kids[2:])


async def test_a_failed_step_fails_the_automation_and_later_steps_never_start(
    rk: Runkit,
) -> None:
    done = await run(
        rk,
        "call_automation",
        {"steps": [step("fetch"), step("send", "boom", why="smtp down"), step("report")]},
    )
    assert done.status is Status.FAILED
    error = done.error or {}
    assert error["type"] == "StepFailed" and error["retryable"] is False
    assert error["step"] == "send" and error["stepStatus"] == "failed"
    assert error["message"].startswith("step 'send': boom run ")
    assert "boom: smtp down" in error["message"]
    assert error["stepError"]["message"] == "boom: smtp down"
    kids = await children(rk, done)
    assert [k.kind for k in kids] == ["echo", "boom"]  # "report" never started
    assert str(kids[1].id) == error["stepRunId"]
    assert done.attempt >= 2  # ran again after each wait; the failure was not retried


async def test_continue_on_error(rk: Runkit) -> None:
    done = await run(
        rk,
        "call_automation",
        {
            "steps": [
                step("try", "boom", continue_on_error=True),
                step("after", value={"$expr": "[steps.try.status, steps.try.error.message]"}),
            ]
        },
    )
    assert done.status is Status.SUCCEEDED, done.error
    tried, after = (done.result or {})["steps"]
    assert tried["status"] == "failed" and tried["result"] is None
    assert tried["error"]["type"] == "Fatal"
    assert after["result"] == {"value": ["failed", "boom: no reason"]}
    entries = [e.message async for e in rk.iter_logs(done.id)]
    assert "2 of 2 steps done; allowed to fail and did: try" in entries


async def test_parallel_continue_on_error_waits_for_the_rest(rk: Runkit) -> None:
    done = await run(
        rk,
        "call_automation",
        {
            "mode": "parallel",
            "steps": [
                step("fails", "boom", continue_on_error=True),
                step("slow", "sleep", seconds=0.5),
            ],
        },
    )
    assert done.status is Status.SUCCEEDED, done.error
    assert [s["status"] for s in (done.result or {})["steps"]] == ["failed", "succeeded"]


async def test_a_cancelled_step_fails_the_automation(rk: Runkit) -> None:
    created = await rk.create(
        "call_automation", {"steps": [step("wait", "block"), step("next")]}, execute=True
    )
    child = await _first_child(rk, created.run.id, Status.RUNNING)
    waiting = await wait_status(rk, created.run.id, {Status.WAITING})
    assert await rk.display_status(waiting) == "Waiting · 0 of 2 steps done; running 'wait'"
    await rk.cancel(child.id)
    done = await wait_status(rk, created.run.id, TERMINAL, 20)
    assert done.status is Status.FAILED
    assert (done.error or {})["step"] == "wait"
    assert (done.error or {})["stepStatus"] == "cancelled"
    assert (done.error or {})["message"] == f"step 'wait': block run {child.id} cancelled"
    assert len(await children(rk, done)) == 1


async def test_parallel_cancels_running_siblings(rk: Runkit) -> None:
    done = await run(
        rk,
        "call_automation",
        {
            "mode": "parallel",
            "steps": [step("long", "block"), step("longer", "block"), step("bad", "boom")],
        },
    )
    assert done.status is Status.FAILED
    error = done.error or {}
    assert error["step"] == "bad" and error["cancelled"] == ["long", "longer"]
    kids = {k.kind + str(i): k for i, k in enumerate(await children(rk, done))}
    for name in ("block0", "block1"):
        stopped = await wait_status(rk, kids[name].id, TERMINAL)
        assert stopped.status is Status.CANCELLED


async def test_cancelling_the_automation_cancels_its_steps(rk: Runkit) -> None:
    created = await rk.create("call_automation", {"steps": [step("wait", "block")]}, execute=True)
    child = await _first_child(rk, created.run.id, Status.RUNNING)
    await wait_status(rk, created.run.id, {Status.WAITING})
    await rk.cancel(created.run.id)
    assert (await wait_status(rk, child.id, TERMINAL)).status is Status.CANCELLED
    assert (await rk.get(created.run.id)).status is Status.CANCELLED


async def test_a_paused_automation_starts_no_later_step(rk: Runkit) -> None:
    created = await rk.create(
        "call_automation", {"steps": [step("gate", "approval_gate"), step("next")]}, execute=True
    )
    gate = await _first_child(rk, created.run.id, Status.AWAITING_APPROVAL)
    await wait_status(rk, created.run.id, {Status.WAITING})
    await rk.pause(created.run.id)
    await rk.approve(gate.id)  # the step goes on; the paused automation holds
    await anyio.sleep(0.5)
    assert (await rk.get(created.run.id)).status is Status.PAUSED
    assert len(await children(rk, created.run)) == 1
    await rk.resume(created.run.id)
    done = await wait_status(rk, created.run.id, TERMINAL)
    assert done.status is Status.SUCCEEDED, done.error
    assert [s["status"] for s in (done.result or {})["steps"]] == ["succeeded", "succeeded"]


async def test_a_step_deleted_while_the_automation_holds_fails_it(rk: Runkit) -> None:
    created = await rk.create(
        "call_automation", {"steps": [step("gate", "approval_gate"), step("next")]}, execute=True
    )
    gate = await _first_child(rk, created.run.id, Status.AWAITING_APPROVAL)
    await wait_status(rk, created.run.id, {Status.WAITING})
    await rk.pause(created.run.id)
    await rk.approve(gate.id)
    await rk.delete(gate.id)
    await rk.resume(created.run.id)
    done = await wait_status(rk, created.run.id, TERMINAL)
    assert done.status is Status.FAILED
    assert done.error is not None and done.error["type"] == "StepFailed"
    assert done.error["message"] == f"step 'gate': run {gate.id} was deleted"


async def _first_child(rk: Runkit, parent: Any, status: Status) -> Run:
    with anyio.fail_after(10):
        while True:
            kids = (await rk.list(parent_action_run_id=parent)).runs
            if kids:
                return await wait_status(rk, kids[0].id, {status})
            await anyio.sleep(0.02)


async def test_one_worker_slot_runs_a_three_step_automation(url: str, host: Host) -> None:
    # The automation holds no worker while it waits: its steps get the only slot.
    async with (
        Runkit(url, plugins=[host], settings=SETTINGS, autoload_plugins=False) as rk,
        embedded_workers(rk, concurrency=1, **FAST),
    ):
        done = await run(
            rk,
            "call_automation",
            {
                "steps": [
                    step("a", value=1),
                    step("b", "noop"),
                    step("c", value={"$expr": "steps.a.result.value"}),
                ]
            },
        )
        assert done.status is Status.SUCCEEDED, done.error
        assert (done.result or {})["steps"][2]["result"] == {"value": 1}


async def test_a_definition_that_does_not_fit_after_filling_fails_the_run(rk: Runkit) -> None:
    done = await run(
        rk,
        "call_automation",
        {
            "inputs": {"n": "three"},
            "steps": [step("count", "emit_logs", count={"$expr": "inputs.n"})],
        },
    )
    assert done.status is Status.FAILED
    error = done.error or {}
    assert error["type"] == "InvalidChildDefinition" and error["step"] == "count"
    assert error["errors"] == [
        {"loc": ["definition", "count"], "msg": "expected int, got str", "type": "type_error"}
    ]
    assert error["message"].startswith("step 'count': emit_logs refused the definition")
    assert await children(rk, done) == []


async def test_an_expression_that_fails_at_run_time_names_its_place(rk: Runkit) -> None:
    done = await run(
        rk,
        "call_automation",
        {"inputs": {"n": 3}, "steps": [step("a"), step("b", value={"$expr": "length(inputs.n)"})]},
    )
    assert done.status is Status.FAILED
    error = done.error or {}
    assert error["type"] == "ExpressionFailed" and error["step"] == "b"
    assert error["loc"] == ["definition", "steps", 1, "definition", "value", "$expr"]
    assert "invalid type for value: 3" in error["message"]


async def test_a_composing_step_fills_its_own_expressions(rk: Runkit) -> None:
    # The outer run fills the branch's inputs; the branch evaluates its own then-definition.
    done = await run(
        rk,
        "call_automation",
        {
            "steps": [
                step("check", value="green"),
                step(
                    "maybe",
                    "conditional_branch",
                    condition="inputs.light == 'green'",
                    inputs={"light": {"$expr": "steps.check.result.value"}},
                    then={"kind": "echo", "definition": {"value": {"$expr": "inputs.light"}}},
                ),
            ]
        },
    )
    assert done.status is Status.SUCCEEDED, done.error
    maybe = (done.result or {})["steps"][1]["result"]
    assert maybe["branch"] == "then" and maybe["childResult"] == {"value": "green"}


# --- call_automation: automations from the host ------------------------------------------------
async def test_an_automation_id_runs_the_hooks_steps_resolved_once(rk: Runkit, host: Host) -> None:
    host.automations["release"] = [
        step("gate", "approval_gate", title={"$expr": "join(' ', ['Release', inputs.v])"}),
        step("after", value={"$expr": "steps.gate.result.approved"}),
    ]
    created = await rk.create(
        "call_automation", {"automationId": "release", "inputs": {"v": "2.0"}}, execute=True
    )
    assert host.resolved == ["release"]  # at create
    gate = await _first_child(rk, created.run.id, Status.AWAITING_APPROVAL)
    assert gate.definition == {"title": "Release 2.0"}
    # Changed meanwhile: the run goes on with the steps it resolved.
    host.automations["release"] = [step("other")]
    await rk.approve(gate.id)
    done = await wait_status(rk, created.run.id, TERMINAL)
    assert done.status is Status.SUCCEEDED, done.error
    assert [s["name"] for s in (done.result or {})["steps"]] == ["gate", "after"]
    assert (done.result or {})["steps"][1]["result"] == {"value": True}
    assert host.resolved == ["release", "release"]  # at create, and once when it first ran


async def test_an_automation_gone_by_run_time_fails_the_run(rk: Runkit, host: Host) -> None:
    host.automations["brief"] = [step("a")]
    created = await rk.create("call_automation", {"automationId": "brief"})
    del host.automations["brief"]
    await rk.execute(created.run.id)
    done = await wait_status(rk, created.run.id, TERMINAL)
    assert done.status is Status.FAILED
    assert (done.error or {})["type"] == "AutomationNotFound"


async def test_an_automation_id_without_a_hook_is_refused() -> None:
    async with Runkit("memory://", plugins=[KindsOnly()], autoload_plugins=False) as rk:
        errors = await create_error(rk, "call_automation", {"automationId": "nightly"})
    assert errors == {
        ("definition", "automationId"): "unknown automation 'nightly': no host hook resolves it"
    }


async def test_an_automations_steps_are_checked_at_create(bare: Runkit, host: Host) -> None:
    host.automations["broken"] = [step("a", "nope"), step("a", value={"$expr": "a b"})]
    errors = await create_error(bare, "call_automation", {"automationId": "broken"})
    assert set(errors) == {
        ("definition", "automationId", 0, "kind"),
        ("definition", "automationId", 1, "name"),
        ("definition", "automationId", 1, "definition", "value", "$expr"),
    }
    assert host.resolved == ["broken"]


# --- call_automation: create-time validation ---------------------------------------------------
async def test_a_bad_expression_is_refused_at_its_loc(bare: Runkit) -> None:
    errors = await create_error(
        bare,
        "call_automation",
        {"steps": [step("a"), step("b", to={"$expr": "steps.a.result["})]},
    )
    assert errors == {
        ("definition", "steps", 1, "definition", "to", "$expr"): "not JMESPath: it ends too early"
    }


async def test_an_unknown_child_kind_is_refused(bare: Runkit) -> None:
    errors = await create_error(
        bare, "call_automation", {"steps": [step("a", "nope", x={"$expr": "inputs"})]}
    )
    (message,) = errors.values()
    assert list(errors) == [("definition", "steps", 0, "kind")]
    assert message.startswith("unknown kind 'nope'; known kinds: agent_fetch_page, agent_search")
    assert "approval_gate, block, boom, call_agent, " in message


async def test_a_child_definition_without_expressions_is_checked_at_create(bare: Runkit) -> None:
    errors = await create_error(
        bare,
        "call_automation",
        {"steps": [step("a", "emit_logs", count="x"), step("b", "sleep")]},
    )
    assert set(errors) == {
        ("definition", "steps", 0, "definition", "count"),
        ("definition", "steps", 1, "definition", "seconds"),
    }
    # With an expression, the definition waits for its value (the kind is still checked).
    await bare.create(
        "call_automation", {"steps": [step("a", "emit_logs", count={"$expr": "`1`"})]}
    )


@pytest.mark.parametrize(
    ("definition", "loc", "message"),
    [
        ({}, ("definition", "steps"), "give 1 to 100 steps, or an automationId"),
        (
            {"automationId": "x", "steps": [step("a")]},
            ("definition", "automationId"),
            "give steps or an automationId, not both",
        ),
        (
            {"steps": [step("a"), step("a")]},
            ("definition", "steps", 1, "name"),
            "step name 'a' is taken by step 0",
        ),
        (
            {"steps": [step("")]},
            ("definition", "steps", 0, "name"),
            "a step name has 1 to 100 characters",
        ),
        (
            {"steps": [step(str(i)) for i in range(101)]},
            ("definition", "steps"),
            "Length of 'steps'",
        ),
        ({"steps": [step("a")], "mode": "random"}, ("definition", "mode"), "random not in literal"),
        (
            {"steps": [{"name": "a", "kind": "echo", "continueOnError": "yes"}]},
            ("definition", "steps", 0, "continueOnError"),
            "expected bool",
        ),
    ],
)
async def test_automation_shape_errors(
    bare: Runkit, definition: dict[str, Any], loc: tuple[Any, ...], message: str
) -> None:
    errors = await create_error(bare, "call_automation", definition)
    assert list(errors) == [loc]
    assert errors[loc].startswith(message), errors


# --- conditional_branch --------------------------------------------------------------------------
async def test_both_branches(rk: Runkit) -> None:
    definition: dict[str, Any] = {
        "condition": "length(inputs.items) > `1`",
        "then": {"kind": "echo", "definition": {"value": {"$expr": "inputs.items[0]"}}},
        "else": {"kind": "echo", "definition": {"value": "few"}},
    }
    many = await run(rk, "conditional_branch", {**definition, "inputs": {"items": ["x", "y"]}})
    assert many.status is Status.SUCCEEDED, many.error
    (child,) = await children(rk, many)
    assert many.result == {
        "branch": "then",
        "value": True,
        "childRunId": str(child.id),
        "childResult": {"value": "x"},
    }
    few = await run(rk, "conditional_branch", {**definition, "inputs": {"items": ["x"]}})
    assert few.result is not None and few.result["branch"] == "else"
    assert few.result["value"] is False and few.result["childResult"] == {"value": "few"}
    entries = [e.message async for e in rk.iter_logs(few.id)]
    assert "condition 'length(inputs.items) > `1`' is false: else" in entries


async def test_a_null_branch_runs_nothing(rk: Runkit) -> None:
    done = await run(
        rk, "conditional_branch", {"condition": "inputs.name", "inputs": {"name": "ada"}}
    )
    assert done.status is Status.SUCCEEDED
    assert done.result == {
        "branch": "then",
        "value": "ada",
        "childRunId": None,
        "childResult": None,
    }
    assert await children(rk, done) == []
    done = await run(
        rk,
        "conditional_branch",
        {"condition": "inputs.missing", "then": {"kind": "echo"}, "else": None},
    )
    assert done.result == {"branch": "else", "value": None, "childRunId": None, "childResult": None}


async def test_jmespath_truth_picks_the_branch(rk: Runkit) -> None:
    for value, branch in ((0, "then"), ("", "else"), ([], "else"), ({}, "else"), ("no", "then")):
        done = await run(
            rk, "conditional_branch", {"condition": "inputs.v", "inputs": {"v": value}}
        )
        assert done.result is not None and done.result["branch"] == branch, value


async def test_a_failed_child_fails_the_branch(rk: Runkit) -> None:
    done = await run(
        rk,
        "conditional_branch",
        {"condition": "`true`", "then": {"kind": "boom", "definition": {}}},
    )
    assert done.status is Status.FAILED
    error = done.error or {}
    (child,) = await children(rk, done)
    assert error["type"] == "ChildFailed" and error["branch"] == "then"
    assert error["childRunId"] == str(child.id) and error["childStatus"] == "failed"
    assert error["message"] == f"branch 'then': boom run {child.id} failed: boom: no reason"


async def test_a_rejected_child_says_who_rejected_it(rk: Runkit) -> None:
    created = await rk.create(
        "conditional_branch", {"condition": "`1`", "then": {"kind": "approval_gate"}}, execute=True
    )
    gate = await _first_child(rk, created.run.id, Status.AWAITING_APPROVAL)
    await rk.reject(gate.id, principal=runkit.Principal("grace"), reason="not today")
    done = await wait_status(rk, created.run.id, TERMINAL)
    assert done.error is not None and done.error["childStatus"] == "rejected"
    assert done.error["message"].endswith(f"run {gate.id} rejected by grace: not today")


async def test_the_parent_result_is_in_the_document(rk: Runkit) -> None:
    parent = await run(rk, "echo", {"value": {"deploy": True}})
    created = await rk.create(
        "conditional_branch",
        {"condition": "parent.value.deploy", "then": {"kind": "echo", "definition": {"value": 1}}},
        parent_action_run_id=parent.id,
        execute=True,
    )
    done = await wait_status(rk, created.run.id, TERMINAL)
    assert done.result is not None and done.result["branch"] == "then"


async def test_branch_errors_at_create(bare: Runkit) -> None:
    errors = await create_error(
        bare,
        "conditional_branch",
        {
            "condition": "inputs.[",
            "then": {"kind": "nope"},
            "else": {"kind": "emit_logs", "definition": {"count": {"$expr": "foo(@)"}}},
        },
    )
    assert set(errors) == {
        ("definition", "condition"),
        ("definition", "then", "kind"),
        ("definition", "else", "definition", "count", "$expr"),
    }
    assert errors[("definition", "else", "definition", "count", "$expr")].startswith(
        "unknown function foo()"
    )
    errors = await create_error(bare, "conditional_branch", {"condition": "a", "else_": None})
    assert list(errors) == [("definition", "else_")]
    errors = await create_error(bare, "conditional_branch", {"inputs": {}})
    assert list(errors) == [("definition", "condition")]
