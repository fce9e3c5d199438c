"""``agent_fetch_page``: a web page read by a language model, which extracts what an
instruction asks, as text or as JSON valid against a JSON Schema.

The page is read as ``fetch_page`` reads it (through the outbound guard, as markdown:
:mod:`runkit.kinds.web.page`); the model sees the instruction and up to
:data:`PAGE_CHARS` characters of it. With a ``schema``, the answer must be JSON valid
against it (checked with jsonschema): an answer that is not is shown to the model with the
validation errors and asked once more, and a second failure is
:class:`~.errors.ModelOutputInvalid`. An invalid schema is a 422 at create time, and so is
one that refers to anything but itself: jsonschema downloads what a ``$ref`` names by URL,
which would be a request past the outbound guard; the answer is checked with a registry
that downloads nothing.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from ...authoring import Kind, KindChecks, RetryPolicy, RunContext, not_blank
from ...domain.errors import ErrorDetail, ValidationError
from ..web.common import HTTP_MODULES, PAGE_MODULES, check_url, require_extra
from .client import Llm, schema_checker
from .options import MAX_TOKENS, MODEL, TEMPERATURE, ModelOptions, check_configured
from .transcript import cut

MAX_INSTRUCTION = 4000
MAX_SCHEMA_CHARS = 100_000
#: How much of the page (as markdown) the model reads.
PAGE_CHARS = 30_000
PAGE_BYTES = 5 * 1024 * 1024
PAGE_TIMEOUT = 30.0
REF_KEYS = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})

SYSTEM_TEXT = (
    "You read a web page and do what the user's instruction asks, using only what the page "
    "says. Answer in plain text, without preamble."
)
SYSTEM_JSON = (
    "You read a web page and extract what the user's instruction asks, using only what the "
    "page says. Reply with only a JSON value valid against this JSON Schema, no other "
    "text:\n```json\n{schema}\n```"
)


@attrs.frozen
class AgentFetchPageConfig:
    """``{url, instruction, schema, model, temperature, maxTokens}``: ``url`` (http or https,
    through the outbound guard) and ``instruction`` (what to extract, up to 4,000
    characters) are required. ``schema``: a JSON Schema the answer must be valid against
    (the result's ``data``); null: the answer is text (the result's ``text``)."""

    url: str = attrs.field(validator=check_url)
    instruction: str = attrs.field(
        validator=attrs.validators.and_(
            attrs.validators.min_len(1), attrs.validators.max_len(MAX_INSTRUCTION), not_blank
        )
    )
    schema: dict[str, Any] | None = None
    model: str | None = attrs.field(default=None, validator=MODEL)
    temperature: float | None = attrs.field(default=None, validator=TEMPERATURE)
    max_tokens: int | None = attrs.field(default=None, validator=MAX_TOKENS)

    def __attrs_post_init__(self) -> None:
        require_extra("agent_fetch_page", HTTP_MODULES + PAGE_MODULES)


def _refs(value: Any) -> Iterator[str]:
    """Every reference in a schema (``$ref``, ``$dynamicRef``, ``$recursiveRef``)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in REF_KEYS and isinstance(item, str):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """What is wrong with ``schema`` as a JSON Schema (None: nothing). It may refer only to
    itself: jsonschema would download a schema another URL names, past the outbound guard."""
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        return f"the schema is longer than {MAX_SCHEMA_CHARS} characters as JSON"
    try:
        # Imported by name: typed as Any, so mypy needs no stubs for an optional library.
        jsonschema = importlib.import_module("jsonschema")
    except ImportError:
        return "a schema needs jsonschema: pip install 'runkit[llm]'"
    if "$schema" in schema and jsonschema.validators.validator_for(schema, None) is None:
        return f"unknown $schema {schema['$schema']!r}: name a JSON Schema draft, or none"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"not a valid JSON Schema: {exc.message}" + (f" (at {where})" if where else "")
    outside = sorted({ref for ref in _refs(schema) if not ref.startswith("#")})
    if outside:
        return f"the schema refers to {outside[0]!r}: it may refer only to itself (#...)"
    return None


def check(config: AgentFetchPageConfig, checks: KindChecks) -> None:
    errors: list[ErrorDetail] = []
    try:
        check_configured(config)
    except ValidationError as exc:
        errors.extend(exc.details)
    if config.schema is not None:
        why = schema_problem(config.schema)
        if why is not None:
            errors.append(ErrorDetail(("definition", "schema"), why, "invalid_schema"))
    if errors:
        raise ValidationError(errors)


async def execute(ctx: RunContext) -> dict[str, Any]:
    from ..web.exchange import Outbound
    from ..web.page import read_page

    config: AgentFetchPageConfig = ctx.definition
    llm = Llm(ctx, ModelOptions.of(config))
    page = await read_page(
        Outbound(ctx), config.url, fmt="markdown", max_bytes=PAGE_BYTES, timeout=PAGE_TIMEOUT
    )
    content, truncated = cut(page.content.strip(), PAGE_CHARS)
    await ctx.log(
        "info",
        f"read {page.final_url}: {len(page.content)} characters"
        + (f", the model reads the first {PAGE_CHARS}" if truncated else ""),
        data={"chars": len(page.content), "truncated": truncated},
    )
    title = f" ({page.title})" if page.title else ""
    question = (
        f"Instruction: {config.instruction}\n\n"
        f"The page {page.final_url}{title}:\n\n{content}\n\n"
        f"Instruction, again: {config.instruction}"
    )
    result: dict[str, Any] = {"url": page.url, "finalUrl": page.final_url, "title": page.title}
    if config.schema is not None:
        system = SYSTEM_JSON.format(schema=json.dumps(config.schema, indent=2))
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        check_answer = schema_checker(config.schema)
        answer = await llm.complete_json(messages, check_answer, purpose="extract as JSON")
        result["data"] = answer.value
    else:
        messages = [
            {"role": "system", "content": SYSTEM_TEXT},
            {"role": "user", "content": question},
        ]
        reply = await llm.chat(messages, purpose="extract")
        result["text"] = reply.content.strip()
    result["usage"] = llm.usage.to_json()
    return result


def describe_progress(progress: Mapping[str, Any]) -> str | None:
    phase = progress.get("phase")
    if phase in ("requesting", "reading"):  # the request's own progress
        return f"reading {progress.get('url')}"
    if phase == "model":
        return f"asking the model (call {progress.get('call')})"
    return None


KIND = Kind(
    name="agent_fetch_page",
    executor=execute,
    config=AgentFetchPageConfig,
    display_name="Read a page with a model",
    description=(
        "Downloads a web page and has a language model extract what an instruction asks, "
        "as text or as JSON valid against a JSON Schema."
    ),
    cancellable=True,
    retry=RetryPolicy(max_attempts=2, backoff_base=2.0, backoff_max=60.0),
    timeout_seconds=600.0,
    describe_progress=describe_progress,
    check=check,
    example={
        "url": "https://www.postgresql.org/docs/release/17.2/",
        "instruction": "List the security fixes, each with its CVE number.",
        "schema": {
            "type": "object",
            "properties": {
                "fixes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"cve": {"type": "string"}, "summary": {"type": "string"}},
                        "required": ["cve", "summary"],
                    },
                }
            },
            "required": ["fixes"],
        },
    },
)
