"""Engine timing and budgets, in one place. See docs/engine.md for what each one bounds."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import attrs

LEASE_ENV = "RUNKIT_LEASE_SECONDS"
HEARTBEAT_ENV = "RUNKIT_HEARTBEAT_SECONDS"


def _positive(_: Any, attribute: attrs.Attribute[Any], value: timedelta) -> None:
    if value <= timedelta(0):
        raise ValueError(f"{attribute.name} must be positive")


@attrs.frozen
class Settings:
    """Engine timing and budgets. Tests shrink them; see docs/engine.md.

    A worker that dies holding runs is noticed one ``lease`` after its last heartbeat (plus
    at most a ``rescue_interval``): 10 s and 2 s by default, so its runs are taken over
    within about 12 s. A heartbeat must come well within a lease; the default leaves a
    worker four missed heartbeats before it loses its runs."""

    lease: timedelta = attrs.field(default=timedelta(seconds=10), validator=_positive)
    heartbeat: timedelta = attrs.field(default=timedelta(seconds=2), validator=_positive)
    rescue_interval: timedelta = timedelta(seconds=2)
    #: A waiting run is woken by its children's moves; the rescuer also re-checks it this
    #: often, which repairs a wake-up lost to a process that died in between.
    wait_recheck: timedelta = timedelta(seconds=60)
    #: Lease losses a run survives; the next one fails it with reason ``crashed``.
    interrupt_budget: int = 5
    #: Per-key concurrency limits; a key not listed has limit 1.
    concurrency_limits: Mapping[str, int] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.heartbeat >= self.lease:
            raise ValueError(
                f"heartbeat ({self.heartbeat.total_seconds():g} s) must be shorter than the "
                f"lease ({self.lease.total_seconds():g} s), or every run is lost between two"
            )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings with ``lease`` and ``heartbeat`` from ``RUNKIT_LEASE_SECONDS`` and
        ``RUNKIT_HEARTBEAT_SECONDS`` when set (the CLI's defaults), then ``overrides``."""
        values: dict[str, Any] = {}
        for name, env in (("lease", LEASE_ENV), ("heartbeat", HEARTBEAT_ENV)):
            raw = environ.get(env, "").strip()
            if raw:
                try:
                    values[name] = timedelta(seconds=float(raw))
                except ValueError:
                    raise ValueError(f"{env}={raw!r} is not a number of seconds") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
