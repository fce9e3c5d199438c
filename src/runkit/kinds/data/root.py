"""The data root: the one directory the data kinds (``duckdb_transform``, ``file_sync``,
``dlt_extract``) may read and write, and the checks that keep every path inside it.

Where the root is, at every check (create time and each run):

1. the policy passed to :func:`configure_data`, when the host called it (process-wide);
2. otherwise ``RUNKIT_DATA_ROOT`` (read afresh each time);
3. otherwise ``./runkit-data``, in the working directory (beside the default database).

A path in a definition is relative to the root, ``/``-separated. Two checks guard it:

* **literal** (:meth:`DataRoot.check`, at create time, a 422): no absolute path, no ``..``,
  no ``\\``, NUL or other control character, no character whose Unicode compatibility form
  is a separator or a dot (fullwidth full stops and solidus are ``../`` to some libraries),
  and not too long;
* **real** (:meth:`DataRoot.resolve`, at run time, a failed run): the path with every
  symlink followed must still be inside the root's own real path (a symlink created after
  the run was accepted is caught here), and an existing entry must be a regular file or a
  directory (no devices, FIFOs or sockets).

URLs of other fsspec protocols (``s3://``, ``gcs://``, ``memory://``, ...) are refused unless
the host allows each protocol by name (:class:`DataPolicy.protocols`,
``RUNKIT_DATA_PROTOCOLS=s3,gcs``). ``file://`` URLs are refused: local data is named by its
path under the root.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

import attrs

from ...authoring import Fatal
from ...domain.errors import ValidationError

ROOT_ENV = "RUNKIT_DATA_ROOT"
PROTOCOLS_ENV = "RUNKIT_DATA_PROTOCOLS"
DEFAULT_ROOT = "runkit-data"
#: Longest relative path accepted (bytes of UTF-8), and longest name within it.
MAX_PATH = 1024
MAX_NAME = 255
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: Characters a compatibility normalisation could turn into path syntax.
_SYNTAX = frozenset("/\\.:")


class PathRefused(Fatal):
    """A path that leaves the data root (or names something that is not a file or a
    directory), found at run time. Fails the run; no retry can fix it."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"path {path!r} refused: {why}")
        self.details = {"path": path, "reason": why}


def _optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _protocols(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    return tuple(sorted({p.strip().lower() for p in value if p.strip()}))


@attrs.frozen
class DataPolicy:
    """Where the data kinds work, and which fsspec protocols beyond local paths they may
    use. ``root`` None: ``RUNKIT_DATA_ROOT``, else ``./runkit-data``."""

    root: Path | None = attrs.field(default=None, converter=_optional_path)
    protocols: tuple[str, ...] = attrs.field(default=(), converter=_protocols)

    def __attrs_post_init__(self) -> None:
        if "file" in self.protocols:
            raise ValueError("file:// is never allowed: name local data by its path")


_configured: DataPolicy | None = None
_lock = threading.Lock()


def configure_data(policy: DataPolicy | None) -> None:
    """Set the data policy for the process (None: back to the environment)."""
    global _configured
    with _lock:
        _configured = policy


def current_policy() -> DataPolicy:
    """The policy in force now: configured, else from the environment."""
    if _configured is not None:
        return _configured
    env_root = os.environ.get(ROOT_ENV, "").strip()
    return DataPolicy(
        root=Path(env_root) if env_root else None,
        protocols=os.environ.get(PROTOCOLS_ENV, ""),
    )


def current_root() -> DataRoot:
    policy = current_policy()
    return DataRoot(policy.root or Path(DEFAULT_ROOT), policy.protocols)


def _refusal(path: str) -> str | None:
    """Why the literal ``path`` is refused, or None."""
    if not path:
        return "empty path"
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        return f"longer than {MAX_PATH} bytes"
    for ch in path:
        if ch == "\x00" or unicodedata.category(ch) in ("Cc", "Cs"):
            return "control characters are not allowed"
        if ch == "\\":
            return "backslashes are not allowed (use /)"
        compat = unicodedata.normalize("NFKC", ch)
        if compat != ch and _SYNTAX & set(compat):
            return f"{ch!r} reads as {compat!r} once normalised"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "absolute paths are not allowed (paths are relative to the data root)"
    for part in path.split("/"):
        if part == "..":
            return "'..' is not allowed"
        if len(part.encode("utf-8")) > MAX_NAME:
            return f"a name longer than {MAX_NAME} bytes"
    return None


@attrs.frozen
class Location:
    """A checked place: a path under the root (``protocol`` None) or an allowed URL."""

    protocol: str | None
    path: str

    @property
    def is_local(self) -> bool:
        return self.protocol is None


@attrs.frozen
class DataRoot:
    """The data root at ``path`` and the fsspec protocols allowed besides it."""

    path: Path
    protocols: tuple[str, ...] = ()

    def check(self, value: object, loc: Sequence[str | int]) -> Location:
        """The literal check of a definition's path or URL: a ValidationError at ``loc``
        (a 422 at create time) if refused."""
        if not isinstance(value, str):
            raise ValidationError.at(loc, "must be a string", "string_type")
        url = _URL.match(value)
        if url:
            protocol = url.group(1).lower()
            if protocol == "file":
                raise ValidationError.at(
                    loc, "file:// URLs are refused: name local data by its path", "path_refused"
                )
            if protocol not in self.protocols:
                raise ValidationError.at(
                    loc,
                    f"protocol {protocol!r} is not allowed; the host allows protocols by name "
                    f"({PROTOCOLS_ENV})",
                    "protocol_refused",
                )
            return Location(protocol, value)
        why = _refusal(value)
        if why is not None:
            raise ValidationError.at(loc, f"path {value!r} refused: {why}", "path_refused")
        return Location(None, value)

    def real_root(self) -> Path:
        """The root's real path, created on first use."""
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path.resolve(strict=True)

    def resolve(self, relative: str, *, must_exist: bool = False) -> Path:
        """The real path of ``relative`` under the root, checked now (run time): raises
        :class:`PathRefused` if it leaves the root or names a device, FIFO or socket."""
        why = _refusal(relative)
        if why is not None:
            raise PathRefused(relative, why)
        root = self.real_root()
        candidate = root / PurePosixPath(relative)
        real = candidate.resolve(strict=False)  # follows every symlink that exists
        if real != root and root not in real.parents:
            raise PathRefused(relative, "it leads out of the data root")
        try:
            mode = real.stat().st_mode
        except FileNotFoundError:
            if must_exist:
                raise PathRefused(relative, "it does not exist") from None
            return real
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise PathRefused(relative, "it is not a regular file or a directory")
        return real

    def contains(self, real: Path) -> bool:
        """Whether the real path ``real`` is inside the root (for paths found by walking)."""
        root = self.real_root()
        resolved = real.resolve(strict=False)
        return resolved == root or root in resolved.parents
