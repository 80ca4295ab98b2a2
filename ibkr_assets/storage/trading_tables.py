"""Readers of the trading tables (defined in ``tables.py``) and the call that creates them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ibkr_assets.domain.orders import Fill
from ibkr_assets.storage.schema import ensure_schema
from ibkr_assets.storage.tables import (
    fills,
    order_events,
    orders,
    paper_accounts,
    paper_closes,
    paper_sync,
    portfolio_snapshots,
    positions,
)

# what the paper broker and the order tracker keep: the book, its orders, fills and snapshots
TRADING_TABLES = (
    paper_accounts,
    orders,
    order_events,
    fills,
    positions,
    paper_sync,
    paper_closes,
    portfolio_snapshots,
)


def fill_from_row(row) -> Fill:
    """A ``fills`` row as a ``Fill``, stamped at the close of its session (a daily bar does not
    say when it happened)."""
    return Fill(
        execution_id=row["execution_id"],
        broker_order_id=row["broker_order_id"],
        order_ref=row["order_ref"],
        symbol=row["symbol"],
        side=row["side"],
        quantity=row["quantity"],
        price=row["price"],
        commission=row["commission"],
        time=dt.datetime.combine(
            row["session_date"], dt.time(16), tzinfo=ZoneInfo("America/New_York")
        ),
    )


def create_trading_schema(url: str) -> None:
    """Create or upgrade the database's tables, the trading ones among them (safe to repeat)."""
    ensure_schema(url)
