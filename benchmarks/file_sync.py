"""``file_sync`` beside ``cp -r``, in the same run, on the same file system.

Two scenarios, each a fresh data root (a temporary directory) per repetition:

* **small**: 2,000 files of 4 KiB in 20 directories (smoke: 200);
* **large**: one file of 500 MB (smoke: 50 MB).

In each repetition the source is written first (so both copies read it from the page cache),
then ``cp -r`` copies it to one destination (and, as a second reference, ``cp -r`` followed
by an fsync of each copied file), then a ``file_sync`` run copies it to another:
created with ``execute=True`` on a fresh SQLite file (runkit's default store) and executed by
an embedded worker started beforehand; its time is the run's ``createdAt`` to
``completedAt``. A second ``file_sync`` of the same definition (nothing to copy) is timed
too. The ratio is runkit / cp (lower is better; 1.0 is parity).

What runkit does beyond ``cp``, per file: checks the real path, writes a temporary name,
sets the mtime, fsyncs, renames, logs ``file.copied`` and saves a checkpoint (a transaction
on the store). Correct when both destinations hold exactly the source's content
(SHA-256 of every file); otherwise the result carries errors.

``python -m benchmarks.file_sync [--smoke]`` runs it alone; ``run(ctx)`` is the family entry.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _harness as h

SMALL_FILES = 2000
SMALL_SIZE = 4096
DIRECTORIES = 20
LARGE_MB = 500


def _digests(top: Path) -> dict[str, str]:
    out = {}
    for path in sorted(p for p in top.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(8 * 1024 * 1024):
                digest.update(chunk)
        out[path.relative_to(top).as_posix()] = digest.hexdigest()
    return out


def _fsync_all(top: Path) -> None:
    for path in top.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _write_small(top: Path, n: int) -> None:
    for i in range(n):
        path = top / f"d{i % DIRECTORIES:02}" / f"f{i:05}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(SMALL_SIZE))


def _write_large(top: Path, megabytes: int) -> None:
    top.mkdir(parents=True)
    block = os.urandom(1024 * 1024)
    with (top / "large.bin").open("wb") as f:
        for _ in range(megabytes):
            f.write(block)


async def _sync_twice(root: Path, db: Path) -> tuple[float, float, dict[str, Any]]:
    """(first run s, second run s, first result) of file_sync src -> runkit on ``root``."""
    import runkit
    from runkit.kinds.data import DataPolicy, configure_data

    configure_data(DataPolicy(root=root))
    try:
        async with (
            runkit.Runkit(f"sqlite:///{db}", autoload_plugins=False) as rk,
            runkit.embedded_workers(rk, concurrency=2, poll_interval=0.05),
        ):
            times, results = [], []
            for _ in range(2):
                definition = {"source": "src", "destination": "runkit"}
                created = await rk.create("file_sync", definition, execute=True)
                run = await rk.wait(created.run.id, timeout=3600, poll=0.01)
                if run.status.value != "succeeded" or run.completed_at is None:
                    raise RuntimeError(f"file_sync {run.status.value}: {run.error}")
                times.append((run.completed_at - run.created_at).total_seconds())
                results.append(run.result or {})
            return times[0], times[1], results[0]
    finally:
        configure_data(None)


def _once(write: Any, expected_files: int) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="bench-file-sync-"))
    try:
        root = base / "data"
        write(root / "src")
        os.sync()  # the writes' flush is not charged to the first copy
        t0 = time.perf_counter()
        subprocess.run(["cp", "-r", str(root / "src"), str(root / "cp")], check=True)
        cp_s = time.perf_counter() - t0
        # cp -r again, then an fsync of each file: the durability runkit pays for (it fsyncs
        # each file before renaming it into place). Shown beside the ratio, not in it.
        t0 = time.perf_counter()
        subprocess.run(["cp", "-r", str(root / "src"), str(root / "cp-fsync")], check=True)
        _fsync_all(root / "cp-fsync")
        cp_fsync_s = time.perf_counter() - t0
        runkit_s, noop_s, result = asyncio.run(_sync_twice(root, base / "runkit.db"))
        source = _digests(root / "src")
        errors = []
        if len(source) != expected_files:
            errors.append(f"{len(source)} source files, expected {expected_files}")
        for name in ("cp", "cp-fsync", "runkit"):
            if _digests(root / name) != source:
                errors.append(f"{name}: the destination differs from the source")
        if result.get("copied") != expected_files:
            errors.append(f"file_sync copied {result.get('copied')}, expected {expected_files}")
        size = sum((root / "src" / rel).stat().st_size for rel in source)
        return {
            "cp_s": cp_s,
            "cp_fsync_s": cp_fsync_s,
            "runkit_s": runkit_s,
            "noop_s": noop_s,
            "ratio": runkit_s / cp_s,
            "runkit_files_per_s": expected_files / runkit_s,
            "runkit_mb_per_s": size / 1e6 / runkit_s,
            "cp_mb_per_s": size / 1e6 / cp_s,
            "errors": errors,
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _report(ctx: h.Context, scenario: str, what: str, figures: dict[str, Any]) -> None:
    cp, mine = figures["cp_s"], figures["runkit_s"]
    ctx.add(h.Result(scenario, "cp -r", "seconds", stats=cp, unit="s", extra={"what": what}))
    ctx.add(
        h.Result(
            scenario,
            "runkit file_sync",
            "seconds",
            stats=mine,
            unit="s",
            baseline="cp -r",
            baseline_value=cp.median,
            ratio=mine.median / cp.median,
            # Not gated in smoke: its sizes differ from the full run's (200 files copy in a
            # few ms with cp -r), so a smoke ratio is no measure of the stored full one.
            ratio_key=None if ctx.smoke else f"{scenario}.runkit_vs_cp",
            higher_is_better=False,
            extra={
                "what": what,
                "second_run_nothing_to_copy_s": figures["noop_s"].median,
                "cp_then_fsync_each_file_s": figures["cp_fsync_s"].median,
                "ratio_vs_cp_then_fsync": mine.median / figures["cp_fsync_s"].median,
                "runkit_files_per_s": figures["runkit_files_per_s"].median,
                "runkit_mb_per_s": figures["runkit_mb_per_s"].median,
                "cp_mb_per_s": figures["cp_mb_per_s"].median,
            },
            errors=figures["errors"],
        )
    )


def run(ctx: h.Context) -> None:
    n = ctx.size(SMALL_FILES, 200)
    what = f"{n} files of {SMALL_SIZE} B in {DIRECTORIES} directories"
    ctx.say(f"file_sync: {what}, then one file of {ctx.size(LARGE_MB, 50)} MB; vs cp -r")
    small = h.repeat(ctx, lambda: _once(lambda top: _write_small(top, n), n))
    _report(ctx, "file_sync-small", what, small)
    megabytes = ctx.size(LARGE_MB, 50)
    large = h.repeat(ctx, lambda: _once(lambda top: _write_large(top, megabytes), 1))
    _report(ctx, "file_sync-large", f"one file of {megabytes} MB", large)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.file_sync")
    parser.add_argument("--smoke", action="store_true", help="1 repetition, small sizes")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    ctx = h.Context(smoke=args.smoke, reps=1 if args.smoke else args.reps)
    run(ctx)
    for result in ctx.results:  # the figures beside the ratio (the JSON report has them too)
        extra = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.extra.items()}
        print(f"  {result.scenario} / {result.system}: {extra}")


if __name__ == "__main__":
    main()
