"""``trading_signal``: the analyst's proposal after the sanity checks (BUY / SELL / HOLD).

A signal carries ``decision_final``: False when its analysis failed (a fail-closed HOLD), so the
order step leaves the session undecided for a later run.
"""

import dagster as dg

from ibkr_assets.assets.defaults import workflow_asset
from ibkr_assets.assets.step import Step, by_partition
from ibkr_assets.domain.indicator_set import IndicatorSet
from ibkr_assets.domain.signal import SignalRules, TradingSignal, build_signal
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource
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
        step = Step.open(context, strategy.id, "trading_signal", object_store, lineage, mlflow)
        rules = strategy.risk.signal_rules()
        mlflow_runs: dict[str, str] = {}

        def one(key: str) -> TradingSignal | Skipped:
            analysis = llm_analysis[key]
            if isinstance(analysis, Skipped):
                return step.skip(key, analysis, {"llm_analysis": analysis.summary()})
            signal, mlflow_runs[key] = _record(step, key, analysis, indicators[key], rules)
            return signal

        values = step.each(one)
        return dg.Output(values, metadata=_metadata(step, values, mlflow_runs))

    return trading_signal


def _record(
    step: Step, key: str, analysis, ind: IndicatorSet, rules: SignalRules
) -> tuple[TradingSignal, str]:
    """The signal of ``analysis``, recorded: object, MLflow run, lineage and artifact rows."""
    last_close = float(ind.frame["close"].iloc[-1])
    signal = build_signal(
        analysis.proposal,
        symbol=ind.symbol,
        as_of=ind.as_of,
        last_close=last_close,
        rules=rules,
        decision_final=analysis.final,
    )
    ref = step.ref(key, signal)
    data = signal.model_dump(mode="json")
    run_id = step.mlflow_run(key, signal.symbol)
    tracker = step.tracker
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
    inputs = {
        "llm_analysis": {
            "proposal": analysis.proposal.model_dump(mode="json"),
            "valid": analysis.valid,
            "final": analysis.final,
            "error": analysis.error,
            "cache_key": analysis.cache_key,
        },
        "last_close": last_close,
        "rules": rules.to_record(),
    }
    step.record(key, signal, status="success", input_data=inputs, output_data=data,
                links={"mlflow_run_id": run_id}, ref=ref)  # fmt: skip
    step.artifact(
        key,
        ref,
        name=f"{signal.symbol} {signal.action} Signal {signal.as_of}",
        type="signal",
        signal_data=data,
        confidence_score=signal.confidence / 100.0,
        model_name=analysis.model,
        metadata={"is_actionable": signal.is_actionable, "rejections": signal.rejections},
        **step.mlflow_fields(run_id, signal.symbol),
    )
    return signal, run_id


def _metadata(step: Step, values: dict, mlflow_runs: dict[str, str]) -> dict:
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
        run_url = step.tracker.run_url(next(iter(mlflow_runs.values())))
        if run_url:
            meta["mlflow_run"] = dg.MetadataValue.url(run_url)
    return meta
