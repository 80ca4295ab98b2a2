"""What every asset of a strategy's graph has in common, in one place."""

import functools
import inspect

import dagster as dg

from ibkr_assets.assets.code_versions import code_version
from ibkr_assets.partitions import strategy_partitions
from ibkr_assets.resources.lineage import fail_step, open_recorder
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


def records_failures(fn, asset_keys: list[dg.AssetKey]):
    """``fn`` as a step of the graph: each output carries every partition's own metadata
    (``per_partition``), and any exception is recorded as the ``error`` of every partition of
    the step (``resources.lineage.fail_step``) before the step fails."""

    def guarded(context, events):
        try:
            for item in events:
                yield per_partition(context, item) if _is_asset_output(item) else item
        except Exception as exc:
            fail_step(context.run.run_id, asset_keys, exc)
            raise

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(context, *args, **kwargs):
            yield from guarded(context, fn(context, *args, **kwargs))

        return generator

    @functools.wraps(fn)
    def function(context, *args, **kwargs):
        try:
            result = fn(context, *args, **kwargs)
        except Exception as exc:
            fail_step(context.run.run_id, asset_keys, exc)
            raise
        if inspect.isgenerator(result):  # a step that yields its outputs as they are ready
            return guarded(context, result)
        return per_partition(context, result)

    return function


def _is_asset_output(item: object) -> bool:
    """An asset's output (not an asset check's, whose value is None)."""
    return isinstance(item, dg.Output) and item.value is not None


def per_partition(context: dg.AssetExecutionContext, output: dg.Output) -> dg.Output:
    """Give each partition's materialization its own metadata (from its lineage row: status,
    error, headline values, viewer link) and, in a range run, name the output's totals
    ``run_*``: Dagster copies an output's metadata onto every partition, where a total would
    read as the partition's own value."""
    asset_key = context.asset_key_for_output(output.output_name)
    recorder = open_recorder(context.run.run_id, asset_key)
    if recorder is not None:
        for key, meta in recorder.partition_metadata().items():
            context.add_asset_metadata(meta, partition_key=key, asset_key=asset_key)
    if len(context.partition_keys) <= 1:
        return output
    totals = {k if k == "partitions" else f"run_{k}": v for k, v in output.metadata.items()}
    return dg.Output(output.value, output_name=output.output_name, metadata=totals)


def by_partition(
    name: str, values: dict[str, object], partitions: int
) -> dict[str, dg.MetadataValue]:
    """``{name: values}`` as output metadata when the run has a single partition (``partitions``
    is the step's count), else ``{name}_count``: how many entries ``values`` has.

    Dagster copies a range run's output metadata onto each partition's materialization, so a
    map over the range would make every event grow with the range (and the event log with its
    square). The rows themselves are found by run and partition.
    """
    if partitions <= 1:
        return {name: dg.MetadataValue.json(values)}
    return {f"{name}_count": dg.MetadataValue.int(len(values))}


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
