"""The sample and CSV sources: deterministic, no look-ahead, clear errors on bad input."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ibkr_assets.domain.bars import BAR_COLUMNS, BarFormatError
from ibkr_assets.domain.calendar import is_session
from ibkr_assets.sources.base import UnknownSymbolError
from ibkr_assets.sources.csv_folder import CsvFolderSource
from ibkr_assets.sources.sample import SampleBarSource


def test_sample_bars_are_deterministic_and_end_at_the_requested_date():
    source = SampleBarSource()
    first = source.fetch_bars("AAPL", dt.date(2025, 3, 14), 50)
    second = SampleBarSource().fetch_bars("AAPL", dt.date(2025, 3, 14), 50)
    pd.testing.assert_frame_equal(first, second)
    assert list(first.columns) == BAR_COLUMNS
    assert len(first) == 50
    assert first["date"].max() == pd.Timestamp("2025-03-14")


def test_sample_window_for_an_earlier_date_is_a_prefix_of_a_later_one():
    """A later request never changes an earlier bar: what a past decision saw is reproducible."""
    source = SampleBarSource()
    early = source.fetch_bars("MSFT", dt.date(2025, 2, 3), 30)
    late = source.fetch_bars("MSFT", dt.date(2025, 6, 2), 200)
    overlap = late[late["date"].isin(early["date"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(early, overlap)


def test_sample_source_skips_exchange_holidays():
    bars = SampleBarSource().fetch_bars("NVDA", dt.date(2025, 7, 10), 10)
    assert pd.Timestamp("2025-07-04") not in set(bars["date"])
    assert all(is_session(d.date()) for d in bars["date"])


def test_sample_source_refuses_an_unknown_symbol_with_a_clear_message():
    with pytest.raises(UnknownSymbolError, match="unknown symbol 'GOOGG' for the sample source"):
        SampleBarSource().fetch_bars("GOOGG", dt.date(2025, 1, 2), 10)


def _write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def test_csv_source_reads_any_header_case_and_ignores_adj_close(tmp_path):
    _write(
        tmp_path,
        "AAPL.csv",
        "DATE,open,HIGH,Low,Close,Adj Close,VOLUME\n"
        "2025-01-02,10,11,9,10.5,10.4,1000\n"
        "2025-01-03,10.5,12,10,11.5,11.4,2000\n",
    )
    bars = CsvFolderSource(tmp_path).fetch_bars("AAPL", dt.date(2025, 1, 3), 10)
    assert list(bars.columns) == BAR_COLUMNS
    assert bars["close"].tolist() == [10.5, 11.5]
    assert bars["date"].tolist() == [pd.Timestamp("2025-01-02"), pd.Timestamp("2025-01-03")]


def test_csv_source_never_returns_a_bar_after_the_end_date(tmp_path):
    rows = "\n".join(f"2025-01-{d:02d},10,11,9,10,100" for d in (2, 3, 6, 7, 8))
    _write(tmp_path, "MSFT.csv", "Date,Open,High,Low,Close,Volume\n" + rows + "\n")
    bars = CsvFolderSource(tmp_path).fetch_bars("MSFT", dt.date(2025, 1, 6), 10)
    assert bars["date"].max() == pd.Timestamp("2025-01-06")
    assert len(bars) == 3


def test_csv_bad_values_become_missing_values_not_a_crash(tmp_path):
    _write(
        tmp_path,
        "BAD.csv",
        "Date,Open,High,Low,Close,Volume\n2025-01-02,10,11,9,10,100\n2025-01-03,n/a,11,9,10,100\n",
    )
    bars = CsvFolderSource(tmp_path).fetch_bars("BAD", dt.date(2025, 1, 3), 10)
    assert len(bars) == 2
    assert bars["open"].isna().tolist() == [False, True]


def test_csv_unknown_symbol_names_the_file_and_folder(tmp_path):
    with pytest.raises(UnknownSymbolError, match=r"no GOOGG.csv in .*"):
        CsvFolderSource(tmp_path).fetch_bars("GOOGG", dt.date(2025, 1, 3), 10)


def test_csv_missing_column_is_a_format_error_naming_the_file(tmp_path):
    _write(tmp_path, "X.csv", "Date,Open,High,Low,Close\n2025-01-02,1,2,0.5,1\n")
    with pytest.raises(BarFormatError, match=r"X.csv: missing column\(s\) volume"):
        CsvFolderSource(tmp_path).fetch_bars("X", dt.date(2025, 1, 3), 10)


def test_sample_bars_do_not_depend_on_how_far_ahead_they_were_generated():
    """Bars for 2025 must be the same whether the request ends in 2025 or in 2026."""
    source = SampleBarSource()
    in_2025 = source.fetch_bars("TSLA", dt.date(2025, 12, 31), 300)
    in_2026 = source.fetch_bars("TSLA", dt.date(2026, 3, 2), 400)
    overlap = in_2026[in_2026["date"].isin(in_2025["date"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(in_2025, overlap)
