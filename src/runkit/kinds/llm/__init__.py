"""Kinds that ask a language model: ``explain_schema`` and ``generate_query``, and what every
such kind shares. runkit bundles no model: it talks to any server that speaks the
OpenAI-compatible chat completions API, or to a provider a plugin supplies.

Registered like any plugin, through ``runkit_register_kinds``. Importing this package needs
none of the optional libraries (``openai`` from ``runkit[llm]``, ``duckdb``): without them,
or with no model configured, the kinds are listed and creating a run is a 422 that says
what to install or set.

**The host** configures the model with ``RUNKIT_LLM_BASE_URL``, ``RUNKIT_LLM_API_KEY`` and
``RUNKIT_LLM_MODEL`` (read at each check) or, from Python, once for the process::

    from runkit.kinds.llm import LlmSettings, configure_llm

    configure_llm(LlmSettings(base_url="http://127.0.0.1:8080", model="qwen2.5-7b-instruct"))

or registers another provider (:class:`LlmProvider`) with :func:`register_llm_provider`.
The base URL is the host's, never a definition's: the web kinds' outbound guard does not
apply to it (a model on this machine or the local network works as is).

**A kind author** asks the model through :class:`Llm`, made once per execution::

    from runkit.kinds.llm import Llm, ModelOptions, check_configured

    async def execute(ctx):
        llm = Llm(ctx, ModelOptions.of(ctx.definition))  # LlmNotConfigured if unset
        reply = await llm.chat(messages, tools=tools)     # ChatReply: content, tool_calls
        answer = await llm.complete_json(messages, validate)  # checked JSON, one retry
        return {..., "usage": llm.usage.to_json()}

or, for one question, ``await complete_json(ctx, system=..., prompt=..., schema=...,
validate=..., llm=llm)`` (and :func:`problem`: None when a model is configured, else the
422's text). It gives its ``Kind`` a ``check`` that calls :func:`check_configured`, and its
config the ``model``, ``temperature`` and ``maxTokens`` fields (:mod:`.options`). The
retries on 429 and 5xx, the summed usage, the transcript in the run's log, the masking of
the key and the cancel that closes the stream at once come with :class:`Llm`.

Modules: :mod:`.settings` (LlmSettings), :mod:`.providers` (the provider protocol, its
requests and replies, which provider is used), :mod:`.openai_compat` (the built-in
provider), :mod:`.client` (Llm), :mod:`.transcript` (the log entries), :mod:`.errors`,
:mod:`.options`; the kinds' own: :mod:`.schema_source` (DuckDB, read-only),
:mod:`.explain_schema`, :mod:`.generate_query`.
"""

from __future__ import annotations

from collections.abc import Callable

from ...authoring import Kind, hookimpl
from . import explain_schema, generate_query
from .client import JsonAnswer, Llm, complete_json, parse_json, problem
from .errors import (
    LlmNotConfigured,
    ModelOutputInvalid,
    ModelRequestFailed,
    ModelUnavailable,
    OutputRejected,
    ProviderError,
)
from .openai_compat import OpenAICompatible
from .options import MAX_TOKENS, MODEL, TEMPERATURE, ModelOptions, check_configured
from .providers import (
    ChatReply,
    ChatRequest,
    LlmProvider,
    ToolCall,
    Usage,
    register_llm_provider,
    unregister_llm_provider,
)
from .settings import LlmSettings, configure_llm, current_settings

KINDS = (explain_schema.KIND, generate_query.KIND)

__all__ = [
    "KINDS",
    "MAX_TOKENS",
    "MODEL",
    "TEMPERATURE",
    "ChatReply",
    "ChatRequest",
    "JsonAnswer",
    "Llm",
    "LlmNotConfigured",
    "LlmProvider",
    "LlmSettings",
    "ModelOptions",
    "ModelOutputInvalid",
    "ModelRequestFailed",
    "ModelUnavailable",
    "OpenAICompatible",
    "OutputRejected",
    "ProviderError",
    "ToolCall",
    "Usage",
    "check_configured",
    "complete_json",
    "configure_llm",
    "current_settings",
    "parse_json",
    "problem",
    "register_llm_provider",
    "unregister_llm_provider",
]


@hookimpl
def runkit_register_kinds(register: Callable[[Kind], None]) -> None:
    for kind in KINDS:
        register(kind)
