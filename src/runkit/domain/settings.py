"""Engine timing and budgets, in one place. See docs/engine.md for what each one bounds."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import attrs


@attrs.frozen
class Settings:
    """Engine timing and budgets. Tests shrink them; see docs/engine.md."""

    lease: timedelta = timedelta(seconds=30)
    heartbeat: timedelta = timedelta(seconds=10)
    rescue_interval: timedelta = timedelta(seconds=2)
    #: A waiting run is woken by its children's moves; the rescuer also re-checks it this
    #: often, which repairs a wake-up lost to a process that died in between.
    wait_recheck: timedelta = timedelta(seconds=60)
    #: Lease losses a run survives; the next one fails it with reason ``crashed``.
    interrupt_budget: int = 5
    #: Per-key concurrency limits; a key not listed has limit 1.
    concurrency_limits: Mapping[str, int] = attrs.field(factory=dict)
