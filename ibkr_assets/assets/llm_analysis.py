"""``llm_analysis``: the analyst reads both charts and the indicators and proposes a trade.

Every analysis goes through the replay cache: the same (provider, model, template version,
prompt, images) reuses the stored response instead of paying for the call again. A range of
partitions is analysed concurrently, at most ``concurrency`` calls at a time.
"""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from ibkr_assets.assets.defaults import workflow_asset
from ibkr_assets.domain.indicator_set import IndicatorSet
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.resources.analyst import AnalystResource
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource, object_ref
from ibkr_assets.strategies.config import StrategyConfig


def build_llm_analysis(strategy: StrategyConfig) -> dg.AssetsDefinition:
    @workflow_asset(strategy, name="llm_analysis", kinds={"openai"})
    def llm_analysis(
        context: dg.AssetExecutionContext,
        indicators: dict[str, IndicatorSet],
        daily_chart: dict,
        weekly_chart: dict,
        analyst: AnalystResource,
        object_store: ObjectStoreResource,
        lineage: LineageResource,
        mlflow: MlflowResource,
    ) -> dg.Output[dict]:
        """Prompt (versioned template), response, model, tokens, cost and latency per partition.

        Anything but a valid proposal within the call's time budget (a body that is not a
        completion, malformed output, a schema violation, a refusal, a timeout, exhausted
        retries) fails closed: the proposal is HOLD, the error is kept, and the analysis is not
        ``final`` (not cached; the session's decision is taken again by a later run).
        """
        return _materialize(
            context, indicators, daily_chart, weekly_chart, analyst, object_store, lineage, mlflow,
            strategy,
        )  # fmt: skip

    return llm_analysis


def _materialize(
    context: dg.AssetExecutionContext,
    indicators: dict[str, IndicatorSet],
    daily_chart: dict,
    weekly_chart: dict,
    analyst: AnalystResource,
    object_store: ObjectStoreResource,
    lineage: LineageResource,
    mlflow: MlflowResource,
    strategy: StrategyConfig,
) -> dg.Output[dict]:
    from ibkr_assets.analysis.cache import ReplayMissError, ResponseCache, analyze
    from ibkr_assets.analysis.prompts import load_template, render_prompt
    from ibkr_assets.domain.analysis import AnalysisRequest

    strategy_id = strategy.id
    recorder = lineage.recorder(context, "llm_analysis", strategy_id)
    tracker = mlflow.get_tracker()
    chosen = analyst.analyst_for(strategy)
    template = load_template(strategy.prompt.template, strategy.prompt.version)
    cache = ResponseCache(object_store.get_store())
    values: dict = {}
    requests = {}
    for key in context.partition_keys:
        ind, daily, weekly = indicators[key], daily_chart[key], weekly_chart[key]
        if not (ind.is_tradable and daily.is_tradable and weekly.is_tradable):
            values[key] = Skipped.upstream(ind if not ind.is_tradable else daily)
            continue
        last_close = float(ind.frame["close"].iloc[-1])
        requests[key] = AnalysisRequest(
            symbol=ind.symbol,
            as_of=ind.as_of,
            template=template,
            prompt=render_prompt(
                template,
                symbol=ind.symbol,
                as_of=ind.as_of,
                indicators=ind.latest,
                last_close=last_close,
            ),
            images={"daily": daily.png, "weekly": weekly.png},
            indicators=ind.latest,
            last_close=last_close,
        )

    def run_one(key: str):
        try:
            return analyze(chosen, requests[key], cache, analyst.cache_mode)
        except ReplayMissError as exc:
            return exc

    with ThreadPoolExecutor(
        max_workers=max(1, min(analyst.concurrency, len(requests) or 1))
    ) as pool:
        outcomes = dict(zip(requests, pool.map(run_one, requests), strict=True))

    misses = {}
    for key in context.partition_keys:
        if key in values:
            skipped = values[key]
            recorder.add(
                key,
                status=skipped.status,
                input_data={"indicators": indicators[key].summary()},
                output_data={
                    **skipped.summary(),
                    "object": object_ref(object_store, strategy_id, "llm_analysis", key, skipped),
                },
            )
            continue
        request, result = requests[key], outcomes[key]
        inputs = {
            "template_id": template.id,
            "template_version": template.version,
            "template_sha256": template.sha256,
            "prompt_sha256": _sha(request.prompt.encode()),
            "images": {name: _sha(png) for name, png in request.images.items()},
            "daily_chart": daily_chart[key].summary(),
            "weekly_chart": weekly_chart[key].summary(),
            "indicators": request.indicators,
        }
        if isinstance(result, ReplayMissError):
            misses[key] = str(result)
            recorder.add(key, status="error", input_data=inputs, output_data={}, error=str(result))
            continue
        # The object is the analysis as made (the same bytes when a rerun replays it); whether
        # this execution called the model or replayed it is in its row, metadata and MLflow run.
        values[key] = result.as_made()
        ref = object_ref(object_store, strategy_id, "llm_analysis", key, values[key])
        run_id = tracker.run_for_partition(
            strategy_id=strategy_id,
            symbol=request.symbol,
            partition_key=key,
            execution_id=recorder.base["execution_id"],
            dagster_run_id=context.run.run_id,
        )
        tracker.log_text(run_id, "prompt.txt", result.prompt)
        tracker.log_text(run_id, "response.txt", result.raw_response or "")
        tracker.log(
            run_id,
            params={
                "symbol": request.symbol,
                "analyst_provider": result.provider,
                "model": result.model,
                "template_id": result.template_id,
                "template_version": result.template_version,
            },
            metrics={
                "input_tokens": result.input_tokens,
                "output_tokens": result.output_tokens,
                "cost_usd": result.cost_usd,
                "latency_ms": result.latency_ms,
            },
            tags={
                "cache_hit": str(result.cache_hit).lower(),
                "analysis_valid": str(result.valid).lower(),
                "analysis_final": str(result.final).lower(),
            },
        )
        summary = _summary(result)
        recorder.add(
            key,
            status="success",
            input_data=inputs,
            output_data={**summary, "object": ref, "mlflow_run_id": run_id},
            error=result.error,
            duration_ms=result.latency_ms,
        )
        recorder.add_artifact(
            key,
            name=f"{request.symbol} LLM Analysis {request.as_of}",
            type="llm",
            prompt=result.prompt,
            response=result.raw_response,
            model_name=result.model,
            confidence_score=result.proposal.confidence / 100.0,
            uri=ref["uri"],
            sha256=ref["sha256"],
            metadata={
                k: summary[k]
                for k in (
                    "signal_action",
                    "valid",
                    "final",
                    "error",
                    "cache_hit",
                    "cost_usd",
                    "provider",
                )
            },
            mlflow_run_id=run_id,
            mlflow_experiment_id=tracker.experiment_id(strategy_id, request.symbol),
        )
    if misses:
        raise dg.Failure(
            description="replay mode: no stored response for "
            + ", ".join(sorted(misses))
            + " (the analyst was not called)",
            metadata={"misses": dg.MetadataValue.json(misses)},
        )
    # this execution's results (cache hits, cost now), not the stored analyses as made
    analyses = [outcomes[k] for k, v in values.items() if not isinstance(v, Skipped)]
    return dg.Output(
        values,
        metadata={
            "partitions": len(values),
            "analyses": len(analyses),
            "cache_hits": sum(a.cache_hit for a in analyses),
            "invalid_responses": sum(not a.valid for a in analyses),
            "cost_usd": round(sum(a.cost_usd for a in analyses), 6),
            "provider": chosen.provider,
            "model": chosen.model,
            "template": f"{template.id} v{template.version}",
        },
    )


def _summary(result) -> dict:
    return {
        "provider": result.provider,
        "model": result.model,
        "signal_action": result.proposal.action,
        "confidence": result.proposal.confidence,
        "proposal": result.proposal.model_dump(mode="json"),
        "valid": result.valid,
        "final": result.final,
        "error": result.error,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": result.cost_usd,
        "latency_ms": result.latency_ms,
        "attempts": result.attempts,
        "cache_hit": result.cache_hit,
        "cache_key": result.cache_key,
    }


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
