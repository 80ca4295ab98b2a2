"""Quality gates for a bar window (seed 004's validation plus seed 003's gates).

Each gate returns a ``GateResult``; a window is usable only when every gate passes. The gates
are pure functions of the frame, the partition date and the exchange calendar, so the asset
check, the ``indicators`` asset and a replay all reach the same verdict.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ibkr_assets.domain.bars import BAR_COLUMNS, PRICE_COLUMNS
from ibkr_assets.domain.calendar import (
    DEFAULT_CALENDAR,
    last_session_on_or_before,
    sessions_between,
)
from ibkr_assets.domain.market_data import MarketDataWindow
from ibkr_assets.domain.skipped import Skipped

GATES: tuple[str, ...] = (
    "required_columns",
    "no_nulls",
    "positive_prices",
    "ohlc_consistent",
    "non_negative_volume",
    "dates_strictly_increasing",
    "no_calendar_gaps",
    "not_stale",
)

GATE_DESCRIPTIONS: dict[str, str] = {
    "required_columns": "Date, Open, High, Low, Close and Volume are present",
    "no_nulls": "no missing values in any bar",
    "positive_prices": "open, high, low and close are > 0",
    "ohlc_consistent": "high >= low and open/close lie inside [low, high]",
    "non_negative_volume": "volume >= 0",
    "dates_strictly_increasing": "each bar is dated after the previous one",
    "no_calendar_gaps": "no exchange session is missing inside the window",
    "not_stale": "the last bar is the partition's session (within the allowed lag)",
}

_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    detail: str
    examples: list[str] = field(default_factory=list)
    rows: tuple[int, ...] = ()  # positions of the failing bars in the window (row gates only)

    def to_record(self) -> dict[str, Any]:
        """The gate as its lineage row shows it."""
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class QualityReport:
    gates: list[GateResult]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failures(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def reason(self) -> str:
        """One line naming every failed gate, for errors and lineage rows."""
        return "; ".join(f"{g.name}: {g.detail}" for g in self.failures) or "all gates passed"

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "gates": [g.to_record() for g in self.gates]}


def window_report(
    window: MarketDataWindow | Skipped, *, calendar: str, max_stale_sessions: int
) -> QualityReport | None:
    """The quality verdict for one partition's window, or None when the market was closed (or
    there are no bars to judge)."""
    if not window.is_tradable:
        return None
    return validate_window(
        window.bars,
        as_of=window.as_of,
        calendar=calendar,
        max_stale_sessions=max_stale_sessions,
    )


def validate_window(
    bars: pd.DataFrame,
    *,
    as_of: dt.date,
    calendar: str = DEFAULT_CALENDAR,
    max_stale_sessions: int = 0,
) -> QualityReport:
    """Run every gate on a bar window that should end at the session ``as_of``."""
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        return QualityReport(
            [GateResult("required_columns", False, f"missing column(s): {', '.join(missing)}")]
            + [GateResult(g, False, "not evaluated: required columns missing") for g in GATES[1:]]
        )
    if bars.empty:
        return QualityReport(
            [GateResult("required_columns", True, "all present")]
            + [GateResult(g, False, "no bars in the window") for g in GATES[1:]]
        )
    return QualityReport(
        [
            GateResult("required_columns", True, "all present"),
            _no_nulls(bars),
            _positive_prices(bars),
            _ohlc_consistent(bars),
            _non_negative_volume(bars),
            _dates_strictly_increasing(bars),
            _no_calendar_gaps(bars, calendar),
            _not_stale(bars, as_of, calendar, max_stale_sessions),
        ]
    )


def validation_report(
    window: MarketDataWindow | Skipped, report: QualityReport | None, partition_key: str
) -> dict[str, Any] | None:
    """The partition's validation report: each gate with its verdict and the bars that failed
    it (at most ``MAX_REPORTED_ROWS`` per gate, with their count). A pure function of the window
    and its verdict (no clock), so a rerun on the same bars gives the same report. None for a
    market-closed partition (nothing was checked)."""
    common = {"partition_key": partition_key, "symbol": window.symbol,
              "date": window.as_of.isoformat()}  # fmt: skip
    if isinstance(window, Skipped):
        gates = [{"name": GATES[0], "description": GATE_DESCRIPTIONS[GATES[0]], "passed": False,
                  "detail": f"no bars to check: {window.reason}", "failed_row_count": 0,
                  "failed_rows": [], "examples": []}]  # fmt: skip
        return {**common, "source": None, "bars_checked": 0, "passed": False, "gates": gates}
    if report is None:
        return None
    bars = window.bars
    return {
        **common,
        "source": window.source,
        "bars_checked": int(len(bars)),
        "passed": report.passed,
        "gates": [
            {
                "name": gate.name,
                "description": GATE_DESCRIPTIONS[gate.name],
                "passed": gate.passed,
                "detail": gate.detail,
                "failed_row_count": len(gate.rows),
                "failed_rows": [_bar_record(bars, i) for i in gate.rows[:MAX_REPORTED_ROWS]],
                "examples": list(gate.examples),
            }
            for gate in report.gates
        ],
    }


MAX_REPORTED_ROWS = 50


def _bar_record(bars: pd.DataFrame, position: int) -> dict[str, Any]:
    """One bar as JSON values: its position in the window, ISO date, numbers (None if missing)."""
    row = bars.iloc[position]
    out: dict[str, Any] = {"row": int(position)}
    for column in BAR_COLUMNS:
        value = row[column] if column in row.index else None
        if value is None or pd.isna(value):
            out[column] = None
        elif column == "date":
            out[column] = pd.Timestamp(value).date().isoformat()
        elif column == "volume":
            out[column] = int(value) if float(value).is_integer() else float(value)
        else:
            out[column] = float(value)
    return out


def _rows(bars: pd.DataFrame, mask: pd.Series) -> list[str]:
    hits = bars.loc[mask, "date"].head(_MAX_EXAMPLES)
    return [f"row {i}: {'NaT' if pd.isna(d) else d.date().isoformat()}" for i, d in hits.items()]


def _gate(name: str, bars: pd.DataFrame, bad: pd.Series, what: str) -> GateResult:
    count = int(bad.sum())
    if count == 0:
        return GateResult(name, True, "ok")
    positions = tuple(int(i) for i in np.flatnonzero(np.asarray(bad, dtype=bool)))
    return GateResult(name, False, f"{count} row(s) {what}", _rows(bars, bad), positions)


def _no_nulls(bars: pd.DataFrame) -> GateResult:
    nulls = bars[BAR_COLUMNS].isna()
    result = _gate("no_nulls", bars, nulls.to_numpy().any(axis=1), "with missing values")
    if result.passed:
        return result
    per_column = {c: int(n) for c, n in nulls.sum().items() if n}
    cols = ", ".join(f"{c}={n}" for c, n in per_column.items())
    return GateResult(result.name, False, f"{result.detail} ({cols})", result.examples, result.rows)


# The price gates work on NumPy arrays: they run for every partition, twice (market_data's
# checks and the indicators step's own guard), and pandas' per-operation overhead would be most
# of their cost on 200 rows.
def _prices(bars: pd.DataFrame) -> np.ndarray:
    """open, high, low, close as rows of a float array (NaN where missing)."""
    return np.vstack([bars[c].to_numpy(dtype="float64", na_value=np.nan) for c in PRICE_COLUMNS])


def _positive_prices(bars: pd.DataFrame) -> GateResult:
    with np.errstate(invalid="ignore"):
        bad = (_prices(bars) <= 0).any(axis=0)
    return _gate("positive_prices", bars, bad, "with a price <= 0")


def _ohlc_consistent(bars: pd.DataFrame) -> GateResult:
    prices = _prices(bars)
    open_, high, low, close = prices
    with np.errstate(invalid="ignore"):
        inside = ((open_ >= low) & (open_ <= high)) & ((close >= low) & (close <= high))
        bad = (high < low) | ~inside
    bad &= ~np.isnan(prices).any(axis=0)  # a missing price is the no_nulls gate's finding
    return _gate("ohlc_consistent", bars, bad, "with high < low or open/close outside [low, high]")


def _non_negative_volume(bars: pd.DataFrame) -> GateResult:
    return _gate("non_negative_volume", bars, bars["volume"] < 0, "with negative volume")


def _dates_strictly_increasing(bars: pd.DataFrame) -> GateResult:
    dates = bars["date"]
    bad = dates.notna() & (dates.diff() <= pd.Timedelta(0))
    return _gate(
        "dates_strictly_increasing", bars, bad, "not after the previous bar (unsorted or duplicate)"
    )


def _no_calendar_gaps(bars: pd.DataFrame, calendar: str) -> GateResult:
    dates = bars["date"].dropna()
    if dates.empty:
        return GateResult("no_calendar_gaps", False, "no valid dates")
    have = set(dates.dt.date)
    expected = sessions_between(min(have), max(have), calendar)
    missing = [d for d in expected if d not in have]
    if not missing:
        return GateResult("no_calendar_gaps", True, "ok")
    return GateResult(
        "no_calendar_gaps",
        False,
        f"{len(missing)} {calendar} session(s) missing between {min(have)} and {max(have)}",
        [d.isoformat() for d in missing[:_MAX_EXAMPLES]],
    )


def _not_stale(bars: pd.DataFrame, as_of: dt.date, calendar: str, max_stale: int) -> GateResult:
    dates = bars["date"].dropna()
    if dates.empty:
        return GateResult("not_stale", False, "no valid dates")
    last = dates.max().date()
    expected = last_session_on_or_before(as_of, calendar)
    lag = max(len(sessions_between(last, expected, calendar)) - 1, 0)
    if lag <= max_stale:
        return GateResult("not_stale", True, f"last bar {last}")
    return GateResult(
        "not_stale",
        False,
        f"last bar {last} is {lag} session(s) before {expected} (allowed: {max_stale})",
    )
