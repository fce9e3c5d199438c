"""Choosing a provider (a web search service, a language model) from those registered: the
one ``$<PROVIDER_ENV>`` names, else the first that is ready. Shared so both say it alike."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Provider(Protocol):
    @property
    def name(self) -> str: ...

    def problem(self) -> str | None:
        """None when ready; else what is missing (named in the refusal)."""
        ...


P = TypeVar("P", bound=Provider)


def select(
    known: Sequence[P],
    env_var: str,
    what: str,
    *,
    nothing: str,
    error: type[Exception] = ValueError,
) -> P:
    """The provider named by ``$env_var`` (which must exist and be ready), else the first
    ready one of ``known``; ``error`` naming what to set otherwise (``nothing``: the
    message's start when none is ready, the providers' own problems following)."""
    wanted = os.environ.get(env_var, "").strip()
    if wanted:
        chosen = next((p for p in known if p.name == wanted), None)
        if chosen is None:
            names = ", ".join(sorted({p.name for p in known}))
            raise error(f"{env_var}={wanted!r} is no {what} (known: {names})")
        why = chosen.problem()
        if why is not None:
            raise error(f"{what} {wanted!r} is not ready: {why}")
        return chosen
    problems = []
    for provider in known:
        why = provider.problem()
        if why is None:
            return provider
        problems.append(f"{provider.name}: {why}")
    raise error(f"{nothing} (" + "; ".join(problems) + ")")
