"""Read what a strategy's performance statistics need from the relational store (read-only).

A strategy's paper account is named by its id. For a date range this loads the account's
portfolio snapshots within it, every fill up to its end (a round trip opened earlier is then
priced right) and the closes within it plus each symbol's last close before it (a date carries
the previous session's prices, as the snapshots do). A store without the trading tables (a home
that never traded) reads as empty. SQLite and PostgreSQL; nothing is ever written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from ibkr_assets.domain.orders import Fill
from ibkr_assets.domain.performance import PerformanceReport, strategy_performance
from ibkr_assets.domain.portfolio import PortfolioSnapshot
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.trading_tables import (
    fill_from_row,
    fills,
    paper_accounts,
    paper_closes,
    portfolio_snapshots,
)

_NUMBERS = ("cash", "market_value", "equity", "realized_pnl", "unrealized_pnl", "commissions",
            "gross_exposure", "net_exposure", "exposure_pct")  # fmt: skip


@dataclass(frozen=True)
class PerformanceInputs:
    """One account's history for a date range (``start``/``end`` None: unbounded)."""

    strategy_id: str
    start: dt.date | None
    end: dt.date | None
    starting_cash: float | None
    snapshots: list[PortfolioSnapshot]
    fills: list[tuple[dt.date, Fill]]
    closes: list[tuple[dt.date, str, float]]

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols with closes in the range (the ones the strategy ran on)."""
        return tuple(
            sorted({s for d, s, _ in self.closes if self.start is None or d >= self.start})
        )


def load_performance_inputs(
    database_url: str,
    strategy_id: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> PerformanceInputs:
    """The account ``strategy_id``'s snapshots, fills and closes for ``start`` .. ``end``."""
    database = sa.engine.make_url(database_url).database
    if database_url.startswith("sqlite") and database and not Path(database).exists():
        return PerformanceInputs(strategy_id, start, end, None, [], [], [])  # never create one
    with engine_for(database_url).connect() as conn:
        present = set(sa.inspect(conn).get_table_names())
        if not {t.name for t in (paper_accounts, portfolio_snapshots)} <= present:
            return PerformanceInputs(strategy_id, start, end, None, [], [], [])
        starting_cash = conn.execute(
            sa.select(paper_accounts.c.starting_cash).where(paper_accounts.c.account == strategy_id)
        ).scalar_one_or_none()
        snaps = [_snapshot(r) for r in conn.execute(_snapshot_query(strategy_id, start, end))]
        fill_rows = (
            conn.execute(_fill_query(strategy_id, end)).mappings() if "fills" in present else []
        )
        dated_fills = [(r["session_date"], fill_from_row(r)) for r in fill_rows]
        closes = _closes(conn, strategy_id, start, end) if "paper_closes" in present else []
    return PerformanceInputs(strategy_id, start, end, starting_cash, snaps, dated_fills, closes)


def performance_for(
    database_url: str,
    strategy_id: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    symbols: list[str] | None = None,
) -> PerformanceReport:
    """The strategy's statistics and buy-and-hold of ``symbols`` (default: the symbols with
    closes in the range) over its snapshot dates within ``start`` .. ``end``."""
    inputs = load_performance_inputs(database_url, strategy_id, start, end)
    return strategy_performance(
        inputs.snapshots,
        inputs.fills,
        inputs.closes,
        symbols=symbols if symbols is not None else inputs.symbols,
    )


def date_between(column: sa.ColumnElement, start: dt.date | None, end: dt.date | None) -> list:
    """The ``where`` clauses that keep ``column`` within ``[start, end]`` (either may be open)."""
    where = []
    if start is not None:
        where.append(column >= start)
    if end is not None:
        where.append(column <= end)
    return where


def _snapshot_query(account: str, start: dt.date | None, end: dt.date | None) -> sa.Select:
    t = portfolio_snapshots
    return (
        sa.select(t)
        .where(t.c.account == account, *date_between(t.c.snapshot_date, start, end))
        .order_by(t.c.snapshot_date)
    )


def _fill_query(account: str, end: dt.date | None) -> sa.Select:
    return (
        sa.select(fills)
        .where(fills.c.account == account, *date_between(fills.c.session_date, None, end))
        .order_by(fills.c.session_date, fills.c.id)
    )


def _closes(
    conn: sa.Connection, account: str, start: dt.date | None, end: dt.date | None
) -> list[tuple[dt.date, str, float]]:
    c = paper_closes.c
    mine = c.account == account
    columns = (c.session_date, c.symbol, c.close)
    rows = []
    if start is not None:
        latest_before = (
            sa.select(c.symbol, sa.func.max(c.session_date).label("day"))
            .where(mine, c.session_date < start)
            .group_by(c.symbol)
            .subquery()
        )
        carried = (
            sa.select(*columns)
            .join(
                latest_before,
                sa.and_(c.symbol == latest_before.c.symbol, c.session_date == latest_before.c.day),
            )
            .where(mine)
        )
        rows += list(conn.execute(carried))
    rows += list(
        conn.execute(sa.select(*columns).where(mine, *date_between(c.session_date, start, end)))
    )
    return sorted((d, s, float(v)) for d, s, v in rows)


def _snapshot(row: sa.Row) -> PortfolioSnapshot:
    m = row._mapping
    return PortfolioSnapshot(
        date=m["snapshot_date"],
        positions=m["positions"],
        **{name: m[name] for name in _NUMBERS},
    )
