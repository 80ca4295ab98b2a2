"""``daily_chart`` and ``weekly_chart``: mplfinance PNGs of the indicator window.

Both come from one factory; the weekly chart resamples the daily window to weeks ending Friday
(dated by their last session, so a partial week never looks ahead). A range of partitions is
drawn in a process pool across the machine's cores.
"""

import base64

import dagster as dg

from ibkr_assets.assets.defaults import workflow_asset
from ibkr_assets.domain.bars import BAR_COLUMNS
from ibkr_assets.domain.chart_image import ChartImage
from ibkr_assets.domain.indicator_set import IndicatorSet
from ibkr_assets.domain.indicators import compute_indicators, only_indicators
from ibkr_assets.domain.resample import weekly_bars
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.resources.charts import ChartsResource
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource, object_ref
from ibkr_assets.strategies.config import StrategyConfig


def _frame_for(timeframe: str, indicators: IndicatorSet, wanted: list[str]):
    if timeframe == "daily":
        return indicators.frame
    return only_indicators(compute_indicators(weekly_bars(indicators.frame[BAR_COLUMNS])), wanted)


def build_chart_asset(strategy: StrategyConfig, timeframe: str) -> dg.AssetsDefinition:
    name = f"{timeframe}_chart"

    @workflow_asset(
        strategy,
        name=name,
        kinds={"matplotlib"},
        description=f"{timeframe.capitalize()} candlestick chart with volume, SMA20/50, Bollinger, RSI and MACD panels.",
    )
    def _chart(
        context: dg.AssetExecutionContext,
        indicators: dict[str, IndicatorSet],
        charts: ChartsResource,
        object_store: ObjectStoreResource,
        lineage: LineageResource,
        mlflow: MlflowResource,
    ) -> dg.Output[dict]:
        from ibkr_assets.charts.render import ChartSpec, render_many

        recorder = lineage.recorder(context, name, strategy.id)
        tracker = mlflow.get_tracker()
        values: dict[str, ChartImage | Skipped] = {}
        jobs, keys = [], []
        for key in context.partition_keys:
            ind = indicators[key]
            if not ind.is_tradable:
                values[key] = Skipped.upstream(ind)
                continue
            spec = ChartSpec(
                symbol=ind.symbol,
                as_of=ind.as_of,
                timeframe=timeframe,
                bars_shown=charts.bars_shown,
                width_px=charts.width_px,
                height_px=charts.height_px,
            )
            jobs.append((_frame_for(timeframe, ind, strategy.indicator_columns), spec))
            keys.append(key)
        rendered = render_many(jobs, workers=charts.workers)
        for key, chart in zip(keys, rendered, strict=True):
            ind = indicators[key]
            values[key] = ChartImage(
                ind.symbol,
                ind.as_of,
                timeframe,
                chart.png,
                chart.bars_count,
                list(chart.indicators),
            )
        refs: dict[str, dict] = {}
        for key in context.partition_keys:
            value = values[key]
            ref = refs[key] = object_ref(object_store, strategy.id, name, key, value)
            output = {**value.summary(), "object": ref}
            if isinstance(value, ChartImage):
                run_id = tracker.run_for_partition(
                    strategy_id=strategy.id,
                    symbol=value.symbol,
                    partition_key=key,
                    execution_id=recorder.base["execution_id"],
                    dagster_run_id=context.run.run_id,
                )
                tracker.log_bytes(run_id, f"{name}.png", value.png)
                output["mlflow_run_id"] = run_id
                recorder.add_artifact(
                    key,
                    name=f"{value.symbol} {timeframe.capitalize()} Chart {value.as_of}",
                    type="chart",
                    image_path=ref["uri"],
                    uri=ref["uri"],
                    sha256=ref["sha256"],
                    chart_data={
                        "indicators": value.indicators,
                        "timeframe": timeframe,
                        "bars_count": value.bars_count,
                    },
                    mlflow_run_id=run_id,
                    mlflow_experiment_id=tracker.experiment_id(strategy.id, value.symbol),
                )
            recorder.add(
                key,
                status="success" if isinstance(value, ChartImage) else value.status,
                input_data={"indicators": indicators[key].summary()},
                output_data=output,
            )
        row_ids = recorder.flush()
        return dg.Output(values, metadata=_metadata(values, row_ids, refs, name))

    return _chart


def _metadata(values, row_ids, refs, name) -> dict:
    meta: dict = {
        "partitions": len(values),
        "charts": sum(isinstance(v, ChartImage) for v in values.values()),
        "lineage_row_ids": dg.MetadataValue.json(row_ids),
    }
    if len(values) == 1:
        ((key, value),) = values.items()
        if isinstance(value, ChartImage):
            encoded = base64.b64encode(value.png).decode()
            meta["chart"] = dg.MetadataValue.md(f"![{name} {key}](data:image/png;base64,{encoded})")
            meta["image_uri"] = dg.MetadataValue.url(refs[key]["uri"])
    return meta
