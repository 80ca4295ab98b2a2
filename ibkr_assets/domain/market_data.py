"""The value of one ``market_data`` partition: the bar window that ends at the partition date."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from ibkr_assets.domain.bars import BAR_COLUMNS, normalize_bars

Status = Literal["ok", "market_closed"]


@dataclass(frozen=True)
class MarketDataWindow:
    """OHLCV bars for ``symbol`` ending at ``as_of`` (never after it), and where they came from.

    ``status == "market_closed"`` means ``as_of`` is not a trading session: there are no bars and
    nothing downstream acts on this partition.
    """

    symbol: str
    as_of: dt.date
    source: str
    synthetic: bool
    requested_bars: int
    bars: pd.DataFrame = field(repr=False)
    status: Status = "ok"
    note: str = ""

    @property
    def is_tradable(self) -> bool:
        return self.status == "ok"

    def summary(self) -> dict[str, Any]:
        """The facts a person checks first; goes into lineage rows and Dagster metadata."""
        bars = self.bars
        last_close = bars["close"].iloc[-1] if len(bars) else None
        return {
            "symbol": self.symbol,
            "as_of": self.as_of.isoformat(),
            "status": self.status,
            "source": self.source,
            "synthetic": self.synthetic,
            "bars_count": int(len(bars)),
            "requested_bars": self.requested_bars,
            "start_date": _iso(bars["date"].iloc[0]) if len(bars) else None,
            "end_date": _iso(bars["date"].iloc[-1]) if len(bars) else None,
            "latest_price": None
            if last_close is None or pd.isna(last_close)
            else float(last_close),
            "note": self.note,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "market_data",
            "symbol": self.symbol,
            "as_of": self.as_of.isoformat(),
            "source": self.source,
            "synthetic": self.synthetic,
            "requested_bars": self.requested_bars,
            "status": self.status,
            "note": self.note,
            "columns": BAR_COLUMNS,
            "rows": bars_to_rows(self.bars),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MarketDataWindow:
        return cls(
            symbol=data["symbol"],
            as_of=dt.date.fromisoformat(data["as_of"]),
            source=data["source"],
            synthetic=bool(data["synthetic"]),
            requested_bars=int(data["requested_bars"]),
            bars=rows_to_bars(data["columns"], data["rows"]),
            status=data["status"],
            note=data.get("note", ""),
        )


def bars_to_rows(frame: pd.DataFrame) -> list[list[Any]]:
    """Rows as JSON-safe lists: dates as ISO strings, NaN as null (so bad data stays visible)."""
    out: list[list[Any]] = []
    for row in frame.itertuples(index=False, name=None):
        out.append([_iso(v) if isinstance(v, pd.Timestamp) else _num(v) for v in row])
    return out


def rows_to_bars(columns: list[str], rows: list[list[Any]]) -> pd.DataFrame:
    return normalize_bars(pd.DataFrame(rows, columns=columns), origin="stored market_data")


def _iso(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def _num(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value.item() if hasattr(value, "item") else value
