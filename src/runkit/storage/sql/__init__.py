"""The SQL store: SQLite and PostgreSQL through SQLAlchemy Core (``store`` holds the
primitives; the other modules one concern each)."""

from .store import SqlStore

__all__ = ["SqlStore"]
