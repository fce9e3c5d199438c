"""``lifespan``: what a host calls from its own lifespan to run runkit beside its app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from runkit import Runkit, embedded_workers


@asynccontextmanager
async def lifespan(runkit: Runkit, *, workers: int = 0) -> AsyncIterator[Runkit]:
    """Open ``runkit`` (storage connections, schema) for the duration and, with
    ``workers`` > 0, execute runs in this process: one embedded worker with that many
    concurrent slots (0: API only; run ``runkit worker`` elsewhere). On exit the worker
    shuts down gracefully, then the storage closes.

    Mounted apps get no lifespan events, so the host calls this from its own lifespan::

        @asynccontextmanager
        async def host_lifespan(app):
            async with runkit_contrib.lifespan(rk, workers=4):
                yield
    """
    if workers < 0:
        raise ValueError("workers must be >= 0")
    async with runkit:
        if workers == 0:
            yield runkit
            return
        async with embedded_workers(runkit, concurrency=workers):
            yield runkit
