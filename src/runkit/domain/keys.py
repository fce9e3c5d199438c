"""Concurrency-key rules, shared by every backend so that they agree to the letter.

A key's occupancy is the number of its runs in a leased status (``LEASED``), counted from the
rows themselves, never kept in a counter that could drift. A claim takes due queued runs in
``seq`` order, never more of a key than its limit, and never a later run of a key before an
earlier one (FIFO within a key). SQL stores count and lock inside their claim transaction and
then call :func:`pick_claimable` with what they read; the memory store calls it directly.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from .models import Run
from .states import LEASED


def occupancy(runs: Iterable[Run], keys: Collection[str]) -> dict[str, int]:
    """For each of ``keys``, how many of ``runs`` with that key are leased."""
    out = dict.fromkeys(keys, 0)
    for run in runs:
        if run.concurrency_key in out and run.status in LEASED:
            out[run.concurrency_key] += 1
    return out


def pick_claimable(
    candidates: Sequence[Run], held: dict[str, int], limit: int, kinds: Collection[str] | None
) -> list[Run]:
    """Which of ``candidates`` (due queued runs in ``seq`` order) a claim takes: the claim
    rule of :meth:`Store.claim`, shared by every backend so that they agree to the letter.

    ``held`` has an entry for every key whose runs are among the candidates (its leased
    count) and is updated as runs are picked; a keyed run whose key has no entry (PostgreSQL:
    another claimer holds the key this round) is left alone. A keyed run that cannot be
    taken blocks the rest of its key (FIFO within a key).
    """
    blocked: set[str] = set()
    out: list[Run] = []
    for run in candidates:
        if len(out) >= limit:
            break
        key = run.concurrency_key
        if key is not None:
            if key not in held:
                continue
            if key in blocked or held[key] >= run.concurrency_limit:
                blocked.add(key)
                continue
        if kinds is not None and run.kind not in kinds:
            if key is not None:
                blocked.add(key)  # FIFO: a later run of the key must not overtake it
            continue
        out.append(run)
        if key is not None:
            held[key] += 1
    return out
