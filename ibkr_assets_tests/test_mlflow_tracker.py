"""MlflowTracker against a real MLflow SQLite tracking store with a local artifact folder.

Creating the store runs MLflow's schema migrations (seconds), so one store serves the module;
each test uses its own partition keys or execution ids to stay independent.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from ibkr_assets.redaction import redact_text
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.tracking.mlflow_tracker import (
    MlflowTracker,
    TrackingError,
    _sqlite_store_setup,
    quote_filter_value,
    sqlite_database,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root / 'mlflow.db'}", root / "artifacts"


@pytest.fixture(scope="module")
def tracker(store: tuple[str, Path]) -> MlflowTracker:
    uri, artifacts = store
    return MlflowTracker(uri, str(artifacts))


@pytest.fixture()
def client(store: tuple[str, Path]) -> MlflowClient:
    """A client independent of the tracker, to check what really landed in the store."""
    return MlflowClient(tracking_uri=store[0])


def _run(tracker: MlflowTracker, key: str = "2025-01-02|AAPL", **kwargs: Any) -> str:
    symbol = key.partition("|")[2]
    args = {"execution_id": uuid.uuid4().hex, "dagster_run_id": "d1", **kwargs}
    return tracker.run_for_partition(
        strategy_id="momentum", symbol=symbol, partition_key=key, **args
    )


@pytest.mark.slow
def test_experiment_is_created_once_with_artifact_location(
    tracker: MlflowTracker, store: tuple[str, Path], client: MlflowClient
) -> None:
    experiment_id = tracker.experiment_id("momentum", "AAPL")

    experiment = client.get_experiment_by_name("momentum/trading_workflow_AAPL")
    assert experiment is not None and experiment.experiment_id == experiment_id
    assert experiment.artifact_location == (store[1] / "momentum/trading_workflow_AAPL").as_uri()
    assert tracker.experiment_id("momentum", "AAPL") == experiment_id
    assert MlflowTracker(store[0]).experiment_id("momentum", "AAPL") == experiment_id  # fresh cache
    assert Path(f"{sqlite_database(store[0])}.ready").is_file()  # later processes skip the lock


def test_experiment_created_concurrently_by_another_process(
    store: tuple[str, Path], client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.create_experiment("momentum/trading_workflow_RACE")
    late = MlflowTracker(store[0])
    real_get = late.client.get_experiment_by_name
    lookups: list[str] = []

    def get(name: str) -> object:  # the first lookup ran before the other process's create
        lookups.append(name)
        return None if len(lookups) == 1 else real_get(name)

    monkeypatch.setattr(late.client, "get_experiment_by_name", get)

    experiment = client.get_experiment_by_name("momentum/trading_workflow_RACE")
    assert experiment is not None
    assert late.experiment_id("momentum", "RACE") == experiment.experiment_id
    assert len(lookups) == 2


def test_run_for_partition_is_idempotent_and_tagged(
    tracker: MlflowTracker, client: MlflowClient
) -> None:
    key = "2025-01-03|AAPL"
    first = _run(tracker, key, execution_id="exec-1", tags={"code_version": "v1"})
    again = _run(tracker, key, execution_id="exec-1", dagster_run_id="d2")

    assert again == first
    run = client.get_run(first)
    assert run.info.run_name == key
    assert run.info.experiment_id == tracker.experiment_id("momentum", "AAPL")
    assert {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")} == {
        "workflow_type": "trading_signal",
        "strategy_id": "momentum",
        "symbol": "AAPL",
        "date": "2025-01-03",
        "partition_key": key,
        "execution_id": "exec-1",
        "dagster_run_id": "d2",
        "code_version": "v1",
    }
    assert _run(tracker, key, execution_id="exec-2") != first
    assert _run(tracker, "2025-01-06|AAPL", execution_id="exec-1") != first


def test_values_with_quotes_are_searchable(tracker: MlflowTracker) -> None:
    assert quote_filter_value("2025-01-02|AAPL") == "'2025-01-02|AAPL'"
    assert quote_filter_value("it's") == '"it\'s"'
    with pytest.raises(ValueError, match="both quote"):
        quote_filter_value("""'"'""")
    first = _run(tracker, "2025-01-07|AAPL", execution_id="it's")
    assert _run(tracker, "2025-01-07|AAPL", execution_id="it's") == first


def test_concurrent_run_creation_converges_on_the_oldest_run(
    tracker: MlflowTracker,
    store: tuple[str, Path],
    client: MlflowClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "2025-01-08|AAPL"
    winner = _run(tracker, key, execution_id="race")
    late = MlflowTracker(store[0])
    searches: list[object] = []
    real_search = late.client.search_runs
    monkeypatch.setattr(
        late.client, "search_runs", lambda *a, **k: searches.append(a) or real_search(*a, **k)
    )
    # this process looked the execution's runs up before the winner's run existed
    monkeypatch.setattr(late, "_execution_run", lambda *args: None)

    assert _run(late, key, execution_id="race", dagster_run_id="d9") == winner
    deleted = client.search_runs(
        [tracker.experiment_id("momentum", "AAPL")],
        "tags.execution_id = 'race'",
        run_view_type=ViewType.DELETED_ONLY,
    )
    assert len(deleted) == 1 and deleted[0].info.run_id != winner
    assert len(searches) == 1  # the search after creating finds the older run
    assert client.get_run(winner).data.tags["dagster_run_id"] == "d9"


def test_partition_key_must_match_the_symbol(tracker: MlflowTracker) -> None:
    with pytest.raises(ValueError, match="DATE\\|MSFT"):
        tracker.run_for_partition(
            strategy_id="momentum",
            symbol="MSFT",
            partition_key="2025-01-02|AAPL",
            execution_id="e",
            dagster_run_id="d",
        )


def test_log_params_metrics_and_tags_in_one_batch(
    tracker: MlflowTracker, client: MlflowClient
) -> None:
    run_id = _run(tracker)
    tracker.log(
        run_id,
        params={"symbol": "AAPL", "position_size": 100, "signal_confidence": 0.85},
        metrics={"latest_price": 187.5, "order_placed": True, "portfolio_value": None},
        tags={"signal_action": "BUY"},
    )

    data = client.get_run(run_id).data
    assert data.params == {"symbol": "AAPL", "position_size": "100", "signal_confidence": "0.85"}
    assert data.metrics == {"latest_price": 187.5, "order_placed": 1.0}
    assert data.tags["signal_action"] == "BUY"


def test_changed_param_is_kept_as_a_tag(tracker: MlflowTracker, client: MlflowClient) -> None:
    run_id = _run(tracker)
    tracker.log(run_id, params={"llm_provider": "openai", "symbol": "AAPL"})
    tracker.log(
        run_id,
        params={"llm_provider": "anthropic", "symbol": "AAPL", "model": "m1"},
        metrics={"confidence_score": 0.7},
    )

    data = client.get_run(run_id).data
    assert data.params == {"llm_provider": "openai", "symbol": "AAPL", "model": "m1"}
    assert data.tags["param_changed.llm_provider"] == "anthropic"
    assert "param_changed.symbol" not in data.tags
    assert data.metrics == {"confidence_score": 0.7}


def test_artifacts_round_trip(
    tracker: MlflowTracker, client: MlflowClient, store: tuple[str, Path], tmp_path: Path
) -> None:
    run_id = _run(tracker)
    signal = {"action": "BUY", "confidence": 0.8, "reasons": ["rsi", "macd"]}
    tracker.log_bytes(run_id, "daily_chart.png", PNG)
    tracker.log_bytes(run_id, "charts/weekly_chart.png", PNG[::-1])
    tracker.log_json(run_id, "trading_signal.json", signal)
    tracker.log_text(run_id, "prompt.txt", "Analyse AAPL ✓")

    listed = {f.path for f in client.list_artifacts(run_id)}
    assert listed == {"charts", "daily_chart.png", "trading_signal.json", "prompt.txt"}
    assert [f.path for f in client.list_artifacts(run_id, "charts")] == ["charts/weekly_chart.png"]

    def download(path: str) -> bytes:
        return Path(client.download_artifacts(run_id, path, str(tmp_path))).read_bytes()

    assert download("daily_chart.png") == PNG
    assert download("charts/weekly_chart.png") == PNG[::-1]
    assert json.loads(download("trading_signal.json")) == signal
    assert download("prompt.txt").decode("utf-8") == "Analyse AAPL ✓"
    assert client.get_run(run_id).info.artifact_uri.startswith(store[1].as_uri())
    with pytest.raises(ValueError, match="relative file path"):
        tracker.log_text(run_id, "../escape.txt", "x")


def test_finish_sets_status_and_finished_run_is_reused(
    tracker: MlflowTracker, client: MlflowClient
) -> None:
    run_id = _run(tracker, execution_id="finished")
    tracker.finish(run_id)

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    assert _run(tracker, execution_id="finished") == run_id
    tracker.log(run_id, metrics={"late_metric": 1.0})
    assert client.get_run(run_id).data.metrics == {"late_metric": 1.0}
    tracker.finish(run_id, status="FAILED")
    assert client.get_run(run_id).info.status == "FAILED"
    with pytest.raises(ValueError, match="status must be"):
        tracker.finish(run_id, status="RUNNING")


def test_run_url_only_for_http_servers_and_without_password(
    tracker: MlflowTracker, store: tuple[str, Path]
) -> None:
    run_id = _run(tracker)
    assert tracker.run_url(run_id) is None

    server = MlflowTracker("https://user:s3cret@mlflow.example.com:5000/")
    server._client = MlflowClient(tracking_uri=store[0])  # the server's answers, from the store
    experiment_id = tracker.experiment_id("momentum", "AAPL")
    assert server.run_url(run_id) == (
        f"https://mlflow.example.com:5000/#/experiments/{experiment_id}/runs/{run_id}"
    )


def test_unreachable_server_gives_tracking_error_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = MlflowTracker(f"http://user:s3cret@127.0.0.1:{port}")

    started = time.monotonic()
    with pytest.raises(TrackingError) as caught:
        server.experiment_id("momentum", "AAPL")
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"http://user:***@127.0.0.1:{port}" in message
    assert "s3cret" not in message and "momentum/trading_workflow_AAPL" in message


def test_store_marked_ready_only_after_a_successful_setup(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    with pytest.raises(RuntimeError, match="migration failed"), _sqlite_store_setup(uri):
        raise RuntimeError("migration failed")
    assert not (tmp_path / "new" / "mlflow.db.ready").exists()
    with _sqlite_store_setup(uri):
        (tmp_path / "new" / "mlflow.db").touch()
    assert (tmp_path / "new" / "mlflow.db.ready").is_file()


def test_a_new_sqlite_store_uses_a_write_ahead_log(tmp_path: Path) -> None:
    import sqlite3

    database = tmp_path / "wal" / "mlflow.db"
    tracker = MlflowTracker(f"sqlite:///{database}", str(tmp_path / "artifacts"))
    run_id = _run(tracker, "2025-05-05|AAPL")
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tracker.log(run_id, params={"model": "m"})  # and the store works in that mode
    assert MlflowClient(tracking_uri=f"sqlite:///{database}").get_run(run_id).data.params == {
        "model": "m"
    }
    # its commits do not wait for the disk: synchronous=NORMAL (1), SQLite's advice under WAL
    engine = tracker.client._tracking_client.store.engine
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1


def test_a_store_in_another_journal_mode_keeps_full_sync(tmp_path: Path) -> None:
    import sqlite3

    database = tmp_path / "rollback" / "mlflow.db"
    first = MlflowTracker(f"sqlite:///{database}", str(tmp_path / "artifacts"))
    _run(first, "2025-05-05|AAPL")
    first.client._tracking_client.store.engine.dispose()  # leaving WAL needs it closed
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    tracker = MlflowTracker(f"sqlite:///{database}", str(tmp_path / "artifacts"))
    _run(tracker, "2025-05-06|AAPL")
    with tracker.client._tracking_client.store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_unusable_store_gives_tracking_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("x")
    broken = MlflowTracker(f"sqlite:///{tmp_path / 'not-a-folder' / 'mlflow.db'}")
    with pytest.raises(TrackingError, match="connecting to the tracking store"):
        broken.experiment_id("momentum", "AAPL")


def test_tracking_uris_are_shown_without_their_password() -> None:
    assert redact_text("postgresql://u:pw@db:5432/mlflow") == "postgresql://u:***@db:5432/mlflow"
    assert redact_text("sqlite:///x/mlflow.db") == "sqlite:///x/mlflow.db"
    assert "pw" not in repr(MlflowTracker("http://u:pw@host"))


def test_resource_prepares_the_sqlite_folder(tmp_path: Path) -> None:
    resource = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")

    tracker = resource.get_tracker()
    assert (tmp_path / "home").is_dir()
    assert tracker.artifact_root == str((tmp_path / "home" / "mlflow-artifacts").resolve())
    assert resource.get_tracker() is tracker
    # Dagster builds the resource anew for each step: the steps of a run share one tracker
    assert MlflowResource(tracking_uri=resource.tracking_uri).get_tracker() is tracker
    other_root = MlflowResource(tracking_uri=resource.tracking_uri, artifact_root=str(tmp_path))
    assert other_root.get_tracker() is not tracker
    server = MlflowResource(tracking_uri="http://mlflow:5000", artifact_root="s3://b/mlflow")
    assert server.get_tracker().artifact_root == "s3://b/mlflow"
    assert server.get_tracker()._artifact_location("e") == "s3://b/mlflow/e"
    assert sorted(os.listdir(tmp_path)) == ["home"]


def test_later_steps_of_a_partition_reuse_the_run_without_searching(store, monkeypatch) -> None:
    uri, artifacts = store
    fresh = MlflowTracker(uri, str(artifacts))
    key = "2025-02-03|AAPL"
    first = fresh.run_for_partition(
        strategy_id="momentum",
        symbol="AAPL",
        partition_key=key,
        execution_id="exec-cache",
        dagster_run_id="r1",
    )
    searches: list[object] = []
    real_search = fresh.client.search_runs
    monkeypatch.setattr(
        fresh.client, "search_runs", lambda *a, **k: searches.append(a) or real_search(*a, **k)
    )
    again = fresh.run_for_partition(
        strategy_id="momentum",
        symbol="AAPL",
        partition_key=key,
        execution_id="exec-cache",
        dagster_run_id="r1",
    )
    assert again == first and searches == []
    tagged = fresh.run_for_partition(
        strategy_id="momentum",
        symbol="AAPL",
        partition_key=key,
        execution_id="exec-cache",
        dagster_run_id="r1",
        tags={"signal_action": "BUY"},
    )
    # the new tag is written to the same run, known from the search that followed its creation
    assert tagged == first and searches == []
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(first).data.tags["signal_action"] == "BUY"
    experiment = client.get_run(first).info.experiment_id
    deleted = client.search_runs(
        [experiment], "tags.execution_id = 'exec-cache'", run_view_type=ViewType.DELETED_ONLY
    )
    assert deleted == []  # no duplicate run was created (and deleted) along the way


def test_params_are_read_once_per_run_and_a_stale_copy_recovers(store) -> None:
    """``log`` remembers a run's params; if another process logged one since, it still works."""
    uri, artifacts = store
    one, other = MlflowTracker(uri, str(artifacts)), MlflowTracker(uri, str(artifacts))
    run_id = _run(one, "2025-02-04|AAPL")
    reads: list[str] = []
    real_get_run = one.client.get_run
    one.client.get_run = lambda rid: reads.append(rid) or real_get_run(rid)
    one.log(run_id, params={"model": "m1"})
    one.log(run_id, params={"template_version": 1})
    assert reads == []  # known since the run was created here

    other.log(run_id, params={"prompt": "p-other"})  # another process, in between
    one.log(run_id, params={"prompt": "p-mine"}, metrics={"cost_usd": 0.1})
    data = MlflowClient(tracking_uri=uri).get_run(run_id).data
    assert data.params == {"model": "m1", "template_version": "1", "prompt": "p-other"}
    assert data.tags["param_changed.prompt"] == "p-mine"
    assert data.metrics["cost_usd"] == 0.1


def test_artifacts_go_where_the_run_said_without_reading_it_again(store, tmp_path) -> None:
    """The run's artifact location comes from its creation (or search); a tracker that has not
    seen the run reads it once."""
    uri, artifacts = store
    one, other = MlflowTracker(uri, str(artifacts)), MlflowTracker(uri, str(artifacts))
    run_id = _run(one, "2025-02-04|AAPL")
    reads: list[str] = []
    for tracker in (one, other):  # the client's and the one MLflow's own upload path uses
        for owner in (tracker.client, tracker.client._tracking_client):
            real_get_run = owner.get_run
            owner.get_run = lambda rid, real=real_get_run: reads.append(rid) or real(rid)
    one.log_text(run_id, "prompt.txt", "p")
    one.log_bytes(run_id, "charts/daily_chart.png", PNG)
    assert reads == []
    other.log_text(run_id, "response.txt", "r")
    first_read = list(reads)
    assert first_read and set(first_read) == {run_id}  # a tracker new to the run reads it
    other.log_text(run_id, "again.txt", "a")
    assert reads == first_read  # once, then remembered
    client = MlflowClient(tracking_uri=uri)
    listed = {f.path for f in client.list_artifacts(run_id)}
    assert listed == {"prompt.txt", "response.txt", "again.txt", "charts"}
    assert Path(client.download_artifacts(run_id, "response.txt", str(tmp_path))).read_text() == "r"


def test_a_range_looks_up_its_execution_runs_with_one_search(store, monkeypatch) -> None:
    uri, artifacts = store
    first = MlflowTracker(uri, str(artifacts))
    keys = [f"2025-03-{d:02d}|MSFT" for d in (3, 4, 5)]
    made = {k: _run(first, k, execution_id="exec-range") for k in keys[:2]}
    later = MlflowTracker(uri, str(artifacts))  # another process, e.g. the next step
    searches: list[object] = []
    real_search = later.client.search_runs
    monkeypatch.setattr(
        later.client, "search_runs", lambda *a, **k: searches.append(a) or real_search(*a, **k)
    )
    found = {k: _run(later, k, execution_id="exec-range") for k in keys[:2]}
    assert found == made and len(searches) == 1
    new = _run(later, keys[2], execution_id="exec-range")  # not there yet: created
    assert new not in made.values() and len(searches) == 2  # + the check after creating


def test_runs_for_many_partitions_are_created_with_one_search_per_experiment(
    store, monkeypatch
) -> None:
    uri, artifacts = store
    tracker = MlflowTracker(uri, str(artifacts))
    partitions = {f"2025-04-0{d}|{s}": s for d in (1, 2, 3) for s in ("AAPL", "MSFT")}
    searches: list[object] = []
    real_search = tracker.client.search_runs
    monkeypatch.setattr(
        tracker.client, "search_runs", lambda *a, **k: searches.append(a) or real_search(*a, **k)
    )
    runs = tracker.runs_for_partitions(
        strategy_id="momentum", partitions=partitions, execution_id="exec-many", dagster_run_id="r7"
    )
    assert sorted(runs) == sorted(partitions) and len(set(runs.values())) == 6
    assert len(searches) == 4  # per experiment: the lookup before creating, the check after
    for key, symbol in partitions.items():  # later steps of the run: all from the cache
        again = tracker.run_for_partition(
            strategy_id="momentum",
            symbol=symbol,
            partition_key=key,
            execution_id="exec-many",
            dagster_run_id="r7",
        )
        assert again == runs[key]
    assert len(searches) == 4
    stored = MlflowClient(tracking_uri=uri).get_run(runs["2025-04-02|MSFT"]).data.tags
    assert stored["partition_key"] == "2025-04-02|MSFT" and stored["dagster_run_id"] == "r7"
    with pytest.raises(ValueError, match="DATE|AAPL"):
        tracker.runs_for_partitions(
            strategy_id="momentum",
            partitions={"2025-04-01|MSFT": "AAPL"},
            execution_id="exec-many",
            dagster_run_id="r7",
        )


@pytest.mark.slow
def test_artifacts_reach_an_s3_artifact_store(
    tmp_path: Path, s3_endpoint: str, monkeypatch
) -> None:
    """Runs whose artifacts live in S3 (MinIO in production) get the same files."""
    import boto3

    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_endpoint)
    bucket = f"mlflow-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", f"s3://{bucket}/mlflow")
    run_id = _run(tracker, "2025-06-02|AAPL")
    tracker.log_bytes(run_id, "charts/daily_chart.png", PNG)
    tracker.log_text(run_id, "prompt.txt", "Analyse AAPL ✓")
    keys = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    (chart,) = [k for k in keys if k.endswith("/artifacts/charts/daily_chart.png")]
    (prompt,) = [k for k in keys if k.endswith("/artifacts/prompt.txt")]
    assert s3.get_object(Bucket=bucket, Key=chart)["Body"].read() == PNG
    assert s3.get_object(Bucket=bucket, Key=prompt)["Body"].read().decode() == "Analyse AAPL ✓"
