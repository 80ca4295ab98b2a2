"""MLflow as a deployment uses it: a real tracking server, a server that is down, and the
status of every run whatever the selection and whatever failed.

The server (``mlflow_server``) is shared by the session, so each test works in experiments of
its own strategy id.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ibkr_assets.resources import build_resources
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.settings import load_settings
from ibkr_assets.tracking.mlflow_tracker import MlflowTracker
from ibkr_assets_tests.conftest import MlflowServer, free_port
from ibkr_assets_tests.helpers import failure_messages, job_name, key, node, run_partitions

pytestmark = pytest.mark.slow  # a real mlflow server process

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
HTTP_VARS = (  # MLflow's client reads these for every request
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
)


def _tracker_from_settings() -> MlflowTracker:
    """The tracker the deployment's resource gets from the environment's settings."""
    settings = load_settings()
    resource = build_resources(settings)["mlflow"]
    assert resource.artifact_root == settings.artifact_root
    return MlflowResource(
        tracking_uri=settings.tracking_uri, artifact_root=resource.artifact_root
    ).get_tracker()


def _one_run(tracker: MlflowTracker, strategy_id: str, dagster_run_id: str = "d1") -> str:
    return tracker.run_for_partition(
        strategy_id=strategy_id,
        symbol="AAPL",
        partition_key="2025-03-14|AAPL",
        execution_id=uuid.uuid4().hex,
        dagster_run_id=dagster_run_id,
    )


def _statuses(tracking_uri: str, experiment: str) -> list[str]:
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    return [r.info.status for r in client.search_runs([found.experiment_id])]


def test_a_server_keeps_the_artifacts_in_its_own_store(
    mlflow_server: MlflowServer, deployment, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    deployment()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    strategy = f"srv{uuid.uuid4().hex[:8]}"
    tracker = _tracker_from_settings()

    run_id = _one_run(tracker, strategy)
    tracker.log_bytes(run_id, "charts/daily_chart.png", PNG)

    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment = client.get_experiment_by_name(f"{strategy}/trading_workflow_AAPL")
    assert experiment is not None
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    (stored,) = mlflow_server.artifacts.rglob(f"{run_id}/artifacts/charts/daily_chart.png")
    assert stored.read_bytes() == PNG
    assert not [p for p in tmp_path.rglob("*") if "artifacts" in p.name]  # none kept here


def test_an_explicit_artifact_root_wins_and_mlflow_artifacts_is_a_uri(
    mlflow_server: MlflowServer, deployment, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    deployment(MLFLOW_ARTIFACT_ROOT="mlflow-artifacts:/custom")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    strategy = f"root{uuid.uuid4().hex[:8]}"
    tracker = _tracker_from_settings()

    run_id = _one_run(tracker, strategy)
    tracker.log_text(run_id, "prompt.txt", "Analyse AAPL")

    experiment = MlflowClient(tracking_uri=mlflow_server.url).get_experiment_by_name(
        f"{strategy}/trading_workflow_AAPL"
    )
    assert experiment is not None
    assert experiment.artifact_location == f"mlflow-artifacts:/custom/{experiment.name}"
    stored = mlflow_server.artifacts / "custom" / experiment.name / run_id / "artifacts"
    assert (stored / "prompt.txt").read_text() == "Analyse AAPL"
    assert not list(tmp_path.rglob("mlflow-artifacts*"))  # no local folder of that name


def test_only_a_local_store_gets_a_local_artifact_folder(deployment, monkeypatch) -> None:
    deployment()
    local = load_settings()
    assert local.artifact_root == (local.home_path / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert load_settings().artifact_root is None  # the server's store
    deployment(MLFLOW_ARTIFACT_ROOT="s3://mlflow")
    assert load_settings().artifact_root == "s3://mlflow"


def test_bounded_retries_by_default_and_exported_values_win(monkeypatch) -> None:
    for name in HTTP_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")

    assert MlflowTracker(f"http://127.0.0.1:{free_port()}").client is not None

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"  # README's defaults
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"  # the user's value


def test_workflow_with_the_server_down_fails_fast_with_a_clear_message(
    deployment, instance, monkeypatch
) -> None:
    deployment()
    for name in HTTP_VARS:  # the project's defaults, as a user who set nothing gets them
        monkeypatch.delenv(name, raising=False)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)

    started = time.monotonic()
    result = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    elapsed = time.monotonic() - started

    assert not result.success
    assert elapsed < 30, f"took {elapsed:.0f} s to give up on a server that is down"
    messages = "\n".join(failure_messages(result))
    assert f"MLflow server {url} is unavailable (connection refused)" in messages
    succeeded = {e.step_key for e in result.all_events if e.is_step_success}
    assert node("order") not in succeeded  # no decision without its record


def test_a_selection_without_trading_signal_finishes_its_runs(deployment, instance, tmp_path):
    deployment()
    from ibkr_assets.definitions import build_definitions
    from ibkr_assets_tests.helpers import add_symbols

    add_symbols(instance, ["AAPL"])
    job = build_definitions().resolve_job_def(job_name("trading_workflow_job"))
    result = job.execute_in_process(
        instance=instance,
        partition_key="2025-03-14|AAPL",
        asset_selection=[
            key(n) for n in ("market_data", "indicators", "daily_chart", "weekly_chart")
        ],
    )
    assert result.success
    uri = f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert _statuses(uri, "momentum/trading_workflow_AAPL") == ["FINISHED"]


def test_a_failed_execution_fails_its_runs(deployment, instance, tmp_path, monkeypatch):
    deployment()
    real_log_text = MlflowTracker.log_text

    def log_text(self: MlflowTracker, run_id: str, path: str, text: str) -> None:
        if path == "prompt.txt":
            raise RuntimeError("analysis step broke")
        real_log_text(self, run_id, path, text)

    monkeypatch.setattr(MlflowTracker, "log_text", log_text)  # after charts made the run
    result = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    assert not result.success
    assert "analysis step broke" in "\n".join(failure_messages(result))
    uri = f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert _statuses(uri, "momentum/trading_workflow_AAPL") == ["FAILED"]


def test_fail_runs_finds_runs_other_processes_made_for_the_dagster_run(tmp_path: Path) -> None:
    """A step process that used no run itself still fails those the run's other steps made."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    other_step = MlflowTracker(uri, str(tmp_path / "artifacts"))
    mine = _one_run(other_step, "momentum", dagster_run_id="dagster-1")
    other_run = _one_run(other_step, "momentum", dagster_run_id="dagster-2")
    other_step.finish(mine)

    failing_step = MlflowTracker(uri, str(tmp_path / "artifacts"))
    assert failing_step.fail_runs("dagster-1") == 1
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(mine).info.status == "FAILED"
    assert client.get_run(other_run).info.status == "RUNNING"
    assert other_step.end_runs("dagster-2") == 1
    assert client.get_run(other_run).info.status == "FINISHED"


@pytest.mark.parametrize("status", ["FINISHED", "FAILED"])
def test_runs_end_once_per_status(tmp_path: Path, status: str, monkeypatch) -> None:
    """A run the asset already finished costs no second call when its status stays."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, str(tmp_path / "artifacts"))
    run_id = _one_run(tracker, "momentum", dagster_run_id="d")
    tracker.finish(run_id)
    calls: list[str] = []
    real = tracker.client.set_terminated
    monkeypatch.setattr(
        tracker.client, "set_terminated", lambda rid, **kw: calls.append(rid) or real(rid, **kw)
    )
    assert tracker.end_runs("d", status) == (status != "FINISHED")
    assert MlflowClient(tracking_uri=uri).get_run(run_id).info.status == status
    assert len(calls) == (status != "FINISHED")
