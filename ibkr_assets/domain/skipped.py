"""The value of a partition that nothing acts on: the market was closed or its data was blocked."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Skipped:
    """Stands in for a chart, analysis or signal that was deliberately not produced."""

    symbol: str
    as_of: dt.date
    status: Literal["market_closed", "blocked"]
    reason: str

    is_tradable = False

    def summary(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "as_of": self.as_of.isoformat(),
            "status": self.status,
            "reason": self.reason,
        }

    def to_json(self) -> dict[str, Any]:
        return {"kind": "skipped", **self.summary()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Skipped:
        return cls(
            data["symbol"], dt.date.fromisoformat(data["as_of"]), data["status"], data["reason"]
        )

    @classmethod
    def upstream(cls, value: Any) -> Skipped:
        """Carry an upstream non-tradable value (Skipped or an IndicatorSet with a status) along."""
        return cls(value.symbol, value.as_of, value.status, getattr(value, "reason", "") or "")
