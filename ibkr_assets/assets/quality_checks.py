"""Blocking quality gates on ``market_data``: a failed gate stops ``indicators`` for the run.

Each gate of ``domain.quality.GATES`` is its own asset check so the UI shows which one failed.
The ``market_data`` step evaluates them on the windows it has just made (no second step, no
second load): its output is stored, then a failed gate fails the step, so nothing downstream
runs. In a range run a gate fails when any partition fails it; its metadata names those
partitions.
"""

from collections.abc import Iterator

import dagster as dg

from ibkr_assets.domain.market_data import MarketDataWindow
from ibkr_assets.domain.quality import GATES, QualityReport, validate_window
from ibkr_assets.partitions import strategy_partitions
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.market_data import MarketDataResource
from ibkr_assets.strategies.config import StrategyConfig

GATE_DESCRIPTIONS = {
    "required_columns": "Date, Open, High, Low, Close and Volume are present",
    "no_nulls": "no missing values in any bar",
    "positive_prices": "open, high, low and close are > 0",
    "ohlc_consistent": "high >= low and open/close lie inside [low, high]",
    "non_negative_volume": "volume >= 0",
    "dates_strictly_increasing": "each bar is dated after the previous one",
    "no_calendar_gaps": "no exchange session is missing inside the window",
    "not_stale": "the last bar is the partition's session (within the allowed lag)",
}


def report_for(window: MarketDataWindow, cfg: MarketDataResource) -> QualityReport | None:
    """The quality verdict for one partition, or None when the market was closed."""
    if not window.is_tradable:
        return None
    return validate_window(
        window.bars,
        as_of=window.as_of,
        calendar=cfg.calendar,
        max_stale_sessions=cfg.max_stale_sessions,
    )


def quality_check_specs(strategy: StrategyConfig) -> list[dg.AssetCheckSpec]:
    """The gates as blocking checks of ``strategy``'s ``market_data``, one spec per gate."""
    asset_key = dg.AssetKey([strategy.id, "market_data"])
    return [
        dg.AssetCheckSpec(
            name=gate,
            asset=asset_key,
            description=GATE_DESCRIPTIONS[gate],
            blocking=True,
            partitions_def=strategy_partitions(strategy.id),
        )
        for gate in GATES
    ]


def quality_check_results(
    context: dg.AssetExecutionContext,
    market_data: dict[str, MarketDataWindow],
    market_data_source: MarketDataResource,
    lineage: LineageResource,
    strategy_id: str,
) -> Iterator[dg.AssetCheckResult]:
    """Each gate's verdict over the step's windows; each partition's report as a lineage row."""
    recorder = lineage.recorder(context, "market_data_quality", strategy_id)
    reports: dict[str, QualityReport] = {}
    for key, window in market_data.items():
        report = report_for(window, market_data_source)
        if report is None:
            recorder.add(
                key,
                status="market_closed",
                input_data={"market_data": window.summary()},
                output_data={"passed": True, "note": window.note},
            )
            continue
        reports[key] = report
        recorder.add(
            key,
            status="success" if report.passed else "error",
            input_data={"market_data": window.summary()},
            output_data=report.to_json(),
            error=None if report.passed else report.reason(),
        )
    recorder.flush()
    for index, gate in enumerate(GATES):
        failed = {k: r.gates[index] for k, r in reports.items() if not r.gates[index].passed}
        yield dg.AssetCheckResult(
            asset_key=dg.AssetKey([strategy_id, "market_data"]),
            check_name=gate,
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=_describe(gate, failed, len(market_data)),
            metadata={
                "partitions_checked": len(reports),
                "partitions_market_closed": len(market_data) - len(reports),
                "failed_partitions": dg.MetadataValue.json(
                    {k: {"detail": g.detail, "examples": g.examples} for k, g in failed.items()}
                ),
            },
        )


def _describe(gate: str, failed: dict, total: int) -> str:
    if not failed:
        return f"{GATE_DESCRIPTIONS[gate]}: passed for {total} partition(s)"
    first_key, first = next(iter(failed.items()))
    return f"{gate} failed for {len(failed)} partition(s), e.g. {first_key}: {first.detail}"
