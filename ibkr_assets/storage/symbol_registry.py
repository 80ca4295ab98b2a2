"""``symbols``: the cache of resolved tickers, symbol -> contract id, exchange, name.

``ibkr_assets.symbols`` resolves a symbol once and saves the answer here, so a known symbol never
costs another lookup. Strings that are not known (a source has no exchange or name) are stored as
``""``. The table is defined in ``tables.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ibkr_assets.domain.symbols import SymbolInfo
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.schema import ensure_schema
from ibkr_assets.storage.tables import symbols


class SymbolRegistry:
    """The ``symbols`` table of a database (SQLite or PostgreSQL)."""

    def __init__(self, database_url: str) -> None:
        self.engine = engine_for(database_url)

    def create_schema(self) -> None:
        """Create the table if it does not exist (safe to repeat)."""
        ensure_schema(self.engine)

    def get(self, symbol: str) -> SymbolInfo | None:
        """The cached entry for ``symbol`` (any case), or None."""
        return self.get_many([symbol]).get(symbol.strip().upper())

    def get_many(self, wanted: Iterable[str]) -> dict[str, SymbolInfo]:
        """Cached entries for ``wanted`` (any case), keyed by upper-case symbol; one query."""
        keys = sorted({s.strip().upper() for s in wanted})
        if not keys:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(symbols).where(symbols.c.symbol.in_(keys))).mappings()
            return {row["symbol"]: _info(row) for row in rows}

    def all(self) -> list[SymbolInfo]:
        """Every cached symbol, in alphabetical order."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(symbols).order_by(symbols.c.symbol)).mappings()
            return [_info(row) for row in rows]

    def save(self, info: SymbolInfo) -> None:
        """Insert or replace the entry for ``info.symbol``, stamped with the current time."""
        values = {**_values(info), "resolved_at": dt.datetime.now(dt.timezone.utc)}
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(symbols)
            .values(**values)
            .on_conflict_do_update(
                index_elements=["symbol"], set_={k: v for k, v in values.items() if k != "symbol"}
            )
        )
        with self.engine.begin() as conn:
            conn.execute(statement)


def _values(info: SymbolInfo) -> dict[str, object]:
    return {
        "symbol": info.symbol,
        "con_id": info.con_id,
        "exchange": info.exchange,
        "primary_exchange": info.primary_exchange,
        "currency": info.currency,
        "name": info.name,
        "source": info.source,
    }


def _info(row: sa.RowMapping) -> SymbolInfo:
    return SymbolInfo(
        symbol=row["symbol"],
        con_id=row["con_id"],
        exchange=row["exchange"],
        primary_exchange=row["primary_exchange"],
        currency=row["currency"],
        name=row["name"],
        source=row["source"],
    )
