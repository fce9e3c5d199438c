"""The checks of a dlt_extract ``source``: at create time (422s at the field) and again when
the run starts (the host's settings may have changed meanwhile).

* ``rest_api``: the URLs in the config (``client.base_url``, absolute endpoint paths, an OAuth2
  ``access_token_url``) pass the outbound guard's checks that need no lookup; ``auth`` is an
  object with its secrets in it (a bare ``"bearer"`` would make dlt look the token up in the
  worker's own dlt configuration, handing the host's secrets to whoever wrote the run);
  ``client.session`` is runkit's.
* ``sql_database``: ``sqlite:///<path>`` names a SQLite file under the data root; any other URL
  must start with a prefix the host allows (``RUNKIT_DLT_ALLOWED_URLS``).
* ``filesystem``: ``path`` and ``glob`` stay under the data root (:class:`DataRoot`).

No dlt import here (create time must not load dlt); the URL parser comes from urllib3.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from ...domain.errors import ErrorDetail, ValidationError
from ..web.display import is_secret_name
from ..web.policy import OutboundPolicy, Refused, check_destination, current_policy
from .root import DataRoot

ALLOWED_URLS_ENV = "RUNKIT_DLT_ALLOWED_URLS"
SOURCE_TYPES = ("rest_api", "sql_database", "filesystem")
#: The fields of ``source`` each type takes, required ones first.
FIELDS = {
    "rest_api": ("config",),
    "sql_database": ("url", "tables", "schema"),
    "filesystem": ("path", "glob", "table"),
}
REQUIRED = {"rest_api": "config", "sql_database": "url", "filesystem": "path"}
#: dlt's auth types a definition may use: required secrets, then optional fields.
AUTH = {
    "bearer": (("token",), ()),
    "api_key": (("api_key",), ("name", "location")),
    "http_basic": (("username", "password"), ()),
    "oauth2_client_credentials": (
        ("access_token_url", "client_id", "client_secret"),
        ("access_token_request_data", "default_token_expiration"),
    ),
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SQLITE_IN_ROOT = re.compile(r"sqlite:///(?!/)(.*)", re.IGNORECASE | re.DOTALL)
#: What may follow an allowed prefix: a database name or path, no query, no credentials.
_PREFIX_TAIL = re.compile(r"[A-Za-z0-9_./-]*")
Loc = tuple[str | int, ...]


def allowed_sql_prefixes() -> tuple[str, ...]:
    """The host's SQL URL prefixes, read afresh at each check."""
    raw = os.environ.get(ALLOWED_URLS_ENV, "")
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def sqlite_in_root(url: str) -> str | None:
    """The root-relative path of ``sqlite:///<path>`` (None: not such a URL)."""
    found = _SQLITE_IN_ROOT.fullmatch(url)
    return found.group(1) if found else None


def prefix_allows(prefix: str, url: str) -> bool:
    """Whether ``url`` is ``prefix`` or continues it at a ``/`` with a plain path: a query
    string, credentials or another host can never be appended to an allowed prefix."""
    if url == prefix:
        return True
    if not url.startswith(prefix):
        return False
    tail = url[len(prefix) :]
    at_boundary = prefix.endswith("/") or tail.startswith("/")
    return at_boundary and bool(_PREFIX_TAIL.fullmatch(tail)) and ".." not in tail


def sql_url_refusal(url: str, root: DataRoot) -> str | None:
    path = sqlite_in_root(url)
    if path is not None:
        if any(c in path for c in "?#"):
            return "a SQLite URL under the data root takes no query string"
        try:
            root.check(path, ("url",))
        except ValidationError as exc:
            return exc.details[0].msg
        return None
    if any(prefix_allows(p, url) for p in allowed_sql_prefixes()):
        return None
    return (
        "this SQL URL is not allowed: the host allows SQL URLs by prefix "
        f"({ALLOWED_URLS_ENV}); SQLite files under the data root are always allowed, as "
        "sqlite:///<path under the root>"
    )


def source_errors(source: Any, root: DataRoot, loc: Loc) -> list[ErrorDetail]:
    """Every error of the ``source`` object (fields by type, URLs, paths, auth)."""
    errors: list[ErrorDetail] = []
    kind = source.type
    if kind not in SOURCE_TYPES:
        where = (*loc, "type")
        return [ErrorDetail(where, f"must be one of {', '.join(SOURCE_TYPES)}", "enum")]
    for name in (n for fields in FIELDS.values() for n in fields if n not in FIELDS[kind]):
        if getattr(source, name) is not None:
            errors.append(
                ErrorDetail((*loc, name), f"not a field of a {kind} source", "extra_forbidden")
            )
    required = REQUIRED[kind]
    if getattr(source, required) is None:
        return [*errors, ErrorDetail((*loc, required), "field required", "missing")]
    if kind == "rest_api":
        errors.extend(rest_errors(source.config, (*loc, "config")))
    elif kind == "sql_database":
        why = sql_url_refusal(source.url, root)
        if why is not None:
            errors.append(ErrorDetail((*loc, "url"), why, "url_refused"))
        errors.extend(_tables_errors(source.tables, (*loc, "tables")))
    else:
        errors.extend(_path_errors(root, source.path, (*loc, "path")))
        if source.glob is not None:
            errors.extend(_path_errors(root, source.glob, (*loc, "glob")))
        if source.table is not None and not _NAME.fullmatch(source.table):
            errors.append(ErrorDetail((*loc, "table"), "letters, digits and _", "value_error"))
    return errors


def _tables_errors(tables: Any, loc: Loc) -> Iterator[ErrorDetail]:
    if tables is None:
        return
    if not isinstance(tables, list) or not tables:
        yield ErrorDetail(loc, "a non-empty list of table names, or null for all", "list_type")
        return
    for i, table in enumerate(tables):
        ok = isinstance(table, str) and 0 < len(table) <= 128
        if not ok or any(ord(c) < 32 for c in table):
            yield ErrorDetail((*loc, i), "not a table name", "value_error")


def _path_errors(root: DataRoot, value: str, loc: Loc) -> list[ErrorDetail]:
    try:
        place = root.check(value, loc)
    except ValidationError as exc:
        return list(exc.details)
    if not place.is_local:
        why = "dlt_extract reads files under the data root only"
        return [ErrorDetail(loc, why, "protocol_refused")]
    return []


def url_refusal(url: str, policy: OutboundPolicy) -> str | None:
    """Why the guard refuses ``url`` without a lookup (None: it may be sent). Parsed by
    urllib3, the parser requests sends with, so both read the same host (urllib3 comes
    with dlt: this runs once the extra is known to be installed)."""
    import urllib3

    try:
        parsed = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError as exc:
        return f"invalid URL: {exc}"
    host = (parsed.host or "").strip("[]")
    try:
        check_destination(policy, (parsed.scheme or "").lower(), host, parsed.port)
    except Refused as exc:
        return str(exc)
    return None


def _url_errors(value: Any, loc: Loc) -> Iterator[ErrorDetail]:
    if not isinstance(value, str):
        yield ErrorDetail(loc, "must be a URL string", "string_type")
        return
    why = url_refusal(value, current_policy())
    if why is not None:
        yield ErrorDetail(loc, why, "url_refused")


def rest_errors(config: Any, loc: Loc) -> Iterator[ErrorDetail]:
    """The parts of a rest_api config runkit relies on; dlt checks the rest at run time."""
    if not isinstance(config, Mapping):
        yield ErrorDetail(loc, "must be dlt's rest_api config object", "dict_type")
        return
    client = config.get("client")
    if not isinstance(client, Mapping):
        yield ErrorDetail((*loc, "client"), "an object with base_url is required", "missing")
    else:
        yield from _url_errors(client.get("base_url"), (*loc, "client", "base_url"))
        if "session" in client:
            why = "runkit gives the session (it is what the outbound guard checks)"
            yield ErrorDetail((*loc, "client", "session"), why, "extra_forbidden")
        yield from auth_errors(client.get("auth"), (*loc, "client", "auth"))
    defaults = config.get("resource_defaults")
    if isinstance(defaults, Mapping) and isinstance(defaults.get("endpoint"), Mapping):
        yield from _endpoint_errors(defaults["endpoint"], (*loc, "resource_defaults", "endpoint"))
    resources = config.get("resources")
    if not isinstance(resources, list) or not resources:
        yield ErrorDetail((*loc, "resources"), "a non-empty list is required", "missing")
        return
    for i, resource in enumerate(resources):
        where = (*loc, "resources", i)
        if isinstance(resource, str):
            continue
        if not isinstance(resource, Mapping) or not isinstance(resource.get("name"), str):
            yield ErrorDetail(where, "a resource is a name or an object with a name", "value_error")
        elif isinstance(resource.get("endpoint"), Mapping):
            yield from _endpoint_errors(resource["endpoint"], (*where, "endpoint"))


def _endpoint_errors(endpoint: Mapping[str, Any], loc: Loc) -> Iterator[ErrorDetail]:
    path = endpoint.get("path")
    if isinstance(path, str) and urlsplit(path).scheme.lower() in ("http", "https"):
        yield from _url_errors(path, (*loc, "path"))  # dlt sends an absolute path as is
    yield from auth_errors(endpoint.get("auth"), (*loc, "auth"))


def auth_errors(auth: Any, loc: Loc) -> Iterator[ErrorDetail]:
    if auth is None:
        return
    if not isinstance(auth, Mapping):
        why = (
            "give auth as an object with its type and secrets; runkit never lets dlt look "
            "secrets up in the worker's configuration"
        )
        yield ErrorDetail(loc, why, "dict_type")
        return
    kind = auth.get("type", "bearer")
    if kind not in AUTH:
        yield ErrorDetail((*loc, "type"), f"must be one of {', '.join(AUTH)}", "enum")
        return
    required, optional = AUTH[kind]
    for name in sorted(set(auth) - {"type", *required, *optional}):
        yield ErrorDetail((*loc, name), f"not a field of {kind} auth", "extra_forbidden")
    for name in required:
        if not isinstance(auth.get(name), str) or not auth[name]:
            yield ErrorDetail((*loc, name), "field required (a string)", "missing")
    if kind == "oauth2_client_credentials" and isinstance(auth.get("access_token_url"), str):
        yield from _url_errors(auth["access_token_url"], (*loc, "access_token_url"))


def secrets_of(source: Any) -> list[str]:
    """Values of the source that must never appear in a log line or an error: the strings
    of every ``auth`` object, secret-named ``headers`` values, a SQL URL's password."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key == "auth" and isinstance(item, Mapping):
                    found.extend(
                        v for k, v in item.items() if k not in _PLAIN and isinstance(v, str)
                    )
                elif key == "headers" and isinstance(item, Mapping):
                    found.extend(
                        v for k, v in item.items() if is_secret_name(str(k)) and isinstance(v, str)
                    )
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(source.config)
    if source.url:
        password = urlsplit(source.url).password
        if password:
            found.append(password)
    return [f for f in found if len(f) >= 4]


#: Fields of an auth object that are no secrets.
_PLAIN = frozenset({"type", "name", "location", "access_token_url", "default_token_expiration"})
