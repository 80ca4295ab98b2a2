"""Sensors."""

import dagster as dg

from ibkr_assets.partitions import SYMBOLS_PARTITION_NAME
from ibkr_assets.settings import load_settings


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def symbol_partitions_sensor(
    context: dg.SensorEvaluationContext,
) -> dg.SensorResult | dg.SkipReason:
    """Adds every configured symbol (``IBKR_ASSETS_SYMBOLS``) to the ``symbols`` partitions.

    Only adds: a symbol removed from the configuration keeps its history.
    """
    wanted = load_settings().symbols
    have = set(context.instance.get_dynamic_partitions(SYMBOLS_PARTITION_NAME))
    new = [s for s in wanted if s not in have]
    if not new:
        return dg.SkipReason(f"all {len(wanted)} configured symbols are already partitions")
    return dg.SensorResult(
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(SYMBOLS_PARTITION_NAME, new)]
    )
