"""The sides of a ``file_sync`` (a directory under the data root, :class:`LocalTree`, or an
allowed fsspec URL, :class:`FsTree`) and the chunked copy and hash between them, called in a
thread a chunk at a time. Local paths use the OS, not fsspec: confinement needs what it hides
(no walking through symlinks, ``O_NOFOLLOW``, replacing a symlink, mtimes in ns)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import stat
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

from ...authoring import Fatal
from .root import DataRoot, PathRefused

#: ``.<name>.runkit-<12 hex of the run id>.part``: never listed (another run may write it).
TEMP = re.compile(r"\A\..*\.runkit-[0-9a-f]{12}\.part\Z", re.S)
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


class SyncError(Fatal):
    """The sync cannot go on as defined (no source, a file where a directory must be)."""


class Vanished(Exception):
    """A file listed at the start was gone when its turn came (skipped with a warning)."""


@attrs.frozen
class Entry:
    size: int
    mtime_ns: int | None  # None: the filesystem does not say
    link: bool = False  # a symlink at the destination: replaced or deleted, never followed


@attrs.frozen
class Listing:
    files: dict[str, Entry]
    temps: list[str]  # temporary names found, of any run
    notes: list[tuple[str, str]]  # (path, why) of entries left alone


def temp_name(name: str, tag: str) -> str:
    if len(name.encode()) > 200:  # with 26 more bytes it could exceed NAME_MAX (255)
        name = hashlib.sha256(name.encode()).hexdigest()[:32]
    return f".{name}.runkit-{tag}.part"


def _selected(keep: Any, rel: str, out: Listing) -> bool:
    """Whether ``keep`` keeps ``rel``: never a name run records (JSON, a line each) can't hold."""
    if not keep.keep(rel):
        return False
    if any(c < " " or c == "\x7f" or "\udc80" <= c <= "\udcff" for c in rel):
        out.notes.append((ascii(rel), "a control character or a name not UTF-8"))
        return False
    return True


def parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


class LocalTree:
    """A directory under the data root; every path is checked for real when touched."""

    def __init__(self, root: DataRoot, relative: str) -> None:
        self.label, self.root = relative, root.real_root()
        self.base = root.resolve(relative)  # PathRefused if it leads out of the root
        self.key = (None, list(self.base.parts))

    def _refused(self, rel: str, why: str = "it leads out of the data root") -> PathRefused:
        return PathRefused(str(PurePosixPath(self.label) / rel), why)

    def _inside(self, real: Path) -> bool:
        return real == self.root or self.root in real.parents

    def listing(self, keep: Any, follow_links: bool) -> Listing | None:
        """The files ``keep`` keeps (None: no tree). Never walks through a symlink. The source
        (``follow_links``) counts one to a file in the root as that file, leaves one to a
        directory alone, fails on one out of the root; at the destination it is an entry."""
        try:
            if not stat.S_ISDIR(os.stat(self.base).st_mode):
                raise SyncError(f"{self.label!r} is not a directory")
        except FileNotFoundError:
            return None
        out, stack = Listing({}, [], []), [(str(self.base), "")]
        while stack:
            directory, prefix = stack.pop()
            with os.scandir(directory) as items:
                for item in items:
                    rel = prefix + item.name
                    if not item.is_dir(follow_symlinks=False):
                        self._file(item, rel, keep, follow_links, out)
                    elif not keep.excluded(rel):
                        stack.append((item.path, rel + "/"))
        return out

    def _file(self, item: os.DirEntry[str], rel: str, keep: Any, links: bool, out: Listing) -> None:
        if TEMP.match(item.name):
            return out.temps.append(rel)
        if not _selected(keep, rel, out):
            return None
        st = item.stat(follow_symlinks=False)
        if item.is_symlink() and not links:
            out.files[rel] = Entry(-1, None, link=True)
        elif item.is_symlink():
            real = Path(item.path).resolve()
            if not self._inside(real):
                raise self._refused(rel, "a symlink that leads out of the data root")
            if not real.is_file():
                return out.notes.append((rel, "a symlink to a directory (or nothing)"))
            st = real.stat()
        elif not stat.S_ISREG(st.st_mode):
            return out.notes.append((rel, "not a regular file"))
        out.files.setdefault(rel, Entry(st.st_size, st.st_mtime_ns))
        return None

    def _directory(self, rel: str, create: bool) -> Path:
        """The real directory of ``rel``, in the root (again once made: a symlink swapped in)."""
        parent = PurePosixPath(rel).parent
        real = (self.base / parent).resolve()
        if create and self._inside(real):
            try:
                real.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise SyncError(f"a file is in the way of directory {str(parent)!r}") from None
            real = (self.base / parent).resolve()
        if not self._inside(real):
            raise self._refused(str(parent))
        return real

    def reader(self, rel: str) -> Any:
        real = (self.base / rel).resolve()
        if not self._inside(real):
            raise self._refused(rel)
        try:
            # O_NONBLOCK: a FIFO swapped in must not hang the open (it is refused below).
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Vanished(rel) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._refused(rel, "it became a symlink during the sync") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise self._refused(rel, "it is not a regular file")
        return open(fd, "rb", buffering=0)  # closed by its Transfer or Digest

    def writer(self, rel: str, tag: str) -> tuple[Any, Path, Path, None]:
        final = self._directory(rel, create=True) / PurePosixPath(rel).name
        if final.is_dir() and not final.is_symlink():
            raise SyncError(f"a directory is in the way of file {rel!r}")
        temp = final.with_name(temp_name(final.name, tag))
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        return open(os.open(temp, flags, 0o644), "wb"), temp, final, None

    def remove(self, rel: str) -> None:
        # unlink never follows the last component: a symlink goes, not what it names.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._directory(rel, create=False) / PurePosixPath(rel).name)


class FsTree:
    """A tree behind an fsspec URL whose protocol the host allows (fsspec imported here)."""

    def __init__(self, url: str) -> None:
        import fsspec  # type: ignore[import-untyped]

        self.label, (self.fs, path) = url, fsspec.core.url_to_fs(url)
        self.base = path.rstrip("/")
        self.key = (url.split("://", 1)[0].lower(), parts(self.base))

    def listing(self, keep: Any, follow_links: bool) -> Listing | None:
        if not self.fs.exists(self.base):
            return None
        if not self.fs.isdir(self.base):
            raise SyncError(f"{self.label!r} is not a directory")
        out = Listing({}, [], [])
        for name, info in self.fs.find(self.base, detail=True, withdirs=False).items():
            rel = name[len(self.base) + 1 :]
            if TEMP.match(rel.rsplit("/", 1)[-1]):
                out.temps.append(rel)
            elif info.get("type") == "file" and _selected(keep, rel, out):
                out.files[rel] = Entry(int(info.get("size") or 0), _mtime_ns(info))
        return out

    def reader(self, rel: str) -> Any:
        try:
            return self.fs.open(f"{self.base}/{rel}", "rb")
        except FileNotFoundError:
            raise Vanished(rel) from None

    def writer(self, rel: str, tag: str) -> tuple[Any, str, str, Any]:
        directory, _, name = f"{self.base}/{rel}".rpartition("/")
        self.fs.makedirs(directory, exist_ok=True)
        temp = f"{directory}/{temp_name(name, tag)}"
        return self.fs.open(temp, "wb"), temp, f"{directory}/{name}", self.fs

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(f"{self.base}/{rel}")


def _mtime_ns(info: dict[str, Any]) -> int | None:
    """The modification time in an fsspec ``info``: each backend names it its own way."""
    keys = ("mtime", "LastModified", "last_modified", "updated", "modified", "created")
    value = next((info[k] for k in keys if info.get(k) is not None), None)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    value = value.timestamp() if isinstance(value, datetime) else value
    return round(value * 1e9) if isinstance(value, int | float) else None


class Transfer:
    """One file's copy to a temporary name, a chunk per :meth:`pump` (in the kernel between
    local files), renamed into place by :meth:`commit`."""

    def __init__(self, src: Any, dst: Any, rel: str, tag: str, mtime_ns: int | None) -> None:
        self.source, self.mtime_ns = src.reader(rel), mtime_ns
        try:
            self.handle, self.temp, self.final, self.fs = dst.writer(rel, tag)
        except BaseException:
            self.source.close()
            raise
        self.kernel = isinstance(self.source, io.FileIO) and self.fs is None

    def pump(self, limit: int) -> tuple[int, bool]:
        """Copy up to ``limit`` bytes (8 times more in the kernel: no buffer, fewer thread
        calls, each still a few ms): (bytes copied, end of file reached)."""
        moved, limit = 0, limit * 8 if self.kernel else limit
        while moved < limit:
            n = self._chunk(limit - moved)
            if n == 0:
                return moved, True
            moved += n
        return moved, False

    def _chunk(self, limit: int) -> int:
        if self.kernel:
            try:
                return os.copy_file_range(self.source.fileno(), self.handle.fileno(), limit)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                self.kernel = False  # not between these files: copy through the process
        data = self.source.read(limit)
        self.handle.write(data)
        return len(data)

    def commit(self) -> None:
        """Rename into place. Locally the source's modification time goes with it, so the
        next size_mtime sync finds the file current; a store sets its own."""
        self.source.close()
        if self.fs is not None:
            self.handle.close()
            self.fs.mv(self.temp, self.final)
            return
        self.handle.flush()
        if self.mtime_ns is not None:
            os.utime(self.handle.fileno(), ns=(self.mtime_ns, self.mtime_ns))
        os.fsync(self.handle.fileno())  # data before name: no half file after a power loss
        self.handle.close()
        os.replace(self.temp, self.final)  # atomic; replaces a symlink, never follows it

    def abort(self) -> None:
        """Drop the temporary file; the real name is untouched."""
        for handle in (self.source, self.handle):
            with contextlib.suppress(OSError):
                handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.temp) if self.fs is not None else os.unlink(self.temp)


class Digest:
    """SHA-256 of one file's content, a chunk per :meth:`pump`."""

    def __init__(self, tree: Any, rel: str) -> None:
        self.source, self.hash = tree.reader(rel), hashlib.sha256()

    def pump(self, limit: int) -> tuple[int, bool]:
        data = self.source.read(limit)
        self.hash.update(data)
        return len(data), not data

    def commit(self) -> str:
        self.source.close()
        return self.hash.hexdigest()

    abort = commit  # closing the file is all there is to undo
