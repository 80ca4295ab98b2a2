"""The strategy's ``date|symbol`` partitions list the same keys as Dagster's own definition,
remembering a range's keys without missing a symbol added or removed since."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from ibkr_assets.partitions import (
    StrategyPartitionsDefinition,
    strategy_partitions,
    symbols_partition_name,
)

STRATEGY = "memo"
SYMBOLS = symbols_partition_name(STRATEGY)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SYMBOLS, ["AAPL", "MSFT", "NVDA"])
        yield instance


def _dagster_keys(partitions: dg.MultiPartitionsDefinition, key_range, instance) -> list[str]:
    plain = dg.MultiPartitionsDefinition(
        {d.name: d.partitions_def for d in partitions.partitions_defs}
    )
    return list(plain.get_partition_keys_in_range(key_range, dynamic_partitions_store=instance))


def test_range_keys_match_dagster_and_follow_symbol_changes(instance) -> None:
    partitions = strategy_partitions(STRATEGY)
    assert isinstance(partitions, StrategyPartitionsDefinition)
    key_range = dg.PartitionKeyRange("2025-06-02|AAPL", "2025-06-04|NVDA")

    first = partitions.get_partition_keys_in_range(key_range, dynamic_partitions_store=instance)
    assert first == _dagster_keys(partitions, key_range, instance)
    assert len(first) == 9 and first[0] == "2025-06-02|AAPL" and first[-1] == "2025-06-04|NVDA"
    # asked again: the same keys, and a list the caller may change without changing the next
    again = partitions.get_partition_keys_in_range(key_range, dynamic_partitions_store=instance)
    assert again == first and again is not first
    again.clear()
    assert partitions.get_partition_keys_in_range(key_range, dynamic_partitions_store=instance)

    # a symbol removed inside the range is gone at once
    instance.delete_dynamic_partition(SYMBOLS, "MSFT")
    after_delete = partitions.get_partition_keys_in_range(
        key_range, dynamic_partitions_store=instance
    )
    assert after_delete == _dagster_keys(partitions, key_range, instance)
    assert not any(key.endswith("|MSFT") for key in after_delete)


def test_ambient_store_and_no_store(instance) -> None:
    partitions = strategy_partitions(STRATEGY)
    key_range = dg.PartitionKeyRange("2025-06-02|AAPL", "2025-06-02|MSFT")
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        assert partitions.get_partition_keys_in_range(key_range) == [
            "2025-06-02|AAPL",
            "2025-06-02|MSFT",
        ]
    with dg.partition_loading_context(effective_dt=dt.datetime(2025, 6, 3)):
        with pytest.raises(Exception):  # noqa: B017 - Dagster's own error without a store
            dg.MultiPartitionsDefinition(
                {d.name: d.partitions_def for d in partitions.partitions_defs}
            ).get_partition_keys_in_range(key_range)
        with pytest.raises(Exception):  # noqa: B017 - the same as Dagster's, not a memo
            partitions.get_partition_keys_in_range(key_range)


@pytest.mark.slow
def test_per_partition_metadata_in_a_range_run(instance) -> None:
    """``add_asset_metadata`` for each partition of a range run lands on that partition."""
    partitions = strategy_partitions(STRATEGY)

    @dg.asset(partitions_def=partitions)
    def priced(context) -> None:
        for key in context.partition_keys:
            context.add_asset_metadata({"own": key}, partition_key=key)

    result = dg.materialize(
        [priced],
        instance=instance,
        tags={  # one run over the range, as ``ibkr-assets backfill`` launches it
            "dagster/asset_partition_range_start": "2025-06-02|AAPL",
            "dagster/asset_partition_range_end": "2025-06-03|NVDA",
        },
    )
    assert result.success
    own = {
        m.partition: m.metadata["own"].value
        for m in result.asset_materializations_for_node("priced")
    }
    assert len(own) == 6 and all(partition == value for partition, value in own.items())
