"""The Dagster side of ``verify``: a strategy's materialization events in a date range."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg

from ibkr_assets.partitions import symbols_partition_name
from ibkr_assets.storage.object_store import ObjectStore
from ibkr_assets.verification.checks import Discrepancy, Materialization
from ibkr_assets.verification.gather import read_manifest

VERSIONS_METADATA_KEY = "object_versions"  # written by the IO manager on every materialization
DAILY_ASSETS = ("portfolio_snapshot",)  # partitioned by date only; the rest by date|symbol


def weekdays(start: dt.date, end: dt.date) -> list[str]:
    """The date partitions (weekdays) from ``start`` to ``end``."""
    days = (start + dt.timedelta(i) for i in range((end - start).days + 1))
    return [d.isoformat() for d in days if d.weekday() < 5]


def materializations(
    instance: dg.DagsterInstance,
    store: ObjectStore,
    strategy_id: str,
    assets: Iterable[str],
    start: dt.date,
    end: dt.date,
    extra_symbols: Iterable[str] = (),
) -> tuple[list[Materialization], list[Discrepancy], set[str]]:
    """Every materialization of the strategy's ``assets`` for partitions in the range, with the
    manifests they point at; also manifests that are missing or changed (as discrepancies) and
    the keys of the manifests read (objects that events refer to)."""
    symbols = set(instance.get_dynamic_partitions(symbols_partition_name(strategy_id)))
    symbols |= set(extra_symbols)
    days = weekdays(start, end)
    per_symbol = [f"{d}|{s}" for d in days for s in sorted(symbols)]
    found: list[Materialization] = []
    problems: list[Discrepancy] = []
    manifests: dict[str, dict | None] = {}
    for asset in assets:
        keys = days if asset in DAILY_ASSETS else per_symbol
        for record in _records(instance, dg.AssetKey([strategy_id, asset]), keys):
            ref = record.asset_materialization.metadata.get(VERSIONS_METADATA_KEY)
            manifest = None
            if ref is not None and isinstance(ref.value, dict):
                version_key = ref.value.get("version_key", "")
                if version_key not in manifests:
                    manifests[version_key] = read_manifest(store, ref.value)
                    if manifests[version_key] is None:
                        problems.append(
                            Discrepancy(
                                "materializations",
                                f"{asset} run {record.run_id[:8]}",
                                f"manifest {version_key} is missing or changed",
                            )
                        )
                manifest = manifests[version_key]
            found.append(Materialization(asset, record.partition_key, record.run_id, manifest))
    return found, problems, {k for k, v in manifests.items() if v is not None}


def _records(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, keys: list[str]
) -> list[dg.EventLogRecord]:
    records: list[dg.EventLogRecord] = []
    for i in range(0, len(keys), 1000):  # bounded IN lists
        chunk, cursor = keys[i : i + 1000], None
        while True:
            result = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=chunk),
                limit=5000,
                cursor=cursor,
            )
            records += [r for r in result.records if r.partition_key is not None]
            if not result.has_more:
                break
            cursor = result.cursor
    return records
