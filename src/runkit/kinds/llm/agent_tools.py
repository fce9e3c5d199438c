"""The tools of ``call_agent``: which kinds the host lets a model start, and how each is shown
to the model (an OpenAI function tool whose parameters are the kind's definition schema).

A tool is a registered kind. The host allows kinds for agents with ``RUNKIT_AGENT_TOOLS``
(comma-separated kind names, read at each check) or, from Python, once for the process::

    from runkit.kinds.llm.agent_tools import AgentSettings, configure_agents

    configure_agents(AgentSettings(tools=("web_search", "fetch_page"), kinds=(MY_KIND,)))

By default agents may call ``web_search``, ``fetch_page``, ``http_request`` and
``duckdb_transform``. The schema a model sees is read from the kind's ``config``
(:func:`runkit.domain.config_schema.config_schema`), so the kind's object must be known
here: runkit's own kinds are; a host's own kind is given in ``AgentSettings.kinds`` (which
also allows it). A definition may name only allowed kinds that its Runkit has registered:
anything else is a 422 at ``definition.tools[i]``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ...authoring import Kind, KindChecks
from ...domain.config_schema import config_schema
from ...domain.errors import ErrorDetail, ValidationError

TOOLS_ENV = "RUNKIT_AGENT_TOOLS"
DEFAULT_TOOLS = ("web_search", "fetch_page", "http_request", "duckdb_transform")
#: How a setting that allows nothing else is named in messages.
HOW_TO_ALLOW = (
    f"set {TOOLS_ENV} (comma-separated kind names) or call "
    "runkit.kinds.llm.agent_tools.configure_agents(...)"
)
_NOT_A_FUNCTION_CHAR = re.compile(r"[^a-zA-Z0-9_-]")


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):  # one name given bare: never split into characters
        return (value,)
    return tuple(value)


def _kinds(_: Any, attribute: attrs.Attribute[Any], value: tuple[Kind, ...]) -> None:
    for kind in value:
        if not isinstance(kind, Kind):
            raise TypeError(f"{attribute.name} holds runkit.Kind objects, not {kind!r}")


@attrs.frozen
class AgentSettings:
    """``tools``: the names of the kinds agents may call. ``kinds``: kinds of the host's own
    that agents may call too (allowed without being named in ``tools``): their ``config``
    gives the schema the model sees. ``result_chars``: how much of each tool run's result
    (its JSON) the model is shown; longer ones are cut there, saying so."""

    tools: tuple[str, ...] = attrs.field(default=DEFAULT_TOOLS, converter=_names)
    kinds: tuple[Kind, ...] = attrs.field(default=(), converter=tuple, validator=_kinds)
    result_chars: int = attrs.field(
        default=20_000, validator=[attrs.validators.ge(200), attrs.validators.le(1_000_000)]
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AgentSettings:
        """The settings ``RUNKIT_AGENT_TOOLS`` describes (unset or blank: the defaults)."""
        env = os.environ if environ is None else environ
        raw = env.get(TOOLS_ENV, "").strip()
        if not raw:
            return cls()
        return cls(tools=tuple(n.strip() for n in raw.split(",") if n.strip()))

    @property
    def allowed(self) -> tuple[str, ...]:
        """Every kind name agents may call, in order, without repeats."""
        names = (*self.tools, *(k.name for k in self.kinds))
        return tuple(dict.fromkeys(names))


_configured: AgentSettings | None = None
_lock = threading.Lock()


def configure_agents(settings: AgentSettings | None) -> None:
    """Use ``settings`` for every agent of this process from now on; None goes back to
    reading ``RUNKIT_AGENT_TOOLS`` at each use."""
    global _configured
    if settings is not None and not isinstance(settings, AgentSettings):
        raise TypeError(f"configure_agents takes AgentSettings or None, not {settings!r}")
    with _lock:
        _configured = settings


def current_agent_settings() -> AgentSettings:
    configured = _configured
    return configured if configured is not None else AgentSettings.from_env()


def _builtin_kinds() -> dict[str, Kind]:
    """runkit's own kinds that make sense as tools, by name. Imported here, not at the top:
    each package registers its kinds without needing the others."""
    from .. import data, web
    from . import explain_schema, generate_query

    kinds = (*web.KINDS, *data.KINDS, explain_schema.KIND, generate_query.KIND)
    return {kind.name: kind for kind in kinds}


def tool_kind(name: str, settings: AgentSettings | None = None) -> Kind | None:
    """The kind object whose config describes tool ``name`` (the host's first), or None."""
    settings = settings or current_agent_settings()
    for kind in settings.kinds:
        if kind.name == name:
            return kind
    return _builtin_kinds().get(name)


def function_name(kind_name: str) -> str:
    """The name the model calls kind ``kind_name`` by: OpenAI's function names allow
    letters, digits, ``_`` and ``-`` only (a kind name may hold dots: ``acme.deploy`` is
    ``acme_deploy``)."""
    return _NOT_A_FUNCTION_CHAR.sub("_", kind_name)


def tool_definition(kind: Kind) -> dict[str, Any]:
    """Kind ``kind`` as an OpenAI function tool: its description, and the JSON Schema of its
    definition as the parameters."""
    parameters = config_schema(kind.config) if kind.config is not None else {"type": "object"}
    description = kind.description or kind.display_name or f"Starts a {kind.name} run."
    return {
        "type": "function",
        "function": {
            "name": function_name(kind.name),
            "description": description,
            "parameters": parameters,
        },
    }


@attrs.frozen
class Toolbox:
    """The tools one run offers: their definitions for the model, and which kind each
    function name starts."""

    definitions: tuple[Mapping[str, Any], ...]
    kinds: Mapping[str, str]  # function name -> kind name

    def __len__(self) -> int:
        return len(self.kinds)


def toolbox(
    names: Sequence[str], settings: AgentSettings | None = None
) -> tuple[Toolbox, list[str]]:
    """The tools ``names`` (a definition's) as allowed now, and the names left out because
    they no longer are (the settings changed since the run was created)."""
    settings = settings or current_agent_settings()
    allowed = set(settings.allowed)
    definitions: list[Mapping[str, Any]] = []
    kinds: dict[str, str] = {}
    missing: list[str] = []
    for name in names:
        kind = tool_kind(name, settings) if name in allowed else None
        if kind is None:
            missing.append(name)
            continue
        definitions.append(tool_definition(kind))
        kinds[function_name(name)] = name
    return Toolbox(tuple(definitions), kinds), missing


def check_tools(
    names: Sequence[str], loc: Sequence[str | int], checks: KindChecks
) -> list[ErrorDetail]:
    """The create-time problems of a definition's ``tools`` (each at ``(*loc, i)``): a kind
    the host does not allow for agents, one this Runkit has not registered, a repeat."""
    settings = current_agent_settings()
    allowed = settings.allowed
    errors: list[ErrorDetail] = []
    functions: dict[str, str] = {}
    for i, name in enumerate(names):
        where = (*loc, i)
        function = function_name(name)
        if name not in allowed:
            shown = ", ".join(allowed) or "none"
            errors.append(
                ErrorDetail(
                    where,
                    f"kind {name!r} is not allowed for agents (allowed: {shown}); {HOW_TO_ALLOW}",
                    "not_allowed",
                )
            )
        elif not _registered(checks, name, where):
            errors.append(ErrorDetail(where, f"no kind {name!r} is registered", "enum"))
        elif tool_kind(name, settings) is None:
            errors.append(
                ErrorDetail(
                    where,
                    f"kind {name!r} is allowed, but its schema is unknown: give its Kind in "
                    "AgentSettings.kinds",
                    "not_allowed",
                )
            )
        elif function in functions:
            taken = functions[function]
            why = "is named twice" if taken == name else f"and {taken!r} are both {function!r}"
            errors.append(ErrorDetail(where, f"tool {name!r} {why}", "duplicate"))
        functions.setdefault(function, name)
    return errors


def _registered(checks: KindChecks, name: str, where: tuple[str | int, ...]) -> bool:
    """Whether this Runkit has kind ``name``: its checks refuse an unknown kind at
    ``(*where, "kind")``; any other complaint is about the empty definition, not the kind."""
    try:
        checks.validate(name, {}, where)
    except ValidationError as exc:
        return not any(tuple(d.loc) == (*where, "kind") for d in exc.details)
    return True
