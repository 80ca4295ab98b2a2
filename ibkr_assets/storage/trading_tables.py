"""Tables of the paper broker and the portfolio, on the same ``metadata`` as ``tables.py``.

``sql/004_trading.sql`` mirrors them for PostgreSQL and ``test_trading_ddl.py`` compares the two.
Money and prices are NUMERIC(18, 6) read back as floats; the broker rounds to six places before
writing so SQLite (which does not round) holds the same values as PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import get_args
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ibkr_assets.domain.orders import Fill, OrderStatus, OrderType, Role, Side
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.tables import _json, _timestamp, metadata

ORDER_STATUSES: tuple[str, ...] = tuple(s.value for s in OrderStatus)


def _numeric() -> sa.Numeric:
    return sa.Numeric(18, 6, asdecimal=False)


def _in(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sa.column(column).in_(values), name=name)


paper_accounts = sa.Table(
    "paper_accounts",
    metadata,
    sa.Column("account", sa.String(100), primary_key=True),
    sa.Column("starting_cash", _numeric(), nullable=False),
    sa.Column("cash", _numeric(), nullable=False),
    sa.Column("realized_pnl", _numeric(), nullable=False, server_default=sa.text("0")),
    sa.Column("commissions", _numeric(), nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", _timestamp(), nullable=False, server_default=sa.func.now()),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("order_ref", sa.String(255), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("broker_order_id", sa.String(100), nullable=False),
    sa.Column("symbol", sa.String(50), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("order_type", sa.String(3), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("limit_price", _numeric()),
    sa.Column("stop_price", _numeric()),
    sa.Column("parent_id", sa.String(100)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("filled_quantity", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("avg_fill_price", _numeric()),
    sa.Column("commission", _numeric(), nullable=False, server_default=sa.text("0")),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("session_date", sa.Date, nullable=False),
    sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("broker_order_id", name="uq_orders_broker_order_id"),
    sa.UniqueConstraint("account", "order_ref", "role", name="uq_orders_ref_role"),
    _in("status", ORDER_STATUSES, "ck_orders_status"),
    _in("side", get_args(Side), "ck_orders_side"),
    _in("order_type", get_args(OrderType), "ck_orders_order_type"),
    _in("role", get_args(Role), "ck_orders_role"),
    sa.CheckConstraint("quantity > 0", name="ck_orders_quantity"),
    sa.Index("ix_orders_account_symbol_status", "account", "symbol", "status"),
)

order_events = sa.Table(
    "order_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("broker_order_id", sa.String(100), nullable=False),
    sa.Column("order_ref", sa.String(255), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("filled_quantity", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.Column("detail", _json()),
    _in("status", ORDER_STATUSES, "ck_order_events_status"),
    sa.Index("ix_order_events_order", "account", "broker_order_id"),
    sa.Index("ix_order_events_order_ref", "order_ref"),
)

fills = sa.Table(
    "fills",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.String(120), nullable=False),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("broker_order_id", sa.String(100), nullable=False),
    sa.Column("order_ref", sa.String(255), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("symbol", sa.String(50), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("price", _numeric(), nullable=False),
    sa.Column("commission", _numeric(), nullable=False),
    sa.Column("session_date", sa.Date, nullable=False),
    sa.Column("filled_at", _timestamp(), nullable=False),
    sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("execution_id", name="uq_fills_execution_id"),
    sa.Index("ix_fills_account_symbol", "account", "symbol"),
    sa.Index("ix_fills_order_ref", "order_ref"),
)

positions = sa.Table(
    "positions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("symbol", sa.String(50), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("avg_cost", _numeric(), nullable=False),
    sa.Column("updated_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("account", "symbol", name="uq_positions_account_symbol"),
)

paper_sync = sa.Table(
    "paper_sync",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("symbol", sa.String(50), nullable=False),
    sa.Column("last_bar_date", sa.Date, nullable=False),
    sa.Column("updated_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("account", "symbol", name="uq_paper_sync_account_symbol"),
)

paper_closes = sa.Table(
    "paper_closes",
    metadata,
    sa.Column("account", sa.String(100), primary_key=True),
    sa.Column("symbol", sa.String(50), primary_key=True),
    sa.Column("session_date", sa.Date, primary_key=True),
    sa.Column("close", _numeric(), nullable=False),
)

portfolio_snapshots = sa.Table(
    "portfolio_snapshots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("snapshot_date", sa.Date, nullable=False),
    sa.Column("cash", _numeric(), nullable=False),
    sa.Column("market_value", _numeric(), nullable=False),
    sa.Column("equity", _numeric(), nullable=False),
    sa.Column("realized_pnl", _numeric(), nullable=False),
    sa.Column("unrealized_pnl", _numeric(), nullable=False),
    sa.Column("commissions", _numeric(), nullable=False),
    sa.Column("gross_exposure", _numeric(), nullable=False),
    sa.Column("net_exposure", _numeric(), nullable=False),
    sa.Column("exposure_pct", _numeric()),
    sa.Column("positions", _json(), nullable=False),
    sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", _timestamp()),
    sa.UniqueConstraint("account", "snapshot_date", name="uq_portfolio_snapshots_account_date"),
)

TRADING_TABLES: tuple[sa.Table, ...] = (
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
    """Create the trading tables and indexes that do not exist yet (safe to repeat)."""
    with engine_for(url).begin() as conn:
        metadata.create_all(conn, tables=list(TRADING_TABLES))
