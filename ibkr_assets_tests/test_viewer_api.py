"""The viewer's JSON API on records made by real materializations, on SQLite and PostgreSQL.

Each database gets one small real backfill (2 symbols x 2 sessions with a trade: sample data,
rules analyst, paper simulator, then the portfolio) and a rerun of one partition's workflow,
so there are two executions to compare. Every endpoint is read through FastAPI's TestClient as a script would.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ibkr_assets.dagster_home import write_instance_config
from ibkr_assets.jobs import workflow_job_name
from ibkr_assets.redaction import redact_text
from ibkr_assets.runs import run_workflow
from ibkr_assets.settings import ConfigError, Settings, load_settings
from ibkr_assets.storage.engines import dispose_engines, engine_for
from ibkr_assets.storage.tables import artifacts
from ibkr_assets.viewer import auth
from ibkr_assets.viewer.api import create_app
from ibkr_assets.viewer.compare import diff_steps
from ibkr_assets.viewer.database import ReadOnlyDatabase
from ibkr_assets.viewer.links import Links
from ibkr_assets.viewer.objects import safe_key
from ibkr_assets.viewer.server import ServeRefused, check_bind
from ibkr_assets_tests.helpers import seed_mlflow_store

SYMBOLS = ["AAPL", "NVDA"]
START, END = dt.date(2025, 3, 3), dt.date(2025, 3, 4)
SESSIONS = 2
TRADED = "2025-03-03|NVDA"  # the rules analyst buys NVDA on the first session; it fills next day
SECRET = "pw-never-shown"
DAGSTER = f"http://viewer:{SECRET}@dagster.internal:3000/"
MLFLOW = f"http://ml:{SECRET}@mlflow.internal:5000"


@dataclass
class Recorded:
    """One deployment after its runs: the API client and what the runs were."""

    kind: str
    settings: Settings
    client: TestClient
    url: str
    first: str  # execution id of the backfill's workflow run
    rerun: str  # execution id of the one-partition rerun


def _record(root: Path, database_url: str | None) -> Recorded:
    from ibkr_assets.definitions import build_definitions

    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("IBKR_ASSETS_")]:
            if var != "IBKR_ASSETS_TEST_PG_URL":
                mp.delenv(var)
        mp.setenv("IBKR_ASSETS_HOME", str(root))
        seed_mlflow_store(root)  # an empty, migrated MLflow store: creating one costs seconds
        if database_url:
            mp.setenv("IBKR_ASSETS_DATABASE_URL", database_url)
        # Dagster's storage as `IBKR_ASSETS_DAGSTER_EVENT_LOG=pooled` has it, events in batches
        mp.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
        dagster_home = write_instance_config(root / "dagster", "pooled").parent
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            defs = build_definitions()
            first = run_workflow(defs, instance, "momentum", SYMBOLS, START, END)
            job = defs.resolve_job_def(workflow_job_name("momentum"))
            rerun = job.execute_in_process(instance=instance, partition_key=TRADED)
        assert all(o.success for o in first) and rerun.success, [o.errors for o in first]
        mp.setenv("IBKR_ASSETS_DAGSTER_URL", DAGSTER)
        mp.setenv("MLFLOW_TRACKING_URI", MLFLOW)  # only read for links here
        settings = load_settings()
    client = TestClient(create_app(settings), base_url="http://127.0.0.1")
    return Recorded(database_url and "postgresql" or "sqlite", settings, client,
                    settings.lineage_url, first[0].run_id, rerun.run_id)  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rec(request, tmp_path_factory) -> Iterator[Recorded]:
    root = tmp_path_factory.mktemp(f"viewer-{request.param}")
    if request.param == "sqlite":
        yield _record(root, None)
        return
    server = request.getfixturevalue("postgres_url")
    name = f"ibkr_assets_viewer_{uuid.uuid4().hex[:10]}"  # own database: no other test's rows
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        recorded = _record(root, url)
        yield recorded
        recorded.client.app.state.viewer.close()
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def get(rec: Recorded, path: str, status: int = 200) -> dict:
    response = rec.client.get(path)
    assert response.status_code == status, (path, response.status_code, response.text[:500])
    assert SECRET not in response.text
    return response.json()


def all_pages(rec: Recorded, path: str) -> list[dict]:
    """Follow ``next_cursor`` to the end."""
    items, cursor = [], None
    sep = "&" if "?" in path else "?"
    for _ in range(500):
        page = get(rec, path + (f"{sep}cursor={cursor}" if cursor else ""))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


# -- lineage -------------------------------------------------------------------------------


def test_strategies_overview_shows_last_execution_equity_positions_and_failures(rec):
    (momentum,) = [
        s for s in get(rec, "/api/strategies")["strategies"] if s["strategy_id"] == "momentum"
    ]
    assert momentum["configured"] and momentum["last_execution"]["status"] == "success"
    assert momentum["equity"] > 0 and momentum["snapshot_date"] == END.isoformat()
    assert [p["symbol"] for p in momentum["open_positions"]] == ["NVDA"]
    assert momentum["recent_run_failures"] == [] and momentum["recent_error_rows"] == []


def test_recent_executions_page_with_a_cursor(rec):
    first = get(rec, "/api/lineage/strategy/momentum/recent?limit=1")
    assert len(first["items"]) == 1 and first["next_cursor"]
    everything = all_pages(rec, "/api/lineage/strategy/momentum/recent?limit=1")
    ids = [e["execution_id"] for e in everything]
    assert len(ids) == len(set(ids)) == 3  # workflow range, its portfolio, the rerun
    assert ids[0] == rec.rerun and rec.first in ids
    assert get(rec, "/api/lineage/strategy/momentum/recent?limit=10")["items"] == everything


def test_execution_rows_page_in_order_without_gaps(rec):
    whole = get(rec, f"/api/lineage/executions/{rec.first}?limit=1000")
    assert whole["execution"]["rows"] == len(whole["items"]) == 8 * len(SYMBOLS) * SESSIONS
    paged = all_pages(rec, f"/api/lineage/executions/{rec.first}?limit=7")
    assert [r["id"] for r in paged] == [r["id"] for r in whole["items"]]
    assert [r["id"] for r in paged] == sorted(r["id"] for r in paged)
    row = paged[0]
    assert row["dagster_run_url"] == f"http://dagster.internal:3000/runs/{rec.first}"
    assert row["object"]["content_url"] == f"/api/lineage/rows/{row['id']}/object"


def test_workflow_lists_its_executions(rec):
    page = get(rec, "/api/lineage/workflows/momentum_workflow_job")
    assert [e["execution_id"] for e in page["items"]] == [rec.rerun, rec.first]
    assert page["items"][1]["symbols"] == SYMBOLS and page["items"][1]["status"] == "success"


def test_one_step_of_an_execution(rec):
    key = quote(TRADED)
    page = get(rec, f"/api/lineage/execution/{rec.first}/step/order?partition_key={key}")
    (row,) = page["items"]
    assert row["output_data"]["outcome"] == "placed" and row["status"] == "success"
    rows = get(rec, f"/api/lineage/execution/{rec.first}/step/indicators")["items"]
    assert len(rows) == len(SYMBOLS) * SESSIONS
    body = get(rec, f"/api/lineage/execution/{rec.first}/step/nope", 404)
    assert "has no rows of step 'nope'" in body["detail"]


def test_step_rows_newest_first_with_cursor(rec):
    rows = all_pages(rec, "/api/lineage/steps/order?limit=4&strategy_id=momentum")
    assert len(rows) == len(SYMBOLS) * SESSIONS + 1
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert rows[0]["execution_id"] == rec.rerun


def test_step_statistics(rec):
    stats = get(rec, "/api/lineage/step/market_data/statistics?days=30")
    assert stats["rows"] == len(SYMBOLS) * SESSIONS + 1 and stats["success_rate"] == 1.0
    assert stats["by_status"] == {"success": stats["rows"]} and stats["common_errors"] == []
    assert stats["p95_duration_ms"] is not None
    assert stats["mean_duration_ms"] <= stats["max_duration_ms"]
    assert stats["p95_duration_ms"] <= stats["max_duration_ms"]
    get(rec, "/api/lineage/step/market_data/statistics?days=0", 422)
    get(rec, "/api/lineage/step/market_data/statistics?days=many", 422)
    get(rec, "/api/lineage/step/no_such_step/statistics", 404)


# -- artifacts and their bytes ---------------------------------------------------------------


def test_artifacts_filter_and_page_with_cursor(rec):
    path = "/api/artifacts?type=chart&symbol=NVDA&strategy_id=momentum&workflow_id=momentum_workflow_job"
    paged = all_pages(rec, path + "&limit=3")
    whole = get(rec, path + "&limit=1000")["items"]
    assert [a["id"] for a in paged] == [a["id"] for a in whole]
    assert len(whole) == 2 * (SESSIONS + 1)  # daily and weekly, each session + the rerun's
    assert all(a["type"] == "chart" and a["symbol"] == "NVDA" for a in whole)
    get(rec, "/api/artifacts?type=bogus", 422)
    get(rec, "/api/artifacts?limit=0", 422)
    get(rec, "/api/artifacts?limit=5000", 422)
    get(rec, "/api/artifacts?cursor=../../etc", 422)


def test_artifact_detail_and_artifacts_of_an_execution(rec):
    group = get(rec, f"/api/artifacts/lineage/{rec.rerun}")["items"]
    assert {a["type"] for a in group} == {
        "market_data", "chart", "llm", "signal", "order", "validation",
    }  # fmt: skip
    validation = next(a for a in group if a["type"] == "validation")
    assert get(rec, f"/api/artifacts/{validation['id']}")["metadata"]["passed"] is True
    page = rec.client.get(f"/artifacts/{validation['id']}")
    assert page.status_code == 200 and "every quality gate passed" in page.text
    llm = next(a for a in group if a["type"] == "llm")
    detail = get(rec, f"/api/artifacts/{llm['id']}")
    assert detail["prompt"] and detail["model_name"] == "rules-v1"
    assert detail["lineage_row"]["step_name"] == "llm_analysis"
    assert detail["mlflow"]["url"].startswith("http://mlflow.internal:5000/#/experiments/")
    get(rec, f"/api/artifacts/lineage/{uuid.uuid4()}", 404)


def test_artifact_content_is_the_verified_bytes_with_its_type(rec):
    charts = get(rec, f"/api/artifacts?type=chart&limit=1&execution_id={rec.first}")["items"]
    response = rec.client.get(charts[0]["content_url"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert hashlib.sha256(response.content).hexdigest() == charts[0]["sha256"]
    assert response.headers["x-content-type-options"] == "nosniff"
    signal = get(rec, "/api/artifacts?type=signal&limit=1")["items"][0]
    response = rec.client.get(f"/api/artifacts/{signal['id']}/content")
    assert response.headers["content-type"] == "application/json"
    assert response.json()["action"] in ("BUY", "SELL", "HOLD")


def test_lineage_row_object_is_served_verified(rec):
    (row,) = get(
        rec, f"/api/lineage/execution/{rec.first}/step/indicators?partition_key={quote(TRADED)}"
    )["items"]
    response = rec.client.get(row["object"]["content_url"])
    assert hashlib.sha256(response.content).hexdigest() == row["object"]["sha256"]
    assert "rsi_14" in response.text


def _local_path(rec: Recorded, uri: str) -> Path:
    base = rec.client.app.state.viewer.objects.base_uri
    return rec.settings.object_root_path / uri[len(base) :]


def test_a_changed_byte_is_an_error_not_the_bytes(rec):
    chart = get(rec, "/api/artifacts?type=chart&limit=1")["items"][0]
    path = _local_path(rec, chart["uri"])
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        response = rec.client.get(f"/api/artifacts/{chart['id']}/content")
    finally:
        path.write_bytes(original)
    assert response.status_code == 502
    assert "does not match its record" in response.json()["detail"]
    assert b"PNG" not in response.content
    assert rec.client.get(f"/api/artifacts/{chart['id']}/content").status_code == 200


def test_only_objects_a_row_references_are_served(rec):
    for path in ("/api/objects?uri=file:///etc/passwd", "/api/artifacts/..%2F..%2Fetc%2Fpasswd/content",
                 "/api/lineage/rows/../../../etc/passwd/object", "/api/artifacts/0/content",
                 "/api/artifacts/99999999/content", "/etc/passwd"):  # fmt: skip
        response = rec.client.get(path)
        assert response.status_code in (404, 422), path
        assert b"root:" not in response.content
    # A row that itself points outside the store (or climbs out of it) is refused too.
    art = get(rec, "/api/artifacts?type=order&limit=1")["items"][0]
    base = rec.client.app.state.viewer.objects.base_uri
    engine = engine_for(rec.url)
    try:
        for uri, reason in ((f"{base}../../../../etc/passwd", "not a plain relative path"),
                            ("file:///etc/passwd", "not in the configured object store")):  # fmt: skip
            with engine.begin() as conn:
                conn.execute(
                    sa.update(artifacts).where(artifacts.c.id == art["id"]).values(uri=uri)
                )
            body = get(rec, f"/api/artifacts/{art['id']}/content", 404)
            assert reason in body["detail"]
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.update(artifacts).where(artifacts.c.id == art["id"]).values(uri=art["uri"])
            )
    assert not safe_key("a/../b") and not safe_key("/etc/passwd") and safe_key("a/b.png")


# -- decisions, compare, portfolio ---------------------------------------------------------


def test_decision_trace_of_a_trade(rec):
    trace = get(rec, "/api/decisions/momentum/2025-03-03/NVDA")
    assert trace["execution_id"] == rec.rerun  # the latest execution that reached the order
    assert [e["execution_id"] for e in trace["executions"]] == [rec.first, rec.rerun]
    assert [s["step_name"] for s in trace["steps"]][:2] == ["market_data", "market_data_quality"]
    assert trace["market_data"]["bars_count"] > 0 and "rsi_14" in trace["indicators"]
    assert len(trace["charts"]) == 2
    for chart in trace["charts"]:
        assert rec.client.get(chart["content_url"]).headers["content-type"] == "image/png"
    analysis = trace["analysis"]
    assert analysis["template_id"] == "chart_analysis" and analysis["template_version"] == 1
    assert analysis["prompt"] and analysis["response"] and analysis["model"] == "rules-v1"
    assert analysis["cost_usd"] == 0.0
    assert trace["signal"]["action"] == "BUY" and trace["risk_checks"]["rejections"] == []
    assert trace["sizing"]["sizing"]["quantity"] > 0 and trace["sizing"]["equity"] > 0
    assert trace["order_record"]["state"] == "sent"
    assert {o["role"] for o in trace["broker_orders"]} == {"parent", "take_profit", "stop_loss"}
    assert trace["fills"][0]["side"] == "BUY" and trace["order_events"]
    assert trace["portfolio"]["snapshot"]["snapshot_date"] == "2025-03-03"
    assert trace["portfolio"]["lineage"]["step_name"] == "portfolio_snapshot"
    assert trace["links"]["dagster_runs"] == {
        rec.rerun: f"http://dagster.internal:3000/runs/{rec.rerun}"
    }
    assert trace["links"]["mlflow"]["run_id"]
    first = get(rec, f"/api/decisions/momentum/2025-03-03/NVDA?execution_id={rec.first}")
    assert first["order"]["outcome"] == "placed" and trace["order"]["outcome"] == "existing"


def test_decision_trace_without_an_order_and_bad_requests(rec):
    trace = get(rec, "/api/decisions/momentum/2025-03-04/AAPL")
    assert trace["order_record"]["state"] == "decided" and trace["broker_orders"] == []
    get(rec, "/api/decisions/momentum/2025-03-04/ZZZZ", 404)
    get(rec, "/api/decisions/momentum/2025-02-30/AAPL", 422)
    get(rec, "/api/decisions/Not%20A%20Slug/2025-03-04/AAPL", 422)
    get(rec, f"/api/decisions/momentum/2025-03-04/AAPL?execution_id={rec.rerun}", 404)


def test_compare_a_rerun_of_one_partition(rec):
    same = get(rec, f"/api/compare?a={rec.first}&b={rec.rerun}&partition_key={quote(TRADED)}")
    assert same["identical"] and same["summary"]["compared"] == 8
    assert all(s["sha256_equal"] for s in same["steps"])
    order = next(s for s in same["steps"] if s["step_name"] == "order")
    assert {"field": "output.outcome", "a": "placed", "b": "existing"} in order["incidental"]
    whole = get(rec, f"/api/compare?a={rec.first}&b={rec.rerun}")
    assert (
        whole["summary"]["only_in_a"] == 8 * (len(SYMBOLS) * SESSIONS - 1)
        and not whole["identical"]
    )
    get(rec, f"/api/compare?a={rec.first}&b={rec.first}", 422)
    get(rec, f"/api/compare?a={rec.first}", 422)
    assert "unknown execution" in get(rec, f"/api/compare?a={rec.first}&b=nope", 404)["detail"]


def test_compare_names_what_differs(rec):
    rows = get(
        rec, f"/api/lineage/execution/{rec.first}/step/trading_signal?partition_key={quote(TRADED)}"
    )["items"]
    a = rows[0]
    b = {**a, "output_data": {**a["output_data"], "action": "HOLD",
                              "object": {**a["output_data"]["object"], "sha256": "0" * 64}}}  # fmt: skip
    diff = diff_steps(a, b)
    assert not diff["identical"] and not diff["sha256_equal"]
    assert {"field": "output.action", "a": "BUY", "b": "HOLD"} in diff["changes"]


def test_portfolio_snapshots_fills_and_statistics(rec):
    body = get(rec, "/api/portfolio/momentum?from=2025-03-03&to=2025-03-04")
    assert [s["snapshot_date"] for s in body["snapshots"]] == [
        "2025-03-03",
        "2025-03-04",
    ]
    assert [f["symbol"] for f in body["fills"]] == ["NVDA"]
    assert body["statistics_error"] is None and body["statistics"]["strategy"]["dates"] == SESSIONS
    get(rec, "/api/portfolio/momentum?from=2025-03-04&to=2025-03-03", 422)
    get(rec, "/api/portfolio/momentum?from=yesterday", 422)
    assert "unknown strategy" in get(rec, "/api/portfolio/nosuch", 404)["detail"]


@pytest.mark.parametrize(
    "path, message",
    [("/api/lineage/executions/nope", "unknown execution 'nope'"),
     ("/api/lineage/workflows/nope_job", "no lineage rows for workflow 'nope_job'"),
     ("/api/lineage/steps/nope", "no lineage rows for step 'nope'"),
     ("/api/lineage/strategy/nosuch/recent", "unknown strategy 'nosuch'"),
     ("/api/lineage/rows/99999999", "no lineage row 99999999"),
     ("/api/artifacts/99999999", "no artifact 99999999"),
     ("/api/decisions/momentum/2025-03-04/MSFT", "nothing recorded for strategy 'momentum', MSFT")],
)  # fmt: skip
def test_unknown_ids_are_404_with_a_clear_message(rec, path, message):
    assert message in get(rec, path, 404)["detail"]


def test_openapi_lists_every_endpoint(rec):
    paths = set(get(rec, "/openapi.json")["paths"])
    assert {"/api/lineage/workflows/{workflow_id}", "/api/lineage/executions/{execution_id}",
            "/api/lineage/execution/{execution_id}/step/{step_name}",
            "/api/lineage/steps/{step_name}", "/api/lineage/step/{step_name}/statistics",
            "/api/lineage/strategy/{strategy_id}/recent", "/api/artifacts",
            "/api/artifacts/{artifact_id}", "/api/artifacts/lineage/{execution_id}",
            "/api/artifacts/{artifact_id}/content", "/api/decisions/{strategy_id}/{date}/{symbol}",
            "/api/compare", "/api/portfolio/{strategy_id}", "/api/strategies"} <= paths  # fmt: skip
    assert rec.client.get("/docs").status_code == 200


# -- security ------------------------------------------------------------------------------


def test_the_database_is_opened_read_only(rec):
    db = ReadOnlyDatabase(rec.url)
    with pytest.raises(sa.exc.DBAPIError, match="read-only|readonly"):
        with db.engine.begin() as conn:
            conn.execute(sa.delete(artifacts))
    db.engine.dispose()


def test_no_secret_in_responses(rec):
    for path in ("/api/strategies", f"/api/lineage/executions/{rec.first}",
                 "/api/decisions/momentum/2025-03-03/NVDA", "/api/artifacts?limit=100",
                 "/api/health", "/openapi.json"):  # fmt: skip
        text = rec.client.get(path).text
        assert SECRET not in text and "viewer:" not in text
    assert (
        redact_text(f"could not reach postgresql://u:{SECRET}@db/x")
        == "could not reach postgresql://u:***@db/x"
    )
    assert SECRET not in redact_text(f"http://h/p?token={SECRET}&a=1")


def test_token_on_every_request(rec, monkeypatch):
    token = "tok-" + uuid.uuid4().hex
    settings = Settings.model_validate({**rec.settings.model_dump(), "viewer_token": token})
    client = TestClient(create_app(settings), base_url="http://viewer.example")
    compared = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b))

    assert client.get("/api/strategies").status_code == 401
    assert client.get("/docs").status_code == 401
    wrong = client.get("/api/strategies", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/strategies?token=nope").status_code == 401
    right = client.get("/api/strategies", headers={"Authorization": f"Bearer {token}"})
    assert right.status_code == 200 and compared
    by_query = client.get(f"/api/strategies?token={token}")
    assert by_query.status_code == 200
    cookie = by_query.cookies.get(auth.COOKIE)
    assert cookie and token not in cookie and token not in str(by_query.headers)
    assert token not in right.text and token not in by_query.text
    client.cookies.set(auth.COOKIE, cookie)
    assert client.get("/api/strategies").status_code == 200  # a page's images use the cookie
    client.app.state.viewer.close()


def test_without_a_token_only_loopback_names_are_answered(rec):
    assert rec.client.get("/api/health", headers={"Host": "evil.example"}).status_code == 421
    assert rec.client.get("/api/health", headers={"Host": "localhost:8000"}).status_code == 200
    assert rec.client.get("/api/health", headers={"Host": "[::1]:8000"}).status_code == 200


def test_serve_binds_elsewhere_only_with_a_token(rec, capsys, monkeypatch):
    from ibkr_assets.cli import main

    monkeypatch.delenv("IBKR_ASSETS_VIEWER_TOKEN", raising=False)
    with pytest.raises(ServeRefused):
        check_bind("0.0.0.0", rec.settings)
    check_bind("127.0.0.1", rec.settings)
    check_bind("::1", rec.settings)
    with_token = Settings.model_validate({**rec.settings.model_dump(), "viewer_token": "t"})
    check_bind("0.0.0.0", with_token)
    if rec.kind == "sqlite":
        assert main(["serve", "--host", "192.0.2.1"]) == 2
        assert "without a token" in capsys.readouterr().err


def _plans(rec: Recorded, paths: list[str]) -> list[tuple[str, str]]:
    """(statement, plan) of every query the viewer ran to answer ``paths``."""
    engine = rec.client.app.state.viewer.db.engine
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "sqlite_master" not in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        for path in paths:
            assert rec.client.get(path).status_code == 200, path
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    plans = []
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection.cursor()
        if rec.kind == "postgresql":
            raw.execute("SET enable_seqscan = off")  # tiny tables: ask which index it would use
        for statement, parameters in seen:
            if "pg_catalog" in statement or "information_schema" in statement:
                continue
            prefix = "EXPLAIN QUERY PLAN " if rec.kind == "sqlite" else "EXPLAIN "
            raw.execute(prefix + statement, parameters)
            plans.append((statement, "\n".join(str(r[-1]) for r in raw.fetchall())))
    return plans


def test_the_queries_use_indexes(rec):
    paths = [f"/api/lineage/executions/{rec.first}?limit=5",
             f"/api/lineage/execution/{rec.first}/step/order",
             "/api/lineage/steps/order?strategy_id=momentum&limit=3",
             "/api/lineage/step/order/statistics", "/api/lineage/strategy/momentum/recent",
             "/api/lineage/workflows/momentum_workflow_job",
             "/api/artifacts?strategy_id=momentum&type=chart&symbol=NVDA&limit=3",
             f"/api/artifacts/lineage/{rec.first}", "/api/decisions/momentum/2025-03-03/NVDA",
             f"/api/compare?a={rec.first}&b={rec.rerun}&partition_key={quote(TRADED)}",
             "/api/strategies"]  # fmt: skip
    plans = _plans(rec, paths)
    assert len(plans) > 20
    for statement, plan in plans:
        if rec.kind == "sqlite":
            full = [
                line
                for line in plan.splitlines()
                if line.startswith("SCAN ") and " USING " not in line
            ]
        else:
            full = [line for line in plan.splitlines() if "Seq Scan" in line]
        assert not full, f"{statement}\n{plan}"


def test_mlflow_links_use_the_public_url_when_one_is_set(rec, monkeypatch):
    """In docker the tracking URI (http://mlflow:5000) is a name only the services resolve: the
    pages and the API link MLflow runs to IBKR_ASSETS_MLFLOW_PUBLIC_URL instead."""
    public = "https://ml.example.com/mlflow"
    monkeypatch.setenv("IBKR_ASSETS_MLFLOW_PUBLIC_URL", public + "/")
    settings = rec.settings.model_copy(
        update={"mlflow_public_url": load_settings().mlflow_public_url}
    )
    client = TestClient(create_app(settings), base_url="http://127.0.0.1")
    try:
        path = f"/api/artifacts?type=llm&limit=1&execution_id={rec.rerun}"
        llm = client.get(path).json()["items"][0]
        assert llm["mlflow"]["url"] == (
            f"{public}/#/experiments/{llm['mlflow_experiment_id']}/runs/{llm['mlflow_run_id']}"
        )
        trace = client.get("/api/decisions/momentum/2025-03-03/NVDA").json()
        assert trace["links"]["mlflow"]["url"].startswith(f"{public}/#/experiments/")
        page = client.get(f"/artifacts/{llm['id']}").text
        assert f'href="{public}/#/experiments/' in page
        assert 'href="http://mlflow.internal' not in page
    finally:
        client.app.state.viewer.close()

    # not a URL a browser can open: refused at start, without echoing the value
    settings = rec.settings.model_copy(update={"mlflow_public_url": f"mlflow:{SECRET}@5000"})
    with pytest.raises(ConfigError, match="IBKR_ASSETS_MLFLOW_PUBLIC_URL") as refused:
        create_app(settings)
    assert SECRET not in str(refused.value)
    # unset: the tracking server's own address, as before
    monkeypatch.delenv("IBKR_ASSETS_MLFLOW_PUBLIC_URL")
    assert (
        Links(None, MLFLOW).mlflow_run("1", "r")
        == "http://mlflow.internal:5000/#/experiments/1/runs/r"
    )
    assert (
        Links(None, "sqlite:///m.db", public).mlflow_run("1", "r")
        == f"{public}/#/experiments/1/runs/r"
    )
    assert Links(None, "sqlite:///m.db").mlflow_run("1", "r") is None


def test_a_page_without_the_token_asks_for_it_with_a_form(rec, monkeypatch):
    """A browser gets a login form (no script) for a page, posts the token, gets the HttpOnly
    cookie and is sent back; the API still answers JSON 401."""
    token = "tok-" + uuid.uuid4().hex
    settings = Settings.model_validate({**rec.settings.model_dump(), "viewer_token": token})
    client = TestClient(create_app(settings), base_url="http://viewer.example",
                        follow_redirects=False)  # fmt: skip
    compared = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b))
    try:
        hostile = '/lineage?strategy_id=momentum&x="><script>alert(1)</script>'
        form = client.get(hostile)
        assert form.status_code == 401 and form.headers["content-type"].startswith("text/html")
        assert '<form method="post" action="/login">' in form.text
        assert "<script" not in form.text and "&quot;&gt;&lt;script&gt;" not in form.text
        assert (
            'name="next" value="/lineage?strategy_id=momentum&amp;x=%22%3E%3Cscript%3E' in form.text
        )
        csp = form.headers["content-security-policy"]
        assert (
            "script-src" not in csp and "default-src 'none'" in csp and "form-action 'self'" in csp
        )
        assert client.get("/docs").status_code == 401 and "Token" in client.get("/docs").text

        api = client.get("/api/strategies")  # the API and files stay JSON
        assert api.status_code == 401 and api.headers["content-type"] == "application/json"
        assert client.get("/static/viewer.css").headers["content-type"] == "application/json"

        # a wrong token (posted or in the link): the form again, no cookie
        wrong = client.post("/login", data={"token": "nope", "next": "/portfolio/momentum"})
        assert wrong.status_code == 401 and "Wrong token" in wrong.text and not wrong.cookies
        linked = client.get("/portfolio/momentum?token=nope")
        assert linked.status_code == 401 and "Wrong token" in linked.text
        assert 'value="/portfolio/momentum"' in linked.text  # the wrong token is not kept

        compared.clear()
        ok = client.post("/login", data={"token": token, "next": "/lineage?strategy_id=momentum"})
        assert ok.status_code == 303 and ok.headers["location"] == "/lineage?strategy_id=momentum"
        assert compared  # the constant-time comparison
        set_cookie = ok.headers["set-cookie"].lower()
        assert (
            "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/" in set_cookie
        )
        assert token not in ok.headers["set-cookie"] and token not in ok.text
        page = client.get(ok.headers["location"])  # the cookie the answer set
        assert page.status_code == 200 and "momentum" in page.text
        assert client.get("/api/strategies").status_code == 200

        for elsewhere in ("https://evil.example/", "//evil.example/x", "/\\evil.example",
                          "javascript:alert(1)", "", "/\nLocation: x"):  # fmt: skip
            fresh = TestClient(client.app, base_url="http://viewer.example", follow_redirects=False)
            back = fresh.post("/login", data={"token": token, "next": elsewhere})
            assert back.status_code == 303 and back.headers["location"] == "/", elsewhere
        too_big = client.post("/login", content=b"token=" + b"x" * 10_000,
                              headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert too_big.status_code == 413
    finally:
        client.app.state.viewer.close()


def test_where_a_login_sends_the_browser_back():
    assert auth.safe_next("/decisions/momentum/2025-03-03/NVDA?token=t&execution_id=e") == (
        "/decisions/momentum/2025-03-03/NVDA?execution_id=e"
    )
    for bad in (None, "", "http://x/", "//x", "/\\x", "x/y", "/a\r\nb"):
        assert auth.safe_next(bad) == "/"
