"""The lineage resource: ``workflow_lineage`` and ``artifacts`` rows in SQLite or PostgreSQL.

Assets use ``StepRecorder`` to collect one row per partition of their step. The rows are written
in one batch (one transaction, whatever the size of the range) by the IO manager, right after it
has durably stored the step's objects (``commit_step``): a row never says ``success`` for an
object that is not in the store. A step that fails instead, in the asset or while storing, gets
an ``error`` row with the cause for each of its partitions (``fail_step``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import replace
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from ibkr_assets.domain.steps import step_number
from ibkr_assets.errors import describe_exception
from ibkr_assets.partitions import split_any
from ibkr_assets.storage.engines import log_statements
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets.storage.records import ArtifactRecord, LineageRecord


class LineageResource(dg.ConfigurableResource):
    """``database_url``: SQLAlchemy URL (``sqlite:///...`` default, ``postgresql+psycopg2://...``)."""

    database_url: str = "sqlite:///.ibkr_assets/lineage.db"
    viewer_url: str | None = None  # ``ibkr-assets serve``'s address: materializations link to it
    # Debug mode (IBKR_ASSETS_DEBUG): SQL statements and each step's inputs and outputs at DEBUG,
    # data samples and debug info in the partition's MLflow run (``assets.step.Step``).
    debug: bool = False

    _store: LineageStore | None = PrivateAttr(default=None)

    def get_store(self) -> LineageStore:
        log_statements(self.debug)
        if self._store is None:
            store = LineageStore(self.database_url)
            store.create_schema()
            self._store = store
        return self._store

    def record_input_failure(self, context: dg.InputContext, exc: BaseException) -> None:
        """A step that fails while loading an input has run no code and made no recorder: write
        an ``error`` row with the cause for each partition of each of its assets. A failure to
        write is logged, never raised over ``exc``."""
        try:
            step = context.step_context
            run = step.dagster_run
            assets_def = step.assets_def
            if step.has_partition_key_range:
                keys = assets_def.partitions_def.get_partition_keys_in_range(
                    step.partition_key_range, dynamic_partitions_store=context.instance
                )
            else:
                keys = [step.partition_key] if step.has_partition_key else []
            upstream = context.upstream_output
            source = upstream.asset_key.to_user_string() if upstream.has_asset_key else context.name
            error = f"loading {source}: {describe_exception(exc)}"
            rows = []
            for asset_key in step.get_output_asset_keys():
                strategy_id, name = asset_key.path[0], asset_key.path[-1]
                for key in keys:
                    day, symbol = split_any(key)
                    rows.append(LineageRecord(
                        workflow_id=run.job_name, execution_id=run.root_run_id or run.run_id,
                        run_id=run.run_id, step_name=name, step_number=step_number(name),
                        code_version=assets_def.code_versions_by_key.get(asset_key),
                        strategy_id=strategy_id, partition_key=key, symbol=symbol,
                        partition_date=dt.date.fromisoformat(day), input_data={},
                        output_data={}, status="error", error=error,
                    ))  # fmt: skip
            if rows:
                self.get_store().record_steps(rows)
        except Exception as write_error:  # noqa: BLE001 - the step's own error wins
            _log.warning("could not record an input failure: %s", describe_exception(write_error))

    def recorder(
        self,
        context: dg.AssetExecutionContext,
        step: str,
        strategy_id: str,
        asset_key: dg.AssetKey | None = None,
    ) -> StepRecorder:
        """Rows of ``step``; ``asset_key`` names the asset when the step makes several."""
        recorder = StepRecorder(context, self.get_store(), step, strategy_id, asset_key)
        recorder.viewer_url = self.viewer_url
        return recorder


class StepRecorder:
    """Lineage and artifact rows for one asset of one step of one run.

    The IO manager writes them once the asset's objects are stored (``commit_step``); rows with
    no object (checks) are written by ``flush``.
    """

    def __init__(
        self,
        context: Any,
        store: LineageStore,
        step: str,
        strategy_id: str,
        asset_key: dg.AssetKey | None = None,
    ) -> None:
        run = context.run
        self.store = store
        self.step = step
        self.base = {
            "workflow_id": run.job_name,
            "strategy_id": strategy_id,
            "execution_id": run.root_run_id or run.run_id,
            "run_id": run.run_id,
            "step_name": step,
            "step_number": step_number(step),
            "code_version": _code_version(context, asset_key),
        }
        self.viewer_url: str | None = None
        self._rows: dict[str, LineageRecord] = {}
        self._artifacts: list[ArtifactRecord] = []
        self._started = time.perf_counter()
        self.partition_keys = list(context.partition_keys)
        with _OPEN_LOCK:
            _OPEN[(run.run_id, asset_key or context.asset_key)] = self

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self._started) * 1000)

    def add(
        self,
        partition_key: str,
        *,
        status: str,
        input_data: dict[str, Any],
        output_data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        error: str | None = None,
        duration_ms: int | None = None,
    ) -> None:
        day, symbol = split_any(partition_key)
        self._rows[partition_key] = LineageRecord(
            **self.base,
            partition_key=partition_key,
            symbol=symbol,
            partition_date=dt.date.fromisoformat(day),
            input_data=input_data,
            output_data=output_data,
            metadata=metadata or {},
            status=status,
            error=error,
            duration_ms=duration_ms,
        )

    def add_artifact(self, partition_key: str, *, name: str, type: str, **fields: Any) -> None:
        _, symbol = split_any(partition_key)
        base = {k: v for k, v in self.base.items() if k not in {"step_number", "code_version"}}
        self._artifacts.append(
            ArtifactRecord(
                **base, partition_key=partition_key, symbol=symbol, name=name, type=type, **fields
            )
        )

    def flush(self) -> dict[str, int]:
        """Write every collected row now; returns the lineage row id of each partition."""
        with _OPEN_LOCK:  # written now: nothing left for the IO manager or a failure
            for open_key in [k for k, r in _OPEN.items() if r is self]:
                del _OPEN[open_key]
        keys = list(self._rows)
        ids = self.store.record_steps([self._rows[k] for k in keys]) if keys else []
        if self._artifacts:
            self.store.record_artifacts(self._artifacts)
        self._rows.clear()
        self._artifacts.clear()
        return dict(zip(keys, ids, strict=True))

    def partition_metadata(self) -> dict[str, dict[str, Any]]:
        """Each partition's own facts for its materialization: status, error, the lineage row's
        natural key and the row's headline values (a range run's events would otherwise all
        show the range's)."""
        out = {}
        for key, row in self._rows.items():
            meta: dict[str, Any] = {"status": row.status, "lineage_row": _row_key(row)}
            if row.error:
                meta["error"] = row.error
            data = row.output_data
            meta |= {
                f: data[f]
                for f in HEADLINE_FIELDS
                if isinstance(data.get(f), str | int | float | bool)
            }
            if isinstance(data.get("object"), dict) and "uri" in data["object"]:
                meta["object_uri"] = data["object"]["uri"]
            if self.viewer_url:
                meta["viewer"] = dg.MetadataValue.url(viewer_page(self.viewer_url, row))
            out[key] = meta
        return out

    def fail(self, error: str) -> None:
        """Write an ``error`` row for every partition of the step: the rows collected so far keep
        their inputs (and their own error, if they had one) but point at no object; partitions
        not reached yet get a row that says only why. Artifact rows are dropped."""
        rows = []
        for key in self.partition_keys:
            row = self._rows.get(key)
            if row is None:
                self.add(key, status="error", input_data={}, output_data={}, error=error)
                rows.append(self._rows[key])
            elif row.status == "error":
                rows.append(row)
            else:
                output = {k: v for k, v in row.output_data.items() if k != "object"}
                rows.append(replace(row, status="error", error=error, output_data=output))
        self._rows.clear()
        self._artifacts.clear()
        self.store.record_steps(rows)


HEADLINE_FIELDS = (
    "latest_price", "bars_count", "start_date", "end_date", "reason", "action", "confidence",
    "is_actionable", "decision_final", "valid", "final", "cache_hit", "cost_usd", "decision",
    "outcome", "mode", "equity", "cash", "market_value", "realized_pnl", "unrealized_pnl",
)  # fmt: skip


def viewer_page(viewer_url: str, row: LineageRecord) -> str:
    """The viewer page of a row's partition: a symbol's decision trace, or the portfolio."""
    base = viewer_url.rstrip("/")
    if row.symbol:
        return f"{base}/decisions/{row.strategy_id}/{row.partition_date}/{row.symbol}"
    return f"{base}/portfolio/{row.strategy_id}"


def _row_key(row: LineageRecord) -> str:
    return f"{row.execution_id}/{row.strategy_id}/{row.step_name}/{row.partition_key}"


def open_recorder(run_id: str, asset_key: dg.AssetKey) -> StepRecorder | None:
    """The recorder of ``asset_key``'s step in ``run_id`` whose rows are not written yet."""
    with _OPEN_LOCK:
        return _OPEN.get((run_id, asset_key))


_OPEN: dict[tuple[str, dg.AssetKey], StepRecorder] = {}  # this process's steps, not yet written
_OPEN_LOCK = threading.Lock()
_log = logging.getLogger(__name__)


def commit_step(run_id: str, asset_key: dg.AssetKey) -> dict[str, int]:
    """Write the rows of ``asset_key``'s step in ``run_id`` (the IO manager calls this once the
    step's objects are stored); the lineage row id of each partition."""
    with _OPEN_LOCK:
        recorder = _OPEN.pop((run_id, asset_key), None)
    return recorder.flush() if recorder else {}


def fail_step(run_id: str, asset_keys: list[dg.AssetKey], exc: BaseException) -> None:
    """Record ``exc`` as the error of every partition of the step's assets, then forget them.

    A failure to write (the database is what failed) is logged, never raised over ``exc``.
    """
    error = describe_exception(exc)
    for asset_key in asset_keys:
        with _OPEN_LOCK:
            recorder = _OPEN.pop((run_id, asset_key), None)
        if recorder is None:
            continue
        try:
            recorder.fail(error)
        except Exception as write_error:  # noqa: BLE001 - the step's own error wins
            _log.warning("could not record the failure of %s: %s", asset_key.to_user_string(),
                         describe_exception(write_error))  # fmt: skip


def _code_version(context: Any, asset_key: dg.AssetKey | None) -> str | None:
    try:
        return context.assets_def.code_versions_by_key.get(asset_key or context.asset_key)
    except Exception:  # checks have no asset of their own
        return None
