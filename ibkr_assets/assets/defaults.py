"""What every asset of a strategy's graph has in common, in one place."""

import inspect

import dagster as dg

from ibkr_assets.partitions import strategy_partitions
from ibkr_assets.strategies.config import StrategyConfig


def workflow_asset(strategy: StrategyConfig, **kwargs):
    """``@dg.asset`` for a step of ``strategy``'s workflow.

    The asset's key is ``[strategy.id, name]`` and it sits in the strategy's group; upstream
    assets named by the function's parameters are the same strategy's. Values are stored by the
    object-store IO manager, any partition range runs as one single run, and partitions are the
    strategy's ``date|symbol`` unless ``partitions_def`` says otherwise.
    """

    def decorate(fn):
        ins = {
            name: dg.AssetIn(key=[strategy.id, name])
            for name, param in inspect.signature(fn).parameters.items()
            if name != "context" and not _is_resource(param.annotation)
        }
        for name, given in kwargs.pop("ins", {}).items():
            ins[name] = dg.AssetIn(
                key=[strategy.id, name],
                partition_mapping=given.partition_mapping,
                metadata=given.metadata,
            )
        return dg.asset(
            **{
                "key_prefix": [strategy.id],
                "group_name": strategy.id,
                "ins": ins,
                "partitions_def": strategy_partitions(strategy.id),
                "backfill_policy": dg.BackfillPolicy.single_run(),
                "io_manager_key": "object_store_io_manager",
                "code_version": "1",
                "tags": {"strategy": strategy.id},
                **kwargs,
            }
        )(fn)

    return decorate


def _is_resource(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, dg.ConfigurableResource)
