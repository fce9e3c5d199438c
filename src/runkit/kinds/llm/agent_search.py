"""``agent_search``: a question answered by a language model from web pages, with citations.

It searches with the host's ``web_search`` provider, reads the best hits (``maxSources``
pages, through the outbound guard, as ``fetch_page`` reads them; a hit that cannot be read
is skipped for the next), numbers them, and asks the model for an answer that cites every
claim's source by its number (``[1]``, ``[2][3]``). An answer that cites no source, or a
number with no source, is shown to the model with the error and asked once more; a second
failure is :class:`~.errors.ModelOutputInvalid`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ...authoring import Fatal, Kind, KindChecks, Retryable, RetryPolicy, RunContext, not_blank
from ...domain.errors import ErrorDetail, ValidationError
from ..web.common import HTTP_MODULES, PAGE_MODULES, require_extra
from .client import Llm
from .errors import ModelOutputInvalid, OutputRejected
from .options import MAX_TOKENS, MODEL, TEMPERATURE, ModelOptions, check_configured
from .transcript import cut

if TYPE_CHECKING:
    from ..web.exchange import Outbound
    from ..web.page import FetchedPage
    from ..web.search import SearchHit

MAX_QUESTION = 2000  # a search query's limit (web_search's)
MAX_SOURCES = 10
#: How much of each page the model reads.
SOURCE_CHARS = 8000
PAGE_BYTES = 2 * 1024 * 1024
PAGE_TIMEOUT = 20.0
_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")

SYSTEM = (
    "You answer questions from numbered web sources. Use only what the sources say. Cite "
    "the source of every claim with its number in square brackets right after the claim, "
    "like [1] or [2][3]. If the sources do not answer the question, say so, citing the "
    "sources you read."
)
FIX = (
    "Your answer could not be used: {error}\n"
    "Answer again, the whole answer, citing every claim's source by its number in square "
    "brackets ([1] to [{count}])."
)


@attrs.frozen
class AgentSearchConfig:
    """``{question, maxSources, model, temperature, maxTokens}``: ``question`` (searched as
    written, up to 2,000 characters) is required. ``maxSources``: how many pages are read
    and numbered as sources (1 to 10)."""

    question: str = attrs.field(
        validator=attrs.validators.and_(
            attrs.validators.min_len(1), attrs.validators.max_len(MAX_QUESTION), not_blank
        )
    )
    max_sources: int = attrs.field(
        default=3, validator=[attrs.validators.ge(1), attrs.validators.le(MAX_SOURCES)]
    )
    model: str | None = attrs.field(default=None, validator=MODEL)
    temperature: float | None = attrs.field(default=None, validator=TEMPERATURE)
    max_tokens: int | None = attrs.field(default=None, validator=MAX_TOKENS)

    def __attrs_post_init__(self) -> None:
        require_extra("agent_search", HTTP_MODULES + PAGE_MODULES)


class NoSources(Fatal):
    """The search found nothing, or none of its results could be read."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


def check(config: AgentSearchConfig, checks: KindChecks) -> None:
    from ..web.search import select_provider

    errors: list[ErrorDetail] = []
    try:
        check_configured(config)
    except ValidationError as exc:
        errors.extend(exc.details)
    try:
        select_provider()
    except ValueError as exc:
        errors.append(ErrorDetail(("definition",), str(exc), "search_not_configured"))
    if errors:
        raise ValidationError(errors)


# ------------------------------------------------------------------ citations --------------
def citations(answer: str, count: int) -> list[int]:
    """The source numbers ``answer`` cites, in order, without repeats; OutputRejected when
    it cites none, or a number that is no source's (the sources are 1 to ``count``)."""
    if not answer.strip():
        raise OutputRejected("the answer is empty")
    cited = [int(n) for m in _MARKER.finditer(answer) for n in re.split(r"\s*,\s*", m[1])]
    if not cited:
        raise OutputRejected(
            "it cites no source: put the number of each claim's source in square brackets, "
            f"[1] to [{count}]"
        )
    unknown = sorted({n for n in cited if not 1 <= n <= count})
    if unknown:
        shown = ", ".join(f"[{n}]" for n in unknown)
        raise OutputRejected(f"it cites {shown}, but the sources are numbered [1] to [{count}]")
    return list(dict.fromkeys(cited))


async def cited_answer(
    ctx: RunContext, llm: Llm, messages: Sequence[Mapping[str, Any]], count: int
) -> str:
    """The model's answer to ``messages``, its citations checked; asked once more after an
    answer that fails the check, showing it why."""
    conversation = list(messages)
    error = ""
    for attempt in (1, 2):
        purpose = "answer with citations" + (", corrected" if attempt == 2 else "")
        reply = await llm.chat(conversation, purpose=purpose)
        try:
            citations(reply.content, count)
            return reply.content.strip()
        except OutputRejected as exc:
            error = llm.mask(str(exc))
        if attempt == 1:
            await ctx.log(
                "warning",
                f"the answer is not usable: {error}; asking again",
                event="llm.invalid",
                data={"call": llm.usage.calls},
            )
            fix = FIX.format(error=error, count=count)
            conversation += [reply.to_message(), {"role": "user", "content": fix}]
    answer, _ = cut(llm.mask(reply.content), 1000)
    raise ModelOutputInvalid(
        f"the model's answer was not usable, even after it was shown why: {error}",
        answer=answer,
        usage=llm.usage.to_log(),
    )


# ------------------------------------------------------------------ sources ----------------
async def read_source(ctx: RunContext, outbound: Outbound, hit: SearchHit) -> FetchedPage | None:
    """The page of ``hit``, or None (logged) when it cannot be read or has no content."""
    from ..web.display import redact_url
    from ..web.page import read_page

    try:
        page = await read_page(outbound, hit.url, max_bytes=PAGE_BYTES, timeout=PAGE_TIMEOUT)
    except (Fatal, Retryable) as exc:
        why = f"{type(exc).__name__}: {exc}"
    else:
        if page.content.strip():
            return page
        why = "no content"
    url = redact_url(hit.url)
    await ctx.log(
        "warning", f"source skipped: {url}: {why}", event="agent.source_skipped", data={"url": url}
    )
    return None


async def _into(
    pages: list[FetchedPage | None], i: int, ctx: RunContext, outbound: Outbound, hit: SearchHit
) -> None:
    pages[i] = await read_source(ctx, outbound, hit)


async def read_best(
    ctx: RunContext, outbound: Outbound, hits: Sequence[SearchHit], wanted: int
) -> list[tuple[SearchHit, FetchedPage]]:
    """Up to ``wanted`` pages of ``hits``, in the hits' order: each round reads the next
    hits at once, as many as are still missing; one that fails is skipped (and logged)."""
    candidates: list[SearchHit] = []
    for hit in hits:
        if all(hit.url != other.url for other in candidates):
            candidates.append(hit)
    read: list[tuple[SearchHit, FetchedPage]] = []
    position = 0
    while len(read) < wanted and position < len(candidates):
        batch = candidates[position : position + wanted - len(read)]
        position += len(batch)
        pages: list[FetchedPage | None] = [None] * len(batch)
        await ctx.progress({"phase": "sources", "pages": len(batch)})
        async with anyio.create_task_group() as group:
            for i, hit in enumerate(batch):
                group.start_soon(_into, pages, i, ctx, outbound, hit)
        read.extend((hit, page) for hit, page in zip(batch, pages, strict=True) if page)
    return read


def prompt(question: str, sources: Sequence[tuple[SearchHit, FetchedPage]]) -> str:
    parts = [f"Question: {question}", "Sources:"]
    for n, (hit, page) in enumerate(sources, 1):
        content, _ = cut(page.content.strip(), SOURCE_CHARS)
        title = page.title or hit.title or page.final_url
        parts.append(f"[{n}] {title}\n{page.final_url}\n\n{content}")
    return "\n\n".join(parts)


async def execute(ctx: RunContext) -> dict[str, Any]:
    from ..web.exchange import Outbound
    from ..web.search import select_provider

    config: AgentSearchConfig = ctx.definition
    llm = Llm(ctx, ModelOptions.of(config))
    try:
        provider = select_provider()
    except ValueError as exc:
        raise NoSources(f"no search provider: {exc}") from None
    outbound = Outbound(ctx)
    await ctx.progress({"phase": "searching"})
    wanted = config.max_sources
    hits = await provider.search(config.question, min(50, wanted * 2 + 3), outbound)
    await ctx.log(
        "info",
        f"{provider.name}: {len(hits)} result{'s' if len(hits) != 1 else ''}",
        data={"provider": provider.name, "results": len(hits)},
    )
    if not hits:
        raise NoSources(f"the search found nothing for {config.question!r}")
    sources = await read_best(ctx, outbound, hits, wanted)
    if not sources:
        raise NoSources(f"none of the {len(hits)} results could be read", results=len(hits))
    await ctx.log(
        "info",
        f"read {len(sources)} source{'s' if len(sources) != 1 else ''}",
        event="agent.sources",
        data={"sources": [page.final_url for _, page in sources]},
    )
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": prompt(config.question, sources)},
    ]
    answer = await cited_answer(ctx, llm, messages, len(sources))
    return {
        "answer": answer,
        "sources": [
            {"url": page.final_url, "title": page.title or hit.title or None}
            for hit, page in sources
        ],
        "usage": llm.usage.to_json(),
    }


def describe_progress(progress: Mapping[str, Any]) -> str | None:
    phase = progress.get("phase")
    if phase == "searching":
        return "searching the web"
    if phase == "sources":
        pages = progress.get("pages")
        return f"reading {pages} page{'s' if pages != 1 else ''}"
    if phase in ("requesting", "reading"):  # the requests' own progress
        return f"reading {progress.get('url')}"
    if phase == "model":
        return f"asking the model (call {progress.get('call')})"
    return None


KIND = Kind(
    name="agent_search",
    executor=execute,
    config=AgentSearchConfig,
    display_name="Search and answer",
    description=(
        "Searches the web, reads the best results, and has a language model answer the "
        "question from them, citing its sources by number."
    ),
    cancellable=True,
    # A search or a page that failed for a while (429, 5xx) is worth another attempt.
    retry=RetryPolicy(max_attempts=2, backoff_base=2.0, backoff_max=60.0),
    timeout_seconds=900.0,
    describe_progress=describe_progress,
    check=check,
    example={"question": "Which PostgreSQL version added MERGE?", "maxSources": 3},
)
