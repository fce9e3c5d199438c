"""Kinds as plugins: registration, test-kind gating, configs and the approval gate's."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import runkit
from runkit import ConfigurationError, Kind, Runkit, ValidationError
from runkit.kinds import builtin_plugins


async def _noop(ctx: object) -> None:
    return None


class _Plugin:
    def __init__(self, *kinds: Kind) -> None:
        self.kinds = kinds

    @runkit.hookimpl
    def runkit_register_kinds(self, register: Callable[[Kind], None]) -> None:
        for kind in self.kinds:
            register(kind)


def test_approval_gate_always_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNKIT_ENABLE_TEST_KINDS", raising=False)
    rk = Runkit("memory://", autoload_plugins=False)
    assert "approval_gate" in rk.kinds
    assert "noop" not in rk.kinds
    assert rk.kinds.owner("approval_gate") == "runkit.kinds.approval_gate"


def test_test_kinds_need_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNKIT_ENABLE_TEST_KINDS", "1")
    rk = Runkit("memory://", autoload_plugins=False)
    assert {"noop", "sleep", "fail_n_times", "emit_logs"} <= set(rk.kinds.names())
    with_test_kinds = builtin_plugins()
    monkeypatch.setenv("RUNKIT_ENABLE_TEST_KINDS", "0")
    assert "noop" not in Runkit("memory://", autoload_plugins=False).kinds
    # The same built-in plugins, and the test kinds' one more (counted, not listed: every
    # family of built-in kinds adds a plugin).
    assert len(with_test_kinds) == len(builtin_plugins()) + 1


def test_duplicate_kind_names_both_plugins() -> None:
    plugin = _Plugin(Kind("approval_gate", _noop))
    with pytest.raises(ConfigurationError, match=r"approval_gate.*registered twice"):
        Runkit("memory://", plugins=[plugin], autoload_plugins=False)


def test_kind_without_executor_fails_naming_the_plugin() -> None:
    plugin = _Plugin(Kind("broken", None))
    with pytest.raises(ConfigurationError, match=r"broken.*no executor") as info:
        Runkit("memory://", plugins=[plugin], autoload_plugins=False)
    assert "_Plugin" in str(info.value) or "broken" in str(info.value)


@pytest.mark.anyio
async def test_unknown_kind_lists_known_kinds() -> None:
    async with Runkit("memory://", autoload_plugins=False) as rk:
        with pytest.raises(
            ValidationError,
            match="known kinds: agent_fetch_page, agent_search, approval_gate, call_agent, ",
        ):
            await rk.create("nope", {})


@pytest.mark.anyio
async def test_test_kind_configs_are_camel_case_and_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNKIT_ENABLE_TEST_KINDS", "1")
    async with Runkit("memory://", autoload_plugins=False) as rk:
        await rk.create("emit_logs", {"count": 2, "intervalSeconds": 0.1})
        await rk.create("noop", {})
        with pytest.raises(ValidationError) as info:
            await rk.create("emit_logs", {"count": "2", "interval_seconds": 1})
        locs = {d.loc for d in info.value.details}
        assert ("definition", "interval_seconds") in locs
        with pytest.raises(ValidationError):
            await rk.create("sleep", {})
        with pytest.raises(ValidationError):
            await rk.create("noop", {"extra": 1})


@pytest.mark.anyio
async def test_approval_gate_config() -> None:
    async with Runkit("memory://", autoload_plugins=False) as rk:
        run = (
            await rk.create(
                "approval_gate",
                {
                    "title": "Deploy?",
                    "approvers": ["alice", "bob"],
                    "groups": ["ops"],
                    "requiredApprovals": 2,
                    "allowSelfApproval": True,
                    "timeoutSeconds": 60,
                    "onTimeout": "approve",
                },
            )
        ).run
        policy = rk.kinds.approval_policy(run)
        assert policy is not None
        assert policy.required == 2
        assert policy.approvers == frozenset({"alice", "bob"})
        assert policy.groups == frozenset({"ops"})
        assert policy.allow_self_approval
        assert policy.timeout_seconds == 60.0
        assert policy.on_timeout == "approve"
        for bad in ({"onTimeout": "explode"}, {"requiredApprovals": 0}, {"timeoutSeconds": -1}):
            with pytest.raises(ValidationError):
                await rk.create("approval_gate", bad)
