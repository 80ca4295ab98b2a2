"""Chart rendering (exact PNG size, byte-stable output, parallel == serial, honest indicator
list) and weekly resampling (exact OHLCV, no look-ahead)."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ibkr_assets.charts.render import (
    ChartSpec,
    RenderedChart,
    render_chart,
    render_each,
    render_many,
)
from ibkr_assets.domain.bars import BAR_COLUMNS, empty_bars
from ibkr_assets.domain.indicators import compute_indicators
from ibkr_assets.domain.resample import weekly_bars
from ibkr_assets.sources.sample import SampleBarSource

AS_OF = dt.date(2024, 7, 3)  # a Wednesday
ALL_INDICATORS = ["SMA_20", "SMA_50", "BB_20_2", "RSI_14", "MACD_12_26_9", "VOLUME"]


def _spec(symbol: str = "AAPL", as_of: dt.date = AS_OF, **overrides: int) -> ChartSpec:
    # Small, and a size that is not a whole number of inches at this dpi.
    size = {"width_px": 500, "height_px": 370, "dpi": 72, "bars_shown": 80} | overrides
    return ChartSpec(symbol=symbol, as_of=as_of, timeframe="daily", **size)


def _frame(symbol: str = "AAPL", end: dt.date = AS_OF, bars: int = 200) -> pd.DataFrame:
    return compute_indicators(SampleBarSource().fetch_bars(symbol, end, bars))


@pytest.fixture(scope="module")
def aapl() -> pd.DataFrame:
    return _frame()


@pytest.fixture(scope="module")
def aapl_chart(aapl: pd.DataFrame) -> RenderedChart:
    return render_chart(aapl, _spec())


@pytest.fixture(scope="module")
def msft_chart() -> RenderedChart:
    return render_chart(_frame("MSFT"), _spec("MSFT"))


def test_chart_is_a_png_of_exactly_the_requested_size(aapl_chart: RenderedChart) -> None:
    assert aapl_chart.png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(aapl_chart.png))
    image.load()  # decodes the pixel data, not just the header
    assert image.format == "PNG"
    assert image.size == (500, 370)
    assert (aapl_chart.width, aapl_chart.height) == (500, 370)
    assert aapl_chart.timeframe == "daily"
    assert aapl_chart.bars_count == 80
    assert aapl_chart.indicators == ALL_INDICATORS
    # Not a blank canvas: candles and lines put many colours on it.
    assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 50
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # the figure was closed: nothing accumulates per chart


def test_same_input_renders_identical_bytes(aapl: pd.DataFrame, aapl_chart: RenderedChart) -> None:
    assert render_chart(aapl, _spec()).png == aapl_chart.png


def test_different_symbol_or_date_renders_different_bytes(
    aapl_chart: RenderedChart, msft_chart: RenderedChart
) -> None:
    earlier = dt.date(2024, 5, 15)
    earlier_chart = render_chart(_frame(end=earlier), _spec(as_of=earlier))
    assert len({aapl_chart.png, msft_chart.png, earlier_chart.png}) == 3


def test_render_many_in_processes_equals_serial_in_order(
    aapl: pd.DataFrame, aapl_chart: RenderedChart, msft_chart: RenderedChart
) -> None:
    jobs = [(_frame("MSFT"), _spec("MSFT")), (aapl, _spec())]
    parallel = render_many(jobs, workers=2)
    assert [chart.png for chart in parallel] == [msft_chart.png, aapl_chart.png]
    assert [chart.indicators for chart in parallel] == [ALL_INDICATORS, ALL_INDICATORS]


def test_render_each_takes_lazy_jobs_when_told_how_many(
    aapl: pd.DataFrame, aapl_chart: RenderedChart, msft_chart: RenderedChart
) -> None:
    made: list[str] = []

    def jobs():
        for symbol, frame in (("MSFT", _frame("MSFT")), ("AAPL", aapl)):
            made.append(symbol)
            yield frame, _spec(symbol)

    charts = render_each(jobs(), workers=2, count=2)
    assert made == []  # nothing is prepared before the first chart is asked for
    assert [chart.png for chart in charts] == [msft_chart.png, aapl_chart.png]
    assert made == ["MSFT", "AAPL"]


def test_overlay_without_values_is_neither_drawn_nor_listed(aapl: pd.DataFrame) -> None:
    short = compute_indicators(aapl.loc[:, BAR_COLUMNS].tail(40).reset_index(drop=True))
    assert short["sma_50"].isna().all()
    chart = render_chart(short, _spec())
    assert chart.indicators == ["SMA_20", "BB_20_2", "RSI_14", "MACD_12_26_9", "VOLUME"]
    assert chart.bars_count == 40
    assert Image.open(io.BytesIO(chart.png)).size == (500, 370)


def test_unchartable_frames_raise_naming_the_symbol(aapl: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="NVDA: no bars"):
        render_chart(aapl.iloc[0:0], _spec("NVDA"))
    with pytest.raises(ValueError, match=r"NVDA: .*sma_20"):
        render_chart(aapl.loc[:, BAR_COLUMNS], _spec("NVDA"))
    with pytest.raises(ValueError, match="NVDA: .*after the chart's as_of"):
        render_chart(aapl, _spec("NVDA", as_of=AS_OF - dt.timedelta(days=1)))


def test_importing_the_renderer_does_not_import_matplotlib() -> None:
    code = (
        "import sys, ibkr_assets.charts.render\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'mplfinance')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def _daily(rows: list[tuple[str, float, float, float, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=BAR_COLUMNS)
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return frame


# Three weeks: Good Friday (2024-03-29) closed, a full week, and a partial week that ends on
# the Wednesday partition 2024-04-10.
THREE_WEEKS = _daily(
    [
        ("2024-03-25", 10.0, 11.0, 9.5, 10.5, 100.0),
        ("2024-03-26", 10.5, 12.0, 10.0, 11.5, 200.0),
        ("2024-03-27", 11.5, 11.8, 9.0, 9.2, 300.0),
        ("2024-03-28", 9.2, 10.0, 9.1, 9.9, 400.0),
        ("2024-04-01", 10.0, 10.2, 9.8, 10.1, 10.0),
        ("2024-04-02", 10.1, 13.0, 10.0, 12.9, 20.0),
        ("2024-04-03", 12.9, 13.5, 12.0, 12.2, 30.0),
        ("2024-04-04", 12.2, 12.3, 8.0, 8.5, 40.0),
        ("2024-04-05", 8.5, 9.0, 8.4, 8.8, 50.0),
        ("2024-04-08", 8.8, 9.5, 8.7, 9.4, 1.0),
        ("2024-04-09", 9.4, 9.6, 9.3, 9.5, 2.0),
        ("2024-04-10", 9.5, 9.7, 9.1, 9.2, 4.0),
    ]
)


def test_weekly_bars_aggregate_weeks_dated_by_their_last_trading_day() -> None:
    expected = _daily(
        [
            ("2024-03-28", 10.0, 12.0, 9.0, 9.9, 1000.0),  # Thursday: Good Friday closed
            ("2024-04-05", 10.0, 13.5, 8.0, 8.8, 150.0),
            ("2024-04-10", 8.8, 9.7, 8.7, 9.2, 7.0),  # partial week: dated Wednesday
        ]
    )
    pd.testing.assert_frame_equal(weekly_bars(THREE_WEEKS), expected)
    # The source's row order does not change the result: bars are taken in date order.
    shuffled = THREE_WEEKS.sample(frac=1.0, random_state=7)
    pd.testing.assert_frame_equal(weekly_bars(shuffled), expected)


def test_weekly_bars_drop_empty_weeks_and_keep_missing_volume_missing() -> None:
    daily = THREE_WEEKS[THREE_WEEKS["date"].dt.month == 3].copy()  # only the first week
    later = THREE_WEEKS.tail(3).assign(volume=np.nan)  # skip a week; its volume is missing
    weekly = weekly_bars(pd.concat([daily, later], ignore_index=True))
    assert weekly["date"].tolist() == [pd.Timestamp("2024-03-28"), pd.Timestamp("2024-04-10")]
    assert weekly["volume"].iloc[0] == 1000.0
    assert np.isnan(weekly["volume"].iloc[1])


@pytest.mark.parametrize("end", [dt.date(2024, 7, 3), dt.date(2024, 7, 5), dt.date(2024, 1, 2)])
def test_weekly_bars_are_never_dated_after_the_last_daily_bar(end: dt.date) -> None:
    daily = SampleBarSource().fetch_bars("SPY", end, 300)
    weekly = weekly_bars(daily)
    assert weekly["date"].max() == daily["date"].max()
    assert weekly["date"].isin(daily["date"]).all()  # always a real trading day
    assert weekly["date"].is_monotonic_increasing and weekly["date"].is_unique
    assert weekly["volume"].sum() == daily["volume"].sum()
    assert weekly.dtypes.equals(empty_bars().dtypes)


def test_weekly_bars_of_nothing_is_an_empty_bar_frame() -> None:
    weekly = weekly_bars(empty_bars())
    assert weekly.empty
    assert weekly.dtypes.equals(empty_bars().dtypes)
