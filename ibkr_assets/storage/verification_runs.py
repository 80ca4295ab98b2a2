"""``verification_runs``: one row per ``verify`` (command or Dagster job), for people to look at.

The table is defined in ``tables.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.schema import ensure_schema
from ibkr_assets.storage.tables import verification_runs

MAX_DETAILS = 1000  # discrepancies kept per row; the count is always complete


def record_verification(url: str, **values: Any) -> int:
    """Insert one ``verification_runs`` row (creating the table if needed); its id."""
    engine = engine_for(url)
    details = list(values.pop("details"))[:MAX_DETAILS]
    ensure_schema(engine)
    with engine.begin() as conn:
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
    engine = engine_for(url)
    ensure_schema(engine)
    with engine.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
