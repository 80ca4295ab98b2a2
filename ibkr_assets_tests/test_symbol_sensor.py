"""The symbol sensor adds configured symbols that resolve, caches them, and refuses unknown ones."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.definitions import build_definitions
from ibkr_assets.symbols import SymbolRegistry
from ibkr_assets_tests.helpers import STRATEGY_ID, add_symbols


def _evaluate(instance):
    defs = build_definitions()
    with dg.build_sensor_context(
        instance=instance, resources={"market_data_source": defs.resources["market_data_source"]}
    ) as context:
        return defs.resolve_sensor_def(f"{STRATEGY_ID}_symbols_sensor")(context)


def test_sensor_adds_resolved_symbols_and_refuses_unknown_ones(deployment, instance, tmp_path):
    deployment(strategy={"symbols": ["AAPL", "GOOGG", "MSFT"]})
    result = _evaluate(instance)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.dynamic_partitions_requests
    assert list(request.partition_keys) == ["AAPL", "MSFT"]
    registry = SymbolRegistry(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    assert registry.get("AAPL").source == "sample"
    assert registry.get("GOOGG") is None

    add_symbols(instance, ["AAPL", "MSFT"])
    again = _evaluate(instance)
    assert isinstance(again, dg.SkipReason)
    assert (
        "already partitions" in again.skip_message
        and "unknown symbol 'GOOGG'" in again.skip_message
    )


def test_adding_a_symbol_to_the_configuration_adds_its_partitions_without_a_restart(
    deployment, instance
):
    deployment(strategy={"symbols": ["AAPL"]})
    add_symbols(instance, ["AAPL"])
    deployment(
        strategy={"symbols": ["AAPL", "NVDA"]}
    )  # the sensor reads the configuration on every tick
    result = _evaluate(instance)
    assert list(result.dynamic_partitions_requests[0].partition_keys) == ["NVDA"]
