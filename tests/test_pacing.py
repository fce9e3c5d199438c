"""When a worker claims (``engine._pacing``): gathering while busy, standing back while
other workers keep the queue short, stepping forward when runs wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st
from pytest import approx

from runkit.domain.models import Run
from runkit.domain.states import Status
from runkit.engine._pacing import ClaimPacer, waited

GATHER, CAP = 0.02, 0.16


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pacer(jitter: float = 1.0) -> tuple[ClaimPacer, Clock]:
    clock = Clock()
    return ClaimPacer(GATHER, CAP, clock=clock, jitter=lambda lo, hi: jitter), clock


def _claim(pacer: ClaimPacer, got: int, want: int = 16, longest: float = 0.0) -> None:
    assert pacer.pause(busy=False) == 0.0
    pacer.claimed(got, want, longest)


def test_an_idle_worker_claims_at_once_and_a_busy_one_gathers_once() -> None:
    pacer, _ = _pacer()
    assert pacer.pause(busy=False) == 0.0
    pacer.claimed(3, 16, 0.001)
    assert pacer.pause(busy=True) == GATHER
    assert pacer.pause(busy=True) == 0.0  # after the wait: claim, whatever has come
    pacer.claimed(16, 16, 0.0)
    assert pacer.backlog and pacer.pause(busy=True) == 0.0  # behind a backlog: at once


def test_an_empty_claim_stands_back_doubling_to_the_cap() -> None:
    pacer, clock = _pacer()
    spacing = []
    for _ in range(6):
        assert pacer.pause(busy=False) in (0.0, approx(pacer.backoff))
        pacer.claimed(0, 16)
        spacing.append(pacer.backoff)
        assert pacer.pause(busy=False) == approx(spacing[-1])  # the next claim waits that long
        clock.now += spacing[-1]
    assert spacing == [0.04, 0.08, 0.16, 0.16, 0.16, 0.16]


def test_fresh_runs_taken_while_standing_back_keep_the_worker_back() -> None:
    """Another worker is keeping the queue short: what this one finds had waited less
    than two gathers."""
    pacer, clock = _pacer()
    _claim(pacer, 0)
    clock.now += pacer.pause(busy=False)  # claims as soon as allowed
    _claim(pacer, 2, longest=0.01)
    assert pacer.backoff == 0.08


def test_a_run_that_waited_brings_the_worker_forward() -> None:
    pacer, clock = _pacer()
    _claim(pacer, 0)
    clock.now += pacer.pause(busy=False)
    _claim(pacer, 2, longest=2 * GATHER)  # nobody at the front took it in time
    assert pacer.backoff == 0.0 and pacer.pause(busy=False) == 0.0


def test_a_full_claim_brings_the_worker_forward() -> None:
    pacer, clock = _pacer()
    _claim(pacer, 0)
    clock.now += pacer.pause(busy=False)
    _claim(pacer, 16, longest=0.0)
    assert pacer.backoff == 0.0 and pacer.backlog


def test_a_claim_long_after_standing_back_ended_brings_the_worker_forward() -> None:
    """No wake-ups came for a while (a quiet spell, a lone run): nothing says another
    worker is at the front, so the first claim after it counts as being at the front."""
    pacer, clock = _pacer()
    _claim(pacer, 0)
    clock.now += 1.0
    _claim(pacer, 1, longest=0.001)
    assert pacer.backoff == 0.0


def test_an_empty_claim_no_other_process_contested_changes_nothing() -> None:
    """A slot freed, or a poll, and the queue was empty: nothing says another worker is
    at the front (a lone worker would otherwise stand back from itself, and a run
    arriving next would wait for it)."""
    pacer, _ = _pacer()
    assert pacer.pause(busy=False) == 0.0
    pacer.claimed(0, 16, contested=False)
    assert pacer.backoff == 0.0 and pacer.pause(busy=False) == 0.0


def test_the_jitter_spreads_those_standing_back() -> None:
    pacer, _ = _pacer(jitter=1.5)
    _claim(pacer, 0)
    assert pacer.pause(busy=False) == approx(1.5 * 0.04)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 16), st.floats(0, 1), st.floats(0, 0.5), st.booleans(), st.booleans()
        ),
        max_size=40,
    )
)
def test_a_pause_is_bounded_and_never_taken_twice_in_a_row(
    steps: list[tuple[int, float, float, bool, bool]],
) -> None:
    """Whatever claims return: a worker never waits longer than the cap (times the jitter)
    before a claim, and after one pause it claims (it never sleeps twice for one claim)."""
    pacer, clock = _pacer(jitter=1.5)
    for got, longest, elapsed, busy, again in steps:
        first = pacer.pause(busy=busy)
        assert 0.0 <= first <= 1.5 * CAP + 1e-9
        if first:
            clock.now += first if again else first / 2
            assert pacer.pause(busy=busy) == 0.0
        pacer.claimed(got, 16, longest)
        assert 0.0 <= pacer.backoff <= CAP
        clock.now += elapsed


def _run(created: datetime, not_before: datetime | None = None) -> Run:
    return Run(
        id=uuid4(),
        kind="k",
        definition={},
        status=Status.RUNNING,
        created_at=created,
        updated_at=created,
        not_before=not_before,
    )


def test_waited_counts_from_creation_or_not_before() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    runs = [
        _run(now - timedelta(seconds=2)),
        _run(now - timedelta(seconds=9), not_before=now - timedelta(seconds=1)),
    ]
    assert waited(runs, now) == 2.0
    assert waited([], now) == 0.0
