"""The value of a ``daily_chart`` / ``weekly_chart`` partition: a PNG and what it shows."""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class ChartImage:
    symbol: str
    as_of: dt.date
    timeframe: str
    png: bytes = field(repr=False)
    bars_count: int | None = None
    indicators: list[str] = field(default_factory=list)

    is_tradable = True

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) read from the PNG header."""
        width, height = struct.unpack(">II", self.png[16:24])
        return width, height

    def summary(self) -> dict[str, Any]:
        width, height = self.size
        return {
            "symbol": self.symbol,
            "as_of": self.as_of.isoformat(),
            "timeframe": self.timeframe,
            "width": width,
            "height": height,
            "bars_count": self.bars_count,
            "indicators": self.indicators,
        }

    @classmethod
    def from_png(cls, symbol: str, as_of: dt.date, timeframe: str, png: bytes) -> ChartImage:
        if not png.startswith(PNG_SIGNATURE):
            raise ValueError(f"stored {timeframe} chart for {symbol} {as_of} is not a PNG")
        return cls(symbol, as_of, timeframe, png)
