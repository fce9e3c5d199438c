"""Dashboard sessions: the ``vai_token`` cookie a person gets for an API key, and the
verifier that accepts it on every endpoint.

A session token is the principal the key authenticated as, turned into a person (kind
``user``: the runs it creates say ``triggerMethod: "ui"``), signed with HMAC-SHA256 under
the server's session secret (itsdangerous), with its issue time; never the key. It is
refused once older than the lifetime (12 hours by default: a working day, absolute, not
renewed by use), once signed out, and once the key it was made with is revoked (when the
key's verifier can tell: the key store can). Replacing the secret signs every session out.

Sign-outs are remembered until the token would have expired anyway: in this process at
once, and (``runkit serve``) in a file beside the key store that other processes on the
machine re-read within a second.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import attrs
from itsdangerous import BadSignature, URLSafeTimedSerializer

from runkit import Principal, UserProfile

from ._auth import Authenticator, Credentials
from ._errors import logger

#: How long a session lasts unless the host says otherwise.
SESSION_LIFETIME = timedelta(hours=12)
#: Marks runkit's tokens, so a host's own ``vai_token`` format is left to its verifier.
_PREFIX = "rks1."
_SALT = "runkit.session"


@attrs.frozen
class Issued:
    token: str
    principal: Principal
    expires_at: datetime
    max_age: int
    #: The person, as the key's verifier describes them (None: it does not say).
    profile: UserProfile | None = None


class SignOuts:
    """Session ids signed out before their end. With a ``path``, also kept in that file (one
    ``<id> <expiry epoch>`` line each, appended: appends of a line are atomic, so processes
    sharing the file need no lock), re-read when it changes, at most once a second."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._ids: dict[str, float] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = -float("inf")

    def add(self, sid: str, until: float) -> None:
        self._ids[sid] = until
        if self.path is None:
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        fd = os.open(self.path, flags, 0o600)
        try:
            os.write(fd, f"{sid} {int(until) + 1}\n".encode("ascii"))
        finally:
            os.close(fd)

    def __contains__(self, sid: str) -> bool:
        self._reload()
        return sid in self._ids

    def _reload(self) -> None:
        now = time.monotonic()
        if self.path is None or now - self._checked < 1.0:
            return
        self._checked = now
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        try:
            text = self.path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            logger.error("sign-outs %s not read: %s", self.path, exc)
            return
        wall = time.time()
        for line in text.splitlines():
            sid, _, until = line.partition(" ")
            if until.isdigit() and int(until) > wall:
                self._ids[sid] = float(until)
        self._ids = {s: u for s, u in self._ids.items() if u > wall}  # expired: forget
        self._stamp = stamp


class Sessions:
    """Issues and verifies session tokens (an :class:`Authenticator` of the cookie carrier).

    ``secret``: at least 32 bytes (random; ``runkit serve`` keeps one in the key store).
    ``sources``: the verifiers that sign people in (set by ``asgi_app``); a token names the
    one that accepted its key, and one that can tell (``active(principal_id)``) ends the
    session when the key is revoked."""

    def __init__(
        self,
        secret: bytes | str,
        *,
        lifetime: timedelta = SESSION_LIFETIME,
        sign_outs: SignOuts | None = None,
    ) -> None:
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret
        if len(raw) < 32:
            raise ValueError("a session secret must be at least 32 bytes")
        if lifetime <= timedelta(0):
            raise ValueError("a session lifetime must be positive")
        self.lifetime = lifetime
        self.sign_outs = sign_outs or SignOuts()
        self.sources: tuple[Authenticator, ...] = ()
        self._serializer = URLSafeTimedSerializer(
            raw, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )

    @classmethod
    def ephemeral(cls, **kw: Any) -> Sessions:
        """Under a secret of this process: every session ends when it stops."""
        return cls(secrets.token_bytes(32), **kw)

    @property
    def max_age(self) -> int:
        return int(self.lifetime.total_seconds())

    # ------------------------------------------------------------------ signing in -------
    async def sign_in(self, credentials: Credentials) -> Issued | None:
        """A session for the key (or token) in ``credentials``, or None if no source takes
        it. The principal becomes a person (kind ``user``), named as the key's verifier
        says (``person(principal)``), else by the key's id."""
        for via, verifier in enumerate(self.sources):
            principal = await verifier.authenticate(credentials)
            if principal is None:
                continue
            person = _person(verifier, principal)
            user = Principal(
                person.id if person is not None else principal.id,
                kind="user" if principal.kind == "api_key" else principal.kind,
                groups=principal.groups,
                roles=principal.roles,
                tenant=principal.tenant,
            )
            return self._issue(user, via, principal.id, person)
        return None

    def _issue(self, user: Principal, via: int, key_id: str, person: UserProfile | None) -> Issued:
        payload = {
            "s": secrets.token_urlsafe(12),
            "v": via,
            "k": key_id,
            "p": [
                user.id,
                user.kind,
                sorted(user.groups),
                None if user.roles is None else sorted(user.roles),
                user.tenant,
            ],
        }
        token = _PREFIX + self._serializer.dumps(payload)
        expires = datetime.now(UTC).replace(microsecond=0) + self.lifetime
        return Issued(token, user, expires, self.max_age, person)

    # ------------------------------------------------------------------ verifying --------
    def _open(self, token: str) -> tuple[dict[str, Any], float] | None:
        if not token.startswith(_PREFIX):
            return None
        try:
            payload, issued = self._serializer.loads(
                token[len(_PREFIX) :], max_age=self.max_age, return_timestamp=True
            )
        except BadSignature:  # also an expired one (SignatureExpired)
            return None
        if not isinstance(payload, dict) or str(payload.get("s")) in self.sign_outs:
            return None
        return payload, issued.timestamp()

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        if credentials.carrier != "cookie":
            return None
        opened = self._open(credentials.secret)
        if opened is None:
            return None
        payload, _ = opened
        try:
            uid, kind, groups, roles, tenant = payload["p"]
            via, key_id = int(payload["v"]), str(payload["k"])
        except (KeyError, TypeError, ValueError):
            return None
        if not 0 <= via < len(self.sources):  # the server's verifiers changed since
            return None
        active = getattr(self.sources[via], "active", None)
        if active is not None and not active(key_id):
            return None  # the key was revoked: so are its sessions
        return Principal(uid, kind=kind, groups=frozenset(groups), roles=roles, tenant=tenant)

    def sign_out(self, token: str) -> bool:
        """End the session of ``token``; False if it was no live session."""
        opened = self._open(token)
        if opened is None:
            return False
        payload, issued = opened
        self.sign_outs.add(str(payload["s"]), issued + self.max_age)
        return True


def _person(verifier: Authenticator, principal: Principal) -> UserProfile | None:
    lookup = getattr(verifier, "person", None)
    return None if lookup is None else cast(UserProfile | None, lookup(principal))


def sessions_for(
    sessions: Sessions | bool | None, sources: Sequence[Authenticator]
) -> Sessions | None:
    """The sessions an app uses: given, made for this process (True/None), or none."""
    if sessions is False:
        return None
    chosen = Sessions.ephemeral() if sessions is None or sessions is True else sessions
    chosen.sources = tuple(sources)
    return chosen
