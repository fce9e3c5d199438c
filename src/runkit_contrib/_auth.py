"""Who is calling: credential carriers, verifiers, and the CSRF rule for cookies.

Three carriers, tried in this order, and **the first one present decides** (a bad bearer
token is a 401 even if a good cookie rides along; ambient cookie authority never rescues
an explicit credential):

1. ``Authorization: Bearer <token>``
2. ``X-API-Key: <key>``
3. cookie ``vai_token``

Each verifier (an :class:`Authenticator`) is asked in turn with a :class:`Credentials`
holding exactly that one carrier; the first :class:`~runkit.Principal` wins. Secrets are
never logged, and never kept at rest in clear: :class:`ApiKeys` holds salted hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import attrs
from starlette.requests import Request

from runkit import Principal

from ._errors import HttpError

Carrier = Literal["bearer", "api_key", "cookie"]
COOKIE_NAME = "vai_token"
CSRF_HEADER = "x-runkit-csrf"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="runkit"'}


@attrs.frozen(repr=False)
class Credentials:
    """The secret a request carried, and how. Exactly one field is set."""

    bearer: str | None = None
    api_key: str | None = None
    cookie: str | None = None

    @property
    def carrier(self) -> Carrier:
        if self.bearer is not None:
            return "bearer"
        return "api_key" if self.api_key is not None else "cookie"

    @property
    def secret(self) -> str:
        return self.bearer or self.api_key or self.cookie or ""

    def __repr__(self) -> str:  # never print the secret itself
        return f"Credentials(carrier={self.carrier!r})"


@runtime_checkable
class Authenticator(Protocol):
    """Verifies one credential. Return the principal, or None when it is not yours/valid."""

    async def authenticate(self, credentials: Credentials) -> Principal | None: ...


def hash_key(key: str) -> str:
    """Plain SHA-256 hex: the digests :meth:`ApiKeys.from_hashes` takes."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    """The built-in verifier of static API keys (bearer or ``X-API-Key``; not cookies).

    ``ApiKeys(["k1", "k2"])`` names the principals ``key-1``, ``key-2`` (by position: the id
    must not be derived from the key, or a weak key could be guessed offline from a run's
    ``triggerSourceId``); ``ApiKeys({"deploy-bot": "k1"})`` names them. ``roles`` and
    ``tenant`` apply to every key given (see docs/http.md; roles None: the ``authorize`` hook
    alone decides). Keys are kept only as keyed BLAKE2b digests under a random salt of this
    process; :meth:`from_hashes` takes plain SHA-256 digests instead. Every key is compared with
    ``hmac.compare_digest`` and no early exit, so timing does not reveal which nearly matched.
    """

    def __init__(
        self,
        keys: Mapping[str, str] | Iterable[str] = (),
        *,
        roles: Iterable[str] | None = None,
        tenant: str | None = None,
    ) -> None:
        if isinstance(keys, Mapping):
            pairs = list(keys.items())
        else:
            pairs = [(f"key-{i}", k) for i, k in enumerate(keys, 1)]
        self._salt = secrets.token_bytes(16)
        self._roles = None if roles is None else frozenset(roles)
        self._tenant = tenant
        self._hashes: list[tuple[str, str, bool]] = []  # (principal id, digest, salted?)
        for name, key in pairs:
            self._hashes.append((name, self._salted(key), True))

    def _salted(self, key: str) -> str:
        # Keyed BLAKE2b is a MAC in its own right, and a third of HMAC-SHA256's cost here:
        # every API request pays it.
        return hashlib.blake2b(key.encode("utf-8"), key=self._salt, digest_size=32).hexdigest()

    @classmethod
    def from_hashes(
        cls,
        hashes: Mapping[str, str],
        *,
        roles: Iterable[str] | None = None,
        tenant: str | None = None,
    ) -> ApiKeys:
        """From ``{principal id: sha256 hex}`` (unsalted digests a host keeps)."""
        self = cls(roles=roles, tenant=tenant)
        for name, digest in hashes.items():
            digest = digest.lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"API key hash for {name!r} is not a SHA-256 hex digest")
            self._hashes.append((name, digest, False))
        return self

    def __len__(self) -> int:
        return len(self._hashes)

    def active(self, key_id: str) -> bool:
        """Whether a key of this id is still accepted: a dashboard session made with a key
        the host has since dropped (under a session secret it kept) ends."""
        return any(name == key_id for name, _, _ in self._hashes)

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        if credentials.carrier == "cookie" or not credentials.secret:
            return None
        secret = credentials.secret
        salted = self._salted(secret)
        # A host's unsalted digests are the rarer case: hashed only when there are some.
        plain = hash_key(secret) if not all(s for _, _, s in self._hashes) else ""
        found: str | None = None
        for name, digest, is_salted in self._hashes:  # no early exit: constant work
            if hmac.compare_digest(salted if is_salted else plain, digest):
                found = name
        if found is None:
            return None
        return Principal(found, kind="api_key", roles=self._roles, tenant=self._tenant)


def extract(request: Request) -> Credentials | None:
    """The first credential carried (see the module docstring), or None."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HttpError(401, "Authorization must be 'Bearer <token>'", CHALLENGE)
        return Credentials(bearer=token.strip())
    key = request.headers.get("x-api-key")
    if key is not None:
        return Credentials(api_key=key.strip())
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is not None:
        return Credentials(cookie=cookie)
    return None


@attrs.frozen
class AuthConfig:
    authenticators: tuple[Authenticator, ...]
    allow_anonymous: bool
    trusted_origins: frozenset[str]


def as_authenticators(
    auth: Authenticator | Sequence[Authenticator] | None,
) -> tuple[Authenticator, ...]:
    if auth is None:
        return ()
    if isinstance(auth, Authenticator):
        return (auth,)
    return tuple(auth)


async def authenticate(request: Request, config: AuthConfig) -> Principal | None:
    """The caller's principal (None: anonymous, when allowed); raises 401/403 otherwise."""
    credentials = extract(request)
    if credentials is None:
        if config.allow_anonymous:
            return None
        raise HttpError(401, "authentication required", CHALLENGE)
    principal: Principal | None = None
    for verifier in config.authenticators:
        principal = await verifier.authenticate(credentials)
        if principal is not None:
            break
    if principal is None:
        raise HttpError(401, "invalid credentials", CHALLENGE)
    if credentials.carrier == "cookie" and request.method in _UNSAFE_METHODS:
        check_csrf(request, config.trusted_origins)
    return principal


def check_csrf(request: Request, trusted_origins: frozenset[str]) -> None:
    """A cookie rides along on cross-site requests; a header or Fetch-Metadata cannot be
    forged by another site (custom headers need a CORS preflight that runkit never grants).
    Any one proof passes: ``Sec-Fetch-Site: same-origin``, an ``Origin`` that is trusted or
    this very host, or ``X-Runkit-CSRF: 1``."""
    headers = request.headers
    if headers.get(CSRF_HEADER) == "1":
        return
    if headers.get("sec-fetch-site") == "same-origin":
        return
    if trusted_origin(request, trusted_origins):
        return
    raise HttpError(403, "cross-site request refused (CSRF): send X-Runkit-CSRF: 1")


def trusted_origin(request: Request, trusted_origins: frozenset[str]) -> bool:
    """Whether the request's ``Origin`` is one of ``trusted_origins`` or this very host
    (False without one, or for the opaque ``null``)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return False
    if origin.rstrip("/") in trusted_origins:
        return True
    host = request.headers.get("host")
    return bool(host) and urlsplit(origin).netloc.lower() == str(host).lower()
