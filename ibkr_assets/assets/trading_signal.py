"""``trading_signal``: the analyst's proposal after the sanity checks (BUY / SELL / HOLD).

A signal carries ``decision_final``: False when its analysis failed (a fail-closed HOLD), so the
order step leaves the session undecided for a later run.
"""

import dagster as dg

from ibkr_assets.assets.defaults import by_partition, workflow_asset
from ibkr_assets.domain.indicator_set import IndicatorSet
from ibkr_assets.domain.signal import SignalRules, TradingSignal, build_signal
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource, object_ref
from ibkr_assets.strategies.config import StrategyConfig


def build_trading_signal(strategy: StrategyConfig) -> dg.AssetsDefinition:
    @workflow_asset(strategy, name="trading_signal", kinds={"pydantic"})
    def trading_signal(
        context: dg.AssetExecutionContext,
        llm_analysis: dict,
        indicators: dict[str, IndicatorSet],
        object_store: ObjectStoreResource,
        lineage: LineageResource,
        mlflow: MlflowResource,
    ) -> dg.Output[dict]:
        """BUY / SELL / HOLD with confidence, entry, stop, take-profit and R:R.

        A proposal that fails a sanity check of the strategy's ``risk`` (stop or target on the
        wrong side, R:R below the minimum, entry too far from the last close, low confidence)
        becomes HOLD with the reasons. A failed analysis gives a HOLD with
        ``decision_final=False``.
        """
        return _materialize(
            context, llm_analysis, indicators, object_store, lineage, mlflow, strategy.id,
            strategy.risk.signal_rules(),
        )  # fmt: skip

    return trading_signal


def _materialize(
    context: dg.AssetExecutionContext,
    llm_analysis: dict,
    indicators: dict[str, IndicatorSet],
    object_store: ObjectStoreResource,
    lineage: LineageResource,
    mlflow: MlflowResource,
    strategy_id: str,
    rules: SignalRules,
) -> dg.Output[dict]:
    recorder = lineage.recorder(context, "trading_signal", strategy_id)
    tracker = mlflow.get_tracker()
    values: dict[str, TradingSignal | Skipped] = {}
    mlflow_runs: dict[str, str] = {}
    for key in context.partition_keys:
        analysis, ind = llm_analysis[key], indicators[key]
        if isinstance(analysis, Skipped):
            values[key] = analysis
            recorder.add(
                key,
                status=analysis.status,
                input_data={"llm_analysis": analysis.summary()},
                output_data={
                    **analysis.summary(),
                    "object": object_ref(
                        object_store, strategy_id, "trading_signal", key, analysis
                    ),
                },
            )
            continue
        last_close = float(ind.frame["close"].iloc[-1])
        signal = build_signal(
            analysis.proposal,
            symbol=ind.symbol,
            as_of=ind.as_of,
            last_close=last_close,
            rules=rules,
            decision_final=analysis.final,
        )
        values[key] = signal
        ref = object_ref(object_store, strategy_id, "trading_signal", key, signal)
        data = signal.model_dump(mode="json")
        run_id = tracker.run_for_partition(
            strategy_id=strategy_id,
            symbol=signal.symbol,
            partition_key=key,
            execution_id=recorder.base["execution_id"],
            dagster_run_id=context.run.run_id,
        )
        tracker.log_json(run_id, "trading_signal.json", data)
        tracker.log(
            run_id,
            params={"signal_action": signal.action, "signal_confidence": signal.confidence},
            metrics={"latest_price": last_close, "confidence_score": signal.confidence},
            tags={
                "signal_action": signal.action,
                "is_actionable": str(signal.is_actionable).lower(),
                "decision_final": str(signal.decision_final).lower(),
            },
        )
        tracker.finish(run_id)
        mlflow_runs[key] = run_id
        recorder.add(
            key,
            status="success",
            input_data={
                "llm_analysis": {
                    "proposal": analysis.proposal.model_dump(mode="json"),
                    "valid": analysis.valid,
                    "final": analysis.final,
                    "error": analysis.error,
                    "cache_key": analysis.cache_key,
                },
                "last_close": last_close,
                "rules": rules.to_record(),
            },
            output_data={**data, "object": ref, "mlflow_run_id": run_id},
        )
        recorder.add_artifact(
            key,
            name=f"{signal.symbol} {signal.action} Signal {signal.as_of}",
            type="signal",
            signal_data=data,
            confidence_score=signal.confidence / 100.0,
            uri=ref["uri"],
            sha256=ref["sha256"],
            model_name=analysis.model,
            metadata={"is_actionable": signal.is_actionable, "rejections": signal.rejections},
            mlflow_run_id=run_id,
            mlflow_experiment_id=tracker.experiment_id(strategy_id, signal.symbol),
        )
    signals = [v for v in values.values() if isinstance(v, TradingSignal)]
    meta: dict = {
        "partitions": len(values),
        "actions": dg.MetadataValue.json(
            {a: sum(s.action == a for s in signals) for a in ("BUY", "SELL", "HOLD")}
        ),
        "actionable": sum(s.is_actionable for s in signals),
        "not_final": sum(not s.decision_final for s in signals),
    }
    meta |= by_partition("mlflow_run_ids", mlflow_runs, len(values))
    if len(values) == 1 and signals:
        (only,) = signals
        meta |= {
            "action": only.action,
            "confidence": only.confidence,
            "reasoning": only.reasoning,
            "decision_final": only.decision_final,
        }
        run_url = tracker.run_url(next(iter(mlflow_runs.values())))
        if run_url:
            meta["mlflow_run"] = dg.MetadataValue.url(run_url)
    return dg.Output(values, metadata=meta)
