"""The run page: its buttons (what the status allows and the caller may do), fields,
progress, timeline, tree, approvals, the first page of its log, and the live summary; and
the approvals page."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from selectolax.lexbor import LexborHTMLParser
from ui_support import (  # noqa: F401 (the fixtures runkit, app and client)
    app_fixture,
    claim,
    client_fixture,
    key,
    make,
    page,
    runkit_fixture,
)

from runkit import NewLogEntry, Principal, Run, Runkit
from runkit_contrib.ui.render import duration

pytestmark = pytest.mark.anyio


def buttons(html: LexborHTMLParser) -> list[str]:
    return [b.attributes["data-action"] or "" for b in html.css("#run button[data-action]")]


async def shown(client: httpx.AsyncClient, run: Run, who: str = "admin") -> list[str]:
    return buttons(page(await client.get(f"/ui/runs/{run.id}", headers=key(who))))


async def in_status(runkit: Runkit, status: str, kind: str = "noop") -> Run:
    """A run of ``kind`` brought to ``status`` the way a worker would."""
    definition = {"seconds": 5} if kind == "sleep" else {}
    run = await make(runkit, kind, definition)
    if status == "pending":
        return run
    if status == "queued":
        return await runkit.execute(run.id)
    if status == "paused":
        await runkit.execute(run.id)
        return await runkit.pause(run.id)
    if status == "cancelled":
        return await runkit.cancel(run.id)
    lease = await claim(runkit, run)
    if status == "running":
        return await runkit.get(run.id)
    if status == "awaiting_approval":
        return await runkit.ops.park(lease, timeout=None)
    if status == "succeeded":
        return await runkit.ops.complete(lease, {"ok": True})
    if status == "failed":
        return await runkit.ops.fail(lease, {"type": "Boom", "message": "it broke"})
    raise AssertionError(status)


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        ("pending", "noop", ["execute", "cancel", "delete"]),
        ("queued", "noop", ["pause", "cancel"]),
        ("running", "noop", ["cancel"]),  # noop cannot pause: Runkit.pause refuses it
        ("running", "sleep", ["pause", "cancel"]),
        ("paused", "noop", ["resume", "cancel"]),
        ("awaiting_approval", "gate", ["pause", "approve", "reject", "cancel"]),
        ("succeeded", "noop", ["delete"]),
        ("failed", "noop", ["retry", "delete"]),
        ("cancelled", "noop", ["retry", "delete"]),
    ],
)
async def test_buttons_are_what_the_status_allows(
    client: httpx.AsyncClient, runkit: Runkit, status: str, kind: str, expected: list[str]
) -> None:
    run = await in_status(runkit, status, kind)
    assert run.status.value == status
    assert await shown(client, run) == expected
    # The API agrees: an action the page does not offer is refused with the same list.
    hidden = next(a for a in ("pause", "execute", "resume", "retry") if a not in expected)
    refused = await client.post(f"/api/v1/action-runs/{run.id}/{hidden}", headers=key("admin"))
    assert refused.status_code == 409, refused.text
    assert set(refused.json()["allowed"]) == set(expected)


@pytest.mark.parametrize(
    ("who", "status", "kind", "expected"),
    [
        ("read", "pending", "noop", []),
        ("read", "awaiting_approval", "gate", []),
        ("read", "failed", "noop", []),
        ("operate", "pending", "noop", ["execute", "cancel"]),
        ("operate", "failed", "noop", ["retry"]),
        ("operate", "awaiting_approval", "gate", ["pause", "cancel"]),
        ("approve", "awaiting_approval", "gate", ["approve", "reject"]),
        ("approve", "pending", "noop", []),
    ],
)
async def test_buttons_are_what_the_role_allows(
    client: httpx.AsyncClient, runkit: Runkit, who: str, status: str, kind: str, expected: list[str]
) -> None:
    run = await in_status(runkit, status, kind)
    html = page(await client.get(f"/ui/runs/{run.id}", headers=key(who)))
    assert buttons(html) == expected
    assert (html.css_first("textarea#decision-reason") is not None) == ("approve" in expected)


async def test_the_host_hook_narrows_the_buttons(runkit: Runkit) -> None:
    from ui_support import build_app

    def authorize(principal: object, action: str, run: object) -> bool:
        return action != "delete"

    app = build_app(runkit, authorize=authorize)
    run = await make(runkit, "noop")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert await shown(client, run) == ["execute", "cancel"]


async def test_every_field_of_the_run_is_on_its_page(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    made = await client.post(
        "/api/v1/action-runs",
        json={
            "kind": "deploy",
            "definition": {"service": "billing"},
            "idempotencyKey": "idem-1",
            "concurrencyKey": "conc-1",
            "actionId": "act-1",
        },
        headers=key("admin"),
    )
    wire = made.json()
    html = page(await client.get(f"/ui/runs/{wire['id']}", headers=key("admin")))
    keys = {f.attributes["data-field"] for f in html.css("#run-fields .field")}
    # Each field of the wire Run has its place: the field list, or a block of its own.
    own = {"definition": "pre#definition", "approvals": "#approval", "result": "pre#result"}
    own |= {"error": "pre#error"}
    assert set(wire) - keys <= set(own), set(wire) - keys - set(own)
    text = html.css_first("#run-fields").text()
    for value in ("idem-1", "conc-1", "act-1", "api_key", "admin-key", wire["createdAt"]):
        assert value in text, value
    status = html.css_first("#run-status")
    assert status.attributes["data-status"] == "pending" and status.text().strip() == "pending"
    assert "Pending" in html.css_first("#run-display-status").text()
    assert html.css_first("pre#result") is None and html.css_first("pre#error") is None


async def test_result_error_and_progress(client: httpx.AsyncClient, runkit: Runkit) -> None:
    done = await in_status(runkit, "succeeded")
    html = page(await client.get(f"/ui/runs/{done.id}", headers=key("admin")))
    assert '"ok": true' in html.css_first("pre#result").text()
    failed = await in_status(runkit, "failed")
    html = page(await client.get(f"/ui/runs/{failed.id}", headers=key("admin")))
    assert "it broke" in html.css_first("pre#error").text()
    going = await make(runkit, "sleep", {"seconds": 5})
    lease = await claim(runkit, going)
    await runkit.ops.set_progress(lease, {"done": 3, "total": 12, "phase": "copying"})
    html = page(await client.get(f"/ui/runs/{going.id}", headers=key("admin")))
    bar = html.css_first("progress#progress")
    assert (bar.attributes["value"], bar.attributes["max"]) == ("3.0", "12.0")
    assert "copying" in html.css_first("#progress-json").text()
    await runkit.ops.set_progress(lease, {"done": "three", "total": 12})
    html = page(await client.get(f"/ui/runs/{going.id}", headers=key("admin")))
    assert html.css_first("progress#progress") is None


async def test_timeline_is_the_audit_entries(client: httpx.AsyncClient, runkit: Runkit) -> None:
    run = await in_status(runkit, "succeeded")
    html = page(await client.get(f"/ui/runs/{run.id}", headers=key("admin")))
    moves = [
        (li.attributes["data-from"], li.attributes["data-to"])
        for li in html.css("ol#timeline > li")
    ]
    assert moves == [
        ("new", "pending"),
        ("pending", "queued"),
        ("queued", "running"),
        ("running", "succeeded"),
    ]
    assert html.css_first("#timeline-truncated") is None


async def test_a_long_log_truncates_the_timeline_and_pages_the_log(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    run = await make(runkit, "emit_logs", {"count": 1})
    lease = await claim(runkit, run)
    await runkit.ops.append_logs(
        lease, [NewLogEntry(f"line {i}", level="debug") for i in range(2100)]
    )
    await runkit.ops.complete(lease, {})
    html = page(await client.get(f"/ui/runs/{run.id}", headers=key("admin")))
    assert "2000" in html.css_first("#timeline-truncated").text()
    assert len(html.css("ol#timeline > li")) == 3  # the moves among the first 2000 entries
    entries = html.css("#logs .log-entry")
    assert len(entries) == 200
    ids = [e.attributes["data-id"] for e in entries]
    assert ids == [f"{str(run.id)[:8]}-{n}" for n in range(1, 201)]
    panel = html.css_first("#logs-panel")
    assert panel.attributes["data-more"] == "true"
    assert panel.attributes["data-next"] == ids[-1]
    assert panel.attributes["data-logs-url"] == f"/api/v1/action-runs/{run.id}/logs"


async def test_log_entries_and_controls(client: httpx.AsyncClient, runkit: Runkit) -> None:
    run = await make(runkit, "emit_logs", {"count": 1})
    lease = await claim(runkit, run)
    await runkit.ops.append_logs(
        lease, [NewLogEntry("<b>careful</b>", level="warning", data={"k": "<i>"})]
    )
    html = page(await client.get(f"/ui/runs/{run.id}", headers=key("read")))
    entries = html.css("#logs .log-entry")
    last = entries[-1]
    assert last.attributes["data-level"] == "warning"
    assert last.css_first(".log-level").text() == "warning"
    assert last.css_first(".log-message").text() == "<b>careful</b>"
    assert last.css_first(".log-time").attributes["datetime"]
    assert html.css_first("#logs b") is None and html.css_first("#logs i") is None
    levels = [o.attributes["value"] for o in html.css("select#log-level option")]
    assert levels == ["all", "debug", "info", "warning", "error"]
    follow = html.css_first("input#follow")
    assert follow.attributes["type"] == "checkbox" and "checked" in follow.attributes
    panel = html.css_first("#logs-panel")
    assert panel.attributes["data-more"] == "false"
    assert panel.attributes["data-stream-url"] == f"/api/v1/action-runs/{run.id}/logs/stream"


async def test_the_summary_refreshes_until_the_run_ends(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    run = await make(runkit, "sleep", {"seconds": 5})
    html = page(await client.get(f"/ui/runs/{run.id}", headers=key("admin")))
    summary = html.css_first("#run-summary")
    assert summary.attributes["hx-get"] == f"/ui/runs/{run.id}/summary"
    assert summary.attributes["hx-trigger"] == "every 2s"
    lease = await claim(runkit, run)
    fragment = page(await client.get(f"/ui/runs/{run.id}/summary", headers=key("admin")))
    assert fragment.css_first("#run-status").attributes["data-status"] == "running"
    assert fragment.css_first("#nav") is None  # a fragment, not a page
    await runkit.ops.complete(lease, {})
    fragment = page(await client.get(f"/ui/runs/{run.id}/summary", headers=key("admin")))
    summary = fragment.css_first("#run-summary")
    assert summary.attributes["data-terminal"] == "true"
    assert "hx-get" not in summary.attributes and "hx-trigger" not in summary.attributes


async def test_tree_links_parent_and_children(client: httpx.AsyncClient, runkit: Runkit) -> None:
    root = await make(runkit, "free", {})
    parent = await make(runkit, "free", {}, parent_action_run_id=root.id)
    children = [await make(runkit, "noop", parent_action_run_id=parent.id) for _ in range(3)]
    html = page(await client.get(f"/ui/runs/{parent.id}", headers=key("admin")))
    tree = html.css_first("#tree")
    assert tree.css_first("a.parent-link").attributes["href"] == f"/ui/runs/{root.id}"
    links = [a.attributes["href"] for a in tree.css("a.child-link")]
    assert links == [f"/ui/runs/{c.id}" for c in children]  # in creation order
    html = page(await client.get(f"/ui/runs/{children[0].id}", headers=key("admin")))
    assert html.css_first("#tree a.parent-link").attributes["href"] == f"/ui/runs/{parent.id}"
    assert html.css_first("#tree a.ancestor-link").attributes["href"] == f"/ui/runs/{root.id}"
    assert html.css("#tree a.child-link") == []


async def test_approval_decisions_and_who_may_decide(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    run = await make(runkit, "gate", {"approvers": ["approve-key", "<b>x</b>"], "groups": ["ops"]})
    lease = await claim(runkit, run)
    await runkit.ops.park(lease, timeout=None)
    html = page(await client.get(f"/ui/runs/{run.id}", headers=key("approve")))
    approval = html.css_first("#approval")
    text = approval.text()
    assert "approve-key" in text and "<b>x</b>" in text and "ops" in text
    assert approval.css_first("b") is None
    decided = await client.post(
        f"/api/v1/action-runs/{run.id}/approve",
        json={"reason": "<i>looks fine</i>"},
        headers=key("approve"),
    )
    assert decided.status_code == 200, decided.text
    html = page(await client.get(f"/ui/runs/{run.id}", headers=key("read")))
    row = html.css_first("#approval tr.decision")
    assert row.css_first(".approval-by").text() == "approve-key"
    assert row.css_first(".approval-decision").text() == "approve"
    assert row.css_first(".approval-reason").text() == "<i>looks fine</i>"
    assert html.css_first("#run-status").attributes["data-status"] == "succeeded"


async def test_approvals_page_lists_waiting_runs_with_who_may_decide(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    anyone = await in_status(runkit, "awaiting_approval", "gate")
    named = await make(runkit, "gate", {"approvers": ["ada"], "groups": ["release"]})
    await runkit.ops.park(await claim(runkit, named), timeout=None)
    await make(runkit, "gate", {})  # pending: not waiting for approval
    html = page(await client.get("/ui/approvals", headers=key("approve")))
    rows = {tr.attributes["data-run-id"]: tr for tr in html.css("#approvals-table tr[data-run-id]")}
    assert set(rows) == {str(anyone.id), str(named.id)}
    assert (
        "anyone with the approve role"
        in rows[str(anyone.id)].css_first("td.approvers").text().lower()
    )
    who = rows[str(named.id)].css_first("td.approvers").text()
    assert "ada" in who and "release" in who
    # The approve role, but not among the named gate's deciders: no buttons, who may.
    row = rows[str(named.id)]
    assert row.css_first(".decision-note").text() == "Only ada or members of release may decide."
    assert row.css_first("textarea.decision-reason") is None
    assert row.css("button[data-action]") == []
    assert rows[str(anyone.id)].css_first(".decision-note") is None
    actions = [b.attributes["data-action"] for b in rows[str(anyone.id)].css("button")]
    assert actions == ["approve", "reject"]
    assert row.css_first("a.run-link").attributes["href"] == f"/ui/runs/{named.id}"
    # Ada is among them.
    html = page(await client.get("/ui/approvals", headers=key("ada")))
    row = html.css_first(f'#approvals-table tr[data-run-id="{named.id}"]')
    assert [b.attributes["data-action"] for b in row.css("button")] == ["approve", "reject"]
    assert row.css_first(".decision-note") is None
    live = html.css_first("#approvals-rows")
    assert live.attributes["hx-get"] == "/ui/fragments/approvals"
    assert live.attributes["hx-trigger"] == "every 2s"
    # A reader sees the runs but no way to decide (and no note: the role refuses it
    # first); the live rows answer the same.
    html = page(await client.get("/ui/approvals", headers=key("read")))
    assert len(html.css("#approvals-table tr[data-run-id]")) == 2
    assert html.css("#approvals-table button[data-action]") == []
    assert html.css("#approvals-table .decision-note") == []
    fragment = page(await client.get("/ui/fragments/approvals", headers=key("approve")))
    assert len(fragment.css("tr[data-run-id]")) == 2


async def test_a_deleted_runs_summary_stops_its_refresh(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    run = await make(runkit, "noop")
    await runkit.delete(run.id)
    answer = await client.get(
        f"/ui/runs/{run.id}/summary", headers={**key("admin"), "HX-Request": "true"}
    )
    assert answer.status_code == 286  # htmx: swap this, and poll no more
    summary = page_of(answer).css_first("#run-summary")
    assert summary.attributes["data-terminal"] == "true" and "hx-get" not in summary.attributes
    assert (await client.get(f"/ui/runs/{run.id}", headers=key("admin"))).status_code == 404


def page_of(answer: httpx.Response) -> LexborHTMLParser:
    return LexborHTMLParser(answer.text)


async def parked(runkit: Runkit, kind: str, definition: dict[str, Any], **kw: Any) -> Run:
    run = await make(runkit, kind, definition, **kw)
    return await runkit.ops.park(await claim(runkit, run), timeout=None)


def decision(html: LexborHTMLParser) -> tuple[list[str], str, bool]:
    """The run page's decision buttons, its note ("" for none), and whether it has the
    reason box."""
    decides = [b for b in buttons(html) if b in ("approve", "reject")]
    note = html.css_first("#decision-note")
    reason = html.css_first("textarea#decision-reason") is not None
    return decides, note.text().strip() if note is not None else "", reason


async def test_the_run_page_offers_a_decision_only_to_whom_the_policy_allows(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    named = await parked(runkit, "gate", {"approvers": ["ada"]})
    html = page(await client.get(f"/ui/runs/{named.id}", headers=key("approve")))
    assert decision(html) == ([], "Only ada may decide.", False)
    html = page(await client.get(f"/ui/runs/{named.id}", headers=key("ada")))
    assert decision(html) == (["approve", "reject"], "", True)
    html = page(await client.get(f"/ui/runs/{named.id}", headers=key("read")))
    assert decision(html) == ([], "", False)  # the role refuses it first: no note
    # The summary's refresh answers the same.
    fragment = page(await client.get(f"/ui/runs/{named.id}/summary", headers=key("approve")))
    assert decision(fragment) == ([], "Only ada may decide.", False)
    # Pause and cancel stay, for whoever may press them.
    html = page(await client.get(f"/ui/runs/{named.id}", headers=key("admin")))
    assert buttons(html) == ["pause", "cancel"]

    # Four eyes: its creator may not decide it; anyone else may.
    ada = Principal("ada", kind="user")
    own = await parked(runkit, "approval_gate", {"allowSelfApproval": False}, principal=ada)
    html = page(await client.get(f"/ui/runs/{own.id}", headers=key("ada")))
    assert decision(html) == ([], "You created this run: only someone else may decide it.", False)
    html = page(await client.get(f"/ui/runs/{own.id}", headers=key("approve")))
    assert decision(html) == (["approve", "reject"], "", True)

    # Each person decides once: after a first of two approvals, not again.
    two = await parked(runkit, "approval_gate", {"requiredApprovals": 2})
    decided = await client.post(f"/api/v1/action-runs/{two.id}/approve", headers=key("approve"))
    assert decided.status_code == 200 and decided.json()["status"] == "awaiting_approval"
    html = page(await client.get(f"/ui/runs/{two.id}", headers=key("approve")))
    decides, note, _ = decision(html)
    assert decides == [] and "decided on this run already" in note
    html = page(await client.get(f"/ui/runs/{two.id}", headers=key("admin")))
    assert decision(html)[0] == ["approve", "reject"]
    # What the page hides, the API refuses.
    refused = await client.post(f"/api/v1/action-runs/{named.id}/approve", headers=key("approve"))
    assert refused.status_code == 403, refused.text


def at(monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    """The pages' clock (the run page's and the runs table's) stopped at ``when``."""
    import runkit_contrib.ui.run as run_module
    import runkit_contrib.ui.runs as runs_module

    monkeypatch.setattr(run_module, "now", lambda: when)
    monkeypatch.setattr(runs_module, "now", lambda: when)


def duration_shown(html: LexborHTMLParser) -> str:
    return " ".join(html.css_first('[data-field="durationSeconds"] dd').text().split())


async def test_duration_of_a_run_still_going_counts_to_now_as_the_runs_table_does(
    client: httpx.AsyncClient, runkit: Runkit, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await make(runkit, "sleep", {"seconds": 5})
    lease = await claim(runkit, running)
    running = await runkit.get(running.id)
    waiting = await in_status(runkit, "awaiting_approval", "gate")
    for run, seconds, shown in ((running, 2, "2.0 s"), (waiting, 27, "27.0 s")):
        assert run.started_at is not None
        at(monkeypatch, run.started_at + timedelta(seconds=seconds))
        html = page(await client.get(f"/ui/runs/{run.id}", headers=key("admin")))
        assert duration_shown(html) == f"{shown} (so far)", run.status
        table = page(await client.get("/ui/", headers=key("admin")))
        cell = table.css_first(f'tr[data-run-id="{run.id}"] td.run-duration').text().strip()
        assert cell == shown, run.status
        # The summary's 2 s refresh counts on.
        at(monkeypatch, run.started_at + timedelta(seconds=seconds + 2))
        later = page(await client.get(f"/ui/runs/{run.id}/summary", headers=key("admin")))
        assert duration_shown(later) == f"{seconds + 2}.0 s (so far)"
    # A finished run's duration is from its start to its end, whenever it is looked at.
    done = await runkit.ops.complete(lease, {})
    assert done.started_at is not None and done.completed_at is not None
    at(monkeypatch, done.completed_at + timedelta(hours=1))
    html = page(await client.get(f"/ui/runs/{done.id}", headers=key("admin")))
    expected = (done.completed_at - done.started_at).total_seconds()
    assert duration_shown(html) == duration(expected)
    # One not started yet has none.
    pending = await make(runkit, "noop")
    html = page(await client.get(f"/ui/runs/{pending.id}", headers=key("admin")))
    assert duration_shown(html) == "—"
