"""One SQLAlchemy engine per database URL per process (a pooled engine, never one per row)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()


def engine_for(url: str) -> sa.Engine:
    """The process-wide engine for ``url``, created on first use."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            kwargs: dict = {"pool_pre_ping": True}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"timeout": 30}
                _make_sqlite_folder(url)
            engine = sa.create_engine(url, **kwargs)
            if url.startswith("sqlite"):
                _enable_sqlite_wal(engine)
            _engines[url] = engine
        return engine


def _forget_in_child() -> None:
    """A forked child must never use its parent's pooled connections: two processes on one
    socket share a session (and its locks). Drop them without closing the parent's sockets."""
    global _lock
    _lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def dispose_engines() -> None:
    """Close every pooled connection (tests call this before dropping a database)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _enable_sqlite_wal(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - trivial
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def _make_sqlite_folder(url: str) -> None:
    """A SQLite file in a folder that does not exist yet is a fresh deployment, not an error."""
    database = sa.engine.make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


@contextmanager
def transaction(engine: sa.Engine, error: type[Exception], what: str) -> Iterator[sa.Connection]:
    """One transaction; a database error becomes ``error(what: first line of the reason)``.

    ``what`` must already hide any password (use ``redaction.redact_text``).
    """
    with database_errors(error, what), engine.begin() as conn:
        yield conn


@contextmanager
def database_errors(error: type[Exception], what: str) -> Iterator[None]:
    """A database error in the block becomes ``error(what: first line of the reason)``."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise error(f"{what}: {reason}") from exc
