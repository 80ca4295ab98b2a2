"""Each quality gate catches its own kind of bad data and passes clean data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ibkr_assets.domain.quality import GATES, validate_window
from ibkr_assets.sources.sample import SampleBarSource

AS_OF = dt.date(2025, 3, 14)


@pytest.fixture
def clean() -> pd.DataFrame:
    return SampleBarSource().fetch_bars("AAPL", AS_OF, 60)


def failed(bars: pd.DataFrame, as_of: dt.date = AS_OF) -> set[str]:
    return {g.name for g in validate_window(bars, as_of=as_of).failures}


def test_clean_sample_window_passes_every_gate(clean):
    report = validate_window(clean, as_of=AS_OF)
    assert report.passed, report.reason()
    assert [g.name for g in report.gates] == list(GATES)


def test_missing_value_fails_no_nulls_and_names_the_column(clean):
    clean.loc[10, "close"] = np.nan
    report = validate_window(clean, as_of=AS_OF)
    assert "no_nulls" in {g.name for g in report.failures}
    assert "close=1" in report.reason()


def test_non_positive_price_fails(clean):
    clean.loc[5, "low"] = 0.0
    assert "positive_prices" in failed(clean)


def test_high_below_low_fails_ohlc_consistency(clean):
    clean.loc[7, ["high", "low"]] = clean.loc[7, ["low", "high"]].to_numpy()
    assert failed(clean) == {"ohlc_consistent"}


def test_close_outside_the_range_fails_ohlc_consistency(clean):
    clean.loc[8, "close"] = clean.loc[8, "high"] * 1.05
    assert failed(clean) == {"ohlc_consistent"}


def test_a_missing_price_is_only_a_null_and_examples_name_the_bad_row(clean):
    clean.loc[10, "close"] = np.nan
    clean.loc[12, "open"] = clean.loc[12, "high"] * 1.1
    report = validate_window(clean, as_of=AS_OF)
    assert {g.name for g in report.failures} == {"no_nulls", "ohlc_consistent"}
    ohlc = next(g for g in report.failures if g.name == "ohlc_consistent")
    assert ohlc.detail.startswith("1 row(s)") and ohlc.examples[0].startswith("row 12: ")


def test_negative_volume_fails(clean):
    clean.loc[3, "volume"] = -1
    assert failed(clean) == {"non_negative_volume"}


def test_duplicate_date_fails_strict_order(clean):
    clean.loc[20, "date"] = clean.loc[19, "date"]
    assert "dates_strictly_increasing" in failed(clean)


def test_missing_session_fails_the_calendar_gap_gate_and_names_the_day(clean):
    dropped = clean.loc[30, "date"].date()
    report = validate_window(clean.drop(index=30).reset_index(drop=True), as_of=AS_OF)
    gaps = [g for g in report.failures if g.name == "no_calendar_gaps"]
    assert gaps and dropped.isoformat() in gaps[0].examples


def test_holiday_is_not_a_gap():
    bars = SampleBarSource().fetch_bars("AAPL", dt.date(2025, 7, 10), 10)  # spans July 4th
    assert validate_window(bars, as_of=dt.date(2025, 7, 10)).passed


def test_window_ending_before_the_partition_session_is_stale(clean):
    report = validate_window(clean, as_of=dt.date(2025, 3, 18))
    assert {g.name for g in report.failures} == {"not_stale"}
    assert "2 session(s) before 2025-03-18" in report.reason()


def test_missing_column_fails_required_columns(clean):
    report = validate_window(clean.drop(columns=["volume"]), as_of=AS_OF)
    assert not report.passed
    assert report.failures[0].name == "required_columns"


def test_empty_window_fails():
    empty = SampleBarSource().fetch_bars("AAPL", dt.date(2010, 1, 4), 10)
    assert empty.empty
    assert not validate_window(empty, as_of=dt.date(2010, 1, 4)).passed
