"""The symbol sensor adds configured symbols that resolve, caches them, and refuses unknown ones."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.definitions import build_definitions
from ibkr_assets.storage.symbol_registry import SymbolRegistry
from ibkr_assets_tests.helpers import STRATEGY_ID, add_symbols


def _evaluate(instance, defs: dg.Definitions | None = None):
    defs = defs or build_definitions()
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
    defs = build_definitions()  # loaded once, as by a running code location
    add_symbols(instance, ["AAPL"])
    deployment(strategy={"symbols": ["AAPL", "NVDA"]})  # the sensor reads the file every tick
    result = _evaluate(instance, defs)
    assert list(result.dynamic_partitions_requests[0].partition_keys) == ["NVDA"]


def test_an_invalid_edit_is_reported_and_adds_nothing(deployment, instance, tmp_path):
    deployment(strategy={"symbols": ["AAPL"]})
    defs = build_definitions()
    (tmp_path / "strategies.yaml").write_text("strategies:\n  - {id: momentum, symbolz: [AAPL]}\n")
    result = _evaluate(instance, defs)
    assert isinstance(result, dg.SkipReason)
    assert "strategies file is invalid" in result.skip_message
    assert "symbolz: unknown field" in result.skip_message
