"""``order_records``: our own note of every order decision, written before and after sending.

The row for an ``order_ref`` is written as ``sending`` before the broker is called and as
``sent`` after. A crash in between leaves ``sending``; the next run asks the broker for that
reference and records what it finds (``reconciled``) instead of sending again. A decision to
send nothing is recorded too (``decided``), so re-running a past session replays the decision
made then instead of deciding again against an account that has moved on.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.schema import ensure_schema
from ibkr_assets.storage.tables import order_records

STATES = ("decided", "sending", "sent", "reconciled")


class OrderRecords:
    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)

    def create_schema(self) -> None:
        ensure_schema(self.engine)

    def get(self, order_ref: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(order_records).where(order_records.c.order_ref == order_ref))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def write(self, order_ref: str, *, state: str, **fields: Any) -> None:
        """Insert or update the record for ``order_ref`` (an upsert: never two rows)."""
        if state not in STATES:
            raise ValueError(f"order record state must be one of {STATES}, got {state!r}")
        now = dt.datetime.now(dt.timezone.utc)
        values = {"order_ref": order_ref, "state": state, "updated_at": now, **fields}
        insert = (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert(
            order_records
        )
        statement = insert.values(**values, created_at=now).on_conflict_do_update(
            index_elements=["order_ref"], set_={k: v for k, v in values.items() if k != "order_ref"}
        )
        with self.engine.begin() as conn:
            conn.execute(statement)
