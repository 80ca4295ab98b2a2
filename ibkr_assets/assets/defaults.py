"""What every asset of a strategy's graph has in common, in one place."""

import inspect

import dagster as dg

from ibkr_assets.assets.code_versions import code_version
from ibkr_assets.assets.step import records_failures
from ibkr_assets.partitions import strategy_partitions
from ibkr_assets.strategies.config import StrategyConfig

IO_MANAGER_KEY = "object_store_io_manager"


def workflow_asset(strategy: StrategyConfig, **kwargs):
    """``@dg.asset`` for a step of ``strategy``'s workflow.

    The asset's key is ``[strategy.id, name]`` and it sits in the strategy's group; upstream
    assets named by the function's parameters are the same strategy's. Values are stored by the
    object-store IO manager, any partition range runs as one single run, and partitions are the
    strategy's ``date|symbol`` unless ``partitions_def`` says otherwise.
    """

    def decorate(fn):
        name = kwargs.get("name", fn.__name__)
        return dg.asset(
            **{
                "key_prefix": [strategy.id],
                "group_name": strategy.id,
                "ins": _strategy_ins(strategy, fn, kwargs.pop("ins", {})),
                "partitions_def": strategy_partitions(strategy.id),
                "backfill_policy": dg.BackfillPolicy.single_run(),
                "io_manager_key": IO_MANAGER_KEY,
                "code_version": _code_version(strategy, name),
                "tags": {"strategy": strategy.id},
                **kwargs,
            }
        )(records_failures(fn, [dg.AssetKey([strategy.id, name])]))

    return decorate


def workflow_multi_asset(strategy: StrategyConfig, name: str, outs: dict[str, dict]):
    """``@dg.multi_asset`` for a step that makes several of ``strategy``'s assets at once
    (``outs``: asset name -> ``AssetOut`` arguments), with ``workflow_asset``'s defaults."""

    def decorate(fn):
        return dg.multi_asset(
            name=f"{strategy.id}__{name}",
            outs={
                out: dg.AssetOut(
                    key=[strategy.id, out],
                    group_name=strategy.id,
                    io_manager_key=IO_MANAGER_KEY,
                    code_version=_code_version(strategy, out),
                    tags={"strategy": strategy.id},
                    **given,
                )
                for out, given in outs.items()
            },
            ins=_strategy_ins(strategy, fn, {}),
            partitions_def=strategy_partitions(strategy.id),
            backfill_policy=dg.BackfillPolicy.single_run(),
            can_subset=False,
        )(records_failures(fn, [dg.AssetKey([strategy.id, out]) for out in outs]))

    return decorate


def book_pool(strategy: StrategyConfig) -> str:
    """The Dagster pool of the steps that write ``strategy``'s book (order, portfolio)."""
    return f"{strategy.id}_book"


def _code_version(strategy: StrategyConfig, asset: str) -> str:
    prompt = f"{strategy.prompt.template}@{strategy.prompt.version or 'latest'}"
    return code_version(asset, prompt if asset == "llm_analysis" else "")


def _strategy_ins(strategy: StrategyConfig, fn, given: dict[str, dg.AssetIn]) -> dict:
    """Every parameter that is not the context or a resource is the same strategy's asset."""
    ins = {
        name: dg.AssetIn(key=[strategy.id, name])
        for name, param in inspect.signature(fn).parameters.items()
        if name != "context" and not _is_resource(param.annotation)
    }
    for name, asset_in in given.items():
        ins[name] = dg.AssetIn(
            key=[strategy.id, name],
            partition_mapping=asset_in.partition_mapping,
            metadata=asset_in.metadata,
        )
    return ins


def _is_resource(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, dg.ConfigurableResource)
