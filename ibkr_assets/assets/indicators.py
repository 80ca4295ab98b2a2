"""``indicators``: SMA, EMA, MACD, RSI, ATR, Bollinger, returns and ranges for each partition."""

import time

import dagster as dg

from ibkr_assets.assets.defaults import workflow_asset
from ibkr_assets.assets.step import Step
from ibkr_assets.domain.bars import empty_bars
from ibkr_assets.domain.indicator_set import IndicatorSet
from ibkr_assets.domain.indicators import compute_indicators, latest_values, only_indicators
from ibkr_assets.domain.market_data import MarketDataWindow
from ibkr_assets.domain.quality import window_report
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.market_data import MarketDataResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource
from ibkr_assets.strategies.config import StrategyConfig


def build_indicators(strategy: StrategyConfig) -> dg.AssetsDefinition:
    @workflow_asset(strategy, name="indicators", kinds={"pandas"})
    def indicators(
        context: dg.AssetExecutionContext,
        market_data: dict,  # MarketDataWindow, or Skipped where the source failed
        market_data_source: MarketDataResource,
        object_store: ObjectStoreResource,
        lineage: LineageResource,
        mlflow: MlflowResource,
    ) -> dg.Output[dict[str, IndicatorSet]]:
        """The strategy's indicators over the market-data window (TA-Lib definitions, in pandas).

        A partition whose market data fails a quality gate is not computed: it is recorded as
        ``blocked`` with the reason, even when the blocking checks were not part of this run.
        """
        step = Step.open(context, strategy.id, "indicators", object_store, lineage, mlflow)
        max_stale = market_data_source.max_stale_sessions

        def one(key: str) -> IndicatorSet:
            started = time.perf_counter()
            result = _indicators_for(market_data[key], strategy, max_stale)
            step.record(
                key,
                result,
                status={"ok": "success"}.get(result.status, result.status),
                input_data={"market_data": market_data[key].summary()},
                output_data=result.summary(),
                sample=result.frame,
                error=result.reason if result.status == "blocked" else None,
                duration_ms=int((time.perf_counter() - started) * 1000),
            )
            return result

        results = step.each(one)
        blocked = {k: r.reason for k, r in results.items() if r.status == "blocked"}
        if blocked:
            context.log.warning(f"indicators blocked for {len(blocked)} partition(s): {blocked}")
        return dg.Output(results, metadata=_metadata(results, blocked))

    return indicators


def _metadata(results: dict[str, IndicatorSet], blocked: dict[str, str]) -> dict:
    meta: dict = {"partitions": len(results), "blocked": dg.MetadataValue.json(blocked)}
    if len(results) == 1:
        (only,) = results.values()
        meta |= {"status": only.status, "latest": dg.MetadataValue.json(only.latest)}
    return meta


def _indicators_for(
    window: MarketDataWindow | Skipped, strategy: StrategyConfig, max_stale_sessions: int
) -> IndicatorSet:
    if isinstance(window, Skipped):  # its source failed: nothing to compute
        return IndicatorSet(window.symbol, window.as_of, empty_bars(), status="blocked",
                            reason=window.reason)  # fmt: skip
    empty = window.bars.iloc[0:0]
    if not window.is_tradable:
        return IndicatorSet(
            window.symbol, window.as_of, empty, status="market_closed", reason=window.note
        )
    calendar = strategy.schedule.calendar
    report = window_report(window, calendar=calendar, max_stale_sessions=max_stale_sessions)
    if report is not None and not report.passed:
        return IndicatorSet(
            window.symbol,
            window.as_of,
            empty,
            status="blocked",
            reason=f"quality gate failed: {report.reason()}",
        )
    frame = only_indicators(compute_indicators(window.bars), strategy.indicator_columns)
    return IndicatorSet(window.symbol, window.as_of, frame, latest=latest_values(frame))
