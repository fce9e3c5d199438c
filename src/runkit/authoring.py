"""The kind author's surface: everything a module that adds action kinds needs, and nothing
that runs them. Built-in kinds import from here only, as a third-party plugin would; ``runkit``
re-exports the same names::

    from runkit.authoring import Kind, RunContext, Retryable, hookimpl

It depends on the domain and the hook markers, never on the engine or the ``Runkit`` facade,
so a kind module can be imported by the facade that loads it without an import cycle.
"""

from .domain.context import RunContext, SyncRunContext
from .domain.kind import ApprovalPolicy, Kind, KindChecks, RetryPolicy, not_blank
from .domain.models import Run
from .domain.signals import Fatal, ParkForApproval, Retryable
from .hookspecs import hookimpl

__all__ = [
    "ApprovalPolicy",
    "Fatal",
    "Kind",
    "KindChecks",
    "ParkForApproval",
    "RetryPolicy",
    "Retryable",
    "Run",
    "RunContext",
    "SyncRunContext",
    "hookimpl",
    "not_blank",
]
