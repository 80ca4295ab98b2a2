"""The IO manager: asset values to the object store and back, one partition or a whole range.

Assets return ``{partition_key: value}`` for every partition of the step (one key for a
single-partition run, many for a single-run backfill), and downstream assets receive the same
shape. Writes keep an immutable version per content hash (see ``storage.object_store``). The
version of each partition goes into one manifest per step (an immutable JSON object too), and
the materialization metadata points at it (``object_versions``): Dagster copies a range run's
output metadata onto every partition's event, so the versions themselves would make each event
grow with the range. Loads read exactly the recorded version and verify its sha256, so a
downstream step always sees the bytes its upstream recorded, even if a later run has rewritten
the latest copy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg

from ibkr_assets.partitions import split_any
from ibkr_assets.resources.object_store import ObjectStoreResource
from ibkr_assets.storage import layout
from ibkr_assets.storage.object_store import ObjectStore, get_verified, put_versioned

VERSIONS_METADATA_KEY = "object_versions"


def _strategy_and_asset(key: dg.AssetKey) -> tuple[str, str]:
    """``AssetKey(["momentum", "market_data"])`` -> ``("momentum", "market_data")``."""
    if len(key.path) != 2:
        raise dg.Failure(f"{key.to_user_string()} is not a strategy's asset (STRATEGY/NAME)")
    return key.path[0], key.path[1]


class ObjectStoreIOManager(dg.ConfigurableIOManager):
    object_store: ObjectStoreResource

    def handle_output(self, context: dg.OutputContext, obj: Mapping[str, Any] | None) -> None:
        if obj is None:
            return
        strategy_id, asset = _strategy_and_asset(context.asset_key)
        expected = list(context.asset_partition_keys)
        missing = [k for k in expected if k not in obj]
        if missing:
            raise dg.Failure(f"asset {asset} returned no value for partition(s) {missing[:5]}")
        store = self.object_store.get_store()
        versions: dict[str, dict[str, Any]] = {}
        for key in expected:
            day, symbol = split_any(key)
            planned = layout.plan(strategy_id, asset, symbol, day, obj[key])
            stored = put_versioned(store, planned.key, planned.data, planned.content_type)
            versions[key] = {**stored.to_json(), "version_key": stored.version_key}
        manifest = put_versioned(
            store,
            f"manifests/{strategy_id}/{asset}/{context.run_id}.json",
            json.dumps(versions, sort_keys=True, separators=(",", ":")).encode(),
            "application/json",
        )
        context.add_output_metadata(
            {
                "objects": len(versions),
                VERSIONS_METADATA_KEY: dg.MetadataValue.json(
                    {**manifest.to_json(), "version_key": manifest.version_key}
                ),
            }
        )

    def load_input(self, context: dg.InputContext) -> dict[str, Any]:
        _, asset = _strategy_and_asset(context.asset_key)
        wanted = list(context.asset_partition_keys)
        store = self.object_store.get_store()
        versions = _latest_versions(context.instance, store, context.asset_key, wanted)
        absent = [k for k in wanted if k not in versions]
        if (context.definition_metadata or {}).get("allow_missing_partitions"):
            wanted = [k for k in wanted if k in versions]  # a fan-in reads what exists
        elif absent:
            raise dg.Failure(
                f"{asset} has no stored materialization for partition(s) {', '.join(absent[:5])}"
                f"{' ...' if len(absent) > 5 else ''}; materialize {asset} for them first"
            )
        values = {}
        for key in wanted:
            day, symbol = split_any(key)
            data = get_verified(store, versions[key]["version_key"], versions[key]["sha256"])
            values[key] = layout.decode(asset, symbol, day, data)
        return values


def latest_materializations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, keys: list[str]
) -> dict[str, dg.EventLogRecord]:
    """The latest materialization record of each partition in ``keys`` that has one."""
    found: dict[str, dg.EventLogRecord] = {}
    cursor = None
    while len(found) < len(keys):
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=keys),
            limit=1000,
            cursor=cursor,
        )
        for record in result.records:  # newest first
            if record.partition_key is not None:
                found.setdefault(record.partition_key, record)
        if not result.has_more:
            break
        cursor = result.cursor
    return found


def _latest_versions(
    instance: dg.DagsterInstance, store: ObjectStore, asset_key: dg.AssetKey, keys: list[str]
) -> dict[str, dict]:
    """The object version of the latest materialization of each partition in ``keys``."""
    found: dict[str, dict] = {}
    manifests: dict[str, dict] = {}  # one read per upstream step, however many partitions
    for partition, record in latest_materializations(instance, asset_key, keys).items():
        entry = record.asset_materialization.metadata.get(VERSIONS_METADATA_KEY)
        if entry is None:
            continue
        ref = entry.value
        if ref["version_key"] not in manifests:
            data = get_verified(store, ref["version_key"], ref["sha256"])
            manifests[ref["version_key"]] = json.loads(data)
        if partition in manifests[ref["version_key"]]:
            found[partition] = manifests[ref["version_key"]][partition]
    return found
