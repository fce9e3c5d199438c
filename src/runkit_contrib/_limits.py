"""The edge limits of ``runkit serve``: how many connections it holds, how long a client may
take to send a request head, how long an idle keep-alive connection stays, and how much a
flood may write to the log (docs/deploy.md).

Connections cost a file descriptor each, and so do the database, log files and what runs
open. A server that accepts until ``accept()`` fails with EMFILE leaves its own database
unopenable, and asyncio logs a traceback for every failed ``accept()``. So the open-file
limit is raised to its hard limit at start (:func:`raise_open_file_limit`) and connections
are capped below it, leaving descriptors for everything else (:meth:`ServeLimits.resolve`):

    backlog         = clamp(descriptors // 16, 16, 2048)
    reserved        = 64 + 8 * workers + 3 * backlog
    max_connections = min(descriptors - reserved, 10_000)

64 covers standard streams, listening sockets, the event loop, the database pool (a SQLite
connection holds 3: the file, its WAL and its shared memory) and log files; 8 a worker slot
what one run may open (files, sockets of web kinds, DuckDB); ``backlog`` is both the listen
queue and how many connections asyncio accepts in one pass of the loop, before the protocol
sees any, and a refused one is closed two passes later, hence 3 of them.

:class:`ConnectionGate` enforces the cap and the request-head deadline for the protocol
(``_serve.http_protocol``): at the cap, the connection that has waited longest for its next
request head is closed to make room; when every connection is busy with a request, the new
one is closed at once. :class:`RateLimitFilter` keeps repeated log lines from filling a disk.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs

from runkit import ConfigurationError

RESERVED_DESCRIPTORS = 64
RESERVED_PER_WORKER = 8
MAX_BACKLOG = 2048  # uvicorn's default
MAX_CONNECTIONS_CEILING = 10_000
#: Raised to at most this many descriptors: the default cap never needs more.
OPEN_FILES_CEILING = 65_536
#: No descriptor limit to read (not POSIX): the cap when none is given.
NO_LIMIT_CONNECTIONS = 1_000

logger = logging.getLogger("runkit_contrib.serve")

#: Called when a connection's request head is complete.
HeadHook = Callable[[], None]
#: The answer to a request head that came too slowly (only when part of one came: a
#: keep-alive connection that sent nothing may be sending a request as this is written).
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def _positive_finite(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number of seconds, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, not {value!r}")


def _optional_count(low: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{attribute.name} must be an integer, not {value!r}")
        if value < low:
            raise ValueError(f"{attribute.name} must be >= {low}, not {value}")

    return check


@attrs.frozen(kw_only=True)
class ServeLimits:
    """What ``runkit serve`` allows a client at the edge.

    ``max_connections`` and ``backlog`` None: computed from the open-file limit by
    :meth:`resolve` (see the module docstring). ``header_timeout``: the whole request head
    must arrive within it, counted from the connection's opening and, on a keep-alive
    connection, from the end of the previous response. ``keep_alive_timeout``: an idle
    keep-alive connection is closed when no byte of a next request came within it.
    ``max_head_bytes``: the largest request head (request line and headers)."""

    max_connections: int | None = attrs.field(default=None, validator=_optional_count(1))
    header_timeout: float = attrs.field(default=10.0, validator=_positive_finite)
    keep_alive_timeout: float = attrs.field(default=5.0, validator=_positive_finite)
    max_head_bytes: int = attrs.field(default=16 * 1024, validator=_optional_count(1024))
    backlog: int | None = attrs.field(default=None, validator=_optional_count(1))

    def resolve(self, descriptors: int | None, *, workers: int) -> ServeLimits:
        """These limits with ``max_connections`` and ``backlog`` filled in for a process
        allowed ``descriptors`` open files (None: no limit known) running ``workers`` runs
        at once. Raises ConfigurationError when the descriptors cannot hold them."""
        if descriptors is None:
            return attrs.evolve(
                self,
                max_connections=self.max_connections or NO_LIMIT_CONNECTIONS,
                backlog=self.backlog or MAX_BACKLOG,
            )
        backlog = self.backlog or accept_backlog(descriptors)
        reserved = reserved_descriptors(workers, backlog)
        room = descriptors - reserved
        if room < 1:
            raise ConfigurationError(
                f"the open-file limit ({descriptors}) leaves no room for connections: "
                f"{reserved} descriptors are kept for the database, logs and {workers} "
                "worker slots; raise it (ulimit -n, or LimitNOFILE= in a systemd unit)"
            )
        if self.max_connections is None:
            return attrs.evolve(
                self, max_connections=min(room, MAX_CONNECTIONS_CEILING), backlog=backlog
            )
        if self.max_connections > room:
            raise ConfigurationError(
                f"max connections {self.max_connections} do not fit the open-file limit "
                f"({descriptors}, of which {reserved} are kept for the database, logs and "
                f"{workers} worker slots): at most {room}; raise the limit (ulimit -n, or "
                "LimitNOFILE= in a systemd unit)"
            )
        return attrs.evolve(self, backlog=backlog)


def seconds_option(text: str) -> float:
    """An argparse ``type``: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def count_option(text: str) -> int:
    """An argparse ``type``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def accept_backlog(descriptors: int) -> int:
    """The listen backlog for a process allowed ``descriptors`` open files."""
    return max(16, min(MAX_BACKLOG, descriptors // 16))


def open_file_limit() -> int | None:
    """This process's soft RLIMIT_NOFILE; None when there is none (or not POSIX)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def uvicorn_options(limits: ServeLimits) -> dict[str, Any]:
    """The uvicorn ``Config`` arguments for resolved ``limits`` (the protocol enforces the
    rest: ``_serve.http_protocol``)."""
    if limits.max_connections is None or limits.backlog is None:
        raise ValueError("resolve the limits first: ServeLimits.resolve()")
    return {
        "backlog": limits.backlog,
        # uvicorn takes whole seconds; the protocol times the exact value.
        "timeout_keep_alive": math.ceil(limits.keep_alive_timeout),
        # uvicorn answers 503 to a request when this many connections are open, idle ones
        # included, or this many requests are in flight. The protocol caps connections
        # itself (closing idle ones first), so at the cap + 1 this only stops requests
        # piling up past the connections (a handler still running after its client left).
        "limit_concurrency": limits.max_connections + 1,
        "h11_max_incomplete_event_size": limits.max_head_bytes,
        # X-Forwarded-For and -Proto are believed from FORWARDED_ALLOW_IPS, by default
        # 127.0.0.1 and ::1: a reverse proxy on this host (docs/deploy.md).
        "proxy_headers": True,
    }


def log_limits(limits: ServeLimits, descriptors: int | None) -> None:
    """Say the limits in force, among uvicorn's start-up lines."""
    files = "no open-file limit" if descriptors is None else f"open-file limit {descriptors}"
    logging.getLogger("uvicorn.error").info(
        "Limits: %s connections (%s), request head within %g s, idle keep-alive %g s",
        limits.max_connections,
        files,
        limits.header_timeout,
        limits.keep_alive_timeout,
    )


def reserved_descriptors(workers: int, backlog: int) -> int:
    """Descriptors kept from connections (see the module docstring)."""
    return RESERVED_DESCRIPTORS + RESERVED_PER_WORKER * workers + 3 * backlog


def raise_open_file_limit(ceiling: int = OPEN_FILES_CEILING) -> int | None:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (at most ``ceiling``;
    never lowered) and return the soft limit now in force; None where there is none
    (not POSIX)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    target = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    # macOS refuses more than OPEN_MAX (10240) with an infinite hard limit: try that next.
    for value in dict.fromkeys((target, min(target, 10_240))):
        if value <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (value, hard))
        except (ValueError, OSError):
            continue
        break
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


# ---------------------------------------------------------------- connections ----------
class Gated(Protocol):
    """A connection as the gate sees it (the serve protocol)."""

    def evict(self) -> None:
        """Close now: the gate needs the room (the connection waits for a request head)."""

    def head_timed_out(self) -> None:
        """The request head did not arrive within the header timeout: close."""


class ConnectionGate:
    """The connection cap and request-head deadlines of one server's connections.

    A connection *waits* from its opening, and again from the end of each response, until
    its next request head is complete; waiting connections are kept oldest first, each with
    its deadline timer. Not thread-safe: the event loop's thread calls it."""

    def __init__(
        self,
        limits: ServeLimits,
        *,
        log_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limits.max_connections is None:
            raise ValueError("resolve the limits first: ServeLimits.resolve()")
        self.limits = limits
        self.max_connections = limits.max_connections
        self.log_interval = log_interval
        self._clock = clock
        self._waiting: dict[Gated, asyncio.TimerHandle] = {}
        self._evicted = 0
        self._refused = 0
        self._logged_at = -math.inf

    def admit(self, connection: Gated, open_connections: int) -> bool:
        """Whether a new connection may stay, ``open_connections`` being open now. At the
        cap, the connection waiting longest for its request head is evicted to make room;
        with none waiting, False: close the new one at once."""
        if open_connections < self.max_connections:
            return True
        victim = next(iter(self._waiting), None)
        if victim is not None:
            self.head_received(victim)
            victim.evict()
            self._evicted += 1
        else:
            self._refused += 1
        self._report(open_connections)
        return victim is not None

    def await_head(self, connection: Gated, loop: asyncio.AbstractEventLoop) -> None:
        """``connection`` waits for a request head from now, until the header timeout."""
        self.head_received(connection)
        timer = loop.call_later(self.limits.header_timeout, connection.head_timed_out)
        self._waiting[connection] = timer

    def head_received(self, connection: Gated) -> None:
        """``connection`` waits no more (its head came, or it closed)."""
        timer = self._waiting.pop(connection, None)
        if timer is not None:
            timer.cancel()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _report(self, open_connections: int) -> None:
        now = self._clock()
        if now - self._logged_at < self.log_interval:
            return
        logger.warning(
            "connection limit reached (%d open, max %d): %d waiting connections closed "
            "and %d new ones refused since the last report; see docs/deploy.md",
            open_connections,
            self.max_connections,
            self._evicted,
            self._refused,
        )
        self._logged_at = now
        self._evicted = self._refused = 0


# ---------------------------------------------------------------- the log --------------
@attrs.define
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0


class RateLimitFilter(logging.Filter):
    """At most ``burst`` records of one kind (logger, level and the first line of the
    message template) per ``interval`` seconds pass through ``handler``; then one line says
    how many similar records were suppressed, when the window is over and a record comes by.
    A filter on a handler sees the records of every logger that reaches it (a filter on a
    logger sees only that logger's own records, not its children's)."""

    SUMMARY = "suppressed %d similar messages in the last %d s: %s"

    def __init__(
        self,
        handler: logging.Handler,
        *,
        burst: int = 10,
        interval: float = 60.0,
        max_kinds: int = 1_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if burst < 1 or interval <= 0 or max_kinds < 1:
            raise ValueError("burst and max_kinds must be >= 1, interval > 0")
        self.handler = handler
        self.burst, self.interval, self.max_kinds = burst, interval, max_kinds
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._next_flush = math.inf

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "rate_limit_summary", False):
            return True
        key = (record.name, record.levelno, _first_line(record.msg))
        with self._lock:
            now = self._clock()
            due = self._expired(now) if now >= self._next_flush else []
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) >= self.max_kinds:  # the oldest kind makes room
                    oldest = next(iter(self._windows))
                    due.append((oldest, self._windows.pop(oldest)))
                window = self._windows[key] = _Window(now)
                self._next_flush = min(self._next_flush, now + self.interval)
            passed = window.passed < self.burst
            if passed:
                window.passed += 1
            else:
                window.suppressed += 1
        for (name, _, text), done in due:  # outside the lock: handling logs re-enters
            if done.suppressed:
                self.handler.handle(self._summary(name, done.suppressed, text))
        return passed

    def _expired(self, now: float) -> list[tuple[tuple[str, int, str], _Window]]:
        done = [(k, w) for k, w in self._windows.items() if now - w.start >= self.interval]
        for key, _ in done:
            del self._windows[key]
        starts = [w.start for w in self._windows.values()]
        self._next_flush = min(starts) + self.interval if starts else math.inf
        return done

    def _summary(self, name: str, count: int, text: str) -> logging.LogRecord:
        record = logging.LogRecord(
            name, logging.WARNING, __file__, 0, self.SUMMARY, (count, self.interval, text), None
        )
        record.__dict__["rate_limit_summary"] = True
        return record


def _first_line(message: object) -> str:
    text = message if isinstance(message, str) else type(message).__name__
    return text.split("\n", 1)[0][:200]


def handlers_of(name: str) -> list[logging.Handler]:
    """The handlers a record of logger ``name`` reaches (``logging.lastResort`` if none)."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logging.getLogger(name)
    while current is not None:
        found += current.handlers
        if not current.propagate:
            break
        current = current.parent
    if not found and logging.lastResort is not None:
        found.append(logging.lastResort)
    return found


def limit_log_volume(
    names: Iterable[str] = ("uvicorn.error", "asyncio", "runkit", "runkit_contrib"),
    **options: Any,
) -> list[RateLimitFilter]:
    """Put a :class:`RateLimitFilter` on every handler the loggers ``names`` reach (once a
    handler; ``options`` as the filter takes them). Returns the filters added."""
    added: list[RateLimitFilter] = []
    for name in names:
        for handler in handlers_of(name):
            if not any(isinstance(f, RateLimitFilter) for f in handler.filters):
                rate_limit = RateLimitFilter(handler, **options)
                handler.addFilter(rate_limit)
                added.append(rate_limit)
    return added
