"""The "Performance" block of the command's summaries (``backfill`` and ``demo``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from ibkr_assets.domain.performance import PerformanceReport, ReturnStats


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.2f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _dates(stats: ReturnStats) -> str:
    if stats.trough_date is None:
        return "no drawdown"
    recovered = f"recovered {stats.recovery_date}" if stats.recovery_date else "not recovered"
    return f"peak {stats.peak_date}, trough {stats.trough_date}, {recovered}"


def performance_lines(report: PerformanceReport) -> list[str]:
    """The block's lines: the strategy and buy-and-hold side by side, drawdown dates, trades."""
    s, b, t = report.strategy, report.buy_and_hold, report.trades
    if s.dates == 0:
        return ["Performance: no portfolio snapshots in this range"]
    held = ", ".join(report.buy_and_hold_symbols) or "no symbol with a close"
    rows = [
        ("total return", _pct(s.total_return), _pct(b.total_return)),
        ("CAGR", _pct(s.cagr), _pct(b.cagr)),
        ("Sharpe", _num(s.sharpe), _num(b.sharpe)),
        ("Sortino", _num(s.sortino), _num(b.sortino)),
        ("max drawdown", _pct(s.max_drawdown), _pct(b.max_drawdown)),
    ]
    lines = [
        f"Performance {s.start} .. {s.end} ({s.dates} dates; 252-day year, risk-free 0):",
        f"  {'':<14} {'strategy':>10} {'buy-and-hold':>13}",
        *(f"  {name:<14} {a:>10} {c:>13}" for name, a, c in rows),
        f"  strategy drawdown: {_dates(s)}",
        f"  buy-and-hold ({held}, equal weight) drawdown: {_dates(b)}",
    ]
    exposure = report.days_with_position_pct
    lines.append(
        f"  trades: {t.trades} closed round trip(s), win rate {_share(t.win_rate)}, "
        f"avg win {_num(t.avg_win)}, "
        f"avg loss {_num(t.avg_loss)}, profit factor {_num(t.profit_factor)}; "
        f"{t.fills} fill(s); in the market {_num(exposure)}% of dates, "
        f"turnover {_num(report.turnover)}x a year"
    )
    return lines


def print_performance(database_url: str, strategy_id: str, dates: Iterable[dt.date | str]) -> None:
    """Print the block for ``strategy_id`` over the span of ``dates`` (e.g. the summary's
    snapshot dates); a failure prints one line saying why instead of ending the summary."""
    from ibkr_assets.storage.performance_inputs import performance_for

    days = sorted(d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in dates)
    if not days:
        return
    try:
        report = performance_for(database_url, strategy_id, days[0], days[-1])
    except Exception as exc:  # the summary goes on: this block is informative only
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"Performance: unavailable ({type(exc).__name__}: {reason})")
        return
    print("\n".join(performance_lines(report)))
