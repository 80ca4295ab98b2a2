"""``market_data``: the OHLCV window that ends at the partition date, from the configured source."""

import datetime as dt
import time
from collections.abc import Iterator

import dagster as dg

from ibkr_assets.assets.defaults import workflow_asset
from ibkr_assets.assets.quality_checks import quality_check_results, quality_check_specs
from ibkr_assets.domain.bars import BarFormatError, empty_bars, window_ending
from ibkr_assets.domain.calendar import is_session, sessions_between
from ibkr_assets.domain.market_data import MarketDataWindow
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.errors import describe_exception
from ibkr_assets.partitions import split_key
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.market_data import MarketDataResource
from ibkr_assets.resources.object_store import ObjectStoreResource, object_ref
from ibkr_assets.sources.base import (
    BarSource,
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
    ) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
        """Daily OHLCV bars ending at the partition date (never a bar after it), then the
        quality gates on them, per partition.

        A date that is not an exchange session materializes as ``market_closed``: no bars, and
        nothing downstream acts on it. A symbol whose source fails (unknown, no history, a
        broken file) is ``blocked`` with the cause, and the rest of the range goes on; a source
        that cannot be reached at all fails the step.
        """
        source = market_data_source.source_for(strategy)
        output = _materialize(context, source, strategy, object_store, lineage)
        yield output
        yield from quality_check_results(
            context, output.value, strategy, market_data_source.max_stale_sessions, lineage
        )

    return market_data


def _materialize(
    context: dg.AssetExecutionContext,
    bar_source: BarSource,
    strategy: StrategyConfig,
    object_store: ObjectStoreResource,
    lineage: LineageResource,
) -> dg.Output[dict[str, MarketDataWindow]]:
    strategy_id = strategy.id
    lookback, calendar = strategy.market_data.lookback_bars, strategy.schedule.calendar
    source = PrefetchedSource(bar_source, context.partition_keys, lookback, calendar)
    recorder = lineage.recorder(context, "market_data", strategy_id)
    windows: dict[str, MarketDataWindow | Skipped] = {}
    failures: dict[str, str] = {}
    for key in context.partition_keys:
        day_text, symbol = split_key(key)
        day = dt.date.fromisoformat(day_text)
        request = {
            "symbol": symbol,
            "date": day_text,
            "source": source.name,
            "bars": lookback,
            "fetched_once_for_range": symbol in source.histories,
        }
        started = time.perf_counter()
        try:
            window = _fetch(source, symbol, day, lookback, calendar)
        except SourceUnavailableError as exc:  # the whole source is down: the step fails
            failures[key] = str(exc)
            recorder.add(key, status="error", input_data=request, output_data={},
                         error=describe_exception(exc), duration_ms=_ms(started))  # fmt: skip
            continue
        except (MarketDataError, BarFormatError) as exc:  # this symbol's data: its partition
            windows[key] = Skipped(symbol, day, "blocked", f"source: {describe_exception(exc)}")
            ref = object_ref(object_store, strategy_id, "market_data", key, windows[key])
            recorder.add(key, status="error", input_data=request, output_data={"object": ref},
                         error=describe_exception(exc), duration_ms=_ms(started))  # fmt: skip
            continue
        ref = object_ref(object_store, strategy_id, "market_data", key, window)
        summary = window.summary()
        recorder.add(
            key,
            status="success" if window.is_tradable else "market_closed",
            input_data=request,
            output_data={**summary, "object": ref},
            metadata={"synthetic": window.synthetic},
            duration_ms=_ms(started),
        )
        recorder.add_artifact(
            key,
            name=f"{symbol} Market Data {day_text}",
            type="market_data",
            uri=ref["uri"],
            sha256=ref["sha256"],
            metadata=summary,
        )
        windows[key] = window
    if failures:
        lines = "\n".join(f"- {k}: {msg}" for k, msg in failures.items())
        raise dg.Failure(
            description=f"market_data failed for {len(failures)} partition(s):\n{lines}",
            metadata={"failed_partitions": dg.MetadataValue.json(failures)},
        )
    return dg.Output(windows, metadata=_metadata(windows))


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
