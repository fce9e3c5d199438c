"""The key store of ``runkit serve``: API keys with roles and a tenant, kept as salted hashes
in a file only its owner can read, and the authenticator that reads it.

One key a line, space-separated, the id first and then ``field=value`` pairs::

    deploy-bot roles=operate tenant=acme hash=hmac-sha256$<salt>$<digest> created=<time>
    ada roles=approve user=ada first=Ada last=Lovelace hash=... created=<time>
    old-key roles=admin hash=hmac-sha256$<salt>$<digest> created=<time> revoked=<time>
    !session-secret <64 hex digits> created=<time>

``hash`` is HMAC-SHA256 of the key under a random 16-byte salt of its own: a leaked file does
not reveal which keys are equal, and the run's ``triggerSourceId`` is the key's *id*, never
derived from the key. A fast hash is enough because every key is made here from 256 random
bits (a slow password hash defends guessable secrets, and these are not). A key may name
the person it belongs to (``user`` id, default the key's id; ``first``, ``last`` names and
``picture`` URL, percent-encoded): the dashboard's sessions act as that user, and the runs
list's ``users`` map shows them. The ``!session-secret`` line (``!`` can start no key id)
holds the secret that signs dashboard sessions; replacing it signs every session out. A
line of the older format, ``<id> <sha256 hex>`` (unsalted, every right), is still accepted
and shown as ``legacy`` by ``runkit keys list`` so it can be replaced.

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
from urllib.parse import quote, unquote, urlsplit

import attrs

from runkit import ConfigurationError, Principal, UserProfile

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
_SECRET_LINE = "!session-secret"
#: The person fields of a line, in the order written.
_PERSON_FIELDS = ("user", "first", "last", "picture")
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
class Person:
    """The person a key belongs to, as the runs list's ``users`` map shows them."""

    user: str | None = None
    first: str | None = None
    last: str | None = None
    picture: str | None = None

    def __bool__(self) -> bool:
        return any((self.user, self.first, self.last, self.picture))


def check_person(person: Person) -> Person:
    """``person`` if its fields are fit to store and show; ConfigurationError otherwise."""
    if person.user is not None:
        check_name(person.user, "user id")
    for label, value in (("first name", person.first), ("last name", person.last)):
        if value is not None and not (0 < len(value) <= 128 and value.isprintable()):
            raise ConfigurationError(f"invalid {label} {value!r}: 1 to 128 printable characters")
    if person.picture is not None:
        # Shown as an <img src>: only a web address, never javascript: or data: URLs.
        parts = urlsplit(person.picture)
        if parts.scheme not in ("https", "http") or not parts.netloc or len(person.picture) > 2048:
            raise ConfigurationError(f"invalid picture URL {person.picture!r}: an http(s) URL")
    return person


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
    person: Person = Person()

    @property
    def legacy(self) -> bool:
        return self.salt is None

    @property
    def user_id(self) -> str:
        """The id its dashboard sessions act as: the person's, else the key's own."""
        return self.person.user or self.id

    def profile(self) -> UserProfile | None:
        if not self.person:
            return None
        p = self.person
        return UserProfile(self.user_id, p.first, p.last, p.picture)

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
        for field in _PERSON_FIELDS:
            value = getattr(self.person, field)
            if value is not None:
                fields.append(f"{field}={quote(value, safe='')}")
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
    person = Person(**{f: unquote(fields[f]) or None for f in _PERSON_FIELDS if f in fields})
    return StoredKey(
        name,
        roles,
        fields.get("tenant") or None,
        salt,
        digest,
        created=fields.get("created"),
        revoked=fields.get("revoked"),
        person=person,
    )


@attrs.frozen
class StoreFile:
    """What a key store file holds: its keys, and the secret that signs sessions."""

    keys: list[StoredKey]
    session_secret: bytes | None = None
    secret_created: str | None = None


def _parse_secret(path: Path, number: int, text: str) -> tuple[bytes, str | None]:
    _, *rest = text.split()
    if not rest or not _HEX64.fullmatch(rest[0]):
        raise ConfigurationError(f"{path}:{number}: expected {_SECRET_LINE} <64 hex digits>")
    created = rest[1].removeprefix("created=") if len(rest) > 1 else None
    return bytes.fromhex(rest[0]), created


def read_store(path: Path) -> StoreFile:
    """Every key of the store at ``path`` (revoked ones too) and its session secret; empty if
    it does not exist. A malformed line is an error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return StoreFile([])
    keys: list[StoredKey] = []
    seen: set[str] = set()
    secret: tuple[bytes, str | None] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.split(maxsplit=1)[0] == _SECRET_LINE:
            secret = _parse_secret(path, number, stripped)
            continue
        key = _parse_line(path, number, stripped)
        if key.id in seen:
            raise ConfigurationError(f"{path}:{number}: key id {key.id!r} appears twice")
        seen.add(key.id)
        keys.append(key)
    if secret is None:
        return StoreFile(keys)
    return StoreFile(keys, secret[0], secret[1])


def read_keys(path: Path) -> list[StoredKey]:
    """Every key of the store at ``path`` (revoked ones too); [] if it does not exist."""
    return read_store(path).keys


def _write(path: Path, keys: Sequence[StoredKey], store: StoreFile) -> None:
    """Replace the store atomically (a reader sees the old file or the new, never half),
    mode 0600 in a 0700 directory."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(_HEADER)
            f.writelines(k.line() + "\n" for k in keys)
            if store.session_secret is not None:  # a key's change signs no one out
                created = store.secret_created or _now()
                f.write(f"{_SECRET_LINE} {store.session_secret.hex()} created={created}\n")
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
    person: Person = Person(),
) -> tuple[StoredKey, str]:
    """A new key whose salted hash joins the store at ``path`` (made mode 0600 if missing).
    Returns the stored line and the key, which exists nowhere else."""
    try:
        role_set = parse_roles(roles)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    store = read_store(path)
    keys = store.keys
    name = check_name(name or f"key-{secrets.token_hex(4)}", "key id")
    if tenant is not None:
        check_name(tenant, "tenant")
    check_person(person)
    if any(k.id == name for k in keys):
        raise ConfigurationError(f"a key with id {name!r} is already in {path}")
    key = "rk_" + secrets.token_urlsafe(32)  # 256 bits
    salt = secrets.token_bytes(16)
    stored = StoredKey(
        name, role_set, tenant, salt, salted(salt, key), created=_now(), person=person
    )
    _write(path, [*keys, stored], store)
    return stored, key


def revoke_key(path: Path, name: str) -> StoredKey:
    """Mark key ``name`` revoked (it stays listed); ConfigurationError if there is none."""
    store = read_store(path)
    keys = store.keys
    for i, key in enumerate(keys):
        if key.id == name:
            if key.revoked is None:
                keys[i] = attrs.evolve(key, revoked=_now())
                _write(path, keys, store)
            return keys[i]
    raise ConfigurationError(f"no key with id {name!r} in {path}")


def session_secret(path: Path, *, rotate: bool = False) -> bytes:
    """The secret that signs the dashboard's sessions, made (256 random bits) and kept in the
    store at ``path`` on first use; ``rotate``: replace it, which signs every session out."""
    current = read_store(path)
    if current.session_secret is not None and not rotate:
        return current.session_secret
    secret = secrets.token_bytes(32)
    _write(path, current.keys, StoreFile(current.keys, secret, _now()))
    return secret


class KeyStore:
    """The authenticator over a key store file (bearer or ``X-API-Key``; not cookies).

    Every active key is compared, with no early exit, so timing does not tell which key
    nearly matched. The file is re-read when its size, inode or modification time changes,
    looked at no more than once every :data:`RELOAD_SECONDS`; an unreadable or malformed
    file keeps the keys last read (and logs why) rather than locking everyone out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: list[StoredKey] = []
        self._all: list[StoredKey] = []
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
        self._all = keys
        self._keys = [k for k in keys if k.revoked is None]
        self._stamp = stamp

    def __len__(self) -> int:
        return len(self._keys)

    def _fresh(self) -> None:
        if time.monotonic() - self._checked >= RELOAD_SECONDS:
            self.reload()

    def active(self, key_id: str) -> bool:
        """Whether key ``key_id`` still authenticates: a session made with a key ends when
        the key is revoked."""
        self._fresh()
        return any(k.id == key_id for k in self._keys)

    def person(self, principal: Principal) -> UserProfile | None:
        """The person the key of ``principal`` names, if it names one."""
        self._fresh()
        for key in self._all:
            if key.id == principal.id and principal.kind == "api_key":
                return key.profile() or UserProfile(key.user_id)
        return None

    def users(self, user_ids: Iterable[str]) -> dict[str, UserProfile]:
        """The people of ``user_ids`` that keys name (revoked keys too: their runs stay)."""
        self._fresh()
        wanted = set(user_ids)
        found: dict[str, UserProfile] = {}
        for key in self._all:
            profile = key.profile()
            if profile is not None and profile.id in wanted:
                found.setdefault(profile.id, profile)
        return found

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        if credentials.carrier == "cookie" or not credentials.secret:
            return None
        self._fresh()
        found: StoredKey | None = None
        for key in self._keys:  # no early exit: the same work whichever key matches
            if key.matches(credentials.secret):
                found = key
        return found.principal() if found is not None else None
