"""``market_data``: the OHLCV window that ends at the partition date, from the configured source."""

import datetime as dt
import time
from collections.abc import Iterator

import dagster as dg

from ibkr_assets.assets.defaults import workflow_asset
from ibkr_assets.assets.quality_checks import quality_check_results, quality_check_specs
from ibkr_assets.assets.step import Step
from ibkr_assets.domain.bars import BarFormatError, empty_bars, window_ending
from ibkr_assets.domain.calendar import is_session, sessions_between
from ibkr_assets.domain.market_data import MarketDataWindow
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.errors import describe_exception
from ibkr_assets.partitions import split_key
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.market_data import MarketDataResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource
from ibkr_assets.sources.base import (
    EmptyWindowError,
    MarketDataError,
    SourceUnavailableError,
)
from ibkr_assets.strategies.config import StrategyConfig


def build_market_data(strategy: StrategyConfig) -> dg.AssetsDefinition:
    @workflow_asset(
        strategy, name="market_data", kinds={"pandas"}, check_specs=quality_check_specs(strategy)
    )
    def market_data(
        context: dg.AssetExecutionContext,
        market_data_source: MarketDataResource,
        object_store: ObjectStoreResource,
        lineage: LineageResource,
        mlflow: MlflowResource,
    ) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
        """Daily OHLCV bars ending at the partition date (never a bar after it), then the
        quality gates on them, per partition.

        A date that is not an exchange session materializes as ``market_closed``: no bars, and
        nothing downstream acts on it. A symbol whose source fails (unknown, no history, a
        broken file) is ``blocked`` with the cause, and the rest of the range goes on; a source
        that cannot be reached at all fails the step.
        """
        step = Step.open(context, strategy.id, "market_data", object_store, lineage, mlflow)
        lookback, calendar = strategy.market_data.lookback_bars, strategy.schedule.calendar
        source = PrefetchedSource(
            market_data_source.source_for(strategy), step.keys, lookback, calendar
        )
        failures: dict[str, str] = {}

        def one(key: str) -> MarketDataWindow | Skipped | None:
            day_text, symbol = split_key(key)
            day = dt.date.fromisoformat(day_text)
            request = {"symbol": symbol, "date": day_text, "source": source.name, "bars": lookback,
                       "fetched_once_for_range": symbol in source.histories}  # fmt: skip
            started = time.perf_counter()
            try:
                window = _fetch(source, symbol, day, lookback, calendar)
            except SourceUnavailableError as exc:  # the whole source is down: the step fails
                failures[key] = str(exc)
                step.record_error(key, request, describe_exception(exc), duration_ms=_ms(started))
                return None
            except (MarketDataError, BarFormatError) as exc:  # this symbol's data: its partition
                why = describe_exception(exc)
                blocked = Skipped(symbol, day, "blocked", f"source: {why}")
                step.record(key, blocked, status="error", input_data=request, error=why,
                            duration_ms=_ms(started))  # fmt: skip
                return blocked
            _record(step, key, window, request, started)
            return window

        windows = step.each(one)
        if failures:
            lines = "\n".join(f"- {k}: {msg}" for k, msg in failures.items())
            raise dg.Failure(
                description=f"market_data failed for {len(failures)} partition(s):\n{lines}",
                metadata={"failed_partitions": dg.MetadataValue.json(failures)},
            )
        output = dg.Output(windows, metadata=_metadata(windows))
        yield output
        yield from quality_check_results(
            context, output.value, strategy, market_data_source.max_stale_sessions, lineage, mlflow
        )

    return market_data


def _record(step: Step, key: str, window: MarketDataWindow, request: dict, started: float):
    ref = step.ref(key, window)
    summary = window.summary()
    step.record(key, window, status="success" if window.is_tradable else "market_closed",
                input_data=request, output_data=summary, ref=ref, sample=window.bars,
                metadata={"synthetic": window.synthetic}, duration_ms=_ms(started))  # fmt: skip
    step.artifact(key, ref, name=f"{request['symbol']} Market Data {request['date']}",
                  type="market_data", metadata=summary)  # fmt: skip


class PrefetchedSource:
    """A range run fetches each symbol's history once; every partition's window is cut from it.

    Cutting ``window_ending(history, day, n)`` from a history that reaches ``n`` bars before the
    first day gives exactly what ``fetch_bars(symbol, day, n)`` would: no look-ahead either way.
    """

    def __init__(self, source, partition_keys: list[str], lookback: int, calendar: str) -> None:
        self.source, self.name, self.synthetic = source, source.name, source.synthetic
        days_by_symbol: dict[str, list[dt.date]] = {}
        for key in partition_keys:
            day_text, symbol = split_key(key)
            days_by_symbol.setdefault(symbol, []).append(dt.date.fromisoformat(day_text))
        self.histories, self.errors = {}, {}
        for symbol, days in days_by_symbol.items():
            if len(days) < 2:
                continue
            first, last = min(days), max(days)
            try:
                self.histories[symbol] = source.fetch_bars(
                    symbol, last, lookback + len(sessions_between(first, last, calendar))
                )
            except (MarketDataError, BarFormatError) as exc:
                self.errors[symbol] = exc

    def fetch_bars(self, symbol: str, end: dt.date, bars: int):
        if symbol in self.errors:
            raise self.errors[symbol]
        if symbol in self.histories:
            return window_ending(self.histories[symbol], end, bars)
        return self.source.fetch_bars(symbol, end, bars)


def _fetch(source, symbol: str, day: dt.date, lookback: int, calendar: str) -> MarketDataWindow:
    common = {"symbol": symbol, "as_of": day, "source": source.name, "synthetic": source.synthetic}
    if not is_session(day, calendar):
        return MarketDataWindow(
            **common,
            requested_bars=lookback,
            bars=empty_bars(),
            status="market_closed",
            note=f"{day} is not a {calendar} trading session (market closed)",
        )
    bars = source.fetch_bars(symbol, day, lookback)
    if bars.empty:
        raise EmptyWindowError(
            f"no {source.name} bars for {symbol!r} on or before {day}; check the source has "
            "history for this symbol and date"
        )
    note = "synthetic sample data, not market records" if source.synthetic else ""
    return MarketDataWindow(**common, requested_bars=lookback, bars=bars, note=note)


def _metadata(windows: dict[str, MarketDataWindow | Skipped]) -> dict:
    summaries = {k: w.summary() for k, w in windows.items() if not isinstance(w, Skipped)}
    meta: dict = {
        "partitions": len(windows),
        "source_errors": dg.MetadataValue.json(
            {k: w.reason for k, w in windows.items() if isinstance(w, Skipped)}
        ),
        "rows": sum(s["bars_count"] for s in summaries.values()),
        "market_closed": dg.MetadataValue.json(
            sorted(k for k, s in summaries.items() if s["status"] == "market_closed")
        ),
    }
    if len(windows) == 1 and summaries:
        (summary,) = summaries.values()
        meta |= {
            "source": summary["source"],
            "synthetic": summary["synthetic"],
            "status": summary["status"],
            "latest_price": summary["latest_price"],
            "start_date": summary["start_date"],
            "end_date": summary["end_date"],
        }
    return meta


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
