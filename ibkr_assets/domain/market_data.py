"""The value of one ``market_data`` partition: the bar window that ends at the partition date."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
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
    """Rows as JSON-safe lists: dates as ISO strings, NaN as null (so bad data stays visible).

    Built column by column (a frame of 200 rows x 20 columns is stored at every step)."""
    columns = [_json_column(frame[name]) for name in frame.columns]
    return [list(row) for row in zip(*columns, strict=True)]


def rows_to_frame(columns: list[str], rows: list[list[Any]]) -> pd.DataFrame:
    """The inverse of ``bars_to_rows``: ``date`` as datetimes, every other column as float64
    (null as NaN). A value that is not a number (hand-edited data) becomes NaN too."""
    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    data: dict[str, Any] = {}
    for name, column in zip(columns, values, strict=True):
        if name == "date":
            data[name] = _dates(pd.Series(column, dtype="object"))
            continue
        try:
            data[name] = np.array(column, dtype="float64")
        except (TypeError, ValueError):
            data[name] = pd.to_numeric(pd.Series(column, dtype="object"), errors="coerce")
    frame = pd.DataFrame(data, columns=columns)
    if "date" in frame.columns:
        frame["date"] = frame["date"].astype("datetime64[ns]")
    return frame


def _dates(values: pd.Series) -> pd.Series:
    """ISO dates as ``bars_to_rows`` writes them, fast; any other text through pandas'
    inference (hand-edited data), unreadable as NaT."""
    dates = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    if dates.isna().sum() > values.isna().sum():
        dates = pd.to_datetime(values, errors="coerce")
    return dates


def rows_to_bars(columns: list[str], rows: list[list[Any]]) -> pd.DataFrame:
    frame = rows_to_frame(columns, rows)
    if _already_bars(frame):
        return frame  # as bars_to_rows wrote them: normalize_bars would change nothing
    return normalize_bars(frame, origin="stored market_data")


def _already_bars(frame: pd.DataFrame) -> bool:
    if list(frame.columns) != BAR_COLUMNS or frame["date"].dtype != "datetime64[ns]":
        return False
    if any(frame[c].dtype != "float64" for c in BAR_COLUMNS[1:]):
        return False
    dates = frame["date"]
    return bool((dates.isna() | (dates == dates.dt.normalize())).all())


def _json_column(column: pd.Series) -> list[Any]:
    if pd.api.types.is_datetime64_any_dtype(column):
        return [None if pd.isna(v) else v for v in column.dt.strftime("%Y-%m-%d")]
    if pd.api.types.is_float_dtype(column):
        return [None if v != v else v for v in column.to_numpy(dtype="float64").tolist()]
    return [_iso(v) if isinstance(v, pd.Timestamp) else _num(v) for v in column]


def _iso(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def _num(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value.item() if hasattr(value, "item") else value
