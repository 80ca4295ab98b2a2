"""Where each asset's value lives in the object store (seed 000's layout) and how it is encoded.

Each strategy has its own folder under each top-level folder (``trading-data/momentum/AAPL/...``,
``ml-experiments/momentum/trading_workflow_AAPL/...``), so strategies never overwrite each other.

One table, ``LAYOUTS``, maps an asset name to its key, its encoding and its value type. JSON is
canonical (sorted keys, no NaN) and charts are deterministic PNGs, so the same value always
gives the same bytes and the same sha256. A ``Skipped`` partition (market closed, blocked) is
stored as a small JSON next to where the value would have been (``<key>.skipped.json``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ibkr_assets.domain.analysis import AnalysisResult
from ibkr_assets.domain.chart_image import ChartImage
from ibkr_assets.domain.indicator_set import IndicatorSet
from ibkr_assets.domain.market_data import MarketDataWindow
from ibkr_assets.domain.orders import OrderOutcome
from ibkr_assets.domain.portfolio import PortfolioSnapshot
from ibkr_assets.domain.signal import TradingSignal
from ibkr_assets.domain.skipped import Skipped

JSON = "application/json"
PNG = "image/png"


def _experiment(symbol: str) -> str:
    return f"ml-experiments/trading_workflow_{symbol}"


@dataclass(frozen=True)
class AssetLayout:
    key: Callable[[str, str, Any], str]  # (symbol, date, value) -> object key
    # (symbol, date, parsed JSON payload, or the bytes of a PNG) -> value
    decode: Callable[[str, dt.date, Any], Any]
    content_type: str = JSON


def _json_decoder(cls: Any) -> Callable[[str, dt.date, bytes], Any]:
    load = getattr(cls, "from_json", None) or cls.model_validate
    return lambda symbol, day, payload: load(payload)


def _chart(timeframe: str) -> AssetLayout:
    return AssetLayout(
        key=lambda symbol, day, value: f"{_experiment(symbol)}/charts/{day}_{timeframe}.png",
        decode=lambda symbol, day, data: ChartImage.from_png(symbol, day, timeframe, data),
        content_type=PNG,
    )


def _analysis_decoder(symbol: str, day: dt.date, payload: dict) -> Any:
    return AnalysisResult.from_json(payload)


LAYOUTS: dict[str, AssetLayout] = {
    "market_data": AssetLayout(
        # a partition whose source failed has no source name: its marker is ``{day}_.skipped.json``
        key=lambda symbol, day, value: (
            f"trading-data/{symbol}/raw/{day}_{getattr(value, 'source', '')}.json"
        ),
        decode=_json_decoder(MarketDataWindow),
    ),
    "indicators": AssetLayout(
        key=lambda symbol, day, value: f"trading-data/{symbol}/processed/{day}_indicators.json",
        decode=_json_decoder(IndicatorSet),
    ),
    "daily_chart": _chart("daily"),
    "weekly_chart": _chart("weekly"),
    "llm_analysis": AssetLayout(
        key=lambda symbol, day, value: f"{_experiment(symbol)}/artifacts/{day}_llm_analysis.json",
        decode=_analysis_decoder,
    ),
    "trading_signal": AssetLayout(
        key=lambda symbol, day, value: f"{_experiment(symbol)}/artifacts/{day}_trading_signal.json",
        decode=_json_decoder(TradingSignal),
    ),
    "order": AssetLayout(
        key=lambda symbol, day, value: f"trading-data/{symbol}/orders/{day}_order.json",
        decode=_json_decoder(OrderOutcome),
    ),
    "portfolio_snapshot": AssetLayout(
        key=lambda symbol, day, value: f"trading-data/portfolio/{day}_portfolio.json",
        decode=_json_decoder(PortfolioSnapshot),
    ),
}


@dataclass(frozen=True)
class PlannedObject:
    """The exact bytes of a value and where they go, computed before anything is written."""

    key: str
    data: bytes
    sha256: str
    content_type: str


def layout_for(asset: str) -> AssetLayout:
    try:
        return LAYOUTS[asset]
    except KeyError:
        raise KeyError(f"no object-store layout for asset {asset!r}; add it to LAYOUTS") from None


def encode(value: Any) -> bytes:
    if isinstance(value, ChartImage):
        return value.png
    if hasattr(value, "to_json"):
        payload = value.to_json()
    else:  # pydantic models
        payload = value.model_dump(mode="json")
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


# The plans of the values encoded last, each kept with its value: an asset plans every value
# once for its lineage row (``object_ref``) and the IO manager plans it again to write it, and
# encoding a window of indicators costs milliseconds. A hit needs the very same object.
_RECENT_PLANS: OrderedDict[tuple, tuple[Any, PlannedObject]] = OrderedDict()
_RECENT_LIMIT = 4096
_RECENT_LOCK = threading.Lock()


def plan(strategy_id: str, asset: str, symbol: str | None, day: str, value: Any) -> PlannedObject:
    """The key, bytes and sha256 ``value`` is stored as (the same object is encoded once)."""
    memo_key = (strategy_id, asset, symbol, day, id(value))
    with _RECENT_LOCK:
        hit = _RECENT_PLANS.get(memo_key)
    if hit is not None and hit[0] is value:
        return hit[1]
    planned = _plan(strategy_id, asset, symbol, day, value)
    with _RECENT_LOCK:
        _RECENT_PLANS[memo_key] = (value, planned)
        _RECENT_PLANS.move_to_end(memo_key)
        while len(_RECENT_PLANS) > _RECENT_LIMIT:
            _RECENT_PLANS.popitem(last=False)
    return planned


def _plan(strategy_id: str, asset: str, symbol: str | None, day: str, value: Any) -> PlannedObject:
    layout = layout_for(asset)
    data = encode(value)
    top, rest = layout.key(symbol, day, value).split("/", 1)
    key, content_type = f"{top}/{strategy_id}/{rest}", layout.content_type
    if isinstance(value, Skipped):
        key, content_type = f"{key.rsplit('.', 1)[0]}.skipped.json", JSON
    return PlannedObject(key, data, hashlib.sha256(data).hexdigest(), content_type)


def decode(asset: str, symbol: str | None, day: str, data: bytes) -> Any:
    as_of = dt.date.fromisoformat(day)
    layout = layout_for(asset)
    if data[:1] != b"{":
        return layout.decode(symbol, as_of, data)
    payload = json.loads(data)  # once: a window of indicators is tens of kilobytes
    if payload.get("kind") == "skipped":
        return Skipped.from_json(payload)
    if layout.content_type != JSON:
        raise ValueError(
            f"stored {asset} for {symbol} {day} is JSON, expected {layout.content_type}"
        )
    return layout.decode(symbol, as_of, payload)
