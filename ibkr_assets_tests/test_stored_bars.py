"""Market data windows read back from their stored JSON rows are the bars that were written."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ibkr_assets.domain.bars import BAR_COLUMNS, normalize_bars
from ibkr_assets.domain.market_data import bars_to_rows, rows_to_bars, rows_to_frame
from ibkr_assets.sources.sample import SampleBarSource


def _reference(columns, rows) -> pd.DataFrame:
    """The slow path every stored window used to take."""
    return normalize_bars(rows_to_frame(columns, rows), origin="stored market_data")


def test_a_written_window_reads_back_equal():
    bars = SampleBarSource("XNYS").fetch_bars("AAPL", dt.date(2025, 6, 30), 200)
    rows = bars_to_rows(bars)
    read = rows_to_bars(BAR_COLUMNS, rows)
    pd.testing.assert_frame_equal(read, bars.reset_index(drop=True))
    pd.testing.assert_frame_equal(read, _reference(BAR_COLUMNS, rows))


@pytest.mark.parametrize(
    "rows",
    [
        [["2025-01-02", 1.0, 2.0, 0.5, 1.5, 100.0], [None, None, 2.0, 0.5, None, 100.0]],
        [["2025/01/02", 1.0, 2.0, 0.5, 1.5, 100.0], ["2025-01-03", 1.0, 2.0, 0.5, 1.5, 9.0]],
        [["2025-01-02T15:30:00", 1.0, 2.0, 0.5, 1.5, 100.0]],
        [["not a date", "x", 2.0, 0.5, 1.5, 100.0]],
        [],
    ],
    ids=["nulls", "other-date-format", "time-of-day", "unreadable", "empty"],
)
def test_hand_edited_rows_read_as_before(rows):
    read = rows_to_bars(BAR_COLUMNS, rows)
    pd.testing.assert_frame_equal(read, _reference(BAR_COLUMNS, rows))
    assert read["date"].dtype == "datetime64[ns]"
    assert all(read[c].dtype == np.float64 for c in BAR_COLUMNS[1:])


def test_other_date_formats_still_parse():
    rows = [["2025/01/02", 1.0, 2.0, 0.5, 1.5, 100.0], ["2025/01/03", 1, 2, 0.5, 1.5, 9]]
    read = rows_to_bars(BAR_COLUMNS, rows)
    assert list(read["date"]) == [pd.Timestamp("2025-01-02"), pd.Timestamp("2025-01-03")]
    timed = rows_to_bars(BAR_COLUMNS, [["2025-01-03T15:30:00", 1, 2, 0.5, 1.5, 9]])
    assert list(timed["date"]) == [pd.Timestamp("2025-01-03")]  # bars are dated by session
