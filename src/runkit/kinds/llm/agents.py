"""The agent kinds, a plugin of their own: ``call_agent`` (a model that calls tools, each call a
child run: :mod:`.call_agent`, its tools :mod:`.agent_tools`), ``agent_search`` (a question
answered from web pages, with citations) and ``agent_fetch_page`` (a page read by a model,
as text or as JSON checked against a schema).

Registered through ``runkit_register_kinds`` like the schema kinds of this package. They
ask the model through :class:`~.client.Llm` (the host's model settings, a 422 naming them
when none is configured) and read the web through the web kinds' outbound guard.
"""

from __future__ import annotations

from collections.abc import Callable

from ...authoring import Kind, hookimpl
from . import agent_fetch_page, agent_search, call_agent
from .agent_tools import AgentSettings, configure_agents, current_agent_settings

KINDS = (call_agent.KIND, agent_search.KIND, agent_fetch_page.KIND)

__all__ = ["KINDS", "AgentSettings", "configure_agents", "current_agent_settings"]


@hookimpl
def runkit_register_kinds(register: Callable[[Kind], None]) -> None:
    for kind in KINDS:
        register(kind)
