"""Create or upgrade a database's tables (SQLite or PostgreSQL) to ``tables.metadata``.

``ensure_schema(url)`` is what every store calls before its first use; it costs one query when
the database is current. Otherwise, holding the schema lock (a PostgreSQL advisory lock for the
transaction, or an exclusive lock on a file beside the SQLite database), so processes started
together never race:

- a new database (none of our tables) gets every table and is stamped at the newest revision;
- a database with a version table is upgraded by the migrations it has not had;
- a database from before migrations (our tables, no ``ibkr_assets_alembic_version``) is upgraded from the
  start: the baseline revision creates only the tables it lacks, the later ones change the rest.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.migrations import VERSION_TABLE
from ibkr_assets.storage.tables import metadata

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"ibkr_assets.schema").digest()[:8], "big", signed=True)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for the project's migrations, using ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration: what ``ensure_schema`` brings every database to."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


_HEAD: list[str] = []  # computed once per process (reading the scripts costs milliseconds)


def _head() -> str:
    if not _HEAD:
        _HEAD.append(head_revision())
    return _HEAD[0]


def current_revision(conn: sa.Connection) -> str | None:
    """The database's migration revision; None when it has never been stamped."""
    return MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()


def ensure_schema(database: str | sa.Engine) -> None:
    """Bring the database (a URL or its engine) to the newest schema (safe to repeat and race)."""
    engine = engine_for(database) if isinstance(database, str) else database
    with engine.connect() as conn:
        if current_revision(conn) == _head():
            return
    with _schema_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        _migrate(conn)


def _migrate(conn: sa.Connection) -> None:
    """Under the lock: the other process may have done it all while we waited."""
    revision = current_revision(conn)
    if revision == _head():
        return
    config = alembic_config(conn)
    ours = set(metadata.tables) & set(sa.inspect(conn).get_table_names())
    if revision is None and not ours:
        metadata.create_all(conn)
        command.stamp(config, "head")
    else:
        command.upgrade(config, "head")


@contextmanager
def _schema_lock(engine: sa.Engine) -> Iterator[None]:
    """SQLite: an exclusive lock on ``{database}.schema.lock``; PostgreSQL locks in-transaction."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.schema.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def main(argv: list[str] | None = None) -> int:
    """``python -m ibkr_assets.storage.schema [URL]``: upgrade the database (default: the
    deployment's lineage database) and print its revision."""
    import sys

    from ibkr_assets.redaction import redact_text
    from ibkr_assets.settings import load_settings

    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else load_settings().lineage_url
    ensure_schema(url)
    with engine_for(url).connect() as conn:
        print(f"{redact_text(url)}: schema at revision {current_revision(conn)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
