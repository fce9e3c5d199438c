"""The plugin manager: built-ins and entry-point plugins register through the same hooks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pluggy

from .. import hookspecs as _hookspecs
from ..domain.errors import ConfigurationError, ValidationError
from ..domain.kind import Kind, KindRegistry

ENTRY_POINT_GROUP = "runkit"
DISABLE_AUTOLOAD_ENV = "RUNKIT_DISABLE_PLUGIN_AUTOLOAD"


def make_plugin_manager(
    plugins: Iterable[object] = (), *, autoload: bool | None = None
) -> pluggy.PluginManager:
    """A plugin manager with runkit's hookspecs, the built-in plugins, ``plugins``, and (unless
    ``autoload`` is False or ``RUNKIT_DISABLE_PLUGIN_AUTOLOAD`` is set) the entry-point group
    ``runkit``. Malformed plugins fail here, naming the plugin."""
    pm = pluggy.PluginManager("runkit")
    pm.add_hookspecs(_hookspecs)
    for plugin in (*_builtin_plugins(), *plugins):
        name = _plugin_name(plugin)
        try:
            pm.register(plugin, name=name)
        except ValueError as exc:  # registered twice, or a name taken
            raise ConfigurationError(f"plugin {name}: {exc}") from exc
        except pluggy.PluginValidationError as exc:
            raise ConfigurationError(f"plugin {name}: {exc}") from exc
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:
            raise ConfigurationError(f"loading runkit plugins failed: {exc}") from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigurationError(f"plugin {exc.plugin!r}: {exc}") from exc
    return pm


def _plugin_name(plugin: object) -> str:
    """A readable name for messages: the module, or the class of a plugin object."""
    if isinstance(plugin, type(pluggy)):  # a module
        return plugin.__name__
    cls = type(plugin)
    return f"{cls.__module__}.{cls.__qualname__}@{id(plugin):x}"


def _builtin_plugins() -> list[object]:
    """The built-in storage backends and kinds, as plugins like any other."""
    from ..kinds import builtin_plugins
    from ..storage import builtin as builtin_storage

    return [builtin_storage, *builtin_plugins()]


def collect_kinds(pm: pluggy.PluginManager) -> KindRegistry:
    registry = KindRegistry()
    for impl in pm.hook.runkit_register_kinds.get_hookimpls():
        owner = pm.get_name(impl.plugin) or repr(impl.plugin)

        def register(kind: Kind, _owner: str = owner) -> None:
            if not isinstance(kind, Kind):
                raise ConfigurationError(f"{_owner}: register() takes a runkit.Kind, got {kind!r}")
            registry.register(kind, owner=_owner)

        impl.function(register=register)
    return registry


def collect_providers(pm: pluggy.PluginManager) -> None:
    """Hand the plugins' ``web_search`` providers, language-model providers and dashboard
    destination to the kinds that use them (their registries are per process: a provider
    serves every Runkit of the process once one has loaded it)."""
    from ..kinds.flashboard import register_destination
    from ..kinds.llm.providers import register_llm_provider
    from ..kinds.web.search import register_search_provider

    pm.hook.runkit_register_search_providers(register=register_search_provider)
    pm.hook.runkit_register_llm_providers(register=register_llm_provider)
    pm.hook.runkit_register_flashboard_destination(register=register_destination)


def collect_storage(pm: pluggy.PluginManager) -> dict[str, Callable[[str], Any]]:
    factories: dict[str, Callable[[str], Any]] = {}

    def register(scheme: str, factory: Callable[[str], Any]) -> None:
        if scheme in factories:
            raise ConfigurationError(f"storage scheme {scheme!r} registered twice")
        factories[scheme] = factory

    pm.hook.runkit_register_storage(register=register)
    return factories


class HostChecks:
    """The :class:`~runkit.domain.kind.KindChecks` of one Runkit: its kinds and its hooks."""

    #: How deep kinds may nest kinds that start runs, checked at create (a cycle of
    #: automations naming each other would otherwise recurse forever).
    MAX_DEPTH = 16

    def __init__(self, kinds: KindRegistry, pm: pluggy.PluginManager) -> None:
        self.kinds = kinds
        self.pm = pm
        self._depth = 0

    def validate(self, kind: Any, definition: Any, loc: Sequence[str | int]) -> Any:
        spec = self.kinds.require(kind, (*loc, "kind"))
        where = (*loc, "definition")
        config = spec.validate(definition, where)
        if spec.check is not None:
            if self._depth >= self.MAX_DEPTH:
                raise ValidationError.at(
                    where, f"runs nested more than {self.MAX_DEPTH} deep", "too_deep"
                )
            self._depth += 1
            try:
                spec.check(config, self)
            finally:
                self._depth -= 1
        return config

    def automation(self, automation_id: str, loc: Sequence[str | int]) -> list[Mapping[str, Any]]:
        steps = self.pm.hook.runkit_resolve_automation(automation_id=automation_id)
        if steps is None:
            raise ValidationError.at(
                loc, f"unknown automation {automation_id!r}: no host hook resolves it", "not_found"
            )
        if not isinstance(steps, Sequence) or not all(isinstance(s, Mapping) for s in steps):
            raise ConfigurationError(
                f"runkit_resolve_automation({automation_id!r}) returned {type(steps).__name__},"
                " not a list of step objects"
            )
        return [dict(s) for s in steps]
