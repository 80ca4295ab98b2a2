"""OpenLineage export: a real partition's steps as events, received over HTTP on 127.0.0.1 and
validated against the OpenLineage JSON schema (vendored under ``data/openlineage``)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from ibkr_assets.openlineage import facets
from ibkr_assets.openlineage.export import Cursor, export_lineage, upstream_steps
from ibkr_assets.openlineage.naming import object_dataset, table_datasets
from ibkr_assets.openlineage.sensor import openlineage_configured
from ibkr_assets_tests.conftest import free_port
from ibkr_assets_tests.helpers import job_name, run_partitions, seed_mlflow_store

KEY, DATE = "2025-03-14|AAPL", "2025-03-14"
SCHEMAS = Path(__file__).parent / "data" / "openlineage"
GRAPH = {  # step -> the steps whose objects it reads
    "indicators": {"market_data"},
    "market_data_quality": {"market_data"},
    "daily_chart": {"indicators"},
    "weekly_chart": {"indicators"},
    "llm_analysis": {"indicators", "daily_chart", "weekly_chart"},
    "trading_signal": {"indicators", "llm_analysis"},
    "order": {"indicators", "trading_signal"},
    "portfolio_snapshot": {"order"},
}


class Receiver:
    """An OpenLineage HTTP endpoint on 127.0.0.1 that records what is POSTed to it; after
    ``fail_after`` accepted events it answers 400."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.fail_after: int | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                refuse = (
                    receiver.fail_after is not None and len(receiver.events) >= receiver.fail_after
                )
                if not refuse and self.path == "/api/v1/lineage":
                    receiver.events.append(json.loads(body))
                self.send_response(400 if refuse else 201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _validator() -> tuple[Draft202012Validator, Registry]:
    resources = [json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.json"))]
    resources.append(facets.SCHEMAS)
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in resources
    )
    return Draft202012Validator, registry


def _validate(event: dict) -> None:
    """The event against the RunEvent schema, and every facet against its own schema."""
    cls, registry = _validator()

    def check(instance: dict, ref: str) -> None:
        validator = cls({"$ref": ref}, registry=registry, format_checker=FormatChecker())
        errors = sorted(validator.iter_errors(instance), key=str)
        assert not errors, f"{ref}: {errors[0]}"

    check(event, "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent")
    holders = [event["run"], event["job"], *event.get("inputs", []), *event.get("outputs", [])]
    for holder in holders:
        for facet in (holder.get("facets") or {}).values():
            check(facet, facet["_schemaURL"])


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    """One workflow run for AAPL on 2025-03-14, then that date's portfolio run, with the
    OpenLineage client pointed at a closed port: the runs neither wait for it nor fail."""
    tmp = tmp_path_factory.mktemp("openlineage")
    with pytest.MonkeyPatch.context() as mp:
        import os

        for var in list(os.environ):
            if var.startswith(("IBKR_ASSETS_", "OPENLINEAGE")) and var != "IBKR_ASSETS_TEST_PG_URL":
                mp.delenv(var)
        mp.setenv("IBKR_ASSETS_HOME", str(tmp / "home"))
        mp.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens
        seed_mlflow_store(tmp / "home")
        from ibkr_assets.definitions import build_definitions

        with dg.instance_for_test() as instance:
            workflow = run_partitions(
                instance, symbol="AAPL", start=DATE, job_name=job_name("trading_workflow_job")
            )
            defs = build_definitions()
            portfolio = defs.resolve_job_def(job_name("portfolio_job")).execute_in_process(
                instance=instance, partition_key=DATE
            )
            assert workflow.success and portfolio.success
            mp.delenv("OPENLINEAGE_URL")
            yield {
                "instance": instance,
                "defs": defs,
                "database_url": f"sqlite:///{tmp / 'home' / 'lineage.db'}",
                "runs": (workflow.run_id, portfolio.run_id),
            }


@pytest.fixture
def receiver(materialized):
    server = Receiver()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENLINEAGE_URL", server.url)  # the client's own configuration
        yield server
    server.close()


def _export(materialized, since=0, **kwargs):
    return export_lineage(
        since,
        instance=materialized["instance"],
        database_url=materialized["database_url"],
        upstream=upstream_steps(materialized["defs"].resolve_asset_graph()),
        **kwargs,
    )


def _completes(events: list[dict], partition_key: str | None = None) -> dict[str, dict]:
    """job step name -> its COMPLETE event (of ``partition_key``, if given)."""
    found = {}
    for e in events:
        key = e["run"]["facets"]["ibkr_assets_partition"]["partitionKey"]
        if e["eventType"] == "COMPLETE" and partition_key in (None, key):
            found[e["job"]["name"].split(".", 1)[1]] = e
    return found


def _names(datasets: list[dict]) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


@pytest.mark.slow
def test_every_step_of_a_partition_is_a_valid_run_with_the_graph_edges(materialized, receiver):
    result = _export(materialized)
    assert result.error is None and result.runs == 2
    events = receiver.events
    assert len(events) == result.sent == 2 * 9  # START and COMPLETE for 8 steps + the portfolio
    for event in events:
        _validate(event)

    completes = {**_completes(events, KEY), **_completes(events, DATE)}
    assert set(completes) == set(GRAPH) | {"market_data"}
    workflow_run, portfolio_run = materialized["runs"]
    for step, event in completes.items():
        assert event["job"] == {
            **event["job"],
            "namespace": "ibkr_assets",
            "name": f"momentum.{step}",
        }
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == (
            portfolio_run if step == "portfolio_snapshot" else workflow_run
        )
        # each object a step wrote is named by the naming spec: the local store is file + path
        objects = [o for o in event["outputs"] if o["namespace"] == "file"]
        assert len(objects) == (0 if step == "market_data_quality" else 1)
        for o in objects:
            stored = o["facets"]["ibkr_assets_object"]
            assert stored["uri"].startswith("file:///") and o["name"].startswith("/")
            assert o["facets"]["version"]["datasetVersion"] == stored["sha256"]
    # the inputs of each step's COMPLETE are exactly the outputs of its upstream steps
    for step, ups in GRAPH.items():
        expected = set().union(*(_names(completes[u]["outputs"]) for u in ups))
        assert _names(completes[step]["inputs"]) == expected, step
    chain = ["market_data", "indicators", "daily_chart", "llm_analysis", "trading_signal", "order",
             "portfolio_snapshot"]  # fmt: skip
    for up, down in zip(chain, chain[1:], strict=False):
        assert _names(completes[up]["outputs"]) <= _names(completes[down]["inputs"])
    assert _names(completes["weekly_chart"]["outputs"]) <= _names(
        completes["llm_analysis"]["inputs"]
    )

    signal = completes["trading_signal"]["run"]["facets"]["ibkr_assets_decision"]
    order = completes["order"]["run"]["facets"]["ibkr_assets_decision"]
    assert signal["signalAction"] in {"BUY", "SELL", "HOLD"} and signal["decisionFinal"] is True
    assert order["signalAction"] == signal["signalAction"] and order["orderDecision"]
    lineage = completes["order"]["run"]["facets"]["ibkr_assets_lineage"]
    assert lineage["status"] == "success" and lineage["executionId"] == workflow_run
    assert len({e["run"]["runId"] for e in events}) == 9  # one OpenLineage run per step


def test_a_re_emission_sends_the_same_events(materialized, receiver):
    first = _export(materialized)
    once = list(receiver.events)
    receiver.events.clear()
    second = _export(materialized)
    assert first.sent == second.sent == len(once) == len(receiver.events)
    assert [e["run"]["runId"] for e in once] == [e["run"]["runId"] for e in receiver.events]

    def without_time(e: dict) -> dict:
        return {k: v for k, v in e.items() if k != "eventTime"}

    assert [without_time(e) for e in once] == [without_time(e) for e in receiver.events]


def test_the_cursor_sends_nothing_twice(materialized, receiver):
    first = _export(materialized)
    again = _export(materialized, first.cursor)
    assert again.sent == 0 and again.cursor == first.cursor and again.error is None
    assert len(receiver.events) == first.sent

    # A backend that refuses after 5 events: the cursor stops there, the rest follows later.
    receiver.events.clear()
    receiver.fail_after = 5
    stopped = _export(materialized)
    assert stopped.error and "400" in stopped.error
    assert stopped.sent == 5 and stopped.cursor == Cursor(0, 5)
    receiver.fail_after = None
    rest = _export(materialized, str(stopped.cursor))
    assert rest.error is None and rest.sent == first.sent - 5
    assert len(receiver.events) == first.sent
    assert len({json.dumps(e, sort_keys=True) for e in receiver.events}) == first.sent


def test_a_dead_backend_neither_fails_the_sensor_nor_moves_its_cursor(materialized, receiver):
    from ibkr_assets.resources.lineage import LineageResource

    defs = materialized["defs"]
    sensor = defs.get_repository_def().get_sensor_def("openlineage_sensor")
    resources = {"lineage": LineageResource(database_url=materialized["database_url"])}

    def tick(cursor: str | None):
        context = dg.build_sensor_context(
            instance=materialized["instance"],
            cursor=cursor,
            repository_def=defs.get_repository_def(),
            resources=resources,
        )
        return sensor.evaluate_tick(context)

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OPENLINEAGE_URL")
        mp.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
        mp.setenv("OPENLINEAGE__TRANSPORT__URL", f"http://127.0.0.1:{free_port()}")  # closed
        mp.setenv("OPENLINEAGE__TRANSPORT__RETRY", '{"total": 0}')
        assert openlineage_configured()
        dead = tick(None)
    assert dead.cursor in (None, "0") and not dead.run_requests
    assert "stopped" in dead.skip_message and "ConnectionError" in dead.skip_message
    assert receiver.events == []

    alive = tick(dead.cursor)  # the receiver is back: everything arrives, once
    assert len(receiver.events) == 18 and alive.cursor != dead.cursor
    assert tick(alive.cursor).cursor == alive.cursor and len(receiver.events) == 18


def test_the_sensor_is_on_only_when_the_client_is_configured(monkeypatch):
    from ibkr_assets.openlineage.sensor import build_openlineage_sensor

    for var in ("OPENLINEAGE_URL", "OPENLINEAGE__TRANSPORT__TYPE", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    assert build_openlineage_sensor("x").default_status == dg.DefaultSensorStatus.STOPPED
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "console")
    assert build_openlineage_sensor("x").default_status == dg.DefaultSensorStatus.RUNNING


def test_dataset_names_follow_the_naming_spec():
    assert object_dataset(
        "s3://ibkr-assets/trading-data/momentum/AAPL/raw/2025-03-14_sample.json"
    ) == (
        "s3://ibkr-assets",
        "trading-data/momentum/AAPL/raw/2025-03-14_sample.json",
    )
    assert object_dataset("file:///srv/objects/a%20b.json") == ("file", "/srv/objects/a b.json")
    assert table_datasets("postgresql+psycopg2://u:secret@db.internal:5433/trading", "order") == [
        ("postgres://db.internal:5433", "trading.public.order_records")
    ]
    assert table_datasets("sqlite:///x/lineage.db", "order") == []
    assert table_datasets("postgresql://db/trading", "indicators") == []


def test_a_failed_attempt_is_a_fail_event_of_the_same_run_as_its_retry():
    import datetime as dt

    from openlineage.client.serde import Serde

    from ibkr_assets.openlineage.events import attempt_events, attempts_in_run, run_uuid

    first_run, retry_run = (
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
    )
    failed = {
        "id": 7, "workflow_id": "momentum_workflow_job", "execution_id": first_run,
        "run_id": first_run, "strategy_id": "momentum", "step_name": "indicators",
        "partition_key": KEY, "symbol": "AAPL", "partition_date": dt.date(2025, 3, 14),
        "code_version": "abc", "input_data": {}, "output_data": {}, "status": "error",
        "error": "ValueError: no bars", "duration_ms": 12, "previous_attempts": [],
        "recorded_at": dt.datetime(2026, 1, 2, 3, 4, 5, 678901),
    }  # fmt: skip
    retried = {
        **failed, "run_id": retry_run, "status": "success", "error": None,
        "recorded_at": dt.datetime(2026, 1, 2, 3, 9, tzinfo=dt.timezone.utc),
        "previous_attempts": [{"run_id": first_run, "status": "error", "error": "ValueError: no bars",
                               "duration_ms": 12, "recorded_at": "2026-01-02T03:04:05.678901Z"}],
    }  # fmt: skip
    assert run_uuid(failed) == run_uuid(retried)  # one OpenLineage run for both attempts

    [attempt] = attempts_in_run(retried, first_run)  # the failure, exported after the retry
    start, end = (json.loads(Serde.to_json(e)) for e in attempt_events(attempt, namespace="ns"))
    for event in (start, end):
        _validate(event)
    assert (start["eventType"], end["eventType"]) == ("START", "FAIL")
    assert end["run"]["facets"]["errorMessage"]["message"] == "ValueError: no bars"
    assert end["run"]["facets"]["ibkr_assets_lineage"]["attempt"] == 1
    assert start["eventTime"] == "2026-01-02T03:04:05.666901+00:00"
    [second] = attempts_in_run(retried, retry_run)
    assert [e.eventType.value for e in attempt_events(second, namespace="ns")] == [
        "START",
        "COMPLETE",
    ]
