"""Read-only queries over the book: order records, broker orders and their events, fills,
positions, portfolio snapshots, run failures and verification runs.

A strategy's simulator account is named by its id. Tables a deployment has not created yet
read as empty.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ibkr_assets.storage.order_records import order_records
from ibkr_assets.storage.performance_inputs import date_between
from ibkr_assets.storage.tables import run_failures
from ibkr_assets.storage.trading_tables import (
    fills,
    order_events,
    orders,
    paper_accounts,
    portfolio_snapshots,
    positions,
)
from ibkr_assets.storage.verification_runs import verification_runs
from ibkr_assets.viewer.database import ReadOnlyDatabase
from ibkr_assets.viewer.rows import plain_rows


class TradingQueries:
    """The book of each strategy's account, read-only."""

    def __init__(self, db: ReadOnlyDatabase) -> None:
        self.db = db

    def _rows(self, table: sa.Table, query: sa.Select) -> list[dict[str, Any]]:
        if not self.db.has(table):
            return []
        with self.db.connect() as conn:
            return plain_rows(conn.execute(query).mappings())

    def order_record(self, order_ref: str) -> dict[str, Any] | None:
        """The recorded decision for an order reference (primary key)."""
        t = order_records
        rows = self._rows(t, sa.select(t).where(t.c.order_ref == order_ref))
        return rows[0] if rows else None

    def broker_orders(self, account: str, order_ref: str) -> list[dict[str, Any]]:
        """The simulator's orders of one decision (uq_orders_ref_role)."""
        t = orders
        query = sa.select(t).where(t.c.account == account, t.c.order_ref == order_ref)
        return self._rows(t, query.order_by(t.c.id))

    def order_events(self, order_ref: str) -> list[dict[str, Any]]:
        """Every state change of one decision's orders (ix_order_events_order_ref)."""
        t = order_events
        return self._rows(t, sa.select(t).where(t.c.order_ref == order_ref).order_by(t.c.id))

    def order_fills(self, order_ref: str) -> list[dict[str, Any]]:
        """The fills of one decision's orders (ix_fills_order_ref)."""
        t = fills
        return self._rows(t, sa.select(t).where(t.c.order_ref == order_ref).order_by(t.c.id))

    def fills_between(
        self, account: str, start: dt.date | None, end: dt.date | None
    ) -> list[dict[str, Any]]:
        """An account's fills by session date (ix_fills_account_symbol)."""
        t = fills
        query = sa.select(t).where(
            t.c.account == account, *date_between(t.c.session_date, start, end)
        )
        return self._rows(t, query.order_by(t.c.session_date, t.c.id))

    def snapshot(self, account: str, day: dt.date) -> dict[str, Any] | None:
        """The stored snapshot of one date (uq_portfolio_snapshots_account_date)."""
        t = portfolio_snapshots
        query = sa.select(t).where(t.c.account == account, t.c.snapshot_date == day)
        rows = self._rows(t, query)
        return rows[0] if rows else None

    def snapshots(
        self, account: str, start: dt.date | None, end: dt.date | None
    ) -> list[dict[str, Any]]:
        """Stored snapshots by date (uq_portfolio_snapshots_account_date)."""
        t = portfolio_snapshots
        query = sa.select(t).where(
            t.c.account == account, *date_between(t.c.snapshot_date, start, end)
        )
        return self._rows(t, query.order_by(t.c.snapshot_date))

    def latest_snapshot(self, account: str) -> dict[str, Any] | None:
        t = portfolio_snapshots
        query = (
            sa.select(t).where(t.c.account == account).order_by(t.c.snapshot_date.desc()).limit(1)
        )
        rows = self._rows(t, query)
        return rows[0] if rows else None

    def account(self, account: str) -> dict[str, Any] | None:
        t = paper_accounts
        rows = self._rows(t, sa.select(t).where(t.c.account == account))
        return rows[0] if rows else None

    def open_positions(self, account: str) -> list[dict[str, Any]]:
        """The simulator's current positions that are not flat (uq_positions_account_symbol)."""
        t = positions
        query = sa.select(t).where(t.c.account == account, t.c.quantity != 0)
        return self._rows(t, query.order_by(t.c.symbol))

    def recent_failures(self, strategy_id: str, limit: int = 10) -> list[dict[str, Any]]:
        """Failed runs and steps of a strategy, newest first (ix_run_failures_strategy_occurred).

        ``webhook_status`` is left out: it may quote the alert service's answer."""
        t = run_failures
        columns = [c for c in t.c if c.name != "webhook_status"]
        query = (
            sa.select(*columns)
            .where(t.c.strategy_id == strategy_id)
            .order_by(t.c.occurred_at.desc(), t.c.id.desc())
            .limit(limit)
        )
        return self._rows(t, query)

    def latest_verification(self, strategy_id: str) -> dict[str, Any] | None:
        """The newest ``verify`` of a strategy, without its details (ix_verification_runs_strategy_started)."""
        t = verification_runs
        query = (
            sa.select(*(c for c in t.c if c.name != "details"))
            .where(t.c.strategy_id == strategy_id)
            .order_by(t.c.started_at.desc(), t.c.id.desc())
            .limit(1)
        )
        rows = self._rows(t, query)
        return rows[0] if rows else None
