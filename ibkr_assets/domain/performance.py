"""Strategy performance statistics from portfolio snapshots, fills and closes (pure functions).

Definitions (the README's portfolio section states them for users):

* The **equity series** is one value per snapshot date, oldest first; statistics are measured
  from the first date's close to the last one's. A **daily return** is
  ``equity[t] / equity[t-1] - 1`` (undefined, hence left out, after a non-positive equity).
* **Total return** ``last / first - 1``; **CAGR** ``(last / first) ** (252 / n) - 1`` over the
  ``n`` trading-day periods between the first and the last date (None for fewer than one).
* **Sharpe** ``mean(r) / stdev(r) * sqrt(252)`` (sample deviation, risk-free rate 0);
  **Sortino** ``mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(252)``; both None for fewer than
  two returns or a zero deviation. **Volatility** ``stdev(r) * sqrt(252)``.
* **Drawdown** at a date is ``equity / running peak - 1`` (<= 0). The **max drawdown** is the
  lowest; its peak is the last date at that running peak before the low, its trough the date
  of the low and its recovery the first later date back at the peak (None while under water).
* A **round trip** runs from a flat position to flat again (a fill crossing zero closes one and
  opens the next, its commission split by quantity). Its P&L is the realized P&L of
  ``portfolio.apply_fill`` over its fills (average cost) net of all its commissions, opening
  ones included, so closed trips' P&L less the commissions paid on open ones is the ledger's
  ``realized_pnl``. **Win rate** is winners (P&L > 0) over closed trips; **profit factor** the
  winners' P&L over the losers' absolute P&L (None without losers).
* **Exposure**: the share of dates holding any position, and the mean gross exposure as a
  percentage of equity. **Turnover**: traded notional over mean equity, times ``252 / dates``.
* **Buy-and-hold** invests equal parts of 1.0 in each symbol at the first date's close (each
  symbol's last close on or before it), holds to the end, no commissions; the same return and
  risk statistics are computed on its value series.

Every float in a result is finite: what cannot be computed is None.

Longer than most modules: the statistics share one equity series and the definitions above;
split, the definitions and their code would drift apart.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ibkr_assets.domain.portfolio import FillLike, PortfolioSnapshot

TRADING_DAYS = 252
_EPS = 1e-12


@dataclass(frozen=True)
class DrawdownPoint:
    date: dt.date
    value: float
    drawdown: float  # value / running peak - 1, <= 0


@dataclass(frozen=True)
class ReturnStats:
    """Return and risk statistics of one value series (a strategy's equity or a benchmark's)."""

    dates: int
    start: dt.date | None
    end: dt.date | None
    start_value: float | None
    end_value: float | None
    total_return: float | None
    cagr: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float  # <= 0; 0.0 when the series never fell
    peak_date: dt.date | None
    trough_date: dt.date | None
    recovery_date: dt.date | None
    drawdown: tuple[DrawdownPoint, ...] = ()


@dataclass(frozen=True)
class RoundTrip:
    """One position from flat to flat (``exit_date`` None while it is still open)."""

    symbol: str
    direction: str  # "long" or "short"
    entry_date: dt.date
    exit_date: dt.date | None
    quantity: int  # the largest absolute position held
    entry_price: float  # volume-weighted price of the opening and adding fills
    exit_price: float | None  # volume-weighted price of the reducing fills
    commissions: float
    pnl: float  # realized, net of every commission of the trip
    return_pct: float | None  # pnl / (entry_price x quantity) x 100
    fills: int

    @property
    def closed(self) -> bool:
        return self.exit_date is not None


@dataclass(frozen=True)
class TradeStats:
    """Closed round trips and the fills of the measured dates."""

    trades: int
    wins: int
    losses: int
    win_rate: float | None
    avg_win: float | None
    avg_loss: float | None  # negative
    profit_factor: float | None
    total_pnl: float
    fills: int
    traded_notional: float
    commissions: float


@dataclass(frozen=True)
class PerformanceReport:
    """A strategy's statistics over the dates of its snapshots, and buy-and-hold's."""

    strategy: ReturnStats
    trades: TradeStats
    days_with_position_pct: float | None
    mean_gross_exposure_pct: float | None
    turnover: float | None  # annualised
    buy_and_hold: ReturnStats
    buy_and_hold_symbols: tuple[str, ...]
    round_trips: tuple[RoundTrip, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: dates as ISO strings, floats finite, None for what is undefined."""
        return _plain(self)

    def to_json(self) -> str:
        """``to_dict()`` as a JSON string (strict: no NaN or Infinity)."""
        return json.dumps(self.to_dict(), allow_nan=False)


def _plain(value: Any) -> Any:
    if isinstance(value, (ReturnStats, TradeStats, PerformanceReport, RoundTrip, DrawdownPoint)):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


# --- return and risk --------------------------------------------------------------------


def daily_returns(values: Sequence[float]) -> list[float]:
    """``v[t] / v[t-1] - 1`` for each consecutive pair whose earlier value is positive."""
    return [b / a - 1.0 for a, b in zip(values, values[1:], strict=False) if a > 0]


def sharpe_ratio(returns: Sequence[float]) -> float | None:
    """Annualised Sharpe of daily returns (risk-free 0); None if undefined."""
    if len(returns) < 2:
        return None
    deviation = statistics.stdev(returns)
    if deviation < _EPS:
        return None
    return _finite(statistics.fmean(returns) / deviation * math.sqrt(TRADING_DAYS))


def sortino_ratio(returns: Sequence[float]) -> float | None:
    """Annualised Sortino of daily returns (target 0); None if undefined (no losing day)."""
    if len(returns) < 2:
        return None
    downside = math.sqrt(statistics.fmean(min(r, 0.0) ** 2 for r in returns))
    if downside < _EPS:
        return None
    return _finite(statistics.fmean(returns) / downside * math.sqrt(TRADING_DAYS))


def drawdowns(series: Sequence[tuple[dt.date, float]]) -> tuple[DrawdownPoint, ...]:
    """Each date's value and its drawdown from the running peak (0 while the peak is <= 0)."""
    out, peak = [], -math.inf
    for day, value in series:
        peak = max(peak, value)
        out.append(DrawdownPoint(day, value, value / peak - 1.0 if peak > 0 else 0.0))
    return tuple(out)


def return_stats(series: Sequence[tuple[dt.date, float]]) -> ReturnStats:
    """Return and risk statistics of a dated value series (sorted here by date)."""
    series = sorted(series, key=lambda p: p[0])
    values = [v for _, v in series]
    if not series:
        return ReturnStats(0, None, None, None, None, None, None, None, None, None, 0.0,
                           None, None, None)  # fmt: skip
    first, last = values[0], values[-1]
    total = last / first - 1.0 if first > 0 else None
    periods = len(series) - 1
    cagr = None
    if total is not None and periods >= 1 and last >= 0:
        try:
            cagr = _finite((last / first) ** (TRADING_DAYS / periods) - 1.0)
        except OverflowError:  # a huge gain over a few days has no meaningful annual rate
            cagr = None
    returns = daily_returns(values)
    volatility = statistics.stdev(returns) * math.sqrt(TRADING_DAYS) if len(returns) >= 2 else None
    points = drawdowns(series)
    worst = min(range(len(points)), key=lambda i: points[i].drawdown)
    max_dd = points[worst].drawdown
    peak_date = trough_date = recovery_date = None
    if max_dd < 0:
        trough_date = points[worst].date
        peak_i = max(i for i in range(worst) if points[i].drawdown == 0.0)  # last at the peak
        peak_date = points[peak_i].date
        recovery_date = next(
            (p.date for p in points[worst + 1 :] if p.value >= values[peak_i]), None
        )
    return ReturnStats(
        dates=len(series),
        start=series[0][0],
        end=series[-1][0],
        start_value=first,
        end_value=last,
        total_return=_finite(total),
        cagr=cagr,
        volatility=_finite(volatility),
        sharpe=sharpe_ratio(returns),
        sortino=sortino_ratio(returns),
        max_drawdown=max_dd,
        peak_date=peak_date,
        trough_date=trough_date,
        recovery_date=recovery_date,
        drawdown=points,
    )


# --- round trips ------------------------------------------------------------------------


@dataclass
class _Open:
    symbol: str
    entry_date: dt.date
    sign: int
    quantity: int = 0
    avg_cost: float = 0.0
    max_quantity: int = 0
    entry_qty: int = 0
    entry_notional: float = 0.0
    exit_qty: int = 0
    exit_notional: float = 0.0
    commissions: float = 0.0
    gross: float = 0.0
    fills: int = 0

    def trip(self, exit_date: dt.date | None) -> RoundTrip:
        entry_price = self.entry_notional / self.entry_qty
        pnl = self.gross - self.commissions
        basis = entry_price * self.max_quantity
        return RoundTrip(
            symbol=self.symbol,
            direction="long" if self.sign > 0 else "short",
            entry_date=self.entry_date,
            exit_date=exit_date,
            quantity=self.max_quantity,
            entry_price=entry_price,
            exit_price=self.exit_notional / self.exit_qty if self.exit_qty else None,
            commissions=self.commissions,
            pnl=pnl,
            return_pct=_finite(100.0 * pnl / basis) if basis > 0 else None,
            fills=self.fills,
        )


def round_trips(fills: Iterable[tuple[dt.date, FillLike]]) -> list[RoundTrip]:
    """Round trips of dated fills (in the order they happened within a date), closed ones in
    exit order, then the open ones by symbol."""
    open_: dict[str, _Open] = {}
    closed: list[RoundTrip] = []
    for day, fill in sorted(fills, key=lambda f: f[0]):  # stable: a date keeps its fill order
        if fill.quantity <= 0:
            continue
        signed = fill.quantity if fill.side == "BUY" else -fill.quantity
        remaining, fee = signed, fill.commission
        trip = open_.get(fill.symbol)
        if trip is not None and (trip.sign > 0) != (signed > 0):  # reduces, maybe crosses
            closing = min(abs(signed), trip.quantity)
            share = fee * closing / abs(signed)
            trip.gross += (fill.price - trip.avg_cost) * closing * trip.sign
            trip.exit_qty += closing
            trip.exit_notional += closing * fill.price
            trip.commissions += share
            trip.quantity -= closing
            trip.fills += 1
            remaining = signed + closing * trip.sign
            fee -= share
            if trip.quantity == 0:
                closed.append(trip.trip(day))
                del open_[fill.symbol]
        if remaining:
            trip = open_.setdefault(
                fill.symbol, _Open(fill.symbol, day, 1 if remaining > 0 else -1)
            )
            qty = abs(remaining)
            trip.avg_cost = (trip.quantity * trip.avg_cost + qty * fill.price) / (
                trip.quantity + qty
            )
            trip.quantity += qty
            trip.max_quantity = max(trip.max_quantity, trip.quantity)
            trip.entry_qty += qty
            trip.entry_notional += qty * fill.price
            trip.commissions += fee
            trip.fills += 1
    return closed + [open_[s].trip(None) for s in sorted(open_)]


def trade_stats(
    trips: Iterable[RoundTrip], fills: Iterable[tuple[dt.date, FillLike]] = ()
) -> TradeStats:
    """Win rate, average win and loss, profit factor over the closed ``trips``; counts,
    notional and commissions of ``fills``."""
    done = [t for t in trips if t.closed]
    wins = [t.pnl for t in done if t.pnl > 0]
    losses = [t.pnl for t in done if t.pnl < 0]
    fill_list = [f for _, f in fills]
    return TradeStats(
        trades=len(done),
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / len(done) if done else None,
        avg_win=statistics.fmean(wins) if wins else None,
        avg_loss=statistics.fmean(losses) if losses else None,
        profit_factor=_finite(sum(wins) / -sum(losses)) if losses else None,
        total_pnl=sum(t.pnl for t in done),
        fills=len(fill_list),
        traded_notional=sum(f.quantity * f.price for f in fill_list),
        commissions=sum(f.commission for f in fill_list),
    )


# --- buy-and-hold -----------------------------------------------------------------------


def buy_and_hold_series(
    dates: Iterable[dt.date],
    closes: Iterable[tuple[dt.date, str, float]],
    symbols: Iterable[str] | None = None,
) -> tuple[list[tuple[dt.date, float]], tuple[str, ...]]:
    """The value on each date of 1.0 split equally over ``symbols`` (default: those in
    ``closes``) at the first date's closes, and the symbols actually held (those with a
    positive close on or before the first date). Empty when none has."""
    days = sorted(set(dates))
    ordered = sorted(closes, key=lambda c: c[0])
    wanted = set(symbols) if symbols is not None else {c[1] for c in ordered}
    last: dict[str, float] = {}
    shares: dict[str, float] = {}
    out: list[tuple[dt.date, float]] = []
    j = 0
    for day in days:
        while j < len(ordered) and ordered[j][0] <= day:
            _, symbol, close = ordered[j]
            if symbol in wanted and math.isfinite(close) and close > 0:
                last[symbol] = close
            j += 1
        if not out:
            if not last:
                return [], ()
            shares = {s: 1.0 / len(last) / c for s, c in last.items()}
        out.append((day, sum(q * last[s] for s, q in shares.items())))
    return out, tuple(sorted(shares))


# --- the whole report -------------------------------------------------------------------


def strategy_performance(
    snapshots: Iterable[PortfolioSnapshot],
    fills: Iterable[tuple[dt.date, FillLike]] = (),
    closes: Iterable[tuple[dt.date, str, float]] = (),
    *,
    symbols: Iterable[str] | None = None,
) -> PerformanceReport:
    """The statistics over the snapshots' dates.

    ``fills`` are ``(session date, fill)`` and may start before the first snapshot (a trip
    opened earlier is then priced right); only trips closed and fills dated within the
    snapshots' dates count. ``closes`` are ``(date, symbol, close)``, for buy-and-hold of
    ``symbols`` (default: every symbol in ``closes``).
    """
    snaps = sorted(snapshots, key=lambda s: s.date)
    fills = sorted(fills, key=lambda f: f[0])
    series = [(s.date, s.equity) for s in snaps]
    stats = return_stats(series)
    first, last = stats.start, stats.end
    inside = (lambda d: first <= d <= last) if first and last else (lambda d: False)
    trips = tuple(
        t for t in round_trips(fills) if (t.exit_date and inside(t.exit_date)) or not t.closed
    )
    dated = [(d, f) for d, f in fills if inside(d)]
    trades = trade_stats(trips, dated)
    held = [s for s in snaps if s.positions]
    gross = [s.exposure_pct for s in snaps if s.exposure_pct is not None]
    mean_equity = statistics.fmean(v for _, v in series) if series else 0.0
    turnover = None
    if series and mean_equity > 0:
        turnover = _finite(trades.traded_notional / mean_equity * TRADING_DAYS / len(series))
    bh_series, bh_symbols = buy_and_hold_series([d for d, _ in series], closes, symbols)
    return PerformanceReport(
        strategy=stats,
        trades=trades,
        days_with_position_pct=100.0 * len(held) / len(snaps) if snaps else None,
        mean_gross_exposure_pct=_finite(statistics.fmean(gross)) if gross else None,
        turnover=turnover,
        buy_and_hold=return_stats(bh_series),
        buy_and_hold_symbols=bh_symbols,
        round_trips=trips,
    )
