"""Quality gates on ``market_data``: a failed gate stops everything downstream of its partition.

Each gate of ``domain.quality.GATES`` is its own asset check, partitioned like the asset, so the
UI's Checks and Partitions tabs show which gate failed for which partition. The ``market_data``
step evaluates them on the windows it has just made and stored (no second step, no second load)
and reports one result per gate and partition. A failed gate blocks only its own partition:
``indicators`` refuses it (status ``blocked``), and the rest of a range goes on. Dagster's own
``blocking`` flag would fail the whole step, and with it every partition of the range, so the
checks are declared non-blocking and the blocking is done per partition by the graph.
"""

from collections.abc import Iterator

import dagster as dg

# The one semi-internal Dagster name the project uses: without a target materialization, a
# partition's check result is recorded but not shown as that partition's current status.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from ibkr_assets.assets.step import Step
from ibkr_assets.domain.market_data import MarketDataWindow
from ibkr_assets.domain.quality import (
    GATE_DESCRIPTIONS,
    GATES,
    validation_report,
    window_report,
)
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.partitions import strategy_partitions
from ibkr_assets.resources.io_manager import latest_materializations
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.strategies.config import StrategyConfig


def quality_check_specs(strategy: StrategyConfig) -> list[dg.AssetCheckSpec]:
    """The gates as blocking checks of ``strategy``'s ``market_data``, one spec per gate."""
    asset_key = dg.AssetKey([strategy.id, "market_data"])
    return [
        dg.AssetCheckSpec(
            name=gate,
            asset=asset_key,
            description=f"{GATE_DESCRIPTIONS[gate]} (a failure blocks its partition downstream)",
            blocking=False,
            partitions_def=strategy_partitions(strategy.id),
        )
        for gate in GATES
    ]


def quality_check_results(
    context: dg.AssetExecutionContext,
    market_data: dict[str, MarketDataWindow | Skipped],
    strategy: StrategyConfig,
    max_stale_sessions: int,
    lineage: LineageResource,
    mlflow: MlflowResource,
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Each gate's verdict for each partition, aimed at the materialization just stored; each
    partition's report as a lineage row, and as a validation report (every gate, pass or fail,
    the bars that failed) in its MLflow run with a ``validation`` artifact row. A partition
    without bars (its source failed) fails ``required_columns`` with the source's error; a
    market-closed one is not checked."""
    strategy_id, calendar = strategy.id, strategy.schedule.calendar
    asset_key = dg.AssetKey([strategy_id, "market_data"])
    step = Step.open(context, strategy_id, "market_data", None, lineage, mlflow,
                     step="market_data_quality")  # fmt: skip
    stored = latest_materializations(context.instance, asset_key, list(market_data))
    failed_by_gate: dict[str, int] = dict.fromkeys(GATES, 0)
    reports = {
        key: window_report(window, calendar=calendar, max_stale_sessions=max_stale_sessions)
        for key, window in market_data.items()
    }
    step.validation_reports(
        {key: validation_report(w, reports[key], key) for key, w in market_data.items()}
    )
    for key, window in market_data.items():
        report = reports[key]
        target = _target(stored.get(key), context.run.run_id)
        if isinstance(window, Skipped):
            failed_by_gate["required_columns"] += 1
            step.row(key, status="error", input_data={"market_data": window.summary()},
                     output_data={"passed": False}, error=window.reason)  # fmt: skip
            yield _evaluation(asset_key, "required_columns", key, target, False,
                              f"no bars to check: {window.reason}")  # fmt: skip
            continue
        if report is None:
            step.row(
                key,
                status="market_closed",
                input_data={"market_data": window.summary()},
                output_data={"passed": True, "note": window.note},
            )
            continue
        step.row(
            key,
            status="success" if report.passed else "error",
            input_data={"market_data": window.summary()},
            output_data=report.to_json(),
            error=None if report.passed else report.reason(),
        )
        for gate in report.gates:
            failed_by_gate[gate.name] += not gate.passed
            detail = gate.detail if not gate.passed else GATE_DESCRIPTIONS[gate.name]
            yield _evaluation(asset_key, gate.name, key, target, gate.passed, detail,
                              gate.examples)  # fmt: skip
    step.recorder.flush()
    failed = {g: n for g, n in failed_by_gate.items() if n}
    if failed:
        context.log.warning(f"quality gates failed (partitions per gate): {failed}")
    for gate in GATES:  # each check's output; its results are the evaluations above
        check_key = dg.AssetCheckKey(asset_key, gate)
        yield dg.Output(
            None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key)
        )


def _target(record, run_id: str) -> AssetCheckEvaluationTargetMaterializationData | None:
    if record is None or record.run_id != run_id:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )


def _evaluation(asset_key, gate, key, target, passed, detail, examples=()):
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=gate,
        passed=passed,
        partition=key,
        severity=dg.AssetCheckSeverity.ERROR,
        description=detail,
        metadata={"examples": dg.MetadataValue.json(list(examples))} if examples else {},
        target_materialization_data=target,
        blocking=False,
    )
