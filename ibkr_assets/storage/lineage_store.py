"""Lineage and artifact rows in SQLite or PostgreSQL, written as idempotent upserts.

Writing a lineage record whose ``(execution_id, step_name, partition_key)`` already exists
updates that row in place: ``attempts`` goes up by one and the replaced attempt's
``{run_id, status, error, duration_ms, recorded_at}`` is appended to ``previous_attempts``, so a
failed attempt stays on record after a successful re-execution. The append happens inside the
``INSERT ... ON CONFLICT DO UPDATE`` statement (one round trip, atomic even with concurrent
writers); only that JSON expression differs between the two databases.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ibkr_assets.redaction import redact_text
from ibkr_assets.storage.engines import database_errors, engine_for, transaction
from ibkr_assets.storage.records import ArtifactRecord, LineageRecord
from ibkr_assets.storage.schema import ensure_schema
from ibkr_assets.storage.tables import (
    ARTIFACT_KEY,
    LINEAGE_KEY,
    artifacts,
    workflow_lineage,
)

_JSON_FIELDS = {"input_data", "output_data", "metadata", "chart_data", "signal_data"}


class LineageStoreError(RuntimeError):
    """The database refused or could not be reached; the message never shows a password."""


class LineageStore:
    """Reads and writes ``workflow_lineage`` and ``artifacts`` through the shared pooled engine."""

    def __init__(self, url: str) -> None:
        try:
            sa.make_url(url)
        except sa.exc.ArgumentError:
            raise ValueError("LineageStore: the database URL cannot be parsed") from None
        self._safe_url = redact_text(url)
        self._engine = engine_for(url)
        dialect = self._engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"LineageStore supports PostgreSQL and SQLite, not {dialect}")
        self._lineage_upsert = _lineage_upsert(dialect)
        self._artifact_upsert = _artifact_upsert(dialect)

    def __repr__(self) -> str:
        return f"LineageStore({self._safe_url!r})"

    def create_schema(self) -> None:
        """Create or upgrade the database's tables, the lineage ones among them (safe to repeat)."""
        what = f"lineage store create_schema failed on {self._safe_url}"
        with database_errors(LineageStoreError, what):
            ensure_schema(self._engine)

    def record_step(self, rec: LineageRecord) -> int:
        """Upsert one lineage record; returns its row id."""
        return self.record_steps([rec])[0]

    def record_steps(self, recs: Sequence[LineageRecord]) -> list[int]:
        """Upsert many lineage records in one transaction; ids come back in input order."""
        if not recs:
            return []
        now = _utcnow()
        params = [_params(workflow_lineage, rec, recorded_at=now) for rec in recs]
        return self._upsert(self._lineage_upsert, LINEAGE_KEY, params)

    def record_artifact(self, rec: ArtifactRecord) -> int:
        """Upsert one artifact; returns its row id."""
        return self.record_artifacts([rec])[0]

    def record_artifacts(self, recs: Sequence[ArtifactRecord]) -> list[int]:
        """Upsert many artifacts in one transaction; ids come back in input order."""
        if not recs:
            return []
        now = _utcnow()
        params = [_params(artifacts, rec, created_at=now) for rec in recs]
        return self._upsert(self._artifact_upsert, ARTIFACT_KEY, params)

    def lineage_rows(
        self,
        *,
        execution_id: str | None = None,
        partition_key: str | None = None,
        step_name: str | None = None,
        symbol: str | None = None,
    ) -> list[dict[str, Any]]:
        """Lineage rows matching every given filter, in the order their steps first ran."""
        filters = {
            "execution_id": execution_id,
            "partition_key": partition_key,
            "step_name": step_name,
            "symbol": symbol,
        }
        return self._select(workflow_lineage, filters)

    def artifact_rows(
        self,
        *,
        type: str | None = None,
        symbol: str | None = None,
        execution_id: str | None = None,
        partition_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Artifact rows matching every given filter, oldest first."""
        filters = {
            "type": type,
            "symbol": symbol,
            "execution_id": execution_id,
            "partition_key": partition_key,
        }
        return self._select(artifacts, filters)

    def _upsert(
        self, stmt: sa.Insert, key: tuple[str, ...], params: list[dict[str, Any]]
    ) -> list[int]:
        ids: dict[tuple, int] = {}
        with self._transaction("write") as conn:
            # A key may appear twice in one batch; PostgreSQL refuses to touch a row twice in
            # one statement, so each repeat goes in a later wave (and counts as an attempt).
            for wave in _waves(params, key):
                for row in conn.execute(stmt, wave):
                    ids[tuple(row[1:])] = row[0]
        return [ids[tuple(p[k] for k in key)] for p in params]

    def _select(self, table: sa.Table, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
        query = sa.select(table).order_by(table.c.id)
        for name, value in filters.items():
            if value is not None:
                query = query.where(table.c[name] == value)
        with self._transaction("read") as conn:
            return [_row_dict(row._mapping) for row in conn.execute(query)]

    def _transaction(self, action: str):
        return transaction(
            self._engine, LineageStoreError, f"lineage store {action} failed on {self._safe_url}"
        )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _lineage_upsert(dialect: str) -> sa.Insert:
    t = workflow_lineage
    stmt = _insert(dialect)(t)
    fixed = {"id", "attempts", "previous_attempts", "updated_at", *LINEAGE_KEY}
    set_: dict[str, Any] = {c.name: stmt.excluded[c.name] for c in t.c if c.name not in fixed}
    set_.update(
        attempts=t.c.attempts + 1,
        previous_attempts=_append_replaced_attempt(dialect),
        updated_at=stmt.excluded.recorded_at,
    )
    stmt = stmt.on_conflict_do_update(index_elements=list(LINEAGE_KEY), set_=set_)
    return stmt.returning(t.c.id, *(t.c[k] for k in LINEAGE_KEY))


def _append_replaced_attempt(dialect: str) -> sa.ColumnElement:
    """SQL for ``previous_attempts + [the row being replaced]``, timestamps as ISO-8601 UTC."""
    t = workflow_lineage
    kept = ("run_id", "status", "error", "duration_ms")
    if dialect == "postgresql":
        when = sa.func.to_char(
            sa.func.timezone("UTC", t.c.recorded_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
        )
        entry = sa.func.jsonb_build_object(
            *_pairs(kept, t), sa.literal("recorded_at", sa.Text), when
        )
        return t.c.previous_attempts.op("||")(sa.func.jsonb_build_array(entry))
    # SQLite keeps DATETIME as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (we always write UTC).
    when = sa.func.replace(t.c.recorded_at, " ", "T", type_=sa.String) + "Z"
    entry = sa.func.json_object(*_pairs(kept, t), "recorded_at", when)
    return sa.func.json_insert(t.c.previous_attempts, "$[#]", entry)


def _pairs(names: Iterable[str], table: sa.Table) -> list[Any]:
    pairs: list[Any] = []
    for name in names:
        pairs += [sa.literal(name, sa.Text), table.c[name]]
    return pairs


def _artifact_upsert(dialect: str) -> sa.Insert:
    t = artifacts
    stmt = _insert(dialect)(t)
    fixed = {"id", "created_at", "updated_at", *ARTIFACT_KEY}
    set_: dict[str, Any] = {c.name: stmt.excluded[c.name] for c in t.c if c.name not in fixed}
    set_["updated_at"] = stmt.excluded.created_at
    stmt = stmt.on_conflict_do_update(index_elements=list(ARTIFACT_KEY), set_=set_)
    return stmt.returning(t.c.id, *(t.c[k] for k in ARTIFACT_KEY))


def _waves(params: list[dict[str, Any]], key: tuple[str, ...]) -> list[list[dict[str, Any]]]:
    """Split ``params`` so that no wave holds the same key twice, keeping the input order."""
    waves: list[list[dict[str, Any]]] = []
    seen: dict[tuple, int] = {}
    for p in params:
        k = tuple(p[name] for name in key)
        n = seen.get(k, 0)
        seen[k] = n + 1
        if n == len(waves):
            waves.append([])
        waves[n].append(p)
    return waves


def _params(table: sa.Table, rec: LineageRecord | ArtifactRecord, **extra: Any) -> dict[str, Any]:
    """Bind parameters for one record, checked and rounded the way PostgreSQL would.

    SQLite neither enforces VARCHAR lengths nor rounds NUMERIC scales, so both happen here and
    the two databases hold the same values.
    """
    where = f"{type(rec).__name__}({rec.step_name!r}, partition {rec.partition_key!r})"
    params: dict[str, Any] = {}
    for field in fields(rec):
        name, value, column_type = field.name, getattr(rec, field.name), table.c[field.name].type
        if name in _JSON_FIELDS:
            value = _plain_json(value, f"{where}.{name}")
        elif isinstance(value, str) and getattr(column_type, "length", None) is not None:
            if len(value) > column_type.length:
                raise ValueError(
                    f"{where}.{name} is {len(value)} characters; the limit is {column_type.length}"
                )
        elif isinstance(value, float) and isinstance(column_type, sa.Numeric):
            value = round(value, column_type.scale)
        params[name] = value
    params.update(extra)
    return params


def _plain_json(value: Any, where: str) -> Any:
    """``value`` as plain JSON data, identical on both databases.

    Dates become ISO strings, Decimals and numpy scalars become numbers, and NaN/Infinity become
    null (PostgreSQL's JSONB rejects them). Anything else that JSON cannot hold is an error.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return _plain_json(float(value), where)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: JSON object keys must be strings, got {k!r}")
            out[k] = _plain_json(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return _plain_json(value.item(), where)
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored as JSON")


def _row_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A result row as a dict, timestamps as aware UTC datetimes on both databases."""
    out = dict(row)
    for name in ("recorded_at", "updated_at", "created_at"):
        value = out.get(name)
        if isinstance(value, dt.datetime):
            utc = dt.timezone.utc
            out[name] = value.replace(tzinfo=utc) if value.tzinfo is None else value.astimezone(utc)
    return out
