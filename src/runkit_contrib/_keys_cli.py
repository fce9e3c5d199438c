"""``runkit keys create|list|revoke``: the key store of ``runkit serve`` from the terminal."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runkit import ConfigurationError

from ._keystore import Person, create_key, read_keys, revoke_key, session_secret
from ._roles import ROLES
from ._serve import DEFAULT_DATABASE, KEY_FILE_ENV, KEYS_ENV, database_url, key_file_for

#: Shared with ``runkit worker`` and ``runkit serve``: one variable names the database.
DATABASE_ENV = "RUNKIT_DATABASE_URL"


def database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        default=None,
        help=f"storage URL or SQLite file path (default: ${DATABASE_ENV}, else {DEFAULT_DATABASE})",
    )


def database(args: argparse.Namespace) -> str:
    return str(args.database or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE)


def _store(args: argparse.Namespace) -> Path:
    return key_file_for(database_url(database(args)))


def add_keys_command(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keys",
        help="API keys of `runkit serve`",
        description="Manage the key store of `runkit serve`: beside a SQLite file "
        "(<file>.api-keys), else under $XDG_CONFIG_HOME/runkit/; "
        f"${KEY_FILE_ENV} overrides. A running server sees changes within a second.",
    )
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    roles = ", ".join(f"{name}" for name in ROLES)
    create = actions.add_parser(
        "create",
        help="make a new API key: its salted hash joins the key store, the key is printed once",
        description="Make a new API key for `runkit serve` on this database. Only a salted "
        f"hash is stored; the key is printed once. Roles: {roles} (read: list, get and "
        "follow runs; operate: also create, execute, pause, resume, cancel, retry; "
        "approve: read and approve/reject; admin: everything, delete included).",
    )
    create.add_argument(
        "--name", default=None, help="the key's id, its runs' triggerSourceId (default: random)"
    )
    create.add_argument(
        "--role",
        action="append",
        default=None,
        metavar="ROLE",
        help=f"one of {roles}; repeat or comma-separate for several (default: operate)",
    )
    create.add_argument(
        "--tenant",
        default=None,
        help="the tenant whose runs alone the key sees and touches (default: every run)",
    )
    person = create.add_argument_group(
        "the person the key belongs to",
        "shown as who started the runs they create from the dashboard (the runs list's "
        "`users` map)",
    )
    person.add_argument(
        "--user", default=None, help="their user id, the runs' triggerSourceId (default: --name)"
    )
    person.add_argument("--first-name", default=None, help="their first name")
    person.add_argument("--last-name", default=None, help="their last name")
    person.add_argument("--picture-url", default=None, help="an http(s) URL of their picture")
    database_option(create)
    create.set_defaults(handler=_guarded(run_keys_create))

    listing = actions.add_parser("list", help="list the keys (ids, roles, tenants; no secrets)")
    database_option(listing)
    listing.set_defaults(handler=_guarded(run_keys_list))

    revoke = actions.add_parser(
        "revoke", help="revoke a key: it stays listed and never authenticates again"
    )
    revoke.add_argument("name", help="the key's id (see `runkit keys list`)")
    database_option(revoke)
    revoke.set_defaults(handler=_guarded(run_keys_revoke))

    rotate = actions.add_parser(
        "rotate-session-secret",
        help="replace the secret that signs dashboard sessions: everyone is signed out",
        description="Replace the secret in the key store that signs the dashboard's session "
        "cookies. Every session ends: a running `runkit serve` must be restarted to use the "
        "new secret, and until then still accepts the old sessions.",
    )
    database_option(rotate)
    rotate.set_defaults(handler=_guarded(run_rotate_secret))
    return parser


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ConfigurationError as exc:
            print(f"runkit keys {args.keys_command}: {exc}", file=sys.stderr, flush=True)
            return 1

    return run


def _env_note() -> list[str]:
    if os.environ.get(KEYS_ENV, "").strip():
        return [f"Note: {KEYS_ENV} is set; while it is, `runkit serve` ignores the key store."]
    return []


def run_keys_create(args: argparse.Namespace) -> int:
    path = _store(args)
    person = Person(args.user, args.first_name, args.last_name, args.picture_url)
    stored, key = create_key(
        path, args.name, roles=args.role or ["operate"], tenant=args.tenant, person=person
    )
    scope = f"tenant {stored.tenant!r}" if stored.tenant else "every tenant"
    owner = f" for {_who(stored.person)}" if stored.person else ""
    lines = [
        f"Created API key {stored.id!r}{owner} with role {', '.join(sorted(stored.roles))} on "
        f"{scope} (shown once; only a salted hash is kept in {path}):",
        "",
        f"    {key}",
        "",
        "Send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>', or sign in to the "
        "dashboard with it. A running `runkit serve` accepts it within a second.",
        *_env_note(),
    ]
    print("\n".join(lines), flush=True)
    return 0


def run_keys_list(args: argparse.Namespace) -> int:
    path = _store(args)
    keys = read_keys(path)
    if not keys:
        print(f"No keys in {path}.", flush=True)
        return 0
    rows = [("ID", "ROLES", "TENANT", "PERSON", "CREATED", "STATE")]
    for key in keys:
        state = f"revoked {key.revoked}" if key.revoked else "active"
        if key.legacy:
            state += " (legacy unsalted hash: create a new key and revoke this one)"
        rows.append(
            (
                key.id,
                ",".join(sorted(key.roles)),
                key.tenant or "-",
                _who(key.person) if key.person else "-",
                key.created or "-",
                state,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    print(f"Key store: {path}", flush=True)
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[5]]))
    for line in _env_note():
        print(line)
    return 0


def run_keys_revoke(args: argparse.Namespace) -> int:
    path = _store(args)
    key = revoke_key(path, args.name)
    print(
        f"Revoked API key {key.id!r} at {key.revoked}. A running `runkit serve` refuses it "
        "within a second.",
        flush=True,
    )
    return 0


def _who(person: Person) -> str:
    name = " ".join(n for n in (person.first, person.last) if n)
    if person.user and name:
        return f"{name} ({person.user})"
    return name or person.user or "-"


def run_rotate_secret(args: argparse.Namespace) -> int:
    path = _store(args)
    session_secret(path, rotate=True)
    print(
        f"Replaced the session secret in {path}: every dashboard session is signed out once "
        "`runkit serve` restarts.",
        flush=True,
    )
    return 0
