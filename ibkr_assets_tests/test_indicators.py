"""Indicators: checked against TA-Lib column by column, and against values worked out by hand.

TA-Lib is the reference the definitions promise to match, so every column is compared with it
on several deterministic series (identical NaN positions, 1e-8 relative tolerance). The
hand-computed cases pin the definitions independently of TA-Lib, including the parts where
TA-Lib is easy to get wrong (the seeding of MACD's fast EMA, Wilder's smoothing).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from ibkr_assets.domain.bars import BAR_COLUMNS
from ibkr_assets.domain.indicators import INDICATOR_COLUMNS, compute_indicators, latest_values

# Columns in price units, compared with an absolute tolerance scaled to the price level: the
# MACD family crosses zero, where a relative error means nothing.
PRICE_UNIT_COLUMNS = {
    "sma_20",
    "sma_50",
    "ema_12",
    "ema_26",
    "macd",
    "macd_signal",
    "macd_hist",
    "atr_14",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "price_range",
}
RTOL = 1e-8


@pytest.fixture(scope="module")
def talib():
    """TA-Lib (a dev dependency): skipped locally when missing, a failure in CI."""
    try:
        import talib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"TA-Lib is required in CI: {exc}")
        pytest.skip(f"TA-Lib unavailable: {exc}")
    return talib


def make_bars(
    close: np.ndarray, *, spread: np.ndarray | float = 0.01, seed: int = 0
) -> pd.DataFrame:
    """A bar frame around the given closes: opens near the previous close, highs and lows
    enclosing open and close by a random fraction of ``spread``."""
    rng = np.random.default_rng(seed)
    close = np.asarray(close, dtype=np.float64)
    n = close.size
    opens = np.concatenate([close[:1], close[:-1]]) * np.exp(rng.normal(0.0, 0.002, n))
    highs = np.maximum(opens, close) * (1 + rng.uniform(0.0, 1.0, n) * spread)
    lows = np.minimum(opens, close) * (1 - rng.uniform(0.0, 1.0, n) * spread)
    return pd.DataFrame(
        {
            "date": pd.bdate_range("2014-01-02", periods=n).astype("datetime64[ns]"),
            "open": opens,
            "high": highs,
            "low": lows,
            "close": close,
            "volume": rng.integers(100_000, 5_000_000, n).astype(np.float64),
        }
    )


def random_walk(n: int, *, seed: int, start: float = 100.0, vol: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))


def real_looking(n: int = 2520, *, seed: int = 42, start: float = 187.3) -> np.ndarray:
    """Ten years of daily closes with calm and turbulent regimes, an earnings gap, a crash, a
    halted stretch of identical closes and prices rounded to the cent."""
    rng = np.random.default_rng(seed)
    vol = np.where(np.arange(n) % 500 < 380, 0.009, 0.028)
    returns = rng.standard_t(4, n) * vol / math.sqrt(2)
    returns[700] += 0.12  # earnings gap up
    returns[1500:1510] -= 0.03  # crash
    close = np.round(start * np.exp(np.cumsum(returns)), 2)
    close[2000:2030] = close[1999]  # trading halted: flat for 30 bars
    return close


def talib_reference(talib, bars: pd.DataFrame) -> dict[str, np.ndarray]:
    high, low, close = (bars[c].to_numpy(dtype=np.float64) for c in ("high", "low", "close"))
    macd, signal, hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    upper, middle, lower = talib.BBANDS(close, timeperiod=20, nbdevup=2, nbdevdn=2, matype=0)
    return {
        "sma_20": talib.SMA(close, 20),
        "sma_50": talib.SMA(close, 50),
        "ema_12": talib.EMA(close, 12),
        "ema_26": talib.EMA(close, 26),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": hist,
        "rsi_14": talib.RSI(close, 14),
        "atr_14": talib.ATR(high, low, close, 14),
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "daily_return": bars["close"].pct_change().to_numpy(),
        "price_range": high - low,
        "range_pct": (high - low) / close * 100,
    }


def assert_matches_reference(result: pd.DataFrame, reference: dict[str, np.ndarray]) -> None:
    price_level = float(np.nanmax(np.abs(result["close"].to_numpy())))
    for name in INDICATOR_COLUMNS:
        ours, expected = result[name].to_numpy(), reference[name]
        np.testing.assert_array_equal(
            np.isnan(ours), np.isnan(expected), err_msg=f"{name}: NaN positions differ"
        )
        atol = 1e-12 * (price_level if name in PRICE_UNIT_COLUMNS else 1.0)
        np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=atol, err_msg=name)


SERIES = {
    "random walk, 300 bars": lambda: make_bars(random_walk(300, seed=7)),
    "real-looking, 10 years": lambda: make_bars(real_looking(), spread=0.015, seed=3),
    "penny stock": lambda: make_bars(random_walk(600, seed=11, start=0.0437, vol=0.04), seed=5),
    "high price, tight range": lambda: make_bars(
        random_walk(800, seed=5, start=52_000.0, vol=0.003), spread=0.001
    ),
    "longer than one power table": lambda: make_bars(random_walk(9000, seed=2, vol=0.005)),
}


@pytest.mark.parametrize("name", list(SERIES))
def test_every_column_matches_talib(talib, name):
    bars = SERIES[name]()
    assert_matches_reference(compute_indicators(bars), talib_reference(talib, bars))


def test_flat_prices_match_talib_zero_rsi_and_zero_width_bands(talib):
    bars = make_bars(np.full(60, 25.0), spread=0.0)
    result = compute_indicators(bars)
    assert_matches_reference(result, talib_reference(talib, bars))
    assert (result["rsi_14"].iloc[14:] == 0.0).all()  # TA-Lib's convention, not NaN
    assert (result["bb_upper"].iloc[19:] == result["bb_lower"].iloc[19:]).all()


def test_leading_missing_closes_are_skipped_like_talib(talib):
    bars = make_bars(random_walk(200, seed=9))
    bars.loc[:2, ["high", "low", "close"]] = np.nan
    result = compute_indicators(bars)
    assert_matches_reference(result, talib_reference(talib, bars))
    assert result["ema_12"].first_valid_index() == 3 + 11
    assert result["macd"].first_valid_index() == 3 + 33


def test_result_is_the_bar_frame_plus_indicator_columns():
    bars = make_bars(random_walk(120, seed=1))
    bars.index = pd.RangeIndex(1000, 1120)
    before = bars.copy()
    result = compute_indicators(bars)
    assert list(result.columns) == [*BAR_COLUMNS, *INDICATOR_COLUMNS]
    pd.testing.assert_frame_equal(result[BAR_COLUMNS], before)
    pd.testing.assert_frame_equal(bars, before)  # the input is not modified
    assert all(result[c].dtype == np.float64 for c in INDICATOR_COLUMNS)
    result.loc[1000, "close"] = -1.0
    assert bars.loc[1000, "close"] == before.loc[1000, "close"]  # a new frame, not a view


def test_sma_and_bollinger_by_hand():
    close = np.arange(1.0, 61.0)  # 1, 2, ..., 60
    result = compute_indicators(make_bars(close))
    # The 20 closes ending at bar 19 are 1..20: mean 10.5, population variance (20^2 - 1) / 12.
    assert result["sma_20"].iloc[19] == pytest.approx(10.5, rel=1e-12)
    width = 2 * math.sqrt((20**2 - 1) / 12)
    assert result["bb_upper"].iloc[19] == pytest.approx(10.5 + width, rel=1e-12)
    assert result["bb_lower"].iloc[19] == pytest.approx(10.5 - width, rel=1e-12)
    assert result["sma_20"].iloc[59] == pytest.approx(sum(range(41, 61)) / 20, rel=1e-12)
    assert result["sma_50"].iloc[49] == pytest.approx(25.5, rel=1e-12)
    assert result["sma_50"].iloc[:49].isna().all() and result["sma_20"].iloc[:19].isna().all()


def test_ema_is_seeded_with_the_mean_of_its_first_closes():
    close = np.arange(1.0, 41.0)
    result = compute_indicators(make_bars(close))
    assert result["ema_12"].iloc[:11].isna().all()
    assert result["ema_12"].iloc[11] == pytest.approx(6.5, rel=1e-12)  # mean of 1..12
    # then ema += 2/13 * (close - ema): 6.5 + 2/13 * (13 - 6.5) = 7.5
    assert result["ema_12"].iloc[12] == pytest.approx(7.5, rel=1e-12)
    # On a straight line an EMA seeded this way lags by exactly (n - 1) / 2 bars.
    np.testing.assert_allclose(result["ema_26"].iloc[25:], close[25:] - 12.5, rtol=1e-12)


def test_macd_seeds_its_fast_ema_where_the_slow_one_starts():
    # 14 closes at 10, then 20 forever. TA-Lib's MACD seeds its fast EMA with the mean of the
    # closes at bars 14..25 (all 20), so the fast line sits at 20, while the slow EMA starts at
    # the mean of bars 0..25 and decays towards 20 by 25/27 a bar.
    close = np.array([10.0] * 14 + [20.0] * 46)
    result = compute_indicators(make_bars(close))
    gap = 20 - (14 * 10 + 12 * 20) / 26  # fast minus slow EMA at bar 25
    line = [gap * (25 / 27) ** k for k in range(9)]  # MACD line at bars 25..33
    signal = sum(line) / 9  # the signal starts as the mean of its first nine values
    assert result["macd"].iloc[:33].isna().all() and result["macd_signal"].iloc[:33].isna().all()
    assert result["macd"].iloc[33] == pytest.approx(line[8], rel=1e-12)
    assert result["macd_signal"].iloc[33] == pytest.approx(signal, rel=1e-12)
    assert result["macd_hist"].iloc[33] == pytest.approx(line[8] - signal, rel=1e-12)
    next_line = gap * (25 / 27) ** 9
    assert result["macd_signal"].iloc[34] == pytest.approx(
        signal + 0.2 * (next_line - signal), rel=1e-12
    )


def test_rsi_by_hand_with_wilder_smoothing():
    close = np.array(
        [44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42]
        + [45.84, 46.08, 45.89, 46.03, 45.61, 46.28, 46.28, 46.00]
    )
    # Changes: -.25 +.06 -.54 +.72 +.50 +.27 +.32 +.42 +.24 -.19 +.14 -.42 +.67 0, then -.28.
    gains = 0.06 + 0.72 + 0.50 + 0.27 + 0.32 + 0.42 + 0.24 + 0.14 + 0.67
    losses = 0.25 + 0.54 + 0.19 + 0.42
    avg_gain, avg_loss = gains / 14, losses / 14
    first = 100 * avg_gain / (avg_gain + avg_loss)
    avg_gain, avg_loss = (avg_gain * 13 + 0.0) / 14, (avg_loss * 13 + 0.28) / 14
    second = 100 * avg_gain / (avg_gain + avg_loss)
    rsi = compute_indicators(make_bars(close))["rsi_14"]
    assert rsi.iloc[:14].isna().all()
    assert rsi.iloc[14] == pytest.approx(first, rel=1e-9)
    assert rsi.iloc[15] == pytest.approx(second, rel=1e-9)
    assert first == pytest.approx(70.464135, rel=1e-7)


def test_atr_by_hand_starts_from_the_mean_true_range():
    close = np.full(17, 10.0)
    bars = make_bars(close)
    bars["high"], bars["low"] = close + 1.0, close - 1.0  # true range 2 while nothing gaps
    bars.loc[15, ["high", "low", "close"]] = [15.0, 13.0, 14.0]  # gap up: true range 15 - 10
    bars.loc[16, ["high", "low", "close"]] = [14.5, 13.5, 14.0]  # true range 1
    atr = compute_indicators(bars)["atr_14"]
    assert atr.iloc[:14].isna().all()
    assert atr.iloc[14] == pytest.approx(2.0, rel=1e-12)
    assert atr.iloc[15] == pytest.approx((2.0 * 13 + 5.0) / 14, rel=1e-12)
    assert atr.iloc[16] == pytest.approx(((2.0 * 13 + 5.0) / 14 * 13 + 1.0) / 14, rel=1e-12)


def test_bar_arithmetic_columns():
    bars = make_bars(np.array([10.0, 11.0, 9.9]))
    bars[["high", "low"]] = [[11.0, 9.0], [11.5, 10.5], [10.0, 9.0]]
    result = compute_indicators(bars)
    np.testing.assert_allclose(result["price_range"], [2.0, 1.0, 1.0])
    np.testing.assert_allclose(result["range_pct"], [20.0, 100 / 11, 100 / 9.9], rtol=1e-12)
    assert math.isnan(result["daily_return"].iloc[0])
    np.testing.assert_allclose(result["daily_return"].iloc[1:], [0.1, -0.1], rtol=1e-12)


@pytest.mark.parametrize("n", [0, 1, 2, 13, 14, 19, 25, 26, 33, 34, 49, 50])
def test_short_frames_leave_undefined_columns_nan(n):
    result = compute_indicators(make_bars(random_walk(n, seed=n)))
    assert len(result) == n
    first_defined = {
        "sma_20": 19,
        "sma_50": 49,
        "ema_12": 11,
        "ema_26": 25,
        "macd": 33,
        "macd_signal": 33,
        "macd_hist": 33,
        "rsi_14": 14,
        "atr_14": 14,
        "bb_upper": 19,
        "bb_middle": 19,
        "bb_lower": 19,
        "daily_return": 1,
        "price_range": 0,
        "range_pct": 0,
    }
    for name, start in first_defined.items():
        column = result[name].to_numpy()
        assert np.isnan(column[:start]).all(), name
        assert not np.isnan(column[start:]).any(), name


def test_short_frames_match_talib(talib):
    for n in (20, 26, 34, 50):
        bars = make_bars(random_walk(n, seed=n))
        assert_matches_reference(compute_indicators(bars), talib_reference(talib, bars))


def test_missing_close_blanks_windows_for_their_length_and_recursions_for_good():
    bars = make_bars(random_walk(200, seed=4))
    complete = compute_indicators(bars)
    bars.loc[100, "close"] = np.nan
    result = compute_indicators(bars)
    for name in ["ema_12", "ema_26", "macd", "macd_signal", "macd_hist", "rsi_14"]:
        pd.testing.assert_series_equal(result[name].iloc[:100], complete[name].iloc[:100])
        assert result[name].iloc[100:].isna().all(), name
    assert (
        result["sma_20"].iloc[100:120].isna().all() and result["sma_50"].iloc[100:150].isna().all()
    )
    closes = bars["close"].to_numpy()
    assert result["sma_20"].iloc[120] == pytest.approx(closes[101:121].mean(), rel=1e-12)
    assert result["sma_50"].iloc[150] == pytest.approx(closes[101:151].mean(), rel=1e-12)
    assert result["bb_upper"].iloc[120] == pytest.approx(
        closes[101:121].mean() + 2 * closes[101:121].std(), rel=1e-12
    )
    assert result["atr_14"].iloc[100:].isna().all()  # the next true range needs this close
    assert math.isnan(result["daily_return"].iloc[100]) and math.isnan(
        result["daily_return"].iloc[101]
    )


def test_missing_high_only_affects_atr_and_range():
    bars = make_bars(random_walk(120, seed=8))
    complete = compute_indicators(bars)
    bars.loc[60, "high"] = np.nan
    result = compute_indicators(bars)
    unaffected = [c for c in INDICATOR_COLUMNS if c not in {"atr_14", "price_range", "range_pct"}]
    pd.testing.assert_frame_equal(result[unaffected], complete[unaffected], rtol=1e-12)
    assert result["atr_14"].iloc[60:].isna().all()
    pd.testing.assert_series_equal(result["atr_14"].iloc[:60], complete["atr_14"].iloc[:60])
    assert math.isnan(result["price_range"].iloc[60]) and not math.isnan(
        result["price_range"].iloc[61]
    )


def test_all_missing_or_infinite_prices_do_not_raise():
    bars = make_bars(random_walk(80, seed=6))
    bars[["high", "low", "close"]] = np.nan
    assert compute_indicators(bars)[INDICATOR_COLUMNS].isna().all().all()

    bars = make_bars(random_walk(80, seed=6))
    bars.loc[40, "close"] = np.inf
    result = compute_indicators(bars)
    assert result["ema_12"].iloc[40:].isna().all() and result["ema_12"].iloc[39] > 0
    assert result["sma_20"].iloc[40:60].isna().all() and not math.isnan(result["sma_20"].iloc[60])


def test_latest_values_are_plain_floats_and_none_for_nan():
    result = compute_indicators(make_bars(random_walk(30, seed=3)))
    latest = latest_values(result)
    assert list(latest) == INDICATOR_COLUMNS
    assert latest["sma_50"] is None and latest["macd"] is None  # still warming up at 30 bars
    assert type(latest["sma_20"]) is float
    assert latest["sma_20"] == result["sma_20"].iloc[-1]
    assert latest["rsi_14"] == result["rsi_14"].iloc[-1]


def test_latest_values_of_an_empty_frame_are_all_none():
    empty = compute_indicators(make_bars(np.array([])))
    assert latest_values(empty) == dict.fromkeys(INDICATOR_COLUMNS)
