"""The Dagster instance of the embedded deployment: Dagster's SQLite storage in one folder.

The repository's ``dagster.yaml`` is this configuration for ``DAGSTER_HOME=$PWD``; the
``ibkr-assets`` command writes the same into a ``DAGSTER_HOME`` it creates, so its runs get the
same storage as runs launched from the UI.
"""

from __future__ import annotations

from pathlib import Path

import yaml

EVENT_LOG_STORAGE = ("ibkr_assets.storage.dagster_sqlite", "PooledSqliteEventLogStorage")
# The daemon fails runs stuck starting or cancelling; the default run launcher cannot check or
# resume a worker, so no resume attempts (ibkr_assets/dead_runs.py covers the command's runs).
RUN_MONITORING = {
    "enabled": True,
    "start_timeout_seconds": 180,
    "cancel_timeout_seconds": 180,
    "max_resume_run_attempts": 0,
    "poll_interval_seconds": 60,
}


# Each strategy's order and portfolio steps share the pool ``{strategy}_book``: with a limit of 1,
# Dagster runs one of them at a time across the runs it executes (the book lock in
# ibkr_assets/storage/book_lock.py also covers processes Dagster does not know about).
CONCURRENCY = {"pools": {"default_limit": 1}}


def instance_config(storage_dir: str, event_log: str = "dagster") -> dict:
    """``dagster.yaml`` content with every storage under ``storage_dir``, run monitoring on, one
    step at a time per strategy's book pool.

    ``event_log="dagster"`` (the default) is Dagster's own ``storage: sqlite``. ``"pooled"`` is
    the same layout with the event log through ``PooledSqliteEventLogStorage``, an explicit
    choice for long single-run ranges: it keeps its SQLite connections open and writes a batch
    of events in one transaction, but relies on Dagster internals (it refuses a Dagster series
    it was not checked against; see ``storage/dagster_sqlite.py``).
    """
    if event_log == "dagster":
        storage: dict = {"storage": {"sqlite": {"base_dir": storage_dir}}}
    elif event_log == "pooled":
        module, cls = EVENT_LOG_STORAGE
        storage = {
            "run_storage": {
                "module": "dagster._core.storage.runs",
                "class": "SqliteRunStorage",
                "config": {"base_dir": f"{storage_dir}/history"},
            },
            "event_log_storage": {
                "module": module,
                "class": cls,
                "config": {"base_dir": f"{storage_dir}/history/runs"},
            },
            "schedule_storage": {
                "module": "dagster._core.storage.schedules",
                "class": "SqliteScheduleStorage",
                "config": {"base_dir": f"{storage_dir}/schedules"},
            },
        }
    else:
        raise ValueError(f"event_log must be 'dagster' or 'pooled', not {event_log!r}")
    return {
        **storage,
        "run_monitoring": dict(RUN_MONITORING),
        "concurrency": {"pools": dict(CONCURRENCY["pools"])},
        "telemetry": {"enabled": False},
    }


def write_instance_config(home: Path, event_log: str = "dagster") -> Path:
    """Write ``home/dagster.yaml`` for the embedded deployment unless one exists; its path."""
    path = home / "dagster.yaml"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        config = instance_config(str((home / "storage").resolve()), event_log)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
