"""Built-in kinds. They register through the same ``runkit_register_kinds`` hook as
third-party plugins, always: ``approval_gate``; the web kinds (``http_request``,
``fetch_page``, ``web_search``: :mod:`runkit.kinds.web`); the kinds that compose runs
(``conditional_branch``, ``call_automation``: :mod:`runkit.kinds.compose`); the data kinds
(``duckdb_transform``, ``file_sync``, ``dlt_extract``: :mod:`runkit.kinds.data`); the kinds
that ask a language model (``explain_schema``, ``generate_query``: :mod:`runkit.kinds.llm`;
``call_agent``, ``agent_search``, ``agent_fetch_page``: :mod:`runkit.kinds.llm.agents`); and
``create_flashboard`` (:mod:`runkit.kinds.flashboard`). The test kinds (``noop``, ``sleep``,
``fail_n_times``, ``emit_logs``) only when ``RUNKIT_ENABLE_TEST_KINDS=1`` is set when a
Runkit's plugin manager is built."""

from __future__ import annotations

import os

TEST_KINDS_ENV = "RUNKIT_ENABLE_TEST_KINDS"


def test_kinds_enabled() -> bool:
    return os.environ.get(TEST_KINDS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def builtin_plugins() -> list[object]:
    """The built-in plugins (modules with hook implementations), read from the environment
    now: each Runkit built later sees the setting of its own construction."""
    from . import approval_gate, compose, data, flashboard, llm, web
    from .llm import agents

    plugins: list[object] = [approval_gate, web, compose, data, llm, agents, flashboard]
    if test_kinds_enabled():
        from . import testing

        plugins.append(testing)
    return plugins
