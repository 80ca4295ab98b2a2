"""Where each asset's value lives in the object store (seed 000's layout) and how it is encoded.

One table, ``LAYOUTS``, maps an asset name to its key and its value type. Encoding is canonical
JSON (sorted keys, no NaN), so the same value always gives the same bytes and the same sha256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ibkr_assets.domain.indicator_set import IndicatorSet
from ibkr_assets.domain.market_data import MarketDataWindow


@dataclass(frozen=True)
class AssetLayout:
    key: Callable[[str, str, Any], str]  # (symbol, date, value) -> object key
    decode: Callable[[dict[str, Any]], Any]
    content_type: str = "application/json"


LAYOUTS: dict[str, AssetLayout] = {
    "market_data": AssetLayout(
        key=lambda symbol, day, value: f"trading-data/{symbol}/raw/{day}_{value.source}.json",
        decode=MarketDataWindow.from_json,
    ),
    "indicators": AssetLayout(
        key=lambda symbol, day, value: f"trading-data/{symbol}/processed/{day}_indicators.json",
        decode=IndicatorSet.from_json,
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
    return json.dumps(
        value.to_json(), sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode()


def plan(asset: str, symbol: str, day: str, value: Any) -> PlannedObject:
    layout = layout_for(asset)
    data = encode(value)
    return PlannedObject(
        layout.key(symbol, day, value), data, hashlib.sha256(data).hexdigest(), layout.content_type
    )


def decode(asset: str, data: bytes) -> Any:
    return layout_for(asset).decode(json.loads(data))
