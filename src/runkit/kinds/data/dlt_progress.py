"""What a dlt_extract run's threads share with its executor: the stop signal, the counts
shown as progress, and the log lines waiting to be written.

dlt runs in a worker thread and starts threads of its own (parallel resources, the load
pool), none of which can reach the run context: ``ctx.sync`` works only in the thread anyio
started. So every thread writes here, under one lock, and the executor's reporter task
reads it every half second and calls ``ctx.progress`` and ``ctx.log``. The stop goes the
other way: the executor sets it when its scope is cancelled (cancel, pause, timeout,
shutdown), and dlt's threads raise :class:`Stopped` at their next check.

No dlt import here: the executor builds this before dlt is loaded.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any


class Stopped(Exception):
    """The run is being stopped: raised inside dlt's threads so that dlt unwinds (and aborts
    the package it was extracting). Never reported: the worker reports the stop itself."""


class StopSignal:
    """Set once when the run must stop. Sockets registered here are shut down at the stop,
    so a request blocked on a slow server returns at once instead of at its timeout."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Stopped("the run is being stopped")

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise :class:`Stopped` as soon as the stop comes."""
        if self._event.wait(seconds):
            raise Stopped("the run is being stopped")

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
        if self._event.is_set():
            _shutdown(sock)

    def set(self) -> None:
        self._event.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


STAGES = ("extract", "normalize", "load")


class Tracker:
    """Counts and log lines of one run, written by any thread, read by the reporter."""

    def __init__(self) -> None:
        self.stop = StopSignal()
        self._lock = threading.Lock()
        self._logs: list[tuple[str, str, dict[str, Any] | None]] = []
        self._version = 0
        self._stage = "starting"
        self._tables: dict[str, int] = {}
        self._counts = {"requests": 0, "files": 0, "filesTotal": 0, "jobs": 0, "jobsTotal": 0}
        self._normalized = 0
        self._started = time.monotonic()

    # --- written by dlt's threads -----------------------------------------------------------
    def log(self, level: str, message: str, data: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._logs.append((level, message, data))

    def stage(self, stage: str) -> None:
        with self._lock:
            self._stage, self._version = stage, self._version + 1

    def request(self) -> None:
        with self._lock:
            self._counts["requests"] += 1
            self._version += 1

    def count(
        self, step: str | None, name: str, inc: int, total: int | None, more: int | None
    ) -> None:
        """One update from dlt's collector: rows of a table while extracting and normalizing,
        ``Files`` while normalizing, ``Jobs`` while loading (``Resources`` is not shown)."""
        stage = (step or "").split(" ", 1)[0].lower()
        with self._lock:
            if stage in STAGES and stage != self._stage:
                self._stage = stage
            if name in ("Files", "Jobs"):
                key = name.lower()
                self._counts[key] += inc
                self._counts[f"{key}Total"] += (total or 0) + (more or 0)
            elif name != "Resources" and not name.startswith("_dlt"):
                if stage == "extract":
                    self._tables[name] = self._tables.get(name, 0) + inc
                elif stage == "normalize":
                    self._normalized += inc
            self._version += 1

    # --- read by the reporter -------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    def take_logs(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        with self._lock:
            logs, self._logs = self._logs, []
        return logs

    def progress(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {
                "stage": self._stage,
                "rows": sum(self._tables.values()),
                "tables": dict(self._tables),
            }
            if self._counts["requests"]:
                out["requests"] = self._counts["requests"]
            if self._stage in ("normalize", "load", "done"):
                out["normalizedRows"] = self._normalized
                out["files"] = self._counts["files"]
                out["filesTotal"] = self._counts["filesTotal"]
            if self._stage in ("load", "done"):
                out["jobs"] = self._counts["jobs"]
                out["jobsTotal"] = self._counts["jobsTotal"]
            out["elapsedSeconds"] = round(time.monotonic() - self._started, 1)
            return out


def describe(progress: Mapping[str, Any]) -> str | None:
    """``displayStatus`` while running: ``extracting · 340 rows, 7 requests``."""
    stage = progress.get("stage")
    if stage == "extract":
        requests = progress.get("requests")
        tail = f", {requests} requests" if requests else ""
        return f"extracting · {progress.get('rows', 0)} rows{tail}"
    if stage == "normalize":
        return f"normalizing · {progress.get('files', 0)} of {progress.get('filesTotal', 0)} files"
    if stage == "load":
        return f"loading · {progress.get('jobs', 0)} of {progress.get('jobsTotal', 0)} jobs"
    if stage == "waiting":
        return "waiting for another run of the same pipeline"
    return None
