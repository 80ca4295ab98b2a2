"""``daily_chart`` and ``weekly_chart``: mplfinance PNGs of the indicator window.

Both assets come from one step (a ``multi_asset``): every chart of a partition range, daily
and weekly, is drawn by one process pool across the machine's cores, and each chart is stored
(object, MLflow artifact, lineage row) while the pool draws the next ones; the daily output is
handed to Dagster while the weekly charts are still being drawn. The weekly chart
resamples the daily window to weeks ending Friday (dated by their last session, so a partial
week never looks ahead).
"""

import base64
from collections import Counter

import dagster as dg

from ibkr_assets.assets.defaults import workflow_multi_asset
from ibkr_assets.assets.step import Step
from ibkr_assets.domain.bars import BAR_COLUMNS
from ibkr_assets.domain.chart_image import ChartImage
from ibkr_assets.domain.indicator_set import IndicatorSet
from ibkr_assets.domain.indicators import compute_indicators, only_indicators
from ibkr_assets.domain.resample import weekly_bars
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.resources.charts import ChartsResource
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource
from ibkr_assets.strategies.config import StrategyConfig

TIMEFRAMES = ("daily", "weekly")
PANELS = "candlesticks with volume, SMA20/50, Bollinger, RSI and MACD panels"


def _frame_for(timeframe: str, indicators: IndicatorSet, wanted: list[str]):
    if timeframe == "daily":
        return indicators.frame
    return only_indicators(compute_indicators(weekly_bars(indicators.frame[BAR_COLUMNS])), wanted)


def build_charts(strategy: StrategyConfig) -> dg.AssetsDefinition:
    @workflow_multi_asset(
        strategy,
        name="charts",
        outs={
            f"{timeframe}_chart": {
                "kinds": {"matplotlib"},
                "description": f"{timeframe.capitalize()} chart: {PANELS}.",
            }
            for timeframe in TIMEFRAMES
        },
    )
    def charts(
        context: dg.AssetExecutionContext,
        indicators: dict[str, IndicatorSet],
        charts: ChartsResource,
        object_store: ObjectStoreResource,
        lineage: LineageResource,
        mlflow: MlflowResource,
    ):
        book = _ChartBook(context, strategy.id, object_store, lineage, mlflow)
        return _draw(book, indicators, charts, strategy.indicator_columns)

    return charts


def _draw(book: "_ChartBook", indicators: dict, charts: ChartsResource, wanted: list[str]):
    """Record every partition's charts (skipped ones first), yielding each timeframe's output
    as soon as its last chart is recorded."""
    from ibkr_assets.charts.render import ChartSpec, render_each

    keys = book.context.partition_keys
    for key in keys:
        if not indicators[key].is_tradable:
            for timeframe in TIMEFRAMES:
                book.record(key, timeframe, Skipped.upstream(indicators[key]), indicators[key])
    # Every daily chart first, so the daily output is handed to Dagster (events, manifest,
    # lineage rows) while the pool still draws the weekly charts.
    todo = [
        (key, timeframe) for timeframe in TIMEFRAMES for key in keys if indicators[key].is_tradable
    ]
    left = Counter(timeframe for _, timeframe in todo)

    def job(key: str, timeframe: str) -> tuple:
        ind = indicators[key]
        spec = ChartSpec(
            symbol=ind.symbol,
            as_of=ind.as_of,
            timeframe=timeframe,
            bars_shown=charts.bars_shown,
            width_px=charts.width_px,
            height_px=charts.height_px,
        )
        return _frame_for(timeframe, ind, wanted), spec

    # Lazily: the pool draws the first charts while the weekly frames of the others are built.
    jobs = (job(key, timeframe) for key, timeframe in todo)
    rendered = render_each(jobs, charts.workers, count=len(todo))
    for n, ((key, timeframe), chart) in enumerate(zip(todo, rendered, strict=True)):
        if n == 0:  # the pool is drawing now: meanwhile create every charted partition's run
            book.prepare_runs({k: indicators[k].symbol for k, _ in todo})
        ind = indicators[key]
        image = ChartImage(
            ind.symbol, ind.as_of, timeframe, chart.png, chart.bars_count, list(chart.indicators)
        )
        book.record(key, timeframe, image, ind)
        left[timeframe] -= 1
        if left[timeframe] == 0:
            yield book.output(timeframe)
    if not todo:  # nothing to draw: every partition was skipped
        for timeframe in TIMEFRAMES:
            yield book.output(timeframe)


class _ChartBook:
    """Each chart's object reference, MLflow artifact and lineage row, per timeframe."""

    def __init__(self, context, strategy_id, object_store, lineage, mlflow) -> None:
        self.context, self.sid = context, strategy_id
        self.steps = {
            tf: Step.open(
                context,
                strategy_id,
                f"{tf}_chart",
                object_store,
                lineage,
                mlflow,
                asset_key=dg.AssetKey([strategy_id, f"{tf}_chart"]),
            )  # fmt: skip
            for tf in TIMEFRAMES
        }
        self.values: dict[str, dict[str, ChartImage | Skipped]] = {tf: {} for tf in TIMEFRAMES}
        self.refs: dict[str, dict[str, dict]] = {tf: {} for tf in TIMEFRAMES}

    def prepare_runs(self, partitions: dict[str, str]) -> None:
        """The MLflow runs of ``{partition_key: symbol}``, created at once (see ``record``)."""
        daily = self.steps["daily"]
        daily.tracker.runs_for_partitions(
            strategy_id=self.sid,
            partitions=partitions,
            execution_id=daily.recorder.base["execution_id"],
            dagster_run_id=self.context.run.run_id,
        )

    def record(self, key: str, timeframe: str, value, ind: IndicatorSet) -> None:
        step = self.steps[timeframe]
        self.values[timeframe][key] = value
        ref = self.refs[timeframe][key] = step.ref(key, value)
        links = {}
        if isinstance(value, ChartImage):
            run_id = links["mlflow_run_id"] = step.mlflow_run(key, value.symbol)
            step.tracker.log_bytes(run_id, f"{step.name}.png", value.png)
            step.artifact(
                key,
                ref,
                name=f"{value.symbol} {timeframe.capitalize()} Chart {value.as_of}",
                type="chart",
                image_path=ref["uri"],
                chart_data={
                    "indicators": value.indicators,
                    "timeframe": timeframe,
                    "bars_count": value.bars_count,
                },
                **step.mlflow_fields(run_id, value.symbol),
            )
        step.record(key, value, status="success" if isinstance(value, ChartImage) else value.status,
                    input_data={"indicators": ind.summary()}, output_data=value.summary(),
                    links=links, ref=ref)  # fmt: skip

    def output(self, timeframe: str) -> dg.Output:
        """The timeframe's values in partition order, with their metadata (the IO manager writes
        the rows once it has stored the charts)."""
        name = f"{timeframe}_chart"
        ordered = {key: self.values[timeframe][key] for key in self.context.partition_keys}
        metadata = _metadata(ordered, self.refs[timeframe], name)
        return dg.Output(ordered, output_name=name, metadata=metadata)


def _metadata(values, refs, name) -> dict:
    meta: dict = {
        "partitions": len(values),
        "charts": sum(isinstance(v, ChartImage) for v in values.values()),
    }
    if len(values) == 1:
        ((key, value),) = values.items()
        if isinstance(value, ChartImage):
            encoded = base64.b64encode(value.png).decode()
            meta["chart"] = dg.MetadataValue.md(f"![{name} {key}](data:image/png;base64,{encoded})")
            # where the image is stored (a browser cannot open file:// or s3://: the viewer
            # link of the partition's metadata shows it)
            meta["image_uri"] = dg.MetadataValue.text(refs[key]["uri"])
    return meta
