"""create_flashboard's question path through runkit's language-model layer
(:mod:`runkit.kinds.llm`), against the scripted OpenAI-compatible fake of ``llm_fake``
served on 127.0.0.1: the prompt holds the question and the tables, an answer the checks
refuse is sent back once with the reason, a second bad answer is ``ModelOutputInvalid``,
and a host with no model configured gets a 422 at ``question``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from flashboard_support import (  # noqa: F401 (the fixtures root and rk)
    DATABASE,
    KIND,
    QUERIES,
    rk_fixture,
    root_fixture,
    run,
    succeeded,
)
from llm_fake import FakeLlm, serving_llm, text
from runkit import Runkit, Status, ValidationError
from runkit.kinds.llm import LlmSettings, configure_llm

pytestmark = pytest.mark.anyio
QUESTION = "How did sales go this year, and in which region?"


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLlm]:
    for name in ("BASE_URL", "API_KEY", "MODEL"):
        monkeypatch.delenv(f"RUNKIT_LLM_{name}", raising=False)
    with serving_llm() as server:
        configure_llm(LlmSettings(base_url=server.base_url, model="fake-model", max_retries=0))
        yield server
    configure_llm(None)


def answer(*queries: dict[str, Any]) -> str:
    return json.dumps({"queries": list(queries)})


async def test_the_model_writes_the_queries(rk: Runkit, model: FakeLlm) -> None:
    model.script(text(answer(*QUERIES[1:4]), pieces=5))
    definition = {"title": "This year", "database": DATABASE, "question": QUESTION}
    result = await succeeded(rk, definition)
    assert result["question"] == QUESTION
    assert [c["type"] for c in result["charts"]] == ["line", "area", "bar"]
    (request,) = model.chat_requests
    system, user = request.messages[:2]
    assert system["role"] == "system" and "DuckDB SQL" in system["content"]
    assert QUESTION in user["content"]
    assert '- orders (about 360 rows): "id" INTEGER' in user["content"]


async def test_a_refused_answer_is_sent_back_once(rk: Runkit, model: FakeLlm) -> None:
    drop = {"title": "Oops", "sql": "DROP TABLE orders"}
    model.script(text(answer(drop)), text(answer(QUERIES[0])))
    result = await succeeded(rk, {"title": "t", "database": DATABASE, "question": QUESTION})
    assert [c["type"] for c in result["charts"]] == ["number"]
    retry = model.chat_requests[1].messages[-1]["content"]
    assert "a query (SELECT, FROM, WITH, VALUES) is needed, not a DROP" in retry
    # Twice refused: the run fails, and says so.
    model.script(text(answer(drop)), text("no JSON here"))
    done = await run(rk, {"title": "t", "database": DATABASE, "question": QUESTION})
    assert done.status == Status.FAILED and done.error is not None
    assert done.error["type"] == "ModelOutputInvalid"


async def test_no_model_configured_is_a_422_at_the_question(
    rk: Runkit, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BASE_URL", "API_KEY", "MODEL"):
        monkeypatch.delenv(f"RUNKIT_LLM_{name}", raising=False)
    configure_llm(LlmSettings())
    try:
        with pytest.raises(ValidationError) as info:
            await rk.create(KIND, {"title": "t", "database": DATABASE, "question": QUESTION})
    finally:
        configure_llm(None)
    (detail,) = info.value.details
    assert detail.loc == ("definition", "question") and detail.type == "not_configured"
    assert "RUNKIT_LLM_BASE_URL" in detail.msg
