"""``verify`` over 10,000 lineage rows (target: at most 10 s), on the embedded default.

One strategy's range run of 10 symbols x 125 sessions, written as the workflow writes it:
per partition a row for each of the seven per-symbol asset steps and the quality gates (plus
one portfolio row per date), each asset's object at its real size (bars 12 KB, indicators
62 KB, daily chart 139 KB, weekly chart 77 KB, ...; 370 MB in all) in a local object store,
one manifest per step, and a Dagster materialization event per row with its manifest. Then
``verify`` runs every check: it reads and hashes every object, reconciles the 10,000 events
with the rows, and lists the strategy's objects for orphans.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry

from ibkr_assets.dagster_home import write_instance_config
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets.storage.object_store import LocalObjectStore, put_versioned
from ibkr_assets.storage.records import LineageRecord

TARGET_S = 10.0
SID = "bench"
SIZES = {  # bytes of each asset's object, as the demo writes them
    "market_data": 11_739,
    "indicators": 61_675,
    "daily_chart": 139_310,
    "weekly_chart": 77_221,
    "llm_analysis": 2_839,
    "trading_signal": 557,
    "order": 278,
}
KEYS = {
    "market_data": "trading-data/{sid}/{sym}/raw/{day}_sample.json",
    "indicators": "trading-data/{sid}/{sym}/processed/{day}_indicators.json",
    "daily_chart": "ml-experiments/{sid}/trading_workflow_{sym}/charts/{day}_daily.png",
    "weekly_chart": "ml-experiments/{sid}/trading_workflow_{sym}/charts/{day}_weekly.png",
    "llm_analysis": "ml-experiments/{sid}/trading_workflow_{sym}/artifacts/{day}_llm_analysis.json",
    "trading_signal": "ml-experiments/{sid}/trading_workflow_{sym}/artifacts/{day}_trading_signal.json",
    "order": "trading-data/{sid}/{sym}/orders/{day}_order.json",
}  # fmt: skip


def run(scale: float) -> list[dict]:
    symbols = [f"S{i:02d}" for i in range(10)]
    days = _weekdays(dt.date(2025, 1, 6), max(2, int(125 * scale)))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        os.environ["IBKR_ASSETS_HOME"] = str(root)
        os.environ.pop("IBKR_ASSETS_DATABASE_URL", None)
        os.environ.pop("IBKR_ASSETS_OBJECT_STORE", None)
        os.environ.pop("IBKR_ASSETS_OBJECT_ROOT", None)
        os.environ["MLFLOW_TRACKING_URI"] = str(root)  # a folder: reachable, nothing to start
        write_instance_config(root / "dagster")  # the embedded deployment's instance
        with dg.DagsterInstance.from_config(str(root / "dagster")) as instance:
            rows = _write_range(root, instance, symbols, days)
            seconds, result = _timed_verify(instance, days)
    ok = seconds <= TARGET_S and result.ok
    case = (
        f"verify over {rows:,} lineage rows ({len(symbols)} symbols x {len(days)} sessions, "
        f"{result.checked['objects']:,} objects hashed, "
        f"{result.checked['materializations']:,} events reconciled)"
    )
    note = "" if result.ok else f" (found {len(result.discrepancies)} discrepancies)"
    return [
        dict(section="verify", case=case + note, value=seconds, unit="s",
             target=f"<= {TARGET_S:g} s", ok=ok)
    ]  # fmt: skip


def _weekdays(first: dt.date, count: int) -> list[dt.date]:
    days, day = [], first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def _timed_verify(instance: dg.DagsterInstance, days: list[dt.date]):
    from ibkr_assets.settings import load_settings
    from ibkr_assets.strategies.config import StrategyConfig
    from ibkr_assets.verification.run import verify

    strategy = StrategyConfig.model_validate({"id": SID, "symbols": ["S00"]})
    started = time.perf_counter()
    result = verify(load_settings(), strategy, days[0], days[-1], instance=instance)
    return time.perf_counter() - started, result


def _write_range(
    root: Path, instance: dg.DagsterInstance, symbols: list[str], days: list[dt.date]
) -> int:
    """Objects, lineage rows and materialization events of one range run; the row count."""
    store = LocalObjectStore(root / "objects")
    lineage = LineageStore(f"sqlite:///{root / 'lineage.db'}")
    lineage.create_schema()
    run_id = str(uuid.uuid4())
    records: list[LineageRecord] = []
    versions: dict[str, dict[str, dict]] = {asset: {} for asset in [*SIZES, "portfolio_snapshot"]}
    for day in days:
        for sym in symbols:
            key = f"{day}|{sym}"
            for asset, size in SIZES.items():
                data = _payload(f"{asset}/{key}", size)
                stored = put_versioned(store, KEYS[asset].format(sid=SID, sym=sym, day=day),
                                       data, "application/octet-stream")  # fmt: skip
                versions[asset][key] = {**stored.to_json(), "version_key": stored.version_key}
                records.append(_record(run_id, asset, key, day, sym, stored.to_json()))
            records.append(_record(run_id, "market_data_quality", key, day, sym, None))
        key = day.isoformat()
        data = _payload(f"portfolio/{key}", 206)
        stored = put_versioned(
            store, f"trading-data/{SID}/portfolio/{day}_portfolio.json", data, "application/json"
        )
        versions["portfolio_snapshot"][key] = {
            **stored.to_json(),
            "version_key": stored.version_key,
        }
        records.append(_record(run_id, "portfolio_snapshot", key, day, None, stored.to_json()))
    for i in range(0, len(records), 1000):
        lineage.record_steps(records[i : i + 1000])
    events = []
    for asset, by_partition in versions.items():
        manifest = put_versioned(
            store,
            f"manifests/{SID}/{asset}/{run_id}.json",
            json.dumps(by_partition, sort_keys=True).encode(),
            "application/json",
        )
        ref = dg.MetadataValue.json({**manifest.to_json(), "version_key": manifest.version_key})
        events += [_event(run_id, asset, key, ref) for key in by_partition]
    instance.add_dynamic_partitions(f"{SID}_symbols", symbols)
    for i in range(0, len(events), 1000):
        instance.event_log_storage.store_event_batch(events[i : i + 1000])
    return len(records)


def _payload(seed: str, size: int) -> bytes:
    block = uuid.uuid5(uuid.NAMESPACE_URL, seed).bytes * 64
    return (block * (size // len(block) + 1))[:size]


def _record(
    run_id: str, step: str, key: str, day: dt.date, symbol: str | None, ref: dict | None
) -> LineageRecord:
    output = {"object": ref} if ref else {"passed": True}
    return LineageRecord(
        workflow_id=f"{SID}_workflow_job",
        execution_id=run_id,
        run_id=run_id,
        step_name=step,
        step_number=1,
        partition_key=key,
        symbol=symbol,
        partition_date=day,
        strategy_id=SID,
        input_data={"partition": key},
        output_data=output,
    )


def _event(run_id: str, asset: str, key: str, ref: dg.MetadataValue) -> EventLogEntry:
    materialization = dg.AssetMaterialization(
        asset_key=dg.AssetKey([SID, asset]), partition=key, metadata={"object_versions": ref}
    )
    return EventLogEntry(
        error_info=None,
        level="DEBUG",
        user_message="",
        run_id=run_id,
        timestamp=time.time(),
        dagster_event=DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name=f"{SID}_workflow_job",
            event_specific_data=StepMaterializationData(materialization),
        ),
    )
