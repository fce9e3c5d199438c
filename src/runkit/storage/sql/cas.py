"""The compare-and-set UPDATE of the SQL store: one statement per shape of call (which
fields change, which guards apply), built once and cached, so each call only binds values."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from ...domain.models import Expect
from ...domain.states import Status
from .rows import change_values
from .schema import runs


def status_in(statuses: Sequence[str]) -> sa.ColumnElement[bool]:
    """``status IN (...)`` with the values inline: a literal list would be an "expanding"
    parameter, re-rendered into the SQL string on every execution."""
    return runs.c.status.in_([sa.literal_column(f"'{Status(v).value}'") for v in statuses])


#: What an append needs back to materialize its entries.
APPENDED = (runs.c.seq, runs.c.log_seq, runs.c.attempt)


@functools.lru_cache(maxsize=512)
def _guarded_update(
    fields: tuple[str, ...],
    statuses: tuple[str, ...],
    attempt: bool,
    token: bool,
    whole: bool,
) -> sa.Update:
    """The compare-and-set UPDATE of a shape of call: which ``fields`` change, and which
    :class:`Expect` guards apply. Parameters: ``b_id``, ``b_n`` (ids reserved for entries:
    ``log_seq`` always moves, by 0 without entries, so the SET clause is never empty),
    ``b_attempt``/``b_token`` for the guards, ``v_<field>`` for each change. Returns the
    whole row (``whole``) or only :data:`APPENDED`."""
    where: list[sa.ColumnElement[bool]] = [
        runs.c.id == sa.bindparam("b_id", type_=runs.c.id.type),
        status_in(statuses),
    ]
    if attempt:
        where.append(runs.c.attempt == sa.bindparam("b_attempt", type_=sa.Integer()))
    if token:
        where.append(runs.c.lease_token == sa.bindparam("b_token", type_=sa.String()))
    values: dict[str, Any] = {
        name: sa.bindparam(f"v_{name}", type_=runs.c[name].type) for name in fields
    }
    values["log_seq"] = runs.c.log_seq + sa.bindparam("b_n", type_=sa.Integer())
    stmt = sa.update(runs).where(*where).values(values)
    return stmt.returning(*runs.c) if whole else stmt.returning(*APPENDED)


def _statuses(expect: Expect) -> tuple[str, ...]:
    return tuple(sorted(s.value for s in expect.statuses))


def cas(
    run_id: UUID, expect: Expect, changes: Mapping[str, Any], n: int, *, whole: bool = True
) -> tuple[sa.Update, dict[str, Any]]:
    """The statement and parameters of one compare-and-set (:func:`_guarded_update`)."""
    values = change_values(changes)
    stmt = _guarded_update(
        tuple(sorted(values)),
        _statuses(expect),
        expect.attempt is not None,
        expect.lease_token is not None,
        whole,
    )
    params = {f"v_{name}": value for name, value in values.items()}
    params["b_id"] = run_id
    params["b_n"] = n
    if expect.attempt is not None:
        params["b_attempt"] = expect.attempt
    if expect.lease_token is not None:
        params["b_token"] = expect.lease_token
    return stmt, params
