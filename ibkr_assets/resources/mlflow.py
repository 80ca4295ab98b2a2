"""The MLflow resource: experiment tracking in a local SQLite store or on an MLflow server."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg

from ibkr_assets.tracking.mlflow_tracker import MlflowTracker, sqlite_database

DEFAULT_ARTIFACT_FOLDER = "mlflow-artifacts"

# One tracker per store and process: Dagster builds the resource again for every step, and each
# new tracker would open its own client (seconds for a SQL store) and look its experiments up again.
_TRACKERS: dict[tuple[str, str | None], MlflowTracker] = {}
_TRACKERS_LOCK = threading.Lock()


class MlflowResource(dg.ConfigurableResource):
    """``tracking_uri``: ``sqlite:///...`` (default, embedded) or ``http(s)://`` an MLflow server.

    ``artifact_root``: where new experiments store artifacts (local path or ``s3://...``). With a
    SQLite store and no ``artifact_root``, artifacts go to a ``mlflow-artifacts`` folder next to
    the database file rather than MLflow's default ``./mlruns`` relative to whatever the current
    directory happens to be.
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
