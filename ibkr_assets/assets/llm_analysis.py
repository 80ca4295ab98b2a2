"""``llm_analysis``: the analyst reads both charts and the indicators and proposes a trade.

Every analysis goes through the replay cache: the same (provider, model, template version,
prompt, images) reuses the stored response instead of paying for the call again. A range of
partitions is analysed concurrently, at most ``concurrency`` calls at a time.
"""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from ibkr_assets.assets.defaults import workflow_asset
from ibkr_assets.assets.step import Step
from ibkr_assets.domain.indicator_set import IndicatorSet
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.resources.analyst import AnalystResource
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource
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
        from ibkr_assets.analysis.cache import ReplayMissError, ResponseCache, analyze
        from ibkr_assets.analysis.prompts import load_template

        step = Step.open(context, strategy.id, "llm_analysis", object_store, lineage, mlflow)
        chosen = analyst.analyst_for(strategy)
        template = load_template(strategy.prompt.template, strategy.prompt.version)
        cache = ResponseCache(object_store.get_store())
        charts = {"daily_chart": daily_chart, "weekly_chart": weekly_chart}
        requests = {k: _request(k, indicators, charts, template) for k in step.keys}

        def run_one(key: str):
            try:
                return analyze(chosen, requests[key], cache, analyst.cache_mode)
            except ReplayMissError as exc:
                return exc

        todo = [k for k, r in requests.items() if not isinstance(r, Skipped)]
        with ThreadPoolExecutor(
            max_workers=max(1, min(analyst.concurrency, len(todo) or 1))
        ) as pool:
            outcomes = dict(zip(todo, pool.map(run_one, todo), strict=True))

        def one(key: str):
            request = requests[key]
            if isinstance(request, Skipped):
                return step.skip(key, request, {"indicators": indicators[key].summary()})
            inputs = _inputs(request, template, charts, key)
            if isinstance(outcomes[key], ReplayMissError):
                step.record_error(key, inputs, str(outcomes[key]))
                return outcomes[key]
            return _record(step, key, request, outcomes[key], inputs)

        values = step.each(one)
        misses = {k: str(v) for k, v in values.items() if isinstance(v, ReplayMissError)}
        if misses:
            raise dg.Failure(
                description="replay mode: no stored response for "
                + ", ".join(sorted(misses))
                + " (the analyst was not called)",
                metadata={"misses": dg.MetadataValue.json(misses)},
            )
        # this execution's results (cache hits, cost now), not the stored analyses as made
        analyses = [outcomes[k] for k in todo]
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

    return llm_analysis


def _request(key: str, indicators: dict, charts: dict, template):
    """``key``'s analysis request, or its upstream's ``Skipped`` when there is nothing to read."""
    from ibkr_assets.analysis.prompts import render_prompt
    from ibkr_assets.domain.analysis import AnalysisRequest

    ind, daily, weekly = indicators[key], charts["daily_chart"][key], charts["weekly_chart"][key]
    if not (ind.is_tradable and daily.is_tradable and weekly.is_tradable):
        return Skipped.upstream(ind if not ind.is_tradable else daily)
    last_close = float(ind.frame["close"].iloc[-1])
    return AnalysisRequest(
        symbol=ind.symbol,
        as_of=ind.as_of,
        template=template,
        prompt=render_prompt(
            template,
            symbol=ind.symbol,
            as_of=ind.as_of,
            indicators=ind.latest,
            last_close=last_close,
        ),  # fmt: skip
        images={"daily": daily.png, "weekly": weekly.png},
        indicators=ind.latest,
        last_close=last_close,
    )


def _inputs(request, template, charts: dict, key: str) -> dict:
    return {
        "template_id": template.id,
        "template_version": template.version,
        "template_sha256": template.sha256,
        "prompt_sha256": _sha(request.prompt.encode()),
        "images": {name: _sha(png) for name, png in request.images.items()},
        "daily_chart": charts["daily_chart"][key].summary(),
        "weekly_chart": charts["weekly_chart"][key].summary(),
        "indicators": request.indicators,
    }


def _record(step: Step, key: str, request, result, inputs: dict):
    """The analysis as made (the same bytes when a rerun replays it), recorded; whether this
    execution called the model or replayed it is in its row, metadata and MLflow run."""
    value = result.as_made()
    ref = step.ref(key, value)
    run_id = step.mlflow_run(key, request.symbol)
    tracker = step.tracker
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
    step.record(key, value, status="success", input_data=inputs, output_data=summary,
                links={"mlflow_run_id": run_id}, ref=ref, error=result.error,
                duration_ms=result.latency_ms)  # fmt: skip
    step.artifact(
        key,
        ref,
        name=f"{request.symbol} LLM Analysis {request.as_of}",
        type="llm",
        prompt=result.prompt,
        response=result.raw_response,
        model_name=result.model,
        confidence_score=result.proposal.confidence / 100.0,
        metadata={k: summary[k] for k in ARTIFACT_FIELDS},
        **step.mlflow_fields(run_id, request.symbol),
    )
    return value


ARTIFACT_FIELDS = ("signal_action", "valid", "final", "error", "cache_hit", "cost_usd", "provider")


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
