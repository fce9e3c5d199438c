"""When a worker claims: at once while it is the one keeping the queue short, later while
other workers are keeping it short for it.

A claim costs a transaction and two round trips whatever it takes, and each claim's runs
are reported together, so a worker that claims once per run pays that per run. Two rules
space its claims:

* **Gathering.** A busy worker whose last claim emptied the queue waits ``gather`` before
  claiming again, so that runs arriving one by one are claimed several at a time. An idle
  worker, and one behind a backlog, claims at once: a lone run is not delayed by it.
* **Standing back.** Every process on a database hears every wake-up. Left alone, each
  idle worker claims on each one: the runs are shared out a few per claim, and four
  processes made three times the claims and reports of one while moving fewer runs. So a
  worker whose claim found nothing although another process had said there was work
  (another worker took the runs first) stands back: it claims no sooner than
  ``2 * gather`` later, with jitter so that those standing back do not all return
  together. It stays back, the spacing doubling up to ``cap``, while its claims come as
  soon as the spacing allows (the wake-ups keep coming) and find nothing, or only runs
  fresher than ``2 * gather``: a worker at the front is keeping the queue short. It steps
  forward on a full batch, on a run that waited longer, or on a claim that came well after
  its spacing ended (a quiet spell): the front is not keeping up, or there is none. An
  empty claim that no other process's wake-up preceded (a slot freed, a poll) says nothing
  about other workers and changes nothing: a worker alone on its database, fed by its own
  process, never stands back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from ..domain.models import Run


def waited(runs: Sequence[Run], now: datetime) -> float:
    """Seconds the longest-waiting of ``runs`` had been claimable (since it was created, or
    since its ``not_before``); 0 for none."""
    longest = 0.0
    for run in runs:
        since = max(run.created_at, run.not_before) if run.not_before else run.created_at
        longest = max(longest, (now - since).total_seconds())
    return longest


class ClaimPacer:
    def __init__(
        self,
        gather: float,
        cap: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.gather = gather
        self.cap = max(cap, 2 * gather)
        self._clock = clock
        self._jitter = jitter
        #: The last claim took all it asked for: more may wait, claim again at once.
        self.backlog = False
        #: How far the worker stands back (0: it is at the front).
        self.backoff = 0.0
        self._not_before = float("-inf")  # monotonic time the next claim may start
        self._paused = False  # a pause was taken since the last claim: do not take another
        self._idle_since_due = 0.0  # how long after _not_before the last claim started

    def pause(self, *, busy: bool) -> float:
        """Seconds to wait before claiming now (0: claim now). After waiting, the caller
        looks again (its slots or its stopping may have changed) and this returns 0."""
        now = self._clock()
        if self._paused:
            self._idle_since_due = now - self._not_before
            return 0.0
        wait = self._not_before - now
        if busy and not self.backlog:
            wait = max(wait, self.gather)
        if wait <= 0:
            self._idle_since_due = now - self._not_before
            return 0.0
        self._paused = True
        return wait

    def claimed(
        self, got: int, want: int, longest_wait: float = 0.0, *, contested: bool = True
    ) -> None:
        """Record a claim: ``got`` runs of the ``want`` asked for, the longest-waiting of
        them claimable for ``longest_wait`` seconds. ``contested``: another process said
        there was work since the previous claim; without that, a claim that found nothing
        (after a slot freed, at a poll) says nothing about other workers."""
        self._paused = False
        self.backlog = got == want
        if not got and not contested:
            return
        # Still behind others only if this claim came as soon as standing back allowed (the
        # wake-ups kept coming) and took only runs fresh enough for a worker at the front.
        paced = self._idle_since_due <= self.gather
        fresh = longest_wait < 2 * self.gather
        if got and not (self.backoff and paced and fresh and not self.backlog):
            self.backoff = 0.0
            self._not_before = float("-inf")
            return
        self.backoff = min(self.cap, self.backoff * 2) if self.backoff else 2 * self.gather
        self._not_before = self._clock() + self._jitter(1.0, 1.5) * self.backoff
