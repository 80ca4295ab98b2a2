"""The value of one ``indicators`` partition: the bar window with every indicator column."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from ibkr_assets.domain.market_data import bars_to_rows, rows_to_frame

Status = Literal["ok", "market_closed", "blocked"]


@dataclass(frozen=True)
class IndicatorSet:
    """Indicators for ``symbol`` as of ``as_of``.

    ``status`` is ``market_closed`` (no session that day) or ``blocked`` (the market data failed a
    quality gate; ``reason`` says which): in both cases ``frame`` is empty and nothing downstream
    acts on the partition.
    """

    symbol: str
    as_of: dt.date
    frame: pd.DataFrame = field(repr=False)
    status: Status = "ok"
    reason: str = ""
    latest: dict[str, float | None] = field(default_factory=dict)

    @property
    def is_tradable(self) -> bool:
        return self.status == "ok"

    def summary(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "as_of": self.as_of.isoformat(),
            "status": self.status,
            "reason": self.reason,
            "rows": int(len(self.frame)),
            "latest": self.latest,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "indicators",
            "symbol": self.symbol,
            "as_of": self.as_of.isoformat(),
            "status": self.status,
            "reason": self.reason,
            "latest": self.latest,
            "columns": list(self.frame.columns),
            "rows": bars_to_rows(self.frame),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndicatorSet:
        frame = rows_to_frame(data["columns"], data["rows"])
        return cls(
            symbol=data["symbol"],
            as_of=dt.date.fromisoformat(data["as_of"]),
            frame=frame,
            status=data["status"],
            reason=data.get("reason", ""),
            latest=data.get("latest", {}),
        )
