"""The lineage resource: ``workflow_lineage`` and ``artifacts`` rows in SQLite or PostgreSQL.

Assets use ``StepRecorder`` to collect one row per partition of their step and write them in
one batch at the end (one transaction, whatever the size of the range).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from ibkr_assets.domain.steps import step_number
from ibkr_assets.partitions import split_any
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets.storage.records import ArtifactRecord, LineageRecord


class LineageResource(dg.ConfigurableResource):
    """``database_url``: SQLAlchemy URL (``sqlite:///...`` default, ``postgresql+psycopg2://...``)."""

    database_url: str = "sqlite:///.ibkr_assets/lineage.db"

    _store: LineageStore | None = PrivateAttr(default=None)

    def get_store(self) -> LineageStore:
        if self._store is None:
            store = LineageStore(self.database_url)
            store.create_schema()
            self._store = store
        return self._store

    def recorder(
        self,
        context: dg.AssetExecutionContext,
        step: str,
        strategy_id: str,
        asset_key: dg.AssetKey | None = None,
    ) -> StepRecorder:
        """Rows of ``step``; ``asset_key`` names the asset when the step makes several."""
        return StepRecorder(context, self.get_store(), step, strategy_id, asset_key)


class StepRecorder:
    """Lineage and artifact rows for one step of one run, written together by ``flush``."""

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
        self._rows: dict[str, LineageRecord] = {}
        self._artifacts: list[ArtifactRecord] = []
        self._started = time.perf_counter()

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
        """Write every collected row; returns the lineage row id of each partition."""
        keys = list(self._rows)
        ids = self.store.record_steps([self._rows[k] for k in keys]) if keys else []
        if self._artifacts:
            self.store.record_artifacts(self._artifacts)
        self._rows.clear()
        self._artifacts.clear()
        return dict(zip(keys, ids, strict=True))


def _code_version(context: Any, asset_key: dg.AssetKey | None) -> str | None:
    try:
        return context.assets_def.code_versions_by_key.get(asset_key or context.asset_key)
    except Exception:  # checks have no asset of their own
        return None
