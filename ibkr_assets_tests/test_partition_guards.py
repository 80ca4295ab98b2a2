"""Partitions no source may answer: a symbol the strategy does not list, a session still open."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ibkr_assets.domain.calendar import last_closed_session, session_has_closed
from ibkr_assets.resources.market_data import MarketDataResource, check_partition
from ibkr_assets.sources.base import SessionNotClosedError, SymbolNotInStrategyError
from ibkr_assets.sources.sample import SampleBarSource
from ibkr_assets.strategies.config import load_strategies
from ibkr_assets_tests.helpers import failure_messages, run_partitions

NEW_YORK = ZoneInfo("America/New_York")


def _ny(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=NEW_YORK)


def _momentum():
    return next(s for s in load_strategies() if s.id == "momentum")


def test_a_symbol_outside_the_strategy_fails_market_data_and_writes_no_object(
    deployment, instance, tmp_path
):
    deployment()  # the packaged strategy: momentum on AAPL, MSFT, NVDA (TSLA has sample data)
    result = run_partitions(instance, symbol="TSLA", start="2025-03-14")
    assert not result.success
    assert any(
        "'TSLA' is not a symbol of strategy 'momentum' (its symbols: AAPL, MSFT, NVDA)" in m
        for m in failure_messages(result)
    )
    assert not result.asset_materializations_for_node("momentum__market_data")
    written = (tmp_path / "home").rglob("*TSLA*")
    assert not list(written), "no object, no folder for the refused symbol"


def test_the_guard_refuses_before_the_source_is_read(deployment, tmp_path):
    deployment()
    # A csv folder that does not exist: reading it would be a SourceUnavailableError.
    resource = MarketDataResource(csv_dir=str(tmp_path / "missing"))
    momentum = _momentum()
    csv = momentum.market_data.model_copy(update={"source": "csv"})
    strategy = momentum.model_copy(update={"market_data": csv})
    source = resource.source_for(strategy)
    with pytest.raises(SymbolNotInStrategyError, match="its symbols: AAPL, MSFT, NVDA"):
        source.fetch_bars("TSLA", dt.date(2025, 3, 14), 5)


def test_a_symbol_added_to_the_strategies_file_since_load_is_accepted(deployment):
    deployment(strategy={"symbols": ["AAPL"]})
    loaded = _momentum()
    with pytest.raises(SymbolNotInStrategyError):
        check_partition(loaded, "MSFT", dt.date(2025, 3, 14))
    deployment(strategy={"symbols": ["AAPL", "MSFT"]})  # the sensor adds it as a partition
    check_partition(loaded, "MSFT", dt.date(2025, 3, 14))


def test_todays_session_is_refused_until_the_exchange_closes(deployment):
    deployment()
    strategy, day = _momentum(), dt.date(2025, 3, 14)
    with pytest.raises(SessionNotClosedError, match=r"XNYS session of 2025-03-14 .* 16:00 EDT"):
        check_partition(strategy, "AAPL", day, now=_ny("2025-03-14T15:59"))
    check_partition(strategy, "AAPL", day, now=_ny("2025-03-14T16:00"))
    # The day after Thanksgiving closes at 13:00.
    assert session_has_closed(dt.date(2025, 11, 28), "XNYS", _ny("2025-11-28T13:00"))
    assert not session_has_closed(dt.date(2025, 11, 28), "XNYS", _ny("2025-11-28T12:59"))


def test_a_session_still_open_is_refused_by_the_strategys_resource(deployment):
    deployment()
    source = MarketDataResource().source_for(_momentum())
    next_week = last_closed_session("XNYS") + dt.timedelta(days=8)
    with pytest.raises(SessionNotClosedError, match="has not closed yet"):
        source.fetch_bars("AAPL", next_week, 5)


def test_the_sample_source_never_invents_a_bar_for_an_open_session():
    during = SampleBarSource(clock=lambda: _ny("2025-03-14T11:00"))
    with pytest.raises(SessionNotClosedError, match="no bar for 'AAPL' on 2025-03-14"):
        during.fetch_bars("AAPL", dt.date(2025, 3, 14), 5)
    after = SampleBarSource(clock=lambda: _ny("2025-03-14T16:05"))
    assert after.fetch_bars("AAPL", dt.date(2025, 3, 14), 5)["date"].iloc[-1].date() == dt.date(
        2025, 3, 14
    )
    with pytest.raises(SessionNotClosedError):  # the real clock: next week has not closed
        SampleBarSource().fetch_bars("AAPL", dt.date.today() + dt.timedelta(days=8), 5)


def test_last_closed_session_before_and_after_the_close():
    assert last_closed_session("XNYS", _ny("2025-03-14T15:00")) == dt.date(2025, 3, 13)
    assert last_closed_session("XNYS", _ny("2025-03-14T16:30")) == dt.date(2025, 3, 14)
    assert last_closed_session("XNYS", _ny("2025-03-16T10:00")) == dt.date(2025, 3, 14)
