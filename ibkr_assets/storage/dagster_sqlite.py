"""Dagster's SQLite event log with its database connections kept open.

Dagster's ``SqliteEventLogStorage`` builds a new engine, connects, commits and disposes for every
event it writes (twice for an asset event: the run's database and the cross-run index), about
6 ms an event here; a single-run backfill of 100 partitions writes some 1,600 events. This
subclass keeps a connection open to each database file it wrote to recently (the index and the
runs in progress), and sets ``synchronous=NORMAL``, SQLite's recommended setting for WAL
databases such as Dagster's: a commit survives the process crashing, only a power loss may undo
the last ones. A batch of events (Dagster sends one when ``DAGSTER_EVENT_BATCH_SIZE`` is set) is
written in one transaction per database. Consecutive asset events of a batch (a range run's
materializations of one output, or its planned materializations) are written as Dagster's
PostgreSQL storage writes them: the rows with one ``executemany`` per database, and the asset
table updated from the last event of each asset and kind instead of once per event.

With connections kept open, a commit lands in the database's ``-wal`` file and reaches the main
file only at a checkpoint, so the watcher that streams a run's events to the UI also wakes on
the ``-wal`` file. Everything else (schema, migrations, queries) is Dagster's own; the
overridden methods are Dagster internals, so ``test_dagster_sqlite_storage.py`` exercises them
through real instances. The repository's ``dagster.yaml`` configures it for the embedded
deployment; production uses Dagster's PostgreSQL storage (``docker/dagster.yaml``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from itertools import groupby

import sqlalchemy as sa
from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.base import EventHandlerFn
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from watchdog.observers import Observer

# The Dagster series whose internals this module was checked against, and the internals it
# overrides or calls with their parameters: ``check_dagster_internals`` refuses any other series,
# or a changed internal, when the storage is created, instead of storing events wrongly.
TESTED_DAGSTER_SERIES = "1.13"
RELIED_ON: dict[tuple[type, str], list[str]] = {
    (SqliteEventLogStorage, "__init__"): ["self", "base_dir", "inst_data"],
    (SqliteEventLogStorage, "_connect"): ["self", "shard"],
    (SqliteEventLogStorage, "_initdb"): ["self", "engine", "for_index_shard"],
    (SqliteEventLogStorage, "conn_string_for_shard"): ["self", "shard_name"],
    (SqliteEventLogStorage, "has_table"): ["self", "table_name"],
    (SqliteEventLogStorage, "_has_asset_key_col_on_connection"): ["self", "conn", "column_name"],
    (SqliteEventLogStorage, "store_event_batch"): ["self", "events"],
    (SqliteEventLogStorage, "store_event"): ["self", "event"],
    (SqliteEventLogStorage, "_event_to_row"): ["self", "event"],
    (SqliteEventLogStorage, "run_connection"): ["self", "run_id"],
    (SqliteEventLogStorage, "index_connection"): ["self"],
    (SqliteEventLogStorage, "_store_asset_event_tags"): ["self", "conn", "events", "event_ids"],
    (SqliteEventLogStorage, "_store_asset_event"): ["self", "conn", "event", "event_id"],
    (SqliteEventLogStorage, "watch"): ["self", "run_id", "cursor", "callback"],
    (SqliteEventLogStorageWatchdog, "__init__"): [
        "self",
        "event_log_storage",
        "run_id",
        "callback",
        "cursor",
        "kwargs",
    ],  # fmt: skip
    (SqliteEventLogStorageWatchdog, "_process_log"): ["self"],
}


class DagsterInternalsChanged(RuntimeError):
    """The installed Dagster is not the one ``PooledSqliteEventLogStorage`` was checked with."""


def check_dagster_internals(version: str | None = None) -> None:
    """Raise ``DagsterInternalsChanged`` unless Dagster ``version`` (the installed one by
    default) is the tested series and every internal this module relies on is unchanged."""
    import inspect

    import dagster

    version = version or dagster.__version__
    way_out = (
        "use Dagster's own SQLite storage instead (the repository's dagster.yaml, or "
        "IBKR_ASSETS_DAGSTER_EVENT_LOG=dagster for the ibkr-assets command)"
    )
    if not version.startswith(TESTED_DAGSTER_SERIES + "."):
        raise DagsterInternalsChanged(
            f"PooledSqliteEventLogStorage was checked against Dagster {TESTED_DAGSTER_SERIES}.x "
            f"internals, and Dagster {version} is installed: {way_out}"
        )
    for (owner, name), expected in RELIED_ON.items():
        member = getattr(owner, name, None)
        found = None if member is None else list(inspect.signature(member).parameters)
        if found != expected:
            raise DagsterInternalsChanged(
                f"Dagster {version} changed {owner.__name__}.{name} (parameters {found}, "
                f"expected {expected}): {way_out}"
            )


MAX_OPEN_DATABASES = 8  # the index plus the runs being written; older ones are closed
# Asset events whose storage is rows plus the asset table's latest values (no check or run state)
BULK_EVENT_TYPES = frozenset(
    {
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.ASSET_OBSERVATION,
        DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    }
)


def _normal_sync(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that reuses its connections (see the module docstring).

    .. code-block:: yaml

        event_log_storage:
          module: ibkr_assets.storage.dagster_sqlite
          class: PooledSqliteEventLogStorage
          config:
            base_dir: .dagster_home/storage/history/runs
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        check_dagster_internals()
        # Set before Dagster's __init__, which may already connect (to create the index).
        self._pool_lock = threading.RLock()
        self._engines: OrderedDict[str, sa.Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        # Inside store_event_batch: its open transactions (committed together) by database.
        self._batch: tuple[ExitStack, dict[str, sa.Connection]] | None = None
        self._tables_seen: set[str] = set()
        self._asset_key_columns_seen: set[str] = set()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:
        """A connection in a transaction on ``shard``'s database, committed on exit (or, inside
        ``store_event_batch``, when the batch ends)."""
        with self._pool_lock:
            if self._batch is not None:
                stack, connections = self._batch
                if shard not in connections:
                    connections[shard] = stack.enter_context(self._transaction(shard))
                yield connections[shard]
                return
            with self._transaction(shard) as connection:
                yield connection

    @contextmanager
    def _transaction(self, shard: str) -> Iterator[sa.Connection]:
        with self._engine(shard).connect() as connection, connection.begin():
            yield connection

    def _engine(self, shard: str) -> sa.Engine:
        if self._engines_pid != os.getpid():
            # A forked child must not share the parent's SQLite connections: forget them unclosed.
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines.clear()
            self._engines_pid = os.getpid()
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = sa.create_engine(
                self.conn_string_for_shard(shard),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            sa.event.listen(engine, "connect", _normal_sync)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine  # most recently used last
        while len(self._engines) > MAX_OPEN_DATABASES:
            _, oldest = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    def has_table(self, table_name: str) -> bool:
        """Dagster's check (asked for every asset event) on the kept-open index connection."""

        def present() -> bool:
            with self.index_connection() as connection:
                return bool(connection.dialect.has_table(connection, table_name))

        return _seen_once_there(self._tables_seen, table_name, present)

    def _has_asset_key_col_on_connection(self, conn: sa.Connection, column_name: str) -> bool:
        """Dagster reflects the asset-key table's columns for every asset event."""
        return _seen_once_there(
            self._asset_key_columns_seen,
            column_name,
            lambda: super(PooledSqliteEventLogStorage, self)._has_asset_key_col_on_connection(
                conn, column_name
            ),
        )

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Dagster's ``store_event`` for each event, in one transaction per database: all of
        the batch is stored or, on an error, none of it (Dagster then stores them one by one)."""
        with self._pool_lock:
            if self._batch is not None:  # nested: already inside a batch on this thread
                for event in events:
                    self.store_event(event)
                return
            try:
                with ExitStack() as stack:
                    self._batch = (stack, {})
                    # in order: consecutive asset events at once, any other event alone
                    for bulk, group in groupby(events, key=_bulk_writable):
                        part = list(group)
                        if bulk and len(part) > 1:
                            self._store_asset_events(part)
                        else:
                            for event in part:
                                self.store_event(event)
            finally:
                self._batch = None

    def _store_asset_events(self, events: Sequence[EventLogEntry]) -> None:
        """What ``store_event`` stores for each of these asset events, written together.

        Dagster writes an asset event to the run's database and to the cross-run index, indexes
        its tags, and sets the asset's latest values (last materialization, run, timestamp).
        Those values are overwritten by each later event that sets them, so applying the last
        event of each asset and kind, in event order, leaves exactly what one by one would.
        """
        rows = [self._event_to_row(event) for event in events]
        for run_id in dict.fromkeys(event.run_id for event in events):
            with self.run_connection(run_id) as conn:
                conn.execute(
                    SqlEventLogStorageTable.insert(),
                    [row for row in rows if row["run_id"] == run_id],
                )
        with self.index_connection() as conn:
            inserted = conn.execute(
                SqlEventLogStorageTable.insert().returning(
                    SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
                ),
                rows,
            )
            event_ids = [row[0] for row in inserted]
            self._store_asset_event_tags(conn, events, event_ids)
            latest: dict[tuple, tuple[int, EventLogEntry]] = {}
            for event_id, event in zip(event_ids, events, strict=True):
                dagster_event = event.get_dagster_event()
                latest[(dagster_event.asset_key, dagster_event.event_type)] = (event_id, event)
            for event_id, event in sorted(latest.values(), key=lambda pair: pair[0]):
                self._store_asset_event(conn, event, event_id)

    def watch(self, run_id: str, cursor: str | None, callback: EventHandlerFn) -> None:
        """Dagster's ``watch``, with a handler that also wakes on the ``-wal`` file."""
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
        handler = _WalAwareWatchdog(self, run_id, callback, cursor)
        scheduled = self._obs.schedule(handler, self._base_dir, recursive=True)
        self._watchers[run_id][callback] = (handler, scheduled)

    def _close_all(self) -> None:
        with self._pool_lock:
            while self._engines:
                _, engine = self._engines.popitem()
                engine.dispose()

    def wipe(self) -> None:
        self._close_all()  # the run databases are deleted: never write to an unlinked file
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


def _seen_once_there(seen: set[str], name: str, present: Callable[[], bool]) -> bool:
    """``present()``, asked until it is true once: migrations only add tables and columns."""
    if name in seen:
        return True
    if present():
        seen.add(name)
        return True
    return False


def _bulk_writable(event: EventLogEntry) -> bool:
    """An asset event of a kind with nothing more to store than rows and the asset's latest."""
    return (
        event.is_dagster_event
        and event.get_dagster_event().event_type in BULK_EVENT_TYPES
        and event.get_dagster_event().asset_key is not None
    )


class _WalAwareWatchdog(SqliteEventLogStorageWatchdog):
    """Reads a run's new events when its database or its ``-wal`` file changes."""

    def dispatch(self, event) -> None:
        paths = (self._log_path, self._log_path + "-wal")
        if event.event_type == "modified" and os.fsdecode(event.src_path) in paths:
            self._process_log()
