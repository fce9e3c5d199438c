"""What the schema kinds (``explain_schema``, ``generate_query``) share: the choice of
``database`` or ``schema``, and their create-time checks (the model configured, duckdb
installed, the path under the data root, the DDL parsed)."""

from __future__ import annotations

import importlib.util
from typing import Any

from ...domain.errors import ErrorDetail, ValidationError
from ..data.root import current_root
from .options import check_configured
from .schema_source import DDL_TYPES, statement_types

DUCKDB_EXTRA = "runkit[duckdb]"
MAX_DDL = 500_000


def duckdb_installed() -> bool:
    try:
        return importlib.util.find_spec("duckdb") is not None
    except (ImportError, ValueError):
        return False


def check_source(config: Any, kind: str) -> list[ErrorDetail]:
    """The problems of a config's ``database`` / ``schema`` pair: exactly one of them, the
    database a path under the data root, the schema DDL that parses."""
    errors: list[ErrorDetail] = []
    database, schema = config.database, config.schema
    if (database is None) == (schema is None):
        errors.append(
            ErrorDetail(
                ("definition",),
                f"{kind} takes either database (a DuckDB file under the data root) or "
                "schema (DDL text), not both and not neither",
                "value_error",
            )
        )
        return errors
    if database is not None:
        where = ("definition", "database")
        try:
            if not current_root().check(database, where).is_local:
                errors.append(ErrorDetail(where, "a DuckDB file under the data root"))
        except ValidationError as invalid:
            errors.extend(invalid.details)
    if schema is not None:
        import duckdb

        where = ("definition", "schema")
        try:
            types = statement_types(schema)
        except duckdb.Error as exc:
            errors.append(ErrorDetail(where, str(exc), "sql_syntax"))
        else:
            bad = sorted(set(types) - DDL_TYPES)
            if not types:
                errors.append(ErrorDetail(where, "no statement in it"))
            elif bad:
                errors.append(
                    ErrorDetail(where, f"DDL only (CREATE, ALTER, INSERT), not {', '.join(bad)}")
                )
    return errors


def check_common(config: Any, kind: str) -> list[ErrorDetail]:
    """Every create-time problem the schema kinds share, in one list."""
    if not duckdb_installed():
        raise ValidationError.at(
            ("definition",),
            f"the {kind} kind needs the optional dependencies of {DUCKDB_EXTRA} "
            f"(missing: duckdb); install them with pip install '{DUCKDB_EXTRA}'",
            "missing_extra",
        )
    errors: list[ErrorDetail] = []
    try:
        check_configured(config)
    except ValidationError as invalid:
        errors.extend(invalid.details)
    errors.extend(check_source(config, kind))
    return errors
