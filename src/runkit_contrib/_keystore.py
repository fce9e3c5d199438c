"""The key store of ``runkit serve``: API keys with roles and a tenant, kept as salted hashes
in a file only its owner can read, and the authenticator that reads it.

One key a line, space-separated, the id first and then ``field=value`` pairs::

    deploy-bot roles=operate tenant=acme hash=hmac-sha256$<salt>$<digest> created=<time>
    old-key roles=admin hash=hmac-sha256$<salt>$<digest> created=<time> revoked=<time>

``hash`` is HMAC-SHA256 of the key under a random 16-byte salt of its own: a leaked file does
not reveal which keys are equal, and the run's ``triggerSourceId`` is the key's *id*, never
derived from the key. A fast hash is enough because every key is made here from 256 random
bits (a slow password hash defends guessable secrets, and these are not). A line of the
older format, ``<id> <sha256 hex>`` (unsalted, every right), is still accepted and shown as
``legacy`` by ``runkit keys list`` so it can be replaced.

A revoked key stays in the file (who had access, and until when) and never authenticates.
A running server re-reads the file when it changes, so a key made or revoked with ``runkit
keys`` counts within about a second, without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import attrs

from runkit import ConfigurationError, Principal

from ._auth import Credentials
from ._errors import logger
from ._roles import parse_roles

_HEADER = (
    "# runkit API keys: <id> roles=<r,...> [tenant=<t>] hash=hmac-sha256$<salt>$<digest> "
    "created=<time> [revoked=<time>]\n"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SCHEME = "hmac-sha256"
#: How often a server looks at the file for changes (one stat call).
RELOAD_SECONDS = 1.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def salted(salt: bytes, key: str) -> str:
    return hmac.new(salt, key.encode("utf-8"), hashlib.sha256).hexdigest()


def check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise ConfigurationError(
            f"invalid {what} {value!r}: letters, digits and ._@:+- (no spaces), up to 128"
        )
    return value


@attrs.frozen
class StoredKey:
    """One line of the key store (never the key itself)."""

    id: str
    roles: frozenset[str]
    tenant: str | None
    #: The salt, or None for a legacy line (``digest`` is then a plain SHA-256).
    salt: bytes | None
    digest: str
    created: str | None = None
    revoked: str | None = None

    @property
    def legacy(self) -> bool:
        return self.salt is None

    def matches(self, key: str) -> bool:
        presented = (
            hashlib.sha256(key.encode("utf-8")).hexdigest()
            if self.salt is None
            else salted(self.salt, key)
        )
        return hmac.compare_digest(presented, self.digest)

    def principal(self) -> Principal:
        return Principal(self.id, kind="api_key", roles=self.roles, tenant=self.tenant)

    def line(self) -> str:
        if self.salt is None:
            return f"{self.id} {self.digest}"
        fields = [self.id, f"roles={','.join(sorted(self.roles))}"]
        if self.tenant is not None:
            fields.append(f"tenant={self.tenant}")
        fields.append(f"hash={_SCHEME}${self.salt.hex()}${self.digest}")
        if self.created is not None:
            fields.append(f"created={self.created}")
        if self.revoked is not None:
            fields.append(f"revoked={self.revoked}")
        return " ".join(fields)


def _parse_line(path: Path, number: int, text: str) -> StoredKey:
    where = f"{path}:{number}"
    name, *rest = text.split()
    if len(rest) == 1 and _HEX64.fullmatch(rest[0].lower()):  # <id> <sha256>: the old format
        return StoredKey(name, frozenset({"admin"}), None, None, rest[0].lower())
    fields: dict[str, str] = {}
    for item in rest:
        field, sep, value = item.partition("=")
        if not sep or field in fields:
            raise ConfigurationError(f"{where}: expected <id> field=value ..., got {item!r}")
        fields[field] = value
    scheme, _, salt_digest = fields.get("hash", "").partition("$")
    salt_hex, _, digest = salt_digest.partition("$")
    if scheme != _SCHEME or not _HEX64.fullmatch(digest) or len(salt_hex) < 32:
        raise ConfigurationError(f"{where}: hash must be {_SCHEME}$<salt hex>$<digest hex>")
    try:
        salt = bytes.fromhex(salt_hex)
        roles = parse_roles([fields.get("roles", "")])
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    return StoredKey(
        name,
        roles,
        fields.get("tenant") or None,
        salt,
        digest,
        created=fields.get("created"),
        revoked=fields.get("revoked"),
    )


def read_keys(path: Path) -> list[StoredKey]:
    """Every key of the store at ``path`` (revoked ones too); [] if it does not exist. A
    malformed line is an error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    keys: list[StoredKey] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key = _parse_line(path, number, stripped)
        if key.id in seen:
            raise ConfigurationError(f"{path}:{number}: key id {key.id!r} appears twice")
        seen.add(key.id)
        keys.append(key)
    return keys


def _write(path: Path, keys: Sequence[StoredKey]) -> None:
    """Replace the store atomically (a reader sees the old file or the new, never half),
    mode 0600 in a 0700 directory."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(_HEADER)
            f.writelines(k.line() + "\n" for k in keys)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def create_key(
    path: Path,
    name: str | None = None,
    *,
    roles: Iterable[str] = ("operate",),
    tenant: str | None = None,
) -> tuple[StoredKey, str]:
    """A new key whose salted hash joins the store at ``path`` (made mode 0600 if missing).
    Returns the stored line and the key, which exists nowhere else."""
    try:
        role_set = parse_roles(roles)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    keys = read_keys(path)
    name = check_name(name or f"key-{secrets.token_hex(4)}", "key id")
    if tenant is not None:
        check_name(tenant, "tenant")
    if any(k.id == name for k in keys):
        raise ConfigurationError(f"a key with id {name!r} is already in {path}")
    key = "rk_" + secrets.token_urlsafe(32)  # 256 bits
    salt = secrets.token_bytes(16)
    stored = StoredKey(name, role_set, tenant, salt, salted(salt, key), created=_now())
    _write(path, [*keys, stored])
    return stored, key


def revoke_key(path: Path, name: str) -> StoredKey:
    """Mark key ``name`` revoked (it stays listed); ConfigurationError if there is none."""
    keys = read_keys(path)
    for i, key in enumerate(keys):
        if key.id == name:
            if key.revoked is None:
                keys[i] = attrs.evolve(key, revoked=_now())
                _write(path, keys)
            return keys[i]
    raise ConfigurationError(f"no key with id {name!r} in {path}")


class KeyStore:
    """The authenticator over a key store file (bearer or ``X-API-Key``; not cookies).

    Every active key is compared, with no early exit, so timing does not tell which key
    nearly matched. The file is re-read when its size, inode or modification time changes,
    looked at no more than once every :data:`RELOAD_SECONDS`; an unreadable or malformed
    file keeps the keys last read (and logs why) rather than locking everyone out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: list[StoredKey] = []
        self._stamp: tuple[int, int, int] | None = None
        self._checked = -float("inf")
        self.reload(force=True)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def reload(self, *, force: bool = False) -> None:
        self._checked = time.monotonic()
        stamp = self._stat()
        if stamp == self._stamp and not force:
            return
        try:
            keys = read_keys(self.path)
        except (ConfigurationError, OSError, UnicodeDecodeError) as exc:
            if force:
                raise
            logger.error(
                "key store %s not reloaded, keeping the keys read before: %s", self.path, exc
            )
            return
        self._keys = [k for k in keys if k.revoked is None]
        self._stamp = stamp

    def __len__(self) -> int:
        return len(self._keys)

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        if credentials.carrier == "cookie" or not credentials.secret:
            return None
        if time.monotonic() - self._checked >= RELOAD_SECONDS:
            self.reload()
        found: StoredKey | None = None
        for key in self._keys:  # no early exit: the same work whichever key matches
            if key.matches(credentials.secret):
                found = key
        return found.principal() if found is not None else None
