"""Plugins: entry-point autoload (and turning it off), storage backends from plugins, and
start-up failures that name the culprit."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import runkit
from runkit import ConfigurationError, Kind, Runkit
from runkit.storage.memory import MemoryStore

PLUGIN_MODULE = """
import runkit

def _echo(ctx):
    return {"echo": True}

@runkit.hookimpl
def runkit_register_kinds(register):
    register(runkit.Kind("from_entry_point", executor=_echo))
"""


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A distribution on sys.path that declares an entry point in the group ``runkit``."""
    (tmp_path / "rk_demo_plugin.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    dist = tmp_path / "rk_demo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rk-demo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[runkit]\ndemo = rk_demo_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("RUNKIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return "from_entry_point"


def test_entry_point_plugins_load_by_default(installed_plugin: str) -> None:
    rk = Runkit("memory://")
    assert installed_plugin in rk.kinds
    assert rk.kinds.owner(installed_plugin) == "demo"


def test_autoload_can_be_turned_off(installed_plugin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert installed_plugin not in Runkit("memory://", autoload_plugins=False).kinds
    monkeypatch.setenv("RUNKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert installed_plugin not in Runkit("memory://").kinds


def test_storage_backends_register_through_the_hook() -> None:
    made: list[str] = []

    class FancyStorage:
        @runkit.hookimpl
        def runkit_register_storage(self, register: object) -> None:
            def factory(url: str) -> MemoryStore:
                made.append(url)
                return MemoryStore()

            register("fancy", factory)  # type: ignore[operator]

    rk = Runkit("fancy://somewhere", plugins=[FancyStorage()], autoload_plugins=False)
    assert isinstance(rk.store, MemoryStore) and made == ["fancy://somewhere"]


def test_unknown_storage_url_fails_naming_the_known_schemes() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown storage URL scheme 'mongo'.*sqlite"):
        Runkit("mongo://localhost/runs", autoload_plugins=False)


def test_malformed_plugin_fails_at_start_up_naming_it() -> None:
    class Broken:
        @runkit.hookimpl
        def runkit_register_kinds(self, registrar: object) -> None:  # wrong argument name
            pass

    with pytest.raises(ConfigurationError, match="Broken"):
        Runkit("memory://", plugins=[Broken()], autoload_plugins=False)


def test_register_takes_kinds_only() -> None:
    class Sloppy:
        @runkit.hookimpl
        def runkit_register_kinds(self, register: object) -> None:
            register({"name": "not-a-kind"})  # type: ignore[operator]

    with pytest.raises(ConfigurationError, match=r"takes a runkit\.Kind"):
        Runkit("memory://", plugins=[Sloppy()], autoload_plugins=False)


def test_kind_names_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="invalid kind name"):
        Runkit("memory://", kinds=[Kind("Bad Name", executor=print)], autoload_plugins=False)


class _ProviderPlugin:
    """Offers a language-model provider and a dashboard destination through the hooks."""

    def __init__(self) -> None:
        self.provider = _Model()

    @runkit.hookimpl
    def runkit_register_llm_providers(self, register: Any) -> None:
        register(self.provider)

    @runkit.hookimpl
    def runkit_register_flashboard_destination(self, register: Any) -> None:
        register(_publish)


class _Model:
    name = "plugin-model"

    def problem(self) -> str | None:
        return None

    def default_model(self) -> str | None:
        return "m"

    def secrets(self) -> list[str]:
        return []

    async def chat(self, request: Any, on_text: Any = None) -> Any:
        raise NotImplementedError  # never asked here


def _publish(dashboard: Any) -> str:
    return "https://dashboards.example/x"


def test_plugins_offer_llm_providers_and_a_dashboard_destination() -> None:
    from runkit.kinds.flashboard import configure_flashboard, current_settings
    from runkit.kinds.llm.providers import providers, select_provider, unregister_llm_provider

    plugin = _ProviderPlugin()
    try:
        Runkit("memory://", plugins=[plugin], autoload_plugins=False)
        assert plugin.provider in providers()
        assert select_provider() is plugin.provider  # ready, and tried before the built-in
        assert current_settings().destination is _publish
    finally:
        unregister_llm_provider("plugin-model")
        configure_flashboard(None)
    assert plugin.provider not in providers()
