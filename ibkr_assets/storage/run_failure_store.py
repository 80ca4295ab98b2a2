"""``run_failures``: one row per failed step of a failed run.

Dagster keeps failures in its own event log; this table puts them next to the lineage rows
(same database, same partition keys) so the lineage viewer and alerting queries can join them.
A run that failed outside any step (a resource that could not start, a cancelled run) gets one
run-level row whose ``step_key`` is ``''`` rather than NULL, so ``(run_id, step_key)`` stays a
real unique key and re-evaluating the same run updates rows instead of adding them. The
``run_failure_sensor`` (``monitoring/run_failures.py``) writes the rows. The table is defined in
``tables.py``.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ibkr_assets.redaction import redact_text
from ibkr_assets.storage.engines import database_errors, engine_for, transaction
from ibkr_assets.storage.schema import ensure_schema
from ibkr_assets.storage.tables import run_failures

RUN_LEVEL = ""  # step_key of a failure that belongs to no step
_KEY = ("run_id", "step_key")


class RunFailureStoreError(RuntimeError):
    """The database refused or could not be reached; the message never shows a password."""


class RunFailureStore:
    """Reads and writes ``run_failures`` (SQLite or PostgreSQL) through the shared engine."""

    def __init__(self, url: str) -> None:
        self._safe_url = redact_text(url)
        self.engine = engine_for(url)

    def __repr__(self) -> str:
        return f"RunFailureStore({self._safe_url!r})"

    def create_schema(self) -> None:
        """Create the table and its indexes if they do not exist yet (safe to repeat)."""
        what = f"run_failures create_schema failed on {self._safe_url}"
        with database_errors(RunFailureStoreError, what):
            ensure_schema(self.engine)

    def record(
        self,
        *,
        run_id: str,
        job_name: str,
        error: str,
        error_class: str,
        step_key: str | None = None,
        partition_key: str | None = None,
        strategy_id: str | None = None,
        occurred_at: dt.datetime | None = None,
    ) -> int:
        """Upsert the failure of ``step_key`` (None: the run itself) in ``run_id``; returns its id.

        Recording the same failure again updates the row; whether the webhook was told
        (``notified``, ``webhook_status``) is kept.
        """
        values = _clipped(
            {
                "run_id": run_id,
                "step_key": step_key or RUN_LEVEL,
                "job_name": job_name,
                "partition_key": partition_key,
                "error": error,
                "error_class": error_class,
                "strategy_id": strategy_id,
                "occurred_at": occurred_at or dt.datetime.now(dt.timezone.utc),
            }
        )
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(run_failures).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={k: insert.excluded[k] for k in values if k not in _KEY},
        ).returning(run_failures.c.id)
        with self._transaction("write") as conn:
            return conn.execute(statement).scalar_one()

    def mark_notified(self, run_id: str, webhook_status: str) -> None:
        """Store the webhook's answer on every row of ``run_id``; a 2xx answer means notified."""
        statement = (
            run_failures.update()
            .where(run_failures.c.run_id == run_id)
            .values(webhook_status=webhook_status, notified=webhook_status.startswith("2"))
        )
        with self._transaction("write") as conn:
            conn.execute(statement)

    def for_run(self, run_id: str) -> list[dict[str, Any]]:
        """Every failure row of ``run_id``, in the order they were first recorded."""
        query = (
            sa.select(run_failures)
            .where(run_failures.c.run_id == run_id)
            .order_by(run_failures.c.id)
        )
        return self._rows(query)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The ``limit`` most recent failures, newest first."""
        query = (
            sa.select(run_failures)
            .order_by(run_failures.c.occurred_at.desc(), run_failures.c.id.desc())
            .limit(limit)
        )
        return self._rows(query)

    def _rows(self, query: sa.Select) -> list[dict[str, Any]]:
        with self._transaction("read") as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:  # SQLite hands back naive datetimes; we only ever write UTC
            if row["occurred_at"].tzinfo is None:
                row["occurred_at"] = row["occurred_at"].replace(tzinfo=dt.timezone.utc)
        return rows

    def _transaction(self, action: str):
        return transaction(
            self.engine, RunFailureStoreError, f"run_failures {action} failed on {self._safe_url}"
        )


def _clipped(values: dict[str, Any]) -> dict[str, Any]:
    """Cut strings to their column's length: a failure too long to store must still be stored."""
    for name, value in values.items():
        length = getattr(run_failures.c[name].type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            values[name] = value[: length - 1] + "…"
    return values


@functools.lru_cache(maxsize=8)
def store_for(url: str) -> RunFailureStore:
    """One store per database URL in this process, its table created the first time."""
    store = RunFailureStore(url)
    store.create_schema()
    return store
