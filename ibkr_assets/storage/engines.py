"""One SQLAlchemy engine per database URL per process (a pooled engine, never one per row)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from ibkr_assets.redaction import redact_text

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()
_sql_log = logging.getLogger("ibkr_assets.sql")
_logging_statements = False
_SHOWN_PARAMETERS = 300  # characters of a statement's parameters shown in its log line


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
            _log_statements_of(engine)
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


def log_statements(on: bool) -> None:
    """Log each SQL statement of the project's engines (all of ``engine_for``'s) at DEBUG on the
    ``ibkr_assets.sql`` logger, passwords and secret parameters masked (debug mode)."""
    global _logging_statements
    _logging_statements = on
    _sql_log.setLevel(logging.DEBUG if on else logging.NOTSET)
    if on and not _sql_log.handlers:  # shown on stderr (a run's compute logs) as well
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        _sql_log.addHandler(handler)


def _log_statements_of(engine: sa.Engine) -> None:
    database = redact_text(f"{engine.dialect.name}:{engine.url.database or ''}")

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _log(_conn, _cursor, statement, parameters, _context, executemany):
        if not (_logging_statements and _sql_log.isEnabledFor(logging.DEBUG)):
            return
        shown = repr(parameters)
        if len(shown) > _SHOWN_PARAMETERS:
            shown = shown[:_SHOWN_PARAMETERS] + f"... ({len(shown)} characters)"
        many = " (executemany)" if executemany else ""
        _sql_log.debug("SQL %s%s: %s -- parameters: %s", database, many,
                       redact_text(" ".join(statement.split())), redact_text(shown))  # fmt: skip


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
