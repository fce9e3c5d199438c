"""The plugin manager: built-ins and entry-point plugins register through the same hooks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from .. import hookspecs as _hookspecs
from ..domain.errors import ConfigurationError
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


def collect_search_providers(pm: pluggy.PluginManager) -> None:
    """Hand the plugins' ``web_search`` providers to the web kinds (their registry is per
    process: a provider serves every Runkit of the process once one has loaded it)."""
    from ..kinds.web.search import register_search_provider

    pm.hook.runkit_register_search_providers(register=register_search_provider)


def collect_storage(pm: pluggy.PluginManager) -> dict[str, Callable[[str], Any]]:
    factories: dict[str, Callable[[str], Any]] = {}

    def register(scheme: str, factory: Callable[[str], Any]) -> None:
        if scheme in factories:
            raise ConfigurationError(f"storage scheme {scheme!r} registered twice")
        factories[scheme] = factory

    pm.hook.runkit_register_storage(register=register)
    return factories
