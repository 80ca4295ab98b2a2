"""One ``verify`` of a strategy and date range: gather, compare, delete orphans if asked, record.

Used by the ``ibkr-assets verify`` command and by the Dagster ``verify_job`` alike.
"""

from __future__ import annotations

import datetime as dt
import time

from ibkr_assets.settings import Settings
from ibkr_assets.storage.layout import LAYOUTS
from ibkr_assets.storage.object_store import LocalObjectStore, ObjectStore, S3ObjectStore
from ibkr_assets.storage.verification_runs import record_verification, utcnow
from ibkr_assets.strategies.config import StrategyConfig
from ibkr_assets.verification import checks, gather, services
from ibkr_assets.verification.checks import Discrepancy
from ibkr_assets.verification.report import VerificationResult

ASSET_STEPS: tuple[str, ...] = tuple(LAYOUTS)  # every asset stores its value under the layout


def object_store_for(settings: Settings) -> ObjectStore:
    if settings.object_store == "s3":
        return S3ObjectStore(settings.s3_bucket, settings.s3_endpoint_url, settings.s3_region)
    return LocalObjectStore(settings.object_root_path)


def verify(
    settings: Settings,
    strategy: StrategyConfig,
    start: dt.date,
    end: dt.date,
    *,
    instance=None,
    delete_orphans: bool = False,
    triggered_by: str = "cli",
    record: bool = True,
) -> VerificationResult:
    """Run every check for ``strategy`` over sessions ``start`` .. ``end``.

    ``instance`` is the Dagster instance whose event log is reconciled (None: that check is
    skipped). The result is recorded in ``verification_runs`` when the database is reachable.
    """
    began, started_at = time.perf_counter(), utcnow()
    result = VerificationResult(strategy.id, start, end)
    url, store = settings.lineage_url, object_store_for(settings)
    down = [
        d
        for d in (
            services.check_database(url),
            services.check_object_store(store),
            services.check_mlflow(settings.tracking_uri),
        )
        if d is not None
    ]
    result.checked["services"] = 3
    result.discrepancies += down
    database_up = not any(d.subject.startswith("database") for d in down)
    store_up = not any(d.subject.startswith("object store") for d in down)
    if not database_up:
        for check in checks.CHECKS[1:]:
            result.skipped[check] = "database unreachable"
        result.duration_ms = _ms(began)
        return result

    rows = gather.lineage_rows(url, strategy.id, start, end)
    base = gather.base_uri(store)
    manifest_keys: set[str] = set()
    if store_up:
        result.checked["objects"], found = checks.check_objects(
            rows, gather.reader(store), base, ASSET_STEPS
        )
        result.discrepancies += found
    else:
        result.skipped["objects"] = result.skipped["orphans"] = "object store unreachable"

    if instance is None:
        result.skipped["materializations"] = "no Dagster instance"
    else:
        from ibkr_assets.verification.events import materializations

        symbols = {r["symbol"] for r in rows if r.get("symbol")}
        mats, problems, manifest_keys = materializations(
            instance, store, strategy.id, ASSET_STEPS, start, end, symbols
        )
        result.checked["materializations"] = len(mats)
        result.discrepancies += problems
        result.discrepancies += checks.reconcile_materializations(rows, mats, ASSET_STEPS)

    records = gather.order_record_rows(url, strategy.id, start, end)
    book = gather.book_orders(url, strategy.id, start, end)
    result.checked["orders"], found = checks.check_order_records(records, book)
    result.discrepancies += found

    stored, again = gather.snapshot_pairs(url, strategy.id, start, end, strategy.risk.allow_short)
    result.checked["portfolio"] = len(stored)
    result.discrepancies += checks.check_snapshots(stored, again)

    if store_up:
        _orphans(result, store, rows, manifest_keys, url, strategy.id, delete_orphans)
    result.duration_ms = _ms(began)
    if record:
        _record(url, result, started_at, triggered_by)
    return result


def _orphans(
    result: VerificationResult,
    store: ObjectStore,
    rows: list[dict],
    manifest_keys: set[str],
    url: str,
    strategy_id: str,
    delete: bool,
) -> None:
    keys = [k for prefix in gather.strategy_prefixes(strategy_id) for k in store.list_keys(prefix)]
    referenced = gather.referenced_keys(rows, gather.base_uri(store)) | manifest_keys
    runs = gather.known_runs(url, strategy_id)
    result.checked["orphans"] = len(keys)
    result.orphans = checks.find_orphans(keys, referenced, runs, result.start, result.end)
    if delete:
        for key in result.orphans:
            store.delete(key)
        result.orphans_deleted = len(result.orphans)
    else:
        result.discrepancies += [
            Discrepancy("orphans", key, "no lineage row references it") for key in result.orphans
        ]


def _record(url: str, result: VerificationResult, started_at: dt.datetime, by: str) -> None:
    try:
        record_verification(
            url,
            strategy_id=result.strategy_id,
            start_date=result.start,
            end_date=result.end,
            ok=result.ok,
            discrepancies=len(result.discrepancies),
            orphans_deleted=result.orphans_deleted,
            checks=result.summary(),
            details=[d.to_json() for d in result.discrepancies],
            triggered_by=by,
            started_at=started_at,
            duration_ms=result.duration_ms,
        )
    except Exception as exc:  # the result is printed anyway; say it was not kept
        result.discrepancies.append(
            Discrepancy(
                "services", "verification_runs", f"result not recorded: {services.reason(exc)}"
            )
        )


def _ms(began: float) -> int:
    return int((time.perf_counter() - began) * 1000)
