"""The run_failure_sensor: a failed run becomes rows in ``run_failures`` and, optionally, a webhook.

The end-to-end tests make a real run fail (a csv source folder without the symbol's file) and
evaluate the sensor on it the way the daemon would. Webhooks are tiny HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from ibkr_assets.monitoring.run_failures import (
    build_run_failure_sensor,
    notify_webhook,
    partition_key_from_tags,
    safe_webhook_url,
    strategy_of_step,
)
from ibkr_assets.storage.run_failure_store import RunFailureStore
from ibkr_assets.storage.tables import run_failures
from ibkr_assets_tests.helpers import job_name, run_partitions
from ibkr_assets_tests.test_lineage_store import ddl_shapes, schemas  # noqa: F401

TOKEN = "tok-3f9a-not-for-logs"
UTC = dt.timezone.utc


# --- sql/006 against the table (PostgreSQL) ----------------------------------------------


def test_run_failures_sql_matches_the_table(postgres_url: str, schemas: list[str]) -> None:  # noqa: F811
    sql_shape, metadata_shape = ddl_shapes(
        postgres_url, schemas, ["006_run_failures.sql"], [run_failures]
    )
    assert set(sql_shape) == {"run_failures"}
    assert sql_shape == metadata_shape
    table = sql_shape["run_failures"]
    assert ("uq_run_failures_run_step", ("run_id", "step_key")) in table["unique"]
    assert table["columns"]["step_key"] == ("VARCHAR(255)", False, "''::character varying")
    assert table["columns"]["notified"] == ("BOOLEAN", False, "false")


# --- RunFailureStore, on both databases --------------------------------------------------


@pytest.fixture
def store(database_url: str) -> RunFailureStore:
    store = RunFailureStore(database_url)
    store.create_schema()
    store.create_schema()  # idempotent
    return store


def _failure(run_id: str, **overrides) -> dict:
    fields = {
        "run_id": run_id,
        "job_name": job_name("market_data_job"),
        "step_key": "market_data",
        "partition_key": "2025-03-14|AAPL",
        "error": "unknown symbol 'AAPL'",
        "error_class": "Failure",
        "occurred_at": dt.datetime(2025, 3, 14, 21, 5, tzinfo=UTC),
    }
    fields.update(overrides)
    return fields


def test_recording_a_failure_again_updates_its_row(store: RunFailureStore) -> None:
    run_id = f"run-{uuid.uuid4()}"
    first = store.record(**_failure(run_id, error="first attempt"))
    again = store.record(**_failure(run_id, error="second look"))
    other_step = store.record(**_failure(run_id, step_key="indicators"))
    run_level = store.record(**_failure(run_id, step_key=None, error="run cancelled"))
    run_level_again = store.record(**_failure(run_id, step_key=None, error="run cancelled!"))

    assert first == again and run_level == run_level_again
    assert len({first, other_step, run_level}) == 3
    rows = store.for_run(run_id)
    assert [(r["step_key"], r["error"]) for r in rows] == [
        ("market_data", "second look"),
        ("indicators", "unknown symbol 'AAPL'"),
        ("", "run cancelled!"),
    ]
    row = rows[0]
    assert row["occurred_at"] == dt.datetime(2025, 3, 14, 21, 5, tzinfo=UTC)
    assert (row["notified"], row["webhook_status"], row["strategy_id"]) == (False, None, None)


def test_recording_again_keeps_the_webhook_outcome(store: RunFailureStore) -> None:
    run_id = f"run-{uuid.uuid4()}"
    store.record(**_failure(run_id))
    store.mark_notified(run_id, "200")
    store.record(**_failure(run_id, error="seen again"))
    [row] = store.for_run(run_id)
    assert (row["notified"], row["webhook_status"], row["error"]) == (True, "200", "seen again")

    store.mark_notified(run_id, "error: URLError: [Errno 111] Connection refused")
    [row] = store.for_run(run_id)
    assert row["notified"] is False and row["webhook_status"].startswith("error: URLError")


def test_recent_lists_the_newest_failures_first(store: RunFailureStore) -> None:
    # Far-future times keep these newest even in the PostgreSQL database other tests share.
    base = dt.datetime(2100, 1, 1, tzinfo=UTC)
    run_ids = [f"run-{uuid.uuid4()}" for _ in range(3)]
    for i, run_id in enumerate(run_ids):
        store.record(**_failure(run_id, occurred_at=base + dt.timedelta(hours=i)))

    recent = store.recent(limit=2)
    assert [r["run_id"] for r in recent] == [run_ids[2], run_ids[1]]
    assert recent[0]["occurred_at"] == base + dt.timedelta(hours=2)
    assert len(store.recent()) >= 3


def test_overlong_values_are_cut_to_fit_instead_of_failing(store: RunFailureStore) -> None:
    run_id = f"run-{uuid.uuid4()}"
    store.record(**_failure(run_id, partition_key="p" * 400, error="e" * 50_000))
    [row] = store.for_run(run_id)
    assert len(row["partition_key"]) == 255 and row["partition_key"].endswith("…")
    assert len(row["error"]) == 50_000  # TEXT: the whole error is kept


# --- the webhook ---------------------------------------------------------------------------


class _Webhook:
    """An HTTP server on 127.0.0.1 that keeps every POST and answers with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = f"/hook?token={TOKEN}") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    hook = _Webhook()
    yield hook
    hook.close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_notify_webhook_posts_json_and_returns_the_status(webhook: _Webhook) -> None:
    status = notify_webhook(webhook.url(), {"run_id": "r1", "when": dt.date(2025, 3, 14)})
    assert status == "200"
    [request] = webhook.requests
    assert request["json"] == {"run_id": "r1", "when": "2025-03-14"}
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["path"] == f"/hook?token={TOKEN}"

    webhook.status = 503
    assert notify_webhook(webhook.url(), {"run_id": "r2"}) == "503"


def test_userinfo_in_the_webhook_url_becomes_basic_auth(webhook: _Webhook) -> None:
    url = f"http://alerts:{TOKEN}@127.0.0.1:{webhook.port}/hook"
    assert notify_webhook(url, {"run_id": "r1"}) == "200"
    [request] = webhook.requests
    expected = base64.b64encode(f"alerts:{TOKEN}".encode()).decode()
    assert request["headers"]["Authorization"] == f"Basic {expected}"


def test_a_broken_webhook_returns_an_error_status_without_its_secrets(closed_port: int) -> None:
    refused = notify_webhook(
        f"http://alerts:{TOKEN}@127.0.0.1:{closed_port}/hook?token={TOKEN}", {"run_id": "r1"}
    )
    assert refused.startswith("error: URLError") and "refused" in refused.lower()
    assert TOKEN not in refused

    not_http = notify_webhook(f"file:///{TOKEN}/passwd", {"run_id": "r1"})
    assert not_http.startswith("error: ") and "http" in not_http and TOKEN not in not_http
    bad_port = notify_webhook(f"http://127.0.0.1:{TOKEN}/hook", {"run_id": "r1"})
    assert bad_port.startswith("error: ") and TOKEN not in bad_port


def test_safe_webhook_url_keeps_only_scheme_host_and_port() -> None:
    url = f"https://alerts:{TOKEN}@hooks.example.com:8443/services/{TOKEN}?token={TOKEN}"
    assert safe_webhook_url(url) == "https://hooks.example.com:8443"
    assert safe_webhook_url("not a url") == "<invalid webhook URL>"


def test_a_steps_strategy_is_its_key_prefix() -> None:
    assert strategy_of_step("momentum__order") == "momentum"
    assert strategy_of_step("my__strategy__market_data_quality") == "my__strategy"
    assert strategy_of_step("noop") is None and strategy_of_step(None) is None


def test_partition_key_comes_from_the_partition_or_range_tags() -> None:
    assert partition_key_from_tags({"dagster/partition": "2025-03-14|AAPL"}) == "2025-03-14|AAPL"
    range_tags = {
        "dagster/asset_partition_range_start": "2025-03-10|AAPL",
        "dagster/asset_partition_range_end": "2025-03-14|AAPL",
    }
    assert partition_key_from_tags(range_tags) == "2025-03-10|AAPL...2025-03-14|AAPL"
    assert partition_key_from_tags({"strategy": "momentum"}) is None


# --- the sensor, on a real failed run ------------------------------------------------------


@pytest.fixture
def failed_run(
    deployment, instance: dg.DagsterInstance, tmp_path: Path, closed_port: int
) -> dg.DagsterRun:
    """A market_data_job run for 2025-03-14|AAPL that failed: its bars' database is down (one
    symbol's bad data would only block its partition; a source that is down fails the step)."""
    deployment(
        strategy={"market_data": {"source": "postgres"}},
        STOCK_DATA_URL=f"postgresql+psycopg2://postgres@127.0.0.1:{closed_port}/stocks",
    )
    result = run_partitions(instance, symbol="AAPL", start="2025-03-14")
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    return run


def _run_failure_event(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterEvent:
    [event] = [
        entry.dagster_event
        for entry in instance.all_logs(run_id)
        if entry.dagster_event and entry.dagster_event.event_type_value == "PIPELINE_FAILURE"
    ]
    return event


def _evaluate(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, run: dg.DagsterRun
) -> None:
    """Evaluate ``sensor`` for ``run``'s failure, as the daemon does when the run fails."""
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_sensor",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=_run_failure_event(instance, run.run_id),
    ).for_run_failure()
    sensor(context)


def test_failed_run_is_recorded_once_per_failed_step(
    database_url: str, failed_run: dg.DagsterRun, instance: dg.DagsterInstance
) -> None:
    sensor = build_run_failure_sensor(lambda: database_url, lambda: None)
    assert sensor.name == "run_failure_sensor"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING

    _evaluate(sensor, instance, failed_run)
    _evaluate(sensor, instance, failed_run)  # the daemon may see the same run again

    [row] = RunFailureStore(database_url).for_run(failed_run.run_id)
    assert (row["job_name"], row["partition_key"]) == (
        job_name("market_data_job"),
        "2025-03-14|AAPL",
    )
    assert (row["step_key"], row["error_class"]) == ("momentum__market_data", "Failure")
    assert "postgres source: cannot read stock_data" in row["error"]
    assert (row["notified"], row["webhook_status"], row["strategy_id"]) == (False, None, "momentum")
    run_record = instance.get_run_record_by_id(failed_run.run_id)
    assert row["occurred_at"] == dt.datetime.fromtimestamp(run_record.end_time, UTC)
    assert failed_run.run_id in {r["run_id"] for r in RunFailureStore(database_url).recent()}


def test_webhook_is_told_once_and_its_answer_stored(
    sqlite_url: str, failed_run: dg.DagsterRun, instance: dg.DagsterInstance, webhook: _Webhook
) -> None:
    sensor = build_run_failure_sensor(lambda: sqlite_url, webhook.url)

    _evaluate(sensor, instance, failed_run)
    _evaluate(sensor, instance, failed_run)

    [request] = webhook.requests  # the second evaluation saw it was already delivered
    payload = request["json"]
    assert payload["run_id"] == failed_run.run_id
    assert (payload["job_name"], payload["partition_key"]) == (
        job_name("market_data_job"),
        "2025-03-14|AAPL",
    )
    [step] = payload["failures"]
    assert step["step_key"] == "momentum__market_data" and "cannot read stock_data" in step["error"]
    assert payload["text"].startswith(
        f"momentum_market_data_job run {failed_run.run_id[:8]} failed (partition 2025-03-14|AAPL): "
        "momentum__market_data: market_data failed for 1 partition(s): - 2025-03-14|AAPL: postgres source"
    )
    [row] = RunFailureStore(sqlite_url).for_run(failed_run.run_id)
    assert (row["notified"], row["webhook_status"]) == (True, "200")


def test_unreachable_webhook_is_noted_and_does_not_break_the_sensor(
    sqlite_url: str, failed_run: dg.DagsterRun, instance: dg.DagsterInstance, closed_port: int
) -> None:
    down = f"http://127.0.0.1:{closed_port}/hook?token={TOKEN}"
    sensor = build_run_failure_sensor(lambda: sqlite_url, lambda: down)

    _evaluate(sensor, instance, failed_run)

    [row] = RunFailureStore(sqlite_url).for_run(failed_run.run_id)
    assert row["step_key"] == "momentum__market_data" and "postgres source" in row["error"]
    assert row["notified"] is False
    assert row["webhook_status"].startswith("error: ") and TOKEN not in row["webhook_status"]


def test_failure_outside_any_step_gets_a_run_level_row(
    sqlite_url: str, instance: dg.DagsterInstance
) -> None:
    @dg.op
    def noop() -> None:
        pass

    @dg.job
    def range_job() -> None:
        noop()

    tags = {
        "dagster/asset_partition_range_start": "2025-03-10|AAPL",
        "dagster/asset_partition_range_end": "2025-03-14|AAPL",
        "strategy": "momentum",
    }
    run = instance.create_run_for_job(job_def=range_job, tags=tags)
    instance.report_run_failed(run, message="run worker lost")
    sensor = build_run_failure_sensor(lambda: sqlite_url, lambda: None)

    _evaluate(sensor, instance, instance.get_run_by_id(run.run_id))

    [row] = RunFailureStore(sqlite_url).for_run(run.run_id)
    assert (row["step_key"], row["error"]) == ("", "run worker lost")
    assert row["error_class"].startswith("RunFailure")
    assert row["partition_key"] == "2025-03-10|AAPL...2025-03-14|AAPL"
    assert (row["job_name"], row["strategy_id"]) == ("range_job", "momentum")
