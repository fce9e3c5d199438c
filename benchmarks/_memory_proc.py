"""What the ``memory`` family reads of a process: its resident set (``VmRSS``) and peak
(``VmHWM``) from ``/proc/<pid>/status``, once or sampled by a thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

MB = 1024 * 1024


def status_kb(pid: int, key: str = "VmRSS") -> int | None:
    """One ``/proc/<pid>/status`` figure in kB; None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def rss_mb(pid: int) -> float:
    kb = status_kb(pid)
    return kb / 1024 if kb is not None else float("nan")


def hwm_mb(pid: int) -> float:
    """The process's peak resident set so far (the kernel's, between samples too)."""
    kb = status_kb(pid, "VmHWM")
    return kb / 1024 if kb is not None else float("nan")


class RssSampler:
    """Samples a process's VmRSS every ``interval`` seconds in a thread, from :meth:`start`
    to :meth:`stop`: ``samples`` are ``(seconds since start, MB)``."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            kb = status_kb(self.pid)
            if kb is None:
                return
            self.samples.append((time.monotonic() - start, kb / 1024))
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def peak(self) -> float:
        return max((mb for _, mb in self.samples), default=float("nan"))

    def thinned(self, points: int = 60) -> list[list[float]]:
        """At most ``points`` samples, evenly spaced, plus the peak: for the result file."""
        step = max(1, len(self.samples) // points)
        keep = self.samples[::step]
        if self.samples:
            top = max(self.samples, key=lambda s: s[1])
            if top not in keep:
                keep = sorted([*keep, top])
        return [[round(t, 2), round(mb, 1)] for t, mb in keep]
