"""A read-only connection to the lineage database (SQLite or PostgreSQL).

SQLite is opened with ``mode=ro`` (the file is never created or written), PostgreSQL with
``default_transaction_read_only=on`` (the server refuses any write). The viewer keeps its own
engine: the shared writer engine switches SQLite to WAL on connect, which is a write.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from ibkr_assets.redaction import redact_text as safe_url

RECHECK_S = 5.0


class ViewerDatabaseError(RuntimeError):
    """The lineage database cannot be read; the message never shows a password."""


def read_only_url(url: str) -> sa.URL:
    """``url`` rewritten so the driver opens the database read-only."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return parsed
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ViewerDatabaseError(f"the viewer needs a SQLite database file, not {safe_url(url)}")
    path = quote(str(Path(database).resolve()))
    return parsed.set(database=f"file:{path}", query={"mode": "ro", "uri": "true"})


def read_only_engine(url: str) -> sa.Engine:
    """A pooled engine whose connections cannot write."""
    ro = read_only_url(url)
    backend = ro.get_backend_name()
    if backend == "sqlite":
        return sa.create_engine(ro, connect_args={"timeout": 30})
    if backend == "postgresql":
        return sa.create_engine(
            ro,
            pool_pre_ping=True,
            connect_args={"options": "-c default_transaction_read_only=on"},
        )
    raise ViewerDatabaseError(f"the viewer reads SQLite or PostgreSQL, not {backend}")


class ReadOnlyDatabase:
    """The viewer's engine plus which of the project's tables exist (a fresh home has none)."""

    def __init__(self, url: str) -> None:
        self.safe_url = safe_url(url)
        parsed = sa.make_url(url)
        self._sqlite_file = Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None
        self.engine = read_only_engine(url)
        self._tables: frozenset[str] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def has(self, table: sa.Table) -> bool:
        """Whether ``table`` exists; a missing one is looked up again after a few seconds
        (a deployment's first run creates its tables while the viewer is up)."""
        with self._lock:
            stale = time.monotonic() - self._checked > RECHECK_S
            if self._tables is None or (table.name not in self._tables and stale):
                self._tables = frozenset(self._table_names())
                self._checked = time.monotonic()
            return table.name in self._tables

    def refresh(self) -> None:
        """Forget which tables exist (they are looked up again on next use)."""
        with self._lock:
            self._tables = None

    def connect(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except sa.exc.DBAPIError as exc:
            raise ViewerDatabaseError(f"cannot read {self.safe_url}: {_reason(exc)}") from None

    def _table_names(self) -> list[str]:
        if self._sqlite_file is not None and not self._sqlite_file.is_file():
            return []
        with self.connect() as conn:
            return sa.inspect(conn).get_table_names()


def _reason(exc: sa.exc.DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
