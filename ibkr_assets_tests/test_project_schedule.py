"""The project's after-close schedule requests every symbol partition for the closed session."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from ibkr_assets.definitions import build_definitions
from ibkr_assets_tests.helpers import STRATEGY_ID, add_symbols, key

NY = ZoneInfo("America/New_York")


def _tick(instance, when: dt.datetime, defs: dg.Definitions | None = None):
    defs = defs or build_definitions()
    schedule = defs.resolve_schedule_def(f"{STRATEGY_ID}_after_close")
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
    ) as context:
        return schedule.evaluate_tick(context)


def test_after_close_requests_each_symbol_partition_including_ones_added_later(
    deployment, instance
):
    deployment()
    add_symbols(instance, ["AAPL", "MSFT"])
    data = _tick(instance, dt.datetime(2025, 3, 14, 16, 30, tzinfo=NY))
    assert sorted(r.partition_key for r in data.run_requests) == [
        "2025-03-14|AAPL",
        "2025-03-14|MSFT",
    ]
    add_symbols(instance, ["NVDA"])  # the sensor added a symbol: no restart needed
    data = _tick(instance, dt.datetime(2025, 3, 17, 16, 30, tzinfo=NY))
    assert sorted(r.partition_key for r in data.run_requests) == [
        "2025-03-17|AAPL", "2025-03-17|MSFT", "2025-03-17|NVDA",
    ]  # fmt: skip


def test_after_close_skips_exchange_holidays(deployment, instance):
    deployment()
    add_symbols(instance, ["AAPL"])
    data = _tick(instance, dt.datetime(2025, 7, 4, 16, 30, tzinfo=NY))
    assert not data.run_requests
    assert "holiday" in data.skip_message


def test_portfolio_follows_orders_through_a_running_automation_sensor(deployment):
    deployment()
    defs = build_definitions()
    sensor = defs.resolve_sensor_def("portfolio_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    assert sensor.asset_selection.resolve(graph) == {key("portfolio_snapshot")}
    assert graph.get(key("portfolio_snapshot")).automation_condition is not None


def test_a_symbol_removed_from_the_file_is_no_longer_scheduled(deployment, instance):
    deployment(strategy={"symbols": ["AAPL", "MSFT"]})
    defs = build_definitions()  # loaded once, as by a running code location
    add_symbols(instance, ["AAPL", "MSFT"])
    deployment(strategy={"symbols": ["AAPL"]})  # read at every tick: no restart
    data = _tick(instance, dt.datetime(2025, 3, 14, 16, 30, tzinfo=NY), defs)
    assert [r.partition_key for r in data.run_requests] == ["2025-03-14|AAPL"]


def test_an_invalid_edit_keeps_the_loaded_symbols_scheduled(deployment, instance, tmp_path):
    deployment(strategy={"symbols": ["AAPL", "MSFT"]})
    defs = build_definitions()
    add_symbols(instance, ["AAPL", "MSFT"])
    (tmp_path / "strategies.yaml").write_text("strategies: [{id: momentum, symbols: []}]\n")
    data = _tick(instance, dt.datetime(2025, 3, 14, 16, 30, tzinfo=NY), defs)
    assert sorted(r.partition_key for r in data.run_requests) == [
        "2025-03-14|AAPL",
        "2025-03-14|MSFT",
    ]
