"""What every asset of the graph has in common, in one place."""

import dagster as dg

from ibkr_assets.partitions import daily_symbol_partitions


def workflow_asset(**kwargs):
    """``@dg.asset`` for a step of the workflow: stored by the object-store IO manager, one
    single run for any partition range, ``date|symbol`` partitions unless ``partitions_def``
    says otherwise."""
    return dg.asset(
        **{
            "partitions_def": daily_symbol_partitions,
            "backfill_policy": dg.BackfillPolicy.single_run(),
            "io_manager_key": "object_store_io_manager",
            "code_version": "1",
            **kwargs,
        }
    )
