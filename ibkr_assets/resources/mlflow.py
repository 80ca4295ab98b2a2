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
        """End the MLflow runs of this Dagster run, then those of ended Dagster runs of the
        instance that are still RUNNING (their execution ended while MLflow was down); a
        warning, never an error, if it cannot."""
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
        if context.instance is None:
            return
        try:  # and those earlier executions could not end because MLflow was down then
            abandoned = tracker.end_abandoned_runs(lambda ids: _ended_as(context.instance, ids))
        except TrackingError as exc:
            if context.log is not None:
                context.log.warning(f"MLflow runs of ended Dagster runs left RUNNING: {exc}")
            return
        if abandoned and context.log is not None:
            context.log.info(f"{abandoned} MLflow run(s) of ended Dagster runs ended")


def _run_has_failed(instance: dg.DagsterInstance | None, run_id: str) -> bool:
    """Whether a step of the Dagster run has failed so far."""
    if instance is None:
        return False
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1
    ).records
    return bool(records)


def _ended_as(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, str]:
    """The MLflow status for each of ``run_ids`` whose Dagster run has ended in ``instance``:
    FINISHED for a success, FAILED for a failure or cancellation."""
    ended = {}
    for run in instance.get_runs(filters=dg.RunsFilter(run_ids=run_ids)):
        if run.status == dg.DagsterRunStatus.SUCCESS:
            ended[run.run_id] = "FINISHED"
        elif run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            ended[run.run_id] = "FAILED"
    return ended
