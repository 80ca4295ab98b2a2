"""The viewer's queries read PostgreSQL through the indexes meant for them.

A database of generated records (``benchmarks.viewer_data``: 6,000 lineage rows, 3,000
artifacts and their book, loaded and analysed as the benchmark does) answers the endpoints the
speed targets cover; every statement they run is planned with ``EXPLAIN`` and its own
parameters, as the server plans it (no planner switch is changed). Each endpoint must read the
named indexes and scan no table of 1,000 rows or more sequentially. ``python -m benchmarks
--only viewer`` shows the same plans at 100,000 rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from benchmarks import viewer_data
from benchmarks.viewer_bench import explain, recording
from ibkr_assets.settings import Settings
from ibkr_assets.viewer.api import create_app


@pytest.fixture(scope="module")
def loaded_db(postgres_url: str) -> Iterator[tuple[str, viewer_data.Loaded]]:
    """A database of its own on the test server, filled with generated records."""
    name = f"ibkr_assets_viewer_ix_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url, viewer_data.fill(url, 6000, 3000)
    finally:
        from ibkr_assets.storage.engines import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="module")
def client(loaded_db, tmp_path_factory) -> Iterator[TestClient]:
    url, _ = loaded_db
    settings = Settings(home=str(tmp_path_factory.mktemp("home")), database_url=url)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        yield c


def _plans(client: TestClient, url: str, path: str) -> list:
    statements: dict = {}
    with recording(client.app.state.viewer.db.engine, statements):
        response = client.get(path)
    assert response.status_code == 200, response.text
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [explain(conn, s, p) for s, p in statements.items()]
    finally:
        engine.dispose()


def _paths(loaded: viewer_data.Loaded) -> dict[str, tuple[str, set[str]]]:
    execution = next(e for e, n in loaded.executions.items() if n >= 16)
    strategy, day, symbol = loaded.decisions[len(loaded.decisions) // 2]
    return {
        "execution": (f"/api/lineage/executions/{execution}", {"uq_workflow_lineage_step"}),
        "artifacts": ("/api/artifacts?limit=50", {"artifacts_pkey"}),
        "artifacts filtered": (
            f"/api/artifacts?type=chart&symbol={symbol}&strategy_id={strategy}&limit=5",
            {"ix_artifacts_type_symbol"},
        ),
        "decision": (
            f"/api/decisions/{strategy}/{day.isoformat()}/{symbol}",
            {
                "ix_workflow_lineage_partition_key",
                "ix_artifacts_strategy_partition",
                "order_records_pkey",
                "uq_orders_ref_role",
                "ix_fills_order_ref",
                "ix_order_events_order_ref",
            },
        ),  # fmt: skip
        "statistics": (
            "/api/lineage/step/llm_analysis/statistics?days=30",
            {"ix_workflow_lineage_step_stats", "ix_workflow_lineage_errors"},
        ),
        "lineage page": (
            f"/lineage?execution_id={execution}",
            {"ix_workflow_lineage_strategy_execution", "uq_artifacts_key"},
        ),
    }


@pytest.mark.parametrize(
    "endpoint",
    ["execution", "artifacts", "artifacts filtered", "decision", "statistics", "lineage page"],
)
def test_viewer_endpoint_queries_use_their_indexes(loaded_db, client, endpoint: str) -> None:
    url, loaded = loaded_db
    path, intended = _paths(loaded)[endpoint]
    plans = _plans(client, url, path)
    assert plans, f"{path} ran no statement"
    used = {index for plan in plans for _, index in plan.index_scans}
    assert intended <= used, f"{path}: expected {sorted(intended)}, plans used {sorted(used)}"
    for plan in plans:
        assert not plan.seq_scans, (
            f"{path}: sequential scan of {plan.seq_scans} in\n{plan.statement}"
        )


def test_the_generated_records_are_shaped_like_the_workflow_s(loaded_db) -> None:
    url, loaded = loaded_db
    assert loaded.lineage_rows == 6000 and loaded.artifact_rows == 3000
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            statuses = dict(conn.exec_driver_sql(
                "SELECT status, count(*) FROM workflow_lineage GROUP BY status").all())  # fmt: skip
            steps = {
                r[0]
                for r in conn.exec_driver_sql("SELECT DISTINCT step_name FROM workflow_lineage")
            }
            types = {r[0] for r in conn.exec_driver_sql("SELECT DISTINCT type FROM artifacts")}
    finally:
        engine.dispose()
    assert steps == {*viewer_data.STEPS, "portfolio_snapshot"}
    assert statuses["success"] > 0.9 * 6000 and statuses.get("error", 0) > 0
    assert types == {"chart", "llm", "signal", "order"}
    assert loaded.decisions and max(loaded.executions.values()) <= 25
