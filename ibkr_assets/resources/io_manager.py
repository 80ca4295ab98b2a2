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

Within a run, ``_RunMemory`` spares repeated work: a step finds the versions its upstream
wrote earlier in the same run and process without querying the event log, and a JSON value
read and verified once in the run (every later step reads the indicators) is decoded once. A
new run starts with nothing remembered, so each run verifies what it reads. Steps of a run may
therefore receive the same object: assets never modify their inputs. A range longer than the
memory (``_REMEMBERED_VALUES``) is decoded per step instead, as every step reads it in order.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import dagster as dg

from ibkr_assets.partitions import split_any
from ibkr_assets.resources.lineage import LineageResource, commit_step, fail_step
from ibkr_assets.resources.object_store import ObjectStoreResource
from ibkr_assets.storage import layout
from ibkr_assets.storage.object_store import ObjectStore, get_verified, put_versioned

VERSIONS_METADATA_KEY = "object_versions"
_REMEMBERED_VALUES = 4096  # decoded values kept per run, the least recently used dropped


class _RunMemory:
    """What this process wrote and read in its current run (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run_id: str | None = None
        self._written: dict[dg.AssetKey, dict[str, dict]] = {}
        self._values: OrderedDict[str, Any] = OrderedDict()

    def _switch(self, run_id: str) -> None:
        if run_id != self._run_id:  # the caller holds the lock
            self._run_id, self._written, self._values = run_id, {}, OrderedDict()

    def wrote(self, run_id: str, asset_key: dg.AssetKey, versions: dict[str, dict]) -> None:
        with self._lock:
            self._switch(run_id)
            self._written.setdefault(asset_key, {}).update(versions)

    def written(self, run_id: str, asset_key: dg.AssetKey) -> dict[str, dict]:
        with self._lock:
            return dict(self._written.get(asset_key, {})) if run_id == self._run_id else {}

    def value(self, run_id: str, version_key: str) -> tuple[bool, Any]:
        with self._lock:
            if run_id != self._run_id or version_key not in self._values:
                return False, None
            self._values.move_to_end(version_key)
            return True, self._values[version_key]

    def remember(self, run_id: str, version_key: str, value: Any) -> None:
        with self._lock:
            self._switch(run_id)
            self._values[version_key] = value
            while len(self._values) > _REMEMBERED_VALUES:
                self._values.popitem(last=False)


_MEMORY = _RunMemory()


def _strategy_and_asset(key: dg.AssetKey) -> tuple[str, str]:
    """``AssetKey(["momentum", "market_data"])`` -> ``("momentum", "market_data")``."""
    if len(key.path) != 2:
        raise dg.Failure(f"{key.to_user_string()} is not a strategy's asset (STRATEGY/NAME)")
    return key.path[0], key.path[1]


class ObjectStoreIOManager(dg.ConfigurableIOManager):
    object_store: ObjectStoreResource
    lineage: LineageResource  # a step that cannot load its inputs records why

    def handle_output(self, context: dg.OutputContext, obj: Mapping[str, Any] | None) -> None:
        if obj is None:
            return
        strategy_id, asset = _strategy_and_asset(context.asset_key)
        expected = list(context.asset_partition_keys)
        missing = [k for k in expected if k not in obj]
        if missing:
            raise dg.Failure(f"asset {asset} returned no value for partition(s) {missing[:5]}")
        try:
            versions, manifest = self._store(context, strategy_id, asset, obj, expected)
        except Exception as exc:
            fail_step(context.run_id, [context.asset_key], exc)  # no row points at a lost object
            raise
        row_ids = commit_step(context.run_id, context.asset_key)  # now the rows can say so
        _MEMORY.wrote(context.run_id, context.asset_key, versions)
        single = len(expected) == 1  # a range's totals are named run_*, as in per_partition
        context.add_output_metadata(
            {
                "objects" if single else "run_objects": len(versions),
                VERSIONS_METADATA_KEY: dg.MetadataValue.json(
                    {**manifest.to_json(), "version_key": manifest.version_key}
                ),
                **(
                    {"lineage_row_ids": dg.MetadataValue.json(row_ids)}
                    if single
                    else {"run_lineage_rows": len(row_ids)}
                ),
            }
        )

    def _store(
        self, context, strategy_id: str, asset: str, obj: Mapping[str, Any], keys: list[str]
    ):
        """Every partition's immutable version, then the step's manifest of them."""
        store = self.object_store.get_store()
        versions: dict[str, dict[str, Any]] = {}
        for key in keys:
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
        return versions, manifest

    def load_input(self, context: dg.InputContext) -> dict[str, Any]:
        try:
            return self._load(context)
        except Exception as exc:
            self.lineage.record_input_failure(context, exc)
            raise

    def _load(self, context: dg.InputContext) -> dict[str, Any]:
        _, asset = _strategy_and_asset(context.asset_key)
        wanted = list(context.asset_partition_keys)
        store = self.object_store.get_store()
        run_id = _run_id(context)
        versions = _MEMORY.written(run_id, context.asset_key) if run_id else {}
        if not versions.keys() >= set(wanted):
            versions |= _latest_versions(
                context.instance, store, context.asset_key, [k for k in wanted if k not in versions]
            )
        absent = [k for k in wanted if k not in versions]
        if (context.definition_metadata or {}).get("allow_missing_partitions"):
            wanted = [k for k in wanted if k in versions]  # a fan-in reads what exists
        elif absent:
            raise dg.Failure(
                f"{asset} has no stored materialization for partition(s) {', '.join(absent[:5])}"
                f"{' ...' if len(absent) > 5 else ''}; materialize {asset} for them first"
            )
        remember = run_id is not None and len(wanted) <= _REMEMBERED_VALUES
        values = {}
        for key in wanted:
            version_key = versions[key]["version_key"]
            known, value = _MEMORY.value(run_id, version_key) if run_id else (False, None)
            if not known:
                day, symbol = split_any(key)
                data = get_verified(store, version_key, versions[key]["sha256"])
                value = layout.decode(asset, symbol, day, data)
                if remember and data[:1] == b"{":  # JSON is costly to decode; images are not
                    _MEMORY.remember(run_id, version_key, value)
            values[key] = value
        return values


def _run_id(context: dg.InputContext) -> str | None:
    """The id of the run loading the input; None outside a run (a hand-built context)."""
    try:
        return context.step_context.run_id
    except Exception:
        return None


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
