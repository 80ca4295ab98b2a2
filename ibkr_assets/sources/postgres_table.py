"""Bars from a ``stock_data`` table (``sql/002_stock_data.sql``), e.g. a locally loaded history.

One bound-parameter query per call: the newest ``bars`` rows dated on or before ``end``, read
newest first (so ``LIMIT`` can use the ``(symbol, date)`` index) and returned oldest first.
Symbols are matched upper-case, the way tickers are stored.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from ibkr_assets.domain.bars import BAR_COLUMNS, normalize_bars
from ibkr_assets.redaction import redact_text
from ibkr_assets.sources.base import FetchGuard, SourceUnavailableError, UnknownSymbolError
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.tables import stock_data

_UNDEFINED_TABLE = "42P01"  # PostgreSQL SQLSTATE


class StockDataTableSource:
    """Daily bars read from the ``stock_data`` table of a PostgreSQL database."""

    name = "postgres"
    synthetic = False

    def __init__(self, url: str, guard: FetchGuard | None = None) -> None:
        self._guard = guard
        self._safe_url = redact_text(url)
        self._engine = engine_for(url)

    def __repr__(self) -> str:
        return f"StockDataTableSource({self._safe_url!r})"

    def fetch_bars(self, symbol: str, end: dt.date, bars: int) -> pd.DataFrame:
        """At most ``bars`` bars for ``symbol`` dated on or before ``end``, oldest first."""
        if self._guard:
            self._guard(symbol, end)
        if bars < 0:
            raise ValueError(f"bars must be >= 0, got {bars}")
        t = stock_data
        ticker = symbol.strip().upper()
        window = (
            sa.select(*(t.c[c] for c in BAR_COLUMNS))
            .where(t.c.symbol == ticker, t.c.date <= end)
            .order_by(t.c.date.desc())
            .limit(bars)
        )
        known = sa.select(t.c.id).where(t.c.symbol == ticker).limit(1)
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(window).all()
                if not rows and conn.execute(known).first() is None:
                    raise UnknownSymbolError(
                        f"unknown symbol {symbol!r} for the postgres source: no rows in table "
                        f"{t.name} of {self._safe_url}; load its bars or choose another source"
                    )
        except sa.exc.DBAPIError as exc:
            raise SourceUnavailableError(self._failure(exc)) from exc
        raw = pd.DataFrame([tuple(r) for r in reversed(rows)], columns=BAR_COLUMNS)
        return normalize_bars(raw, origin=f"{t.name} in {self._safe_url}")

    def _failure(self, exc: sa.exc.DBAPIError) -> str:
        if getattr(exc.orig, "pgcode", None) == _UNDEFINED_TABLE:
            return (
                f"postgres source: table {stock_data.name} does not exist in {self._safe_url}; "
                "create it with sql/002_stock_data.sql"
            )
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return (
            f"postgres source: cannot read {stock_data.name} from {self._safe_url} ({reason}); "
            "check that the database is running and the URL is right"
        )
