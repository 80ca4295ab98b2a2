"""One writer per strategy's book, across processes, whoever started them.

Dagster's pools keep the runs it launches apart; this guard also covers commands started by
hand, a second ``ibkr-assets backfill``, or a run from another instance. On PostgreSQL it is a
session advisory lock; on SQLite an exclusive ``flock`` on a file beside the database. Both are
released by the operating system or the server when their process dies, so a killed run never
leaves the book locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from ibkr_assets.storage.engines import engine_for

POLL_SECONDS = 0.2


class BookBusyError(RuntimeError):
    """Another process holds the strategy's book for longer than we were willing to wait."""


@contextmanager
def book_lock(database_url: str, strategy_id: str, *, wait_seconds: float) -> Iterator[None]:
    """Hold ``strategy_id``'s book for the block, waiting up to ``wait_seconds`` for it."""
    engine = engine_for(database_url)
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, strategy_id, wait_seconds):
            yield
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield  # a private in-memory database has no other writer
        return
    path = Path(f"{database}.{strategy_id}.book.lock")
    with _file_lock(path, strategy_id, wait_seconds):
        yield


def _busy(strategy_id: str, wait_seconds: float) -> BookBusyError:
    return BookBusyError(
        f"strategy {strategy_id!r}: another process has been deciding orders or snapshots for "
        f"this book for over {wait_seconds:g}s (IBKR_ASSETS_BOOK_LOCK_TIMEOUT); one writer at a "
        "time keeps the book true. Wait for it to finish, then run again"
    )


@contextmanager
def _advisory_lock(engine: sa.Engine, strategy_id: str, wait_seconds: float) -> Iterator[None]:
    digest = hashlib.sha256(f"ibkr_assets.book:{strategy_id}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    conn = engine.connect()
    try:
        deadline = time.monotonic() + wait_seconds
        query = sa.text("SELECT pg_try_advisory_lock(:key)")
        while not conn.execute(query, {"key": key}).scalar_one():
            conn.rollback()
            if time.monotonic() >= deadline:
                raise _busy(strategy_id, wait_seconds)
            time.sleep(POLL_SECONDS)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.commit()
    except sa.exc.DBAPIError:
        conn.invalidate()  # never hand a connection that may still hold the lock back to the pool
        raise
    finally:
        conn.close()


@contextmanager
def _file_lock(path: Path, strategy_id: str, wait_seconds: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(strategy_id, wait_seconds) from None
                time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
