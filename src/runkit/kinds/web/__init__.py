"""Kinds that reach the web: ``http_request``, ``fetch_page`` and ``web_search``, all behind
one outbound guard (:mod:`.guard`, configured by :mod:`.policy`).

Registered like any plugin, through ``runkit_register_kinds``. Importing this package needs
none of the ``runkit[web]`` libraries: without them the kinds are listed, and creating a run
of one is a 422 that names the extra.

A host configures the guard with the ``RUNKIT_OUTBOUND_*`` environment variables (read at
each check) or, from Python, once for the process::

    from runkit.kinds.web import OutboundPolicy, configure_outbound

    configure_outbound(OutboundPolicy(allow=("10.20.0.0/16",), deny=("metadata.internal",)))
"""

from __future__ import annotations

from collections.abc import Callable

from ...authoring import Kind, hookimpl
from . import fetch_page, http_request, web_search
from .policy import OutboundPolicy, configure_outbound, current_policy
from .search import (
    SearchHit,
    SearchProvider,
    SearxngProvider,
    register_search_provider,
    unregister_search_provider,
)

KINDS = (http_request.KIND, fetch_page.KIND, web_search.KIND)

__all__ = [
    "KINDS",
    "OutboundPolicy",
    "SearchHit",
    "SearchProvider",
    "SearxngProvider",
    "configure_outbound",
    "current_policy",
    "register_search_provider",
    "unregister_search_provider",
]


@hookimpl
def runkit_register_kinds(register: Callable[[Kind], None]) -> None:
    for kind in KINDS:
        register(kind)
