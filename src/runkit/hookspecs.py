"""The hooks plugins implement. Hooks register; the objects they register act.

Each hook is a synchronous registration call made once at start-up, never per run: a plugin
hands over kinds, storage backends or a user directory, and runkit uses those objects.
Built-in kinds register through the same hooks as third-party ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .domain.kind import Kind
    from .domain.models import UserProfile
    from .storage.base import Store

hookspec = pluggy.HookspecMarker("runkit")
hookimpl = pluggy.HookimplMarker("runkit")


@hookspec
def runkit_register_kinds(register: Callable[[Kind], None]) -> None:
    """Called once when a :class:`~runkit.Runkit` is built: call ``register(kind)`` for each
    action kind the plugin provides. A duplicate name fails start-up naming both plugins."""


@hookspec
def runkit_register_storage(register: Callable[[str, Callable[[str], Store]], None]) -> None:
    """Called once when a storage URL is resolved: ``register(scheme, factory)`` makes
    ``factory(url)`` build the store for URLs starting with ``scheme:``."""


@hookspec
def runkit_resolve_users(user_ids: Sequence[str]) -> Mapping[str, UserProfile] | Any:
    """Called once per list of runs with the ids of the users who triggered them; return
    ``{user_id: UserProfile}`` (or an awaitable of it). Results of all plugins are merged;
    with no implementation the list's ``users`` map is empty."""


@hookspec
def runkit_register_search_providers(register: Callable[[Any], None]) -> None:
    """Called once when a :class:`~runkit.Runkit` is built: call ``register(provider)`` for
    each ``web_search`` provider the plugin offers (an object with ``name``, ``problem()``
    and ``async search(query, max_results, outbound)``; see ``runkit.kinds.web.search``).
    They are tried before entry-point providers and the built-in SearXNG."""


@hookspec
def runkit_register_llm_providers(register: Callable[[Any], None]) -> None:
    """Called once when a :class:`~runkit.Runkit` is built: call ``register(provider)`` for
    each language-model provider the plugin offers (see ``runkit.kinds.llm.providers``).
    They are tried before the built-in OpenAI-compatible one."""


@hookspec
def runkit_register_flashboard_destination(register: Callable[[Any], None]) -> None:
    """Called once when a :class:`~runkit.Runkit` is built: call ``register(destination)`` to
    send ``create_flashboard``'s dashboards there instead of under the data root: a callable
    given the ``Dashboard`` (plain or async) that returns where it went (the result's
    ``path``). Two different destinations fail start-up naming the culprit."""


@hookspec(firstresult=True)
def runkit_resolve_automation(automation_id: str) -> Sequence[Mapping[str, Any]] | None:
    """Called when a ``call_automation`` run names an ``automationId``: return its steps
    (``[{"name", "kind", "definition", "continueOnError"}]``) or None if the id is not the
    plugin's. The first answer that is not None wins; with none, the id is refused (422)."""
