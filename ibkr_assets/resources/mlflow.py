"""The MLflow resource: experiment tracking in a local SQLite store or on an MLflow server."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg

from ibkr_assets.tracking.mlflow_tracker import MlflowTracker, TrackingError, sqlite_database

DEFAULT_ARTIFACT_FOLDER = "mlflow-artifacts"

# One tracker per store and process: Dagster builds the resource again for every step, and each
# new tracker would open its own client (seconds for a SQL store) and look its experiments up again.
_TRACKERS: dict[tuple[str, str | None], MlflowTracker] = {}
_TRACKERS_LOCK = threading.Lock()


class MlflowResource(dg.ConfigurableResource):
    """``tracking_uri``: ``sqlite:///...`` (default, embedded) or ``http(s)://`` an MLflow server.

    ``artifact_root``: where new experiments store artifacts (local path or a URI such as
    ``s3://...`` or ``mlflow-artifacts:/...``). ``None`` leaves it to the store: a server's own
    artifact store, or for SQLite a ``mlflow-artifacts`` folder next to the database file rather
    than MLflow's default ``./mlruns`` relative to whatever the current directory happens to be.

    When an execution ends (each step with Dagster's multiprocess executor, the whole run in
    process), every MLflow run it used is ended: FAILED if a step of the Dagster run failed,
    else FINISHED, whatever the selection.
    """

    tracking_uri: str = "sqlite:///.ibkr_assets/mlflow.db"
    artifact_root: str | None = None

    def get_tracker(self) -> MlflowTracker:
        artifact_root = self.artifact_root
        database = sqlite_database(self.tracking_uri)
        if database is not None:
            folder = Path(database).parent
            folder.mkdir(parents=True, exist_ok=True)
            if artifact_root is None:
                artifact_root = str((folder / DEFAULT_ARTIFACT_FOLDER).resolve())
        with _TRACKERS_LOCK:
            key = (self.tracking_uri, artifact_root)
            if key not in _TRACKERS:
                _TRACKERS[key] = MlflowTracker(self.tracking_uri, artifact_root)
            return _TRACKERS[key]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """End the MLflow runs of this Dagster run (a warning, never an error, if it cannot)."""
        run = context.dagster_run
        if run is None:
            return
        tracker = self.get_tracker()
        try:
            if _run_has_failed(context.instance, run.run_id):
                ended = tracker.fail_runs(run.run_id)
                status = "FAILED"
            else:
                ended = tracker.end_runs(run.run_id, "FINISHED")
                status = "FINISHED"
        except TrackingError as exc:
            if context.log is not None:
                context.log.warning(f"MLflow runs left RUNNING: {exc}")
            return
        if ended and context.log is not None:
            context.log.debug(f"{ended} MLflow run(s) ended as {status}")


def _run_has_failed(instance: dg.DagsterInstance | None, run_id: str) -> bool:
    """Whether a step of the Dagster run has failed so far."""
    if instance is None:
        return False
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1
    ).records
    return bool(records)
