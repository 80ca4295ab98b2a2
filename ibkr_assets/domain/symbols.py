"""What is known about a ticker (``SymbolInfo``) and what counts as one (``is_ticker``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

SYMBOL_MAX = 20  # the longest ticker the symbols table holds
# Tickers such as AAPL, BRK B, BRK.B, BF-B. No "|" (partition keys are DATE|SYMBOL) and no "/"
# (symbols are folders in object keys).
_SYMBOL = re.compile(r"^[A-Z0-9]+(?:[.\- ][A-Z0-9]+)*$")


@dataclass(frozen=True)
class SymbolInfo:
    """What is known about a symbol. ``con_id`` is None unless IBKR resolved it."""

    symbol: str
    con_id: int | None
    exchange: str
    primary_exchange: str
    currency: str
    name: str
    source: str

    def __post_init__(self) -> None:
        if not is_ticker(self.symbol):
            raise ValueError(f"SymbolInfo.symbol must be an upper-case ticker: {self.symbol!r}")
        if not self.source:
            raise ValueError(f"SymbolInfo for {self.symbol!r} needs a source")


def is_ticker(symbol: str) -> bool:
    """Whether ``symbol`` is an upper-case ticker of at most ``SYMBOL_MAX`` characters."""
    return len(symbol) <= SYMBOL_MAX and _SYMBOL.match(symbol) is not None
