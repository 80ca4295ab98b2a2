"""``market_data``: the OHLCV window that ends at the partition date, from the configured source."""

import datetime as dt
import time

import dagster as dg

from ibkr_assets.domain.bars import empty_bars
from ibkr_assets.domain.calendar import is_session
from ibkr_assets.domain.market_data import MarketDataWindow
from ibkr_assets.partitions import daily_symbol_partitions, split_key
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.market_data import MarketDataResource
from ibkr_assets.resources.object_store import ObjectStoreResource, object_ref
from ibkr_assets.sources.base import EmptyWindowError, MarketDataError


@dg.asset(
    partitions_def=daily_symbol_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="object_store_io_manager",
    code_version="1",
    group_name="market",
    kinds={"pandas"},
)
def market_data(
    context: dg.AssetExecutionContext,
    market_data_source: MarketDataResource,
    object_store: ObjectStoreResource,
    lineage: LineageResource,
) -> dg.Output[dict[str, MarketDataWindow]]:
    """Daily OHLCV bars ending at the partition date (never a bar after it).

    A date that is not an exchange session materializes as ``market_closed``: no bars, and
    nothing downstream acts on it.
    """
    source = market_data_source.get_source()
    recorder = lineage.recorder(context, "market_data")
    windows: dict[str, MarketDataWindow] = {}
    failures: dict[str, str] = {}
    for key in context.partition_keys:
        day_text, symbol = split_key(key)
        day = dt.date.fromisoformat(day_text)
        request = {
            "symbol": symbol,
            "date": day_text,
            "source": source.name,
            "bars": market_data_source.lookback_bars,
        }
        started = time.perf_counter()
        try:
            window = _fetch(source, symbol, day, market_data_source)
        except MarketDataError as exc:
            failures[key] = str(exc)
            recorder.add(
                key,
                status="error",
                input_data=request,
                output_data={},
                error=f"{type(exc).__name__}: {exc}",
                duration_ms=_ms(started),
            )
            continue
        ref = object_ref(object_store, "market_data", key, window)
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
    row_ids = recorder.flush()
    if failures:
        lines = "\n".join(f"- {k}: {msg}" for k, msg in failures.items())
        raise dg.Failure(
            description=f"market_data failed for {len(failures)} partition(s):\n{lines}",
            metadata={"failed_partitions": dg.MetadataValue.json(failures)},
        )
    return dg.Output(windows, metadata=_metadata(windows, row_ids))


def _fetch(source, symbol: str, day: dt.date, cfg: MarketDataResource) -> MarketDataWindow:
    common = {"symbol": symbol, "as_of": day, "source": source.name, "synthetic": source.synthetic}
    if not is_session(day, cfg.calendar):
        return MarketDataWindow(
            **common,
            requested_bars=cfg.lookback_bars,
            bars=empty_bars(),
            status="market_closed",
            note=f"{day} is not a {cfg.calendar} trading session (market closed)",
        )
    bars = source.fetch_bars(symbol, day, cfg.lookback_bars)
    if bars.empty:
        raise EmptyWindowError(
            f"no {source.name} bars for {symbol!r} on or before {day}; check the source has "
            "history for this symbol and date"
        )
    note = "synthetic sample data, not market records" if source.synthetic else ""
    return MarketDataWindow(**common, requested_bars=cfg.lookback_bars, bars=bars, note=note)


def _metadata(windows: dict[str, MarketDataWindow], row_ids: dict[str, int]) -> dict:
    summaries = {k: w.summary() for k, w in windows.items()}
    meta: dict = {
        "partitions": len(windows),
        "rows": sum(s["bars_count"] for s in summaries.values()),
        "market_closed": dg.MetadataValue.json(
            sorted(k for k, s in summaries.items() if s["status"] == "market_closed")
        ),
        "lineage_row_ids": dg.MetadataValue.json(row_ids),
    }
    if len(windows) == 1:
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
