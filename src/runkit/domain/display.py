"""``displayStatus``: English for people, computed from the run. Clients never parse it."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from uuid import UUID

from . import waits
from .kind import Kind
from .models import Run
from .states import Status


def _first_line(error: Mapping[str, object] | None) -> str:
    if not error:
        return "unknown error"
    message = str(error.get("message") or error.get("type") or "unknown error")
    return message.strip().splitlines()[0][:200] if message.strip() else "unknown error"


def display_status(
    run: Run,
    *,
    now: datetime,
    occupancy: Mapping[str, int] | None = None,
    kind: Kind | None = None,
    required_approvals: int | None = None,
    served: Collection[str] | None = None,
    awaited: Mapping[UUID, Run] | None = None,
) -> str:
    """``served``: the kinds live workers execute (None: unknown, say nothing about it);
    ``awaited``: a waiting run's awaited runs as they are now (None: not read)."""
    s = run.status
    if s.holds_slot and run.deadline_at is not None and run.deadline_at < now:
        # The worker stopped renewing its lease: say so rather than "Running", which would
        # be a lie until the rescuer moves the run.
        late = int((now - run.deadline_at).total_seconds())
        return (
            f"{s.value.capitalize()} · worker {run.worker_id} stopped reporting "
            f"(lease expired {late} s ago); the run will be taken over"
        )
    if s is Status.PENDING:
        return "Pending · not yet executed"
    if s is Status.QUEUED:
        if run.not_before is not None and run.not_before > now:
            return f"Queued · retrying at {run.not_before.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        if served is not None and run.kind not in served:
            return f"Queued · no worker serves kind {run.kind!r}"
        key = run.concurrency_key
        if key is not None and occupancy is not None and key in occupancy:
            held = occupancy[key]
            if held >= run.concurrency_limit:
                return (
                    f"Queued · waiting for concurrency key {key} "
                    f"({held}/{run.concurrency_limit} running)"
                )
        return "Queued · waiting for a worker"
    if s is Status.RUNNING:
        text = "Running"
        if run.attempt > 1:
            text += f" · attempt {run.attempt}"
        detail = None
        if kind is not None and kind.describe_progress is not None:
            detail = kind.describe_progress(run.progress)
        elif isinstance(run.progress.get("message"), str):
            detail = run.progress["message"]
        return f"{text} · {detail}" if detail else text
    if s is Status.PAUSING:
        return "Pausing · waiting for the action to reach a checkpoint"
    if s is Status.CANCELLING:
        return "Cancelling · waiting for the action to stop"
    if s is Status.PAUSED:
        return "Paused"
    if s is Status.AWAITING_APPROVAL:
        approved = sum(1 for d in run.approvals if d.get("decision") == "approve")
        if required_approvals and required_approvals > 1:
            return f"Awaiting approval · {approved} of {required_approvals}"
        return "Awaiting approval"
    if s is Status.WAITING:
        # The kind knows best what its wait means (an automation in sequence waits for one
        # step at a time, but "2 of 5 steps done" is what people want to read).
        detail = kind.describe_progress(run.progress) if kind and kind.describe_progress else None
        wait = waits.of(run)
        if detail is None and wait is not None:
            detail = waits.describe(wait, awaited)
        return f"Waiting · {detail}" if detail else "Waiting"
    if s is Status.SUCCEEDED:
        return "Succeeded"
    if s is Status.FAILED:
        if run.status_reason == "crashed":
            return f"Failed: worker lost {run.interrupt_count} times (crashed)"
        if run.status_reason == "timeout":
            return "Failed: timed out"
        return f"Failed: {_first_line(run.error)}"
    if s is Status.CANCELLED:
        if run.status_reason == "parent_cancelled":
            return "Cancelled · parent run cancelled"
        return "Cancelled"
    if s is Status.REJECTED:
        reasons = [d.get("reason") for d in run.approvals if d.get("decision") == "reject"]
        reason = next((r for r in reversed(reasons) if r), None)
        if run.status_reason == "approval_timeout":
            return "Rejected: approval timed out"
        return f"Rejected: {reason}" if reason else "Rejected"
    raise AssertionError(s)  # pragma: no cover - every status is handled above
