"""``file_sync``: copy what is new or changed from one directory to another (under the data
root, or behind an allowed fsspec URL), and with ``delete`` remove the rest.

Each file goes to a temporary name, then is renamed into place. Files go in path order; the
run checkpoints after each copy or delete (every 0.25 s while files only compare equal), so
a resumed or reclaimed run goes on after the last file done; a file renamed but not yet
checkpointed when a worker died compares as current (its mtime is kept) and is skipped.
The I/O runs in a thread a chunk per call: cancel and pause land between chunks."""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
import attrs

from ...authoring import Kind, KindChecks, RetryPolicy, RunContext
from ...domain.errors import ErrorDetail, ValidationError
from .file_sync_trees import Digest, Entry, FsTree, LocalTree, SyncError, Transfer, Vanished, parts
from .root import DataRoot, PathRefused, current_root

EXTRA = "runkit[files]"
CHUNK = 4 * 1024 * 1024  # bytes per thread call: the most a cancel waits for
LISTED = 1000  # files the result lists
PROGRESS_EVERY = 0.5
CHECKPOINT_EVERY = 0.25  # while files are only compared: keeps a pause prompt
_DRY = {"copied": "would copy", "deleted": "would delete"}


def _patterns(_: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for pattern in value:
        if not parts(pattern) or len(pattern) > 1024:
            raise ValueError(f"{pattern[:40]!r}: a pattern is 1 to 1024 characters, not only /")
        if any(ord(c) < 32 or c == "\\" for c in pattern):
            raise ValueError(f"{pattern[:40]!r}: control characters and \\ are not allowed")


_PATTERNS = attrs.validators.and_(attrs.validators.max_len(256), _patterns)


@attrs.frozen
class FileSyncConfig:
    """``source``, ``destination``: paths under the data root or URLs of protocols the host
    allows, neither inside the other. ``include``/``exclude``: globs on paths under ``source``
    (``*`` in a name, ``**`` across directories; one matching a directory covers its files).
    ``delete``: remove destination files the source lacks (not excluded ones). ``compare``:
    ``size_mtime`` (size differs or source newer) or ``checksum`` (SHA-256). ``dryRun``."""

    source: str
    destination: str
    include: tuple[str, ...] = attrs.field(default=("**/*",), validator=_PATTERNS)
    exclude: tuple[str, ...] = attrs.field(default=(), validator=_PATTERNS)
    delete: bool = False
    compare: str = attrs.field(
        default="size_mtime", validator=attrs.validators.in_(("size_mtime", "checksum"))
    )
    dry_run: bool = False


def _glob(pattern: str) -> re.Pattern[str]:
    """``pattern`` as a regex on a relative path, also matching everything below a match."""
    out, segments = [], parts(pattern)
    for i, part in enumerate(segments):
        last = i == len(segments) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        for token in re.findall(r"\*|\?|\[!?\]?[^\]]*\]|.", part, re.S):
            if token in ("*", "?"):
                out.append("[^/]*" if token == "*" else "[^/]")
            elif len(token) > 2 and token[0] == "[":  # a class; [!...] negates, as in fnmatch
                body = token[1:-1].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body[0] == "!" else body) + "]")
            else:
                out.append(re.escape(token))
        out.append("" if last else "/")
    return re.compile("".join(out) + r"(?:/.*)?\Z", re.S)


class Filter:
    def __init__(self, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
        self._include, self._exclude = [_glob(p) for p in include], [_glob(p) for p in exclude]

    def excluded(self, rel: str) -> bool:
        return any(p.match(rel) for p in self._exclude)

    def keep(self, rel: str) -> bool:
        return any(p.match(rel) for p in self._include) and not self.excluded(rel)


def _overlap(a: tuple[str | None, list[str]], b: tuple[str | None, list[str]]) -> bool:
    n = min(len(a[1]), len(b[1]))
    return a[0] == b[0] and a[1][:n] == b[1][:n]


def check(config: FileSyncConfig, checks: KindChecks) -> None:
    """At create: fsspec is there, both places pass the root's literal check, apart."""
    if importlib.util.find_spec("fsspec") is None:  # not cached: installing it is seen
        why = f"file_sync needs the extra {EXTRA} (missing: fsspec): pip install '{EXTRA}'"
        raise ValidationError.at(("definition",), why, "missing_extra")
    root, errors, found = current_root(), list[ErrorDetail](), []
    for field in ("source", "destination"):
        try:
            found.append(root.check(getattr(config, field), ("definition", field)))
        except ValidationError as exc:
            errors.extend(exc.details)
    keys = [(place.protocol, parts(place.path.split("://", 1)[-1])) for place in found]
    if not errors and _overlap(*keys):
        why = "source and destination overlap: one may not be inside the other"
        errors.append(ErrorDetail(("definition", "destination"), why, "overlap"))
    if errors:
        raise ValidationError(errors)


def _open(root: DataRoot, value: str) -> LocalTree | FsTree:
    try:  # again at run time: the host's policy may have changed since the create
        place = root.check(value, ())
    except ValidationError as exc:
        raise PathRefused(value, exc.details[0].msg) from None
    return LocalTree(root, value) if place.is_local else FsTree(value)


class Sync:
    """One attempt of one run. ``state`` is what the checkpoints save: copies come first,
    then deletes, each in path order, and ``after`` is the last path done in ``phase``."""

    def __init__(self, ctx: RunContext, files: int, size: int) -> None:
        self.ctx, self.dry, self.totals = ctx, bool(ctx.definition.dry_run), (files, size)
        self.state: dict[str, Any] = {
            **{"phase": "copying", "after": None, "files": "", "bytes": 0},
            **{"copied": 0, "skipped": 0, "deleted": 0, "filesDone": 0, "bytesDone": 0},
            **(ctx.saved_checkpoint or {}),
        }
        self.in_flight = 0  # bytes of the current file copied (or hashed) so far
        self.current: str | None = None
        self.started = self._shown = self._saved = time.monotonic()

    def todo(self, phase: str, rel: str) -> bool:
        return self.state["phase"] == phase and (self.state["after"] or "") < rel

    def progress(self) -> dict[str, Any]:
        s, (files, size) = self.state, self.totals
        done = {"filesDone": s["filesDone"], "bytesDone": s["bytesDone"] + self.in_flight}
        totals = {"filesTotal": files, "bytesTotal": size}
        return {"phase": s["phase"], **done, **totals, "current": self.current}

    async def done(self, rel: str, action: str, size: int = 0) -> None:
        """Count ``rel`` done, log what was done to it and checkpoint: after each copy or
        delete, else every CHECKPOINT_EVERY s. A pause asked for stops the run here
        (``ctx.checkpoint`` does not return)."""
        s, self.in_flight = self.state, 0
        s["after"], s["filesDone"], s["bytesDone"] = rel, s["filesDone"] + 1, s["bytesDone"] + size
        s[action] += 1
        if s["files"].count("\n") < LISTED:  # one string: far cheaper to save than a list
            s["files"] += f"{action[0]}{rel}\n"
        if action != "skipped":
            verb = _DRY[action] if self.dry else action
            message = f"{verb} {rel}" + (f" ({size} B)" if action == "copied" else "")
            event, data = "file." + verb.replace(" ", "_"), {"path": rel, "bytes": size}
            await self.ctx.log("info", message, event=event, data=data)
        if action != "skipped" or time.monotonic() - self._saved >= CHECKPOINT_EVERY:
            self._saved = self._shown = time.monotonic()
            await self.ctx.checkpoint(s, progress=self.progress())

    async def drive(self, start: Callable[[], Any], counted: bool = True) -> Any:
        """Open a pump (a Transfer or a Digest) and run it a chunk per thread call, committing
        it in the last (a small file: one call in all); on a failure or a cancel, abort it: a
        Transfer's temporary file goes, the real name is untouched."""

        pump: Any = None

        def step() -> tuple[int, bool, Any]:
            nonlocal pump
            pump = pump or start()
            n, end = pump.pump(CHUNK)
            return n, end, pump.commit() if end else None

        try:
            while True:
                n, end, value = await anyio.to_thread.run_sync(step)
                self.in_flight += n if counted else 0
                if time.monotonic() - self._shown >= PROGRESS_EVERY:
                    self._shown = time.monotonic()
                    await self.ctx.progress(self.progress())
                if end:
                    return value
        except BaseException:
            if pump is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(pump.abort)
            raise

    async def copy(self, src: Any, dst: Any, rel: str, entry: Entry, there: Entry | None) -> None:
        self.current, tag = rel, self.ctx.run_id.hex[:12]
        try:
            changed = there is None or there.link or entry.size != there.size
            hashed = not changed and self.ctx.definition.compare == "checksum"
            if hashed:  # the source's hash is progress; the destination's is not
                ours = await self.drive(lambda: Digest(src, rel))
                changed = ours != await self.drive(lambda: Digest(dst, rel), counted=False)
            elif not changed:
                a, b = entry.mtime_ns, there.mtime_ns if there else None
                changed = a is None or b is None or a > b
            if changed and not self.dry:  # a copy after a hash: those bytes are counted
                start = partial(Transfer, src, dst, rel, tag, entry.mtime_ns)
                await self.drive(start, counted=not hashed)
        except Vanished:  # from the source (or, while hashing, from the destination)
            await self.ctx.log("warning", f"skipped {rel}: it vanished", event="file.vanished")
            changed = False
        self.state["bytes"] += entry.size if changed else 0
        await self.done(rel, "copied" if changed else "skipped", entry.size)

    def result(self) -> dict[str, Any]:
        s = self.state
        actions = {"c": "copied", "s": "skipped", "d": "deleted"}
        listed = [{"path": f[1:], "action": actions[f[0]]} for f in s["files"].split("\n")[:-1]]
        counts = {k: s[k] for k in ("copied", "skipped", "deleted", "bytes")}
        total = s["copied"] + s["skipped"] + s["deleted"]
        return {**counts, "files": listed, "truncated": total > len(listed), "dryRun": self.dry}


async def execute(ctx: RunContext) -> dict[str, Any]:
    config: FileSyncConfig = ctx.definition
    root, keep = current_root(), Filter(config.include, config.exclude)
    src = await anyio.to_thread.run_sync(_open, root, config.source)
    dst = await anyio.to_thread.run_sync(_open, root, config.destination)
    if _overlap(src.key, dst.key):  # literally apart, but not once symlinks are followed
        raise SyncError("source and destination overlap")
    await ctx.progress({"phase": "scanning"})
    sources = await anyio.to_thread.run_sync(src.listing, keep, True)
    if sources is None:
        raise SyncError(f"the source {config.source!r} does not exist")
    targets = await anyio.to_thread.run_sync(dst.listing, keep, False)
    present = targets.files if targets is not None else {}
    extra = sorted(set(present) - set(sources.files)) if config.delete else []
    sync = Sync(ctx, len(sources.files) + len(extra), sum(e.size for e in sources.files.values()))
    for rel, why in sources.notes:
        await ctx.log("warning", f"left alone: {rel}: {why}", event="file.ignored")
    if ctx.saved_checkpoint:
        await ctx.log("info", f"resuming after {sync.state['after']!r}", event="sync.resumed")
    for rel in sorted(sources.files):
        if sync.todo("copying", rel):
            await sync.copy(src, dst, rel, sources.files[rel], present.get(rel))
    if sync.state["phase"] == "copying":
        sync.state.update(phase="deleting", after=None)
    for rel in extra:
        if sync.todo("deleting", rel):
            sync.current = rel
            if not sync.dry:
                await anyio.to_thread.run_sync(dst.remove, rel)
            await sync.done(rel, "deleted")
    for rel in [] if sync.dry or targets is None else targets.temps:
        if f".runkit-{ctx.run_id.hex[:12]}." in rel:  # left by a crashed attempt of this run
            await anyio.to_thread.run_sync(dst.remove, rel)
    sync.state["phase"], sync.current = "done", None
    await ctx.progress(sync.progress())
    result, took = sync.result(), time.monotonic() - sync.started
    said = ", ".join(f"{k} {result[k]}" for k in ("copied", "skipped", "deleted"))
    await ctx.log("info", f"{'dry run: ' * sync.dry}{said} in {took:.1f} s", event="sync.done")
    return result


def describe(p: Mapping[str, Any]) -> str | None:
    """``copying · 120 of 2,000 files (1,234.5 of 3,456.7 MB)`` while running."""
    if p.get("phase") not in ("copying", "deleting"):
        return "listing files" if p.get("phase") == "scanning" else None
    mb = f"{p.get('bytesDone', 0) / 1e6:,.1f} of {p.get('bytesTotal', 0) / 1e6:,.1f} MB"
    return f"{p['phase']} · {p.get('filesDone', 0):,} of {p.get('filesTotal', 0):,} files ({mb})"


KIND = Kind(
    name="file_sync",
    executor=execute,
    config=FileSyncConfig,
    display_name="File sync",
    description="Copies new and changed files between two directories (under the data root or"
    f" allowed fsspec URLs), optionally deleting the rest; resumes per file. Needs {EXTRA}.",
    pausable=True,
    # I/O errors (a network store) are retried from the last checkpoint; PathRefused and
    # SyncError are Fatal.
    retry=RetryPolicy(max_attempts=3, backoff_base=2.0, backoff_max=60.0),
    describe_progress=describe,
    check=check,
    example={
        "source": "exports/daily",
        "destination": "archive/daily",
        "include": ["**/*.parquet", "**/*.csv"],
        "exclude": ["**/_tmp"],
        "delete": True,
        "compare": "size_mtime",
        "dryRun": False,
    },
)
