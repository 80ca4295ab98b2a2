"""The portfolio step's book work per date, at 20, 100 and 500 dates.

Each date's snapshot is computed from the simulator's fills and closes up to that date
(``PaperBroker.snapshots_as_of``) and stored unless unchanged (``record_snapshot``), which is
what ``portfolio_snapshot`` does for a range. The account trades all along (a bracket on one of
three symbols every few sessions), so a later date has a longer history behind it: the cost per
date must stay flat (target: 500 dates at most 1.2x per date what 20 cost).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from ibkr_assets.brokers.paper import PaperBroker
from ibkr_assets.domain.calendar import sessions_between
from ibkr_assets.domain.orders import BracketRequest, order_ref
from ibkr_assets.sources.sample import SampleBarSource

SYMBOLS = ("AAPL", "MSFT", "NVDA")
LAST = dt.date(2025, 12, 31)


def _trading_book(folder: Path, dates: int) -> tuple[PaperBroker, list[dt.date]]:
    """A simulator account that traded through ``dates`` sessions ending at ``LAST``."""
    broker = PaperBroker(f"sqlite:///{folder / 'book.db'}", account="bench", mode="backtest")
    source = SampleBarSource()
    history = {s: source.fetch_bars(s, LAST, dates + 60) for s in SYMBOLS}
    days = sessions_between(LAST - dt.timedelta(days=dates * 2), LAST, "XNYS")[-dates:]
    for i, day in enumerate(days):
        for symbol in SYMBOLS:
            bars = history[symbol]
            broker.sync(symbol, bars[bars["date"].dt.date <= day])
        if i % 4 == 0:
            symbol = SYMBOLS[i % len(SYMBOLS)]
            bars = history[symbol]
            close = float(bars[bars["date"].dt.date <= day]["close"].iloc[-1])
            broker.place_bracket(
                BracketRequest(
                    order_ref=order_ref("bench", symbol, day),
                    symbol=symbol,
                    side="BUY",
                    quantity=10,
                    entry_price=round(close * 1.005, 2),
                    take_profit=round(close * 1.03, 2),
                    stop_loss=round(close * 0.97, 2),
                    session=day,
                )  # fmt: skip
            )
    return broker, days


def _per_date(broker: PaperBroker, days: list[dt.date]) -> float:
    """Seconds per date of the step's book work, the first time (every snapshot is stored)."""
    started = time.perf_counter()
    for snap in broker.snapshots_as_of(days).values():
        broker.record_snapshot(snap)
    return (time.perf_counter() - started) / len(days)


def run(scale: float = 1.0) -> list[dict]:
    rows, per_date = [], {}
    for dates in (20, 100, 500):
        with tempfile.TemporaryDirectory() as folder:
            broker, days = _trading_book(Path(folder), int(dates * scale))
            fills = len(broker.executions())
            per_date[dates] = _per_date(broker, days)
        rows.append({"section": "portfolio", "case": f"{dates} dates ({fills} fills): per date",
                     "value": per_date[dates] * 1000, "unit": "ms"})  # fmt: skip
    ratio = per_date[500] / per_date[20]
    rows.append({"section": "portfolio", "case": "per date, 500 dates / 20 dates", "value": ratio,
                 "unit": "x", "target": "<= 1.2", "ok": ratio <= 1.2})  # fmt: skip
    return rows
