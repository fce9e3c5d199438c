"""The dlt source of a dlt_extract run, built from its definition when the run starts.

Imported only inside the run's thread, once dlt is known to be installed and its telemetry
is off (:func:`.dlt_extract.quiet_environment`). Every object runkit decides (the HTTP
session, the auth objects, the database URL, the folder) is passed to dlt explicitly.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ...authoring import Fatal
from ..web.display import redact_text
from ..web.errors import BlockedDestination
from .dlt_checks import AUTH, rest_errors, sql_url_refusal, sqlite_in_root
from .dlt_http import GuardedSession
from .root import DataRoot, PathRefused

#: Rows per batch read from a database or a CSV file: a stop is noticed between batches.
CHUNK_ROWS = 10_000


class InvalidSource(Fatal):
    """A source definition that dlt or runkit refuses when the run starts."""


def build_source(source: Any, root: DataRoot, session: GuardedSession, secrets: list[str]) -> Any:
    """A dlt source (or resource) for ``source``, the structured ``source`` object;
    ``secrets`` are kept out of the error when dlt refuses the config."""
    if source.type == "rest_api":
        return _rest_api(source.config, session, secrets)
    if source.type == "sql_database":
        return _sql_database(source, root)
    return _filesystem(source, root)


def _rest_api(config: Mapping[str, Any], session: GuardedSession, secrets: list[str]) -> Any:
    from dlt.sources.rest_api import rest_api_source

    problems = list(rest_errors(config, ("source", "config")))  # the policy may have changed
    if problems:
        text = "; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in problems)
        refused = any(p.type == "url_refused" for p in problems)
        raise BlockedDestination(text) if refused else InvalidSource(text)
    spec = copy.deepcopy(dict(config))  # never change the run's own definition
    client = dict(spec["client"], session=session)
    if client.get("auth") is not None:
        client["auth"] = _auth(client["auth"], session)
    spec["client"] = client
    endpoints = [spec.get("resource_defaults"), *spec["resources"]]
    for holder in endpoints:
        endpoint = holder.get("endpoint") if isinstance(holder, dict) else None
        if isinstance(endpoint, dict) and endpoint.get("auth") is not None:
            endpoint["auth"] = _auth(endpoint["auth"], session)
    try:
        return rest_api_source(spec)  # type: ignore[arg-type]  # dlt's TypedDict, checked here
    except Exception as exc:  # dlt's DictValidationException, ValueError, KeyError, ...
        text = redact_text(f"dlt refuses the rest_api config: {exc}", secrets)
        raise InvalidSource(text if len(text) <= 2000 else text[:1999] + "…") from None


def _auth(spec: Mapping[str, Any], session: GuardedSession) -> Any:
    """An auth object made from the definition alone and marked resolved, so dlt never looks
    a missing secret up in the worker's configuration (environment, secrets.toml)."""
    from dlt.sources.helpers.rest_client import auth

    kind = spec.get("type", "bearer")
    if kind not in AUTH:  # refused at create; here only if the definition was not checked
        raise InvalidSource(f"auth type {kind!r} is not supported")
    fields = {k: v for k, v in spec.items() if k != "type"}
    made: Any
    if kind == "bearer":
        made = auth.BearerTokenAuth(**fields)
    elif kind == "api_key":
        made = auth.APIKeyAuth(**fields)
    elif kind == "http_basic":
        made = auth.HttpBasicAuth(**fields)
    else:  # the token request goes through the run's guarded session too
        made = auth.OAuth2ClientCredentials(**fields, session=session)
    return made.resolve()


def _sql_database(source: Any, root: DataRoot) -> Any:
    from dlt.sources.sql_database import sql_database

    url: str = source.url
    why = sql_url_refusal(url, root)  # again: the allowed prefixes are read at each check
    if why is not None:
        raise InvalidSource(why)
    relative = sqlite_in_root(url)
    if relative is not None:
        url = f"sqlite:///{root.resolve(relative, must_exist=True)}"
    return sql_database(
        credentials=url,
        schema=source.schema,
        table_names=list(source.tables) if source.tables else None,
        chunk_size=CHUNK_ROWS,
        backend="sqlalchemy",  # plain rows: needs neither pyarrow nor pandas
        # dlt 1.31 warns about this deprecated argument unless it is None, even by default.
        detect_precision_hints=None,
    )


def _filesystem(source: Any, root: DataRoot) -> Any:
    from dlt.sources.filesystem import filesystem, read_csv

    folder = root.resolve(source.path, must_exist=True)
    if not folder.is_dir():
        raise PathRefused(source.path, "it is not a directory")
    glob = source.glob or "*.csv"

    def inside(item: Any) -> Any:
        # fsspec follows symlinks; a file listed through one must still be under the root.
        path = Path(unquote(urlsplit(item["file_url"]).path))
        if not root.contains(path):
            raise PathRefused(
                item.get("relative_path") or path.name, "it leads out of the data root"
            )
        return item

    files = filesystem(bucket_url=str(folder), file_glob=glob)
    files.add_map(inside)
    table = source.table or Path(source.path).name or "files"
    return (files | read_csv(chunksize=CHUNK_ROWS)).with_name(table)
