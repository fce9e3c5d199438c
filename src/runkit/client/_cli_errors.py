"""The exit codes of ``runkit runs`` and the one-line message of each error.

0: done (a waited-for run succeeded). 1: a waited-for run failed, was cancelled or rejected,
or the wait timed out. 2: a usage error, or the server refused or could not be reached.
130: interrupted (Ctrl-C); a run being waited for goes on.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from runkit import (
    ErrorDetail,
    IllegalTransition,
    NotAllowed,
    RunkitError,
    RunNotFound,
    StorageUnavailable,
    ValidationError,
)

from . import AuthenticationError, ClientError

OK, NOT_SUCCEEDED, FAILED_TO_ASK, INTERRUPTED = 0, 1, 2, 130

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A command line that cannot be carried out: exit 2, the message on stderr."""


class WaitTimedOut(Exception):
    """``--timeout`` passed with the run not yet ended: exit 1."""


def problems(details: Sequence[ErrorDetail]) -> str:
    """``loc: msg; loc: msg``, each loc dotted as the API sends it."""
    return "; ".join(f"{'.'.join(map(str, d.loc)) or 'body'}: {d.msg}" for d in details)


def message(exc: BaseException, args: argparse.Namespace) -> str:
    """The one line that says what went wrong and, where it helps, what to do."""
    if isinstance(exc, AuthenticationError):
        if args.api_key:
            return (
                f"not signed in: {args.url} refused the API key (401); check "
                "RUNKIT_API_KEY or --api-key"
            )
        return "not signed in: set RUNKIT_API_KEY or --api-key"
    if isinstance(exc, RunNotFound):
        return f"no run {exc.run_id} (404)"
    if isinstance(exc, IllegalTransition):
        said = str(exc)
        if all(a.value in said for a in exc.allowed):  # the server's sentence names them
            return f"{said} (409)"
        return f"{said} (409; allowed: {', '.join(a.value for a in exc.allowed)})"
    if isinstance(exc, ValidationError):
        return f"invalid request (422): {problems(exc.details)}"
    if isinstance(exc, NotAllowed):
        return f"not allowed (403): {exc}"
    if isinstance(exc, StorageUnavailable):
        return f"the server's storage is unavailable (503), try again: {exc}"
    if isinstance(exc, ClientError) and exc.status is None:
        return f"{exc}; is `runkit serve` running there? (--url, RUNKIT_URL)"
    return str(exc) or type(exc).__name__


def prefix(args: argparse.Namespace) -> str:
    return str(getattr(args, "command_name", "runkit"))


def guarded(handler: Handler) -> Handler:
    """``handler`` with its errors turned into a message on stderr and an exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except UsageError as exc:
            _say(args, str(exc))
            return FAILED_TO_ASK
        except WaitTimedOut as exc:
            _say(args, str(exc))
            return NOT_SUCCEEDED
        except RunkitError as exc:
            _say(args, message(exc, args))
            return FAILED_TO_ASK
        except KeyboardInterrupt:
            return INTERRUPTED
        except BrokenPipeError:
            # The reader went away (`... | head`): stop quietly, and let the interpreter's
            # final flush of stdout write nowhere.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return OK

    return run


def _say(args: argparse.Namespace, text: str) -> None:
    print(f"{prefix(args)}: {text}", file=sys.stderr, flush=True)
