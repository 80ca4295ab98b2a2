"""``verification_runs``: one row per ``verify`` (command or Dagster job), for people to look at.

``sql/008_verification_runs.sql`` mirrors the table for PostgreSQL (a test compares the two).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.tables import _json, _timestamp, metadata

verification_runs = sa.Table(
    "verification_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("strategy_id", sa.String(100), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("discrepancies", sa.Integer, nullable=False),
    sa.Column("orphans_deleted", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("checks", _json(), nullable=False),
    sa.Column("details", _json(), nullable=False),
    sa.Column("triggered_by", sa.String(255), nullable=False),
    sa.Column("started_at", _timestamp(), nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Index("ix_verification_runs_strategy_started", "strategy_id", "started_at"),
)

MAX_DETAILS = 1000  # discrepancies kept per row; the count is always complete


def record_verification(url: str, **values: Any) -> int:
    """Insert one ``verification_runs`` row (creating the table if needed); its id."""
    engine = engine_for(url)
    details = list(values.pop("details"))[:MAX_DETAILS]
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[verification_runs])
        result = conn.execute(
            sa.insert(verification_runs)
            .values(**values, details=details)
            .returning(verification_runs.c.id)
        )
        return result.scalar_one()


def latest_verifications(url: str, strategy_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """The newest rows of ``strategy_id``, newest first."""
    t = verification_runs
    query = (
        sa.select(t)
        .where(t.c.strategy_id == strategy_id)
        .order_by(t.c.started_at.desc(), t.c.id.desc())
        .limit(limit)
    )
    with engine_for(url).begin() as conn:
        metadata.create_all(conn, tables=[verification_runs])
        return [dict(r._mapping) for r in conn.execute(query)]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
