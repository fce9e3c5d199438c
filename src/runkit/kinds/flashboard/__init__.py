"""``create_flashboard``: a dashboard of charts from a DuckDB file under the data root, as
Vega-Lite specs and one self-contained HTML page (:mod:`.create_flashboard`).

Registered like any plugin, through ``runkit_register_kinds``. Importing this package needs
neither DuckDB nor vl-convert (``runkit[flashboard]``): without them the kind is still
listed, and creating a run is a 422 naming the extra.

The host decides where dashboards go and who turns a question into queries, once for the
process (:mod:`.settings`)::

    from runkit.kinds.flashboard import FlashboardSettings, configure_flashboard

    configure_flashboard(FlashboardSettings(destination=publish, suggester=my_suggester))
"""

from __future__ import annotations

from collections.abc import Callable

from ...authoring import Kind, hookimpl
from . import create_flashboard
from .charts import RULES, Rule
from .settings import (
    Dashboard,
    DataRootDestination,
    Destination,
    FlashboardSettings,
    configure_flashboard,
    current_settings,
    register_destination,
)
from .suggest import LlmSuggester, QuerySuggester, SuggestRequest

KINDS = (create_flashboard.KIND,)

__all__ = [
    "KINDS",
    "RULES",
    "Dashboard",
    "DataRootDestination",
    "Destination",
    "FlashboardSettings",
    "LlmSuggester",
    "QuerySuggester",
    "Rule",
    "SuggestRequest",
    "configure_flashboard",
    "current_settings",
    "register_destination",
]


@hookimpl
def runkit_register_kinds(register: Callable[[Kind], None]) -> None:
    for kind in KINDS:
        register(kind)
