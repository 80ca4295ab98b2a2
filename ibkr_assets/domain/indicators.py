"""Technical indicators on a bar frame, to TA-Lib's definitions, in numpy only.

Every indicator reproduces TA-Lib's arithmetic and its warm-up: a value is NaN exactly where
TA-Lib leaves it undefined, so results can be checked against TA-Lib (the tests do) without
making TA-Lib a runtime dependency.

The exponential averages (EMA, MACD, Wilder's RSI and ATR smoothing) are linear recurrences
``y[t] = d * y[t-1] + a * u[t]``. A Python loop per bar is far too slow, so they are solved in
closed form, ``y[t] = d**t * cumsum(a * u[s] / d**s)``, for all series at once: a multiply, a
cumulative sum and a multiply over one stacked array. The powers are centred (see
``_recurrence_tables``) to stay well inside float64 range; a series longer than one table is
solved in segments, each continuing from the last value of the one before. The running sums
behind the SMAs and Bollinger Bands are rows of the same stack with ``d = 1``.

Longer than most modules: every indicator shares the recurrence solver and TA-Lib's warm-up
rules, which read best next to the indicators that use them.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

INDICATOR_COLUMNS: list[str] = [
    "sma_20",
    "sma_50",
    "ema_12",
    "ema_26",
    "macd",
    "macd_signal",
    "macd_hist",
    "rsi_14",
    "atr_14",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "daily_return",
    "price_range",
    "range_pct",
]

_VALUE_COLUMNS = ["open", "high", "low", "close", "volume"]
_FRAME_VALUE_COLUMNS = pd.Index([*_VALUE_COLUMNS, *INDICATOR_COLUMNS])

(
    _SMA_20,
    _SMA_50,
    _EMA_12,
    _EMA_26,
    _MACD,
    _MACD_SIGNAL,
    _MACD_HIST,
    _RSI,
    _ATR,
    _BB_UPPER,
    _BB_MIDDLE,
    _BB_LOWER,
    _DAILY_RETURN,
    _PRICE_RANGE,
    _RANGE_PCT,
) = range(len(INDICATOR_COLUMNS))

_FAST, _SLOW, _SIGNAL = 12, 26, 9  # MACD periods
_RSI_PERIOD = _ATR_PERIOD = 14
_SHORT_SMA, _LONG_SMA = 20, 50
_BB_PERIOD, _BB_DEVIATIONS = 20, 2.0
_LONGEST_WARMUP = _LONG_SMA - 1  # no indicator starts later than this bar
# TA-Lib's MACD starts both EMAs where the slow one starts, so its fast EMA is seeded with the
# mean of the 12 closes ending at bar 25 (not bar 11 as talib.EMA(12) is); all three outputs
# start together once the signal line exists, at bar 33.
_MACD_LINE_START = _SLOW - 1
_MACD_START = _MACD_LINE_START + _SIGNAL - 1

# Rows of the stacked recurrence. Row data sits one column right of its bar, so column 0 is
# zero and a running sum at column t is the sum over the bars before t.
_SUM, _SUM_SQ, _EMA_FAST_ROW, _EMA_SLOW_ROW, _GAIN, _MOVE, _TRUE_RANGE = range(7)
_STACK_DECAYS = (1.0, 1.0, 11 / 13, 25 / 27, 13 / 14, 13 / 14, 13 / 14)
_STACK_ALPHAS = (1.0, 1.0, 2 / 13, 2 / 27, 1 / 14, 1 / 14, 1 / 14)
# Each smoothed row's period and the column holding its seed, the mean of the ``period`` values
# ending there: the EMAs seed on their first n closes; RSI and ATR on the first 14 changes and
# true ranges, which start at bar 1.
_STACK_PERIODS = (None, None, _FAST, _SLOW, _RSI_PERIOD, _RSI_PERIOD, _ATR_PERIOD)
_STACK_SEEDS = (None, None, _FAST, _SLOW, _RSI_PERIOD + 1, _RSI_PERIOD + 1, _ATR_PERIOD + 1)
_SIGNAL_DECAYS, _SIGNAL_ALPHAS, _SIGNAL_SEEDS = (1 - 2 / 10,), (2 / 10,), (_SIGNAL - 1,)

# d**±600 stays far from float64 over- and underflow even after multiplying by prices, so one
# table spans 1200 / -ln(d) bars (7,000+ for these periods; longer series use segments).
_EXPONENT_BUDGET = 1200.0
_MAX_TABLE = 8192
_BLOCK = 16  # see _prefix_sums
_ONES = np.ones(_BLOCK)
_UPPER_ONES = np.triu(np.ones((_BLOCK, _BLOCK)))  # (x @ _UPPER_ONES)[:, j] == x[:, : j + 1].sum(1)


def only_indicators(frame: pd.DataFrame, wanted: list[str]) -> pd.DataFrame:
    """``frame`` with every indicator column not in ``wanted`` set to NaN (the columns stay, so
    every frame has one shape; a chart draws, and an analyst reads, only what is finite)."""
    unwanted = [column for column in INDICATOR_COLUMNS if column not in wanted]
    if not unwanted:
        return frame
    frame = frame.copy()
    frame[unwanted] = np.nan
    return frame


def compute_indicators(bars: pd.DataFrame) -> pd.DataFrame:
    """The bar frame plus one float column per name in ``INDICATOR_COLUMNS``, same rows.

    Definitions follow TA-Lib: SMA(20), SMA(50); EMA(12), EMA(26) seeded with the mean of their
    first n closes; MACD(12, 26, 9) exactly as ``talib.MACD``; RSI(14) and ATR(14) with Wilder's
    smoothing (RSI is 0 where the price never moved, as in TA-Lib); Bollinger Bands(20, 2)
    around SMA(20) with the population standard deviation. ``daily_return`` is
    ``close.pct_change()`` and ``price_range`` is ``high - low``. ``range_pct`` is that range as
    a percent of the *close*, ``(high - low) / close * 100``: the close is the price every other
    column here is built on, so the two read on the same scale.

    Missing or infinite prices never raise. Leading bars without a close (for ATR: without all
    of high, low and close) are skipped, as TA-Lib skips them. After that, a missing value makes
    the recursive indicators (EMA, MACD, RSI, ATR) NaN from that bar on, as their state is lost,
    and the windowed ones (SMA, Bollinger) NaN only while their window contains it. A frame
    shorter than a warm-up leaves that column NaN.
    """
    values = np.empty((len(_FRAME_VALUE_COLUMNS), len(bars)))
    for row, name in enumerate(_VALUE_COLUMNS):
        values[row] = bars[name].to_numpy(dtype=np.float64)
    _fill_indicators(values[1], values[2], values[3], values[len(_VALUE_COLUMNS) :])
    # values.T is column-major, so pandas adopts it as its float block without copying.
    frame = pd.DataFrame(values.T, index=bars.index, columns=_FRAME_VALUE_COLUMNS, copy=False)
    frame.insert(0, "date", bars["date"].array)
    return frame


def latest_values(frame: pd.DataFrame) -> dict[str, float | None]:
    """The last row's indicators as plain floats (None where NaN), e.g. for run metadata."""
    if frame.empty:
        return dict.fromkeys(INDICATOR_COLUMNS)
    last = frame[INDICATOR_COLUMNS].iloc[-1]
    return {name: None if math.isnan(value) else float(value) for name, value in last.items()}


def _fill_indicators(high: np.ndarray, low: np.ndarray, close: np.ndarray, out: np.ndarray) -> None:
    """Write every row of ``out`` (shape ``(15, n)``, in ``INDICATOR_COLUMNS`` order)."""
    # A sum is finite exactly when every term is (or, for absurd magnitudes, it overflows and
    # the data merely takes the slower path): one cheap test keeps complete data fast.
    if math.isfinite(high.sum() + low.sum() + close.sum()):
        _fill_complete(high, low, close, out)
    else:
        _fill_with_gaps(high, low, close, out)


def _fill_complete(high: np.ndarray, low: np.ndarray, close: np.ndarray, out: np.ndarray) -> None:
    """Every indicator for finite prices: one stacked recurrence, then arithmetic per column."""
    n = close.size
    out[:, :_LONGEST_WARMUP] = np.nan  # every row is written from its first defined bar on
    _fill_bar_arithmetic(high, low, close, out)
    if n < 2:
        return
    reference = close[0]  # sums of (close - reference) keep the variance free of cancellation
    stack = np.zeros((len(_STACK_DECAYS), _padded(n + 1)))
    np.subtract(close, reference, out=stack[_SUM, 1 : n + 1])
    np.multiply(stack[_SUM], stack[_SUM], out=stack[_SUM_SQ])
    stack[_EMA_FAST_ROW : _EMA_SLOW_ROW + 1, 1 : n + 1] = close
    change = close[1:] - close[:-1]
    np.maximum(change, 0.0, out=stack[_GAIN, 2 : n + 1])
    np.abs(change, out=stack[_MOVE, 2 : n + 1])  # smoothed, it is TA-Lib's gain + loss
    # The true range; equal to TA-Lib's max(h - l, |h - prev close|, |l - prev close|) for any
    # bar with high >= low.
    np.subtract(
        np.maximum(high[1:], close[:-1]),
        np.minimum(low[1:], close[:-1]),
        out=stack[_TRUE_RANGE, 2 : n + 1],
    )
    # Seeds: means of each row's first values, summed in order as TA-Lib does.
    head = np.cumsum(stack[:, : _SLOW + 1], axis=1)
    for row, (period, column) in enumerate(zip(_STACK_PERIODS, _STACK_SEEDS, strict=True)):
        if period is not None and column <= n:
            stack[row, column] = (head[row, column] - head[row, column - period]) / period
    sums = _solve_recurrence(stack, _STACK_DECAYS, _STACK_ALPHAS, _STACK_SEEDS)[:, : n + 1]

    _fill_rolling(close, sums[_SUM], sums[_SUM_SQ], reference, out)
    for row, target in ((_EMA_FAST_ROW, _EMA_12), (_EMA_SLOW_ROW, _EMA_26), (_TRUE_RANGE, _ATR)):
        column = _STACK_SEEDS[row]
        out[target, column - 1 :] = sums[row, column:]
    if n > _RSI_PERIOD:
        gain, move = sums[_GAIN, _RSI_PERIOD + 1 :], sums[_MOVE, _RSI_PERIOD + 1 :]
        rsi = out[_RSI, _RSI_PERIOD:]
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(gain, move, out=rsi)
        rsi *= 100.0
        if not move.all():
            rsi[move == 0] = 0.0  # TA-Lib reports 0, not NaN, while the price has not moved
    if n > _MACD_LINE_START:
        _fill_macd(close, out)


def _fill_macd(close: np.ndarray, out: np.ndarray) -> None:
    """MACD(12, 26, 9) from the EMA rows already in ``out``, with TA-Lib's seeding.

    Two runs of one recurrence differ by ``d**k`` times their difference at the start, so the
    fast EMA seeded at bar 25 is EMA(12) plus a decaying correction.
    """
    start = _MACD_LINE_START
    ema_fast = out[_EMA_12, start:]
    size = ema_fast.size
    seed = close[start - _FAST + 1 : start + 1].sum() / _FAST
    stack = np.zeros((1, _padded(size)))
    line = stack[0, :size]
    np.multiply(_power_series(_STACK_DECAYS[_EMA_FAST_ROW], size), seed - ema_fast[0], out=line)
    line += ema_fast
    line -= out[_EMA_26, start:]
    first = _SIGNAL - 1
    if size <= first:
        return
    out[_MACD, _MACD_START:] = line[first:]
    line[first] = line[:_SIGNAL].sum() / _SIGNAL  # the signal's seed (the line is saved above)
    signal = _solve_recurrence(stack, _SIGNAL_DECAYS, _SIGNAL_ALPHAS, _SIGNAL_SEEDS)[0, first:size]
    out[_MACD_SIGNAL, _MACD_START:] = signal
    np.subtract(out[_MACD, _MACD_START:], signal, out=out[_MACD_HIST, _MACD_START:])


def _fill_rolling(
    close: np.ndarray, sums: np.ndarray, squares: np.ndarray, reference: float, out: np.ndarray
) -> None:
    """SMA(20), SMA(50) and Bollinger(20, 2) from running sums of ``close - reference``.

    ``sums[t]`` and ``squares[t]`` cover the bars before ``t``, so the window of ``period`` bars
    ending at bar ``t`` sums to ``sums[t + 1] - sums[t + 1 - period]``.
    """
    n = close.size
    if n >= _LONG_SMA:
        long_sma = out[_SMA_50, _LONG_SMA - 1 :]
        np.subtract(sums[_LONG_SMA:], sums[:-_LONG_SMA], out=long_sma)
        long_sma /= _LONG_SMA
        long_sma += reference
    if n < _BB_PERIOD:
        return
    period = _BB_PERIOD
    windows = np.subtract(sums[period:], sums[:-period])
    mean = windows / period  # of close - reference
    np.add(mean, reference, out=out[_SMA_20, period - 1 :])
    out[_BB_MIDDLE, period - 1 :] = out[_SMA_20, period - 1 :]
    # Squared deviations from the window mean; population variance = spread / period.
    spread = np.subtract(squares[period:], squares[:-period])
    windows *= mean
    spread -= windows
    # The running sums carry rounding of order eps * (all squares so far), which matters only
    # for a nearly flat window: recompute those directly from their closes (two-pass).
    floor = 1e-9 * squares[-1]
    if spread.min() < floor:
        suspect = np.flatnonzero(spread < floor)
        closes = np.lib.stride_tricks.sliding_window_view(close, period)[suspect]
        deviations = closes - closes.mean(axis=1, keepdims=True)
        spread[suspect] = np.einsum("ij,ij->i", deviations, deviations)
    spread *= _BB_DEVIATIONS**2 / period
    width = np.sqrt(spread, out=spread)
    middle = out[_BB_MIDDLE, period - 1 :]
    np.add(middle, width, out=out[_BB_UPPER, period - 1 :])
    np.subtract(middle, width, out=out[_BB_LOWER, period - 1 :])


def _fill_bar_arithmetic(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, out: np.ndarray
) -> None:
    """Per-bar columns: daily return, high-low range and that range as percent of the close.

    A zero close gives an infinite ratio, as pandas' ``pct_change`` does, without a warning.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.subtract(high, low, out=out[_PRICE_RANGE])
        np.divide(out[_PRICE_RANGE], close, out=out[_RANGE_PCT])
        out[_RANGE_PCT] *= 100.0
        if close.size > 1:
            np.divide(close[1:], close[:-1], out=out[_DAILY_RETURN, 1:])
            out[_DAILY_RETURN, 1:] -= 1.0


def _fill_with_gaps(high: np.ndarray, low: np.ndarray, close: np.ndarray, out: np.ndarray) -> None:
    """The path for prices with NaN or infinite values (semantics in ``compute_indicators``)."""
    n = close.size
    out.fill(np.nan)
    _fill_bar_arithmetic(high, low, close, out)
    close_ok = np.isfinite(close)
    bar_ok = close_ok & np.isfinite(high) & np.isfinite(low)
    # Recursive indicators: the complete-data path over the first clean stretch. Close-only
    # indicators need only closes, which stand in for high and low there.
    close_rows = [_EMA_12, _EMA_26, _MACD, _MACD_SIGNAL, _MACD_HIST, _RSI]
    for ok, rows, use_range in ((close_ok, close_rows, False), (bar_ok, [_ATR], True)):
        start, stop = _clean_span(ok)
        if start < stop:
            closes = close[start:stop]
            highs, lows = (high[start:stop], low[start:stop]) if use_range else (closes, closes)
            part = np.empty((len(INDICATOR_COLUMNS), stop - start))
            _fill_complete(highs, lows, closes, part)
            out[rows, start:stop] = part[rows]
    # Windowed indicators: zero the gaps, then blank every window that touches one.
    reference = close[close_ok][0] if close_ok.any() else 0.0
    shifted = np.where(close_ok, close - reference, 0.0)
    sums = np.zeros((3, n + 1))
    np.cumsum(shifted, out=sums[0, 1:])
    np.cumsum(shifted * shifted, out=sums[1, 1:])
    np.cumsum(~close_ok, dtype=np.float64, out=sums[2, 1:])
    with np.errstate(invalid="ignore"):
        _fill_rolling(close, sums[0], sums[1], reference, out)
    for period, rows in (
        (_LONG_SMA, [_SMA_50]),
        (_BB_PERIOD, [_SMA_20, _BB_UPPER, _BB_MIDDLE, _BB_LOWER]),
    ):
        if n >= period:
            gapped = np.flatnonzero(sums[2, period:] - sums[2, :-period]) + period - 1
            out[np.ix_(rows, gapped)] = np.nan


def _clean_span(ok: np.ndarray) -> tuple[int, int]:
    """The first run of ``True`` in ``ok`` as ``(start, stop)``; ``(0, 0)`` if there is none."""
    if not ok.any():
        return 0, 0
    start = int(ok.argmax())
    rest = ~ok[start:]
    return start, (start + int(rest.argmax()) if rest.any() else ok.size)


def _solve_recurrence(
    u: np.ndarray,
    decays: tuple[float, ...],
    alphas: tuple[float, ...],
    seeds: tuple[int | None, ...],
) -> np.ndarray:
    """Row-wise ``y[t] = d*y[t-1] + a*u[t]`` from ``y[seed] = u[seed]`` on (0 before it).

    ``u`` (width a multiple of ``_BLOCK``) holds the raw inputs with each row's seed value in
    place; rows without a seed (``None``) with ``d = a = 1`` are running sums. Returns a new
    array.
    """
    first, later = _recurrence_tables(decays, alphas, seeds)
    span = first[0].shape[1]
    width = u.shape[1]
    parts: list[np.ndarray] = []
    for start in range(0, width, span):
        size = min(span, width - start)
        grow, shrink, carry = first if start == 0 else later
        part = _prefix_sums(u[:, start : start + size] * grow[:, :size])
        part *= shrink[:, :size]
        if parts:
            part += parts[-1][:, -1:] * carry[:, :size]
        parts.append(part)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _prefix_sums(a: np.ndarray) -> np.ndarray:
    """``np.cumsum(a, axis=1)`` for a C-contiguous ``a`` of width a multiple of ``_BLOCK``;
    overwrites ``a``.

    Faster than ``cumsum``, which is one long dependency chain through memory: here each block's
    first value absorbs the total of all earlier blocks, and one matrix product then sums
    within every block at once.
    """
    rows, width = a.shape
    blocks = a.reshape(-1, _BLOCK)
    totals = (blocks @ _ONES).reshape(rows, -1)
    earlier = np.cumsum(totals, axis=1)
    earlier -= totals
    blocks[:, 0] += earlier.reshape(-1)
    return (blocks @ _UPPER_ONES).reshape(rows, width)


def _padded(width: int) -> int:
    """``width`` rounded up to a whole number of ``_BLOCK`` columns."""
    return -(-width // _BLOCK) * _BLOCK


@functools.cache
def _recurrence_tables(
    decays: tuple[float, ...], alphas: tuple[float, ...], seeds: tuple[int | None, ...]
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Power tables ``(grow, shrink, carry)`` for ``_solve_recurrence``: for the first segment
    (zero before each seed, no ``a`` on the seed itself) and for the segments after it.

    With centre ``c``, ``y[t] = d**(t-c) * cumsum(a * u[s] * d**(c-s))``, so both factors stay
    within ``d**±(span/2)``; ``carry[t] = d**(t+1)`` continues from a previous segment's end.
    """
    logs = [-math.log(d) for d in decays if d < 1.0]
    span = min(_MAX_TABLE, int(_EXPONENT_BUDGET / max(logs))) if logs else _MAX_TABLE
    span -= span % _BLOCK
    steps = np.arange(span, dtype=np.float64)
    centre = span // 2
    grow, shrink, carry = (np.ones((len(decays), span)) for _ in range(3))
    for row, (d, a) in enumerate(zip(decays, alphas, strict=True)):
        if d < 1.0:
            grow[row] = a * d ** (centre - steps)
            shrink[row] = d ** (steps - centre)
            carry[row] = d ** (steps + 1)
    first_grow = grow.copy()
    for row, seed in enumerate(seeds):
        if seed is not None:
            first_grow[row, :seed] = 0.0
            first_grow[row, seed] /= alphas[row]
    for table in (first_grow, grow, shrink, carry):
        table.setflags(write=False)  # shared by every call through the cache
    return (first_grow, shrink, carry), (grow, shrink, carry)


@functools.cache
def _power_table(decay: float) -> np.ndarray:
    """``decay**k`` for k = 0, 1, ... until it underflows to zero."""
    table = decay ** np.arange(int(750 / -math.log(decay)), dtype=np.float64)
    table.setflags(write=False)
    return table


def _power_series(decay: float, length: int) -> np.ndarray:
    """``decay**k`` for k in ``range(length)``; powers past the table are exactly zero."""
    table = _power_table(decay)
    if length <= table.size:
        return table[:length]
    return np.concatenate([table, np.zeros(length - table.size)])
