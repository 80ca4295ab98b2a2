"""``ibkr-assets verify`` on a real backfill: it passes on the clean record and finds every kind
of discrepancy planted in it (each planted in the one shared home and undone afterwards).

The backfill (sample data, rules analyst, paper simulator) runs once per database: SQLite and
PostgreSQL. The strategy has its own id, so rows other tests write to the shared PostgreSQL
database are not in its way.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from ibkr_assets.dagster_home import write_instance_config
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.order_records import order_records
from ibkr_assets.storage.tables import workflow_lineage
from ibkr_assets.storage.trading_tables import portfolio_snapshots
from ibkr_assets.storage.verification_runs import latest_verifications
from ibkr_assets.verification.checks import (
    Materialization,
    find_orphans,
    reconcile_materializations,
)
from ibkr_assets_tests.helpers import seed_mlflow_store

SID = "audit"
SYMBOLS = ["AAPL", "NVDA"]
START, END = dt.date(2025, 3, 3), dt.date(2025, 3, 4)  # NVDA buys on the 3rd, fills on the 4th
SESSIONS = 2
RANGE = ["--strategy", SID, "--start", str(START), "--end", str(END)]


@dataclass
class Home:
    root: Path
    url: str
    instance: dg.DagsterInstance

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    def rows(self, step: str) -> list[dict]:
        t = workflow_lineage
        query = sa.select(t).where(t.c.strategy_id == SID, t.c.step_name == step)
        with engine_for(self.url).connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(t.c.id))]

    def path_of(self, row: dict) -> Path:
        uri = row["output_data"]["object"]["uri"]
        assert uri.startswith("file://")
        return Path(uri.removeprefix("file://"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def home(request, tmp_path_factory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp(f"verify-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("IBKR_ASSETS_")]:
            if var != "IBKR_ASSETS_TEST_PG_URL":
                mp.delenv(var)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("IBKR_ASSETS_HOME", str(root))
        seed_mlflow_store(root)
        url = f"sqlite:///{root / 'lineage.db'}"
        if request.param == "postgresql":
            url = request.getfixturevalue("postgres_url")
            mp.setenv("IBKR_ASSETS_DATABASE_URL", url)
        strategies = root / "strategies.yaml"
        strategies.write_text(yaml.safe_dump({"strategies": [{"id": SID, "symbols": SYMBOLS}]}))
        mp.setenv("IBKR_ASSETS_STRATEGIES_FILE", str(strategies))
        # The storage and event batches of `IBKR_ASSETS_DAGSTER_EVENT_LOG=pooled`: the same
        # Dagster tables verify reads, written in a transaction per batch instead of per event.
        write_instance_config(root / "dagster", "pooled")
        mp.setenv("DAGSTER_HOME", str(root / "dagster"))
        mp.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
        mp.chdir(root)
        from ibkr_assets.definitions import build_definitions
        from ibkr_assets.runs import run_workflow

        instance = dg.DagsterInstance.get()
        outcomes = run_workflow(build_definitions(), instance, SID, SYMBOLS, START, END)
        assert all(o.success for o in outcomes), [o.errors for o in outcomes]
        yield Home(root, url, instance)
        instance.dispose()


@pytest.fixture
def verify_cli(home, capsys):
    """``verify_cli(*extra) -> (exit code, printed table)`` through the command's ``main``."""
    from ibkr_assets.cli import main

    def run(*extra: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["verify", *RANGE, *extra])
        return code, capsys.readouterr().out

    return run


def _table_counts(out: str) -> dict[str, tuple[int, int]]:
    """check -> (checked, found) from the printed table."""
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in {"services", "objects", "materializations", "orders",
                                  "portfolio", "orphans"} and len(parts) > 3:  # fmt: skip
            numbers = [p for p in parts if p.isdigit() or p == "-"]
            counts[parts[0]] = tuple(int(n) if n != "-" else -1 for n in numbers[-2:])
    return counts


def test_a_clean_backfill_verifies_and_the_result_is_recorded(home, verify_cli):
    code, out = verify_cli()
    assert code == 0, out
    counts = _table_counts(out)
    # seven per-symbol assets for every partition, one portfolio per session
    assert counts["objects"][0] == 7 * len(SYMBOLS) * SESSIONS + SESSIONS
    assert counts["materializations"][0] == counts["objects"][0]
    assert counts["orders"][0] == len(SYMBOLS) * SESSIONS
    assert counts["portfolio"][0] == SESSIONS
    assert all(found == 0 for _, found in counts.values()), out
    recorded = latest_verifications(home.url, SID, limit=1)[0]
    assert recorded["ok"] is True and recorded["discrepancies"] == 0
    assert recorded["checks"]["objects"]["checked"] == counts["objects"][0]


def test_a_deleted_object_and_a_changed_byte_are_found(home, verify_cli):
    indicators, chart = home.rows("indicators")[0], home.rows("daily_chart")[1]
    changed, deleted = home.path_of(indicators), home.path_of(chart)
    original, picture = changed.read_bytes(), deleted.read_bytes()
    changed.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    deleted.unlink()
    try:
        code, out = verify_cli()
    finally:
        changed.write_bytes(original)
        deleted.write_bytes(picture)
    assert code == 1
    assert f"indicators {indicators['partition_key']}" in out and "has sha256" in out
    assert f"object missing: {deleted.relative_to(home.objects).as_posix()}" in out
    assert _table_counts(out)["objects"][1] == 2
    details = latest_verifications(home.url, SID, limit=1)[0]["details"]
    assert {d["check"] for d in details} == {"objects"}
    assert verify_cli()[0] == 0


def test_a_missing_lineage_row_is_found(home, verify_cli):
    row = home.rows("order")[-1]
    t = workflow_lineage
    with engine_for(home.url).begin() as conn:
        conn.execute(sa.delete(t).where(t.c.id == row["id"]))
    try:
        code, out = verify_cli()
    finally:
        with engine_for(home.url).begin() as conn:
            conn.execute(sa.insert(t).values(**row))
    assert code == 1
    assert (
        f"order {row['partition_key']} (run {row['run_id'][:8]}): materialized, but no lineage row"
        in out
    )
    # its objects are now referenced by nothing: listed, not deleted
    assert home.path_of(row).relative_to(home.objects).as_posix() in out
    assert home.path_of(row).exists()
    assert verify_cli()[0] == 0


def test_a_lineage_row_without_its_materialization_is_found(home, verify_cli):
    row = home.rows("trading_signal")[0]
    ghost = {k: v for k, v in row.items() if k != "id"}
    ghost.update(execution_id="0" * 8 + "-ghost", run_id="deadbeef-0000-ghost")
    t = workflow_lineage
    with engine_for(home.url).begin() as conn:
        ghost_id = conn.execute(sa.insert(t).values(**ghost).returning(t.c.id)).scalar_one()
    try:
        code, out = verify_cli()
    finally:
        with engine_for(home.url).begin() as conn:
            conn.execute(sa.delete(t).where(t.c.id == ghost_id))
    assert code == 1
    assert (
        f"trading_signal {row['partition_key']} (row {ghost_id}, run deadbeef): "
        "success row, no materialization" in out
    )
    assert _table_counts(out)["materializations"][1] == 1


def test_an_orphan_is_listed_and_deleted_only_with_the_flag(home, verify_cli):
    stray = home.objects / f"trading-data/{SID}/AAPL/raw/{START}_stray.json"
    manifest = home.objects / f"manifests/{SID}/order/not-a-run.json"
    outside = home.objects / f"trading-data/{SID}/AAPL/raw/2024-01-02_old.json"
    for path in (stray, manifest, outside):
        path.write_text("{}")
    code, out = verify_cli()
    assert code == 1
    assert f"trading-data/{SID}/AAPL/raw/{START}_stray.json" in out
    assert f"manifests/{SID}/order/not-a-run.json" in out
    assert "2024-01-02_old.json" not in out  # outside the range: not judged
    assert stray.exists() and manifest.exists()

    code, out = verify_cli("--delete-orphans")
    assert code == 0, out
    assert "Orphan objects (2, deleted)" in out
    assert not stray.exists() and not manifest.exists() and outside.exists()
    outside.unlink()
    assert verify_cli()[0] == 0


def test_a_tampered_portfolio_snapshot_is_found(home, verify_cli):
    t = portfolio_snapshots
    day = END
    where = (t.c.account == SID, t.c.snapshot_date == day)
    with engine_for(home.url).begin() as conn:
        cash = conn.execute(sa.select(t.c.cash).where(*where)).scalar_one()
        conn.execute(sa.update(t).where(*where).values(cash=cash + 0.01))
    try:
        code, out = verify_cli()
    finally:
        with engine_for(home.url).begin() as conn:
            conn.execute(sa.update(t).where(*where).values(cash=cash))
    assert code == 1
    assert f"[portfolio] {day}: stored vs recomputed from fills: cash" in out
    assert _table_counts(out)["portfolio"][1] == 1


def test_an_order_record_that_disagrees_with_the_book_is_found(home, verify_cli):
    t = order_records
    with engine_for(home.url).connect() as conn:
        sent = conn.execute(
            sa.select(t).where(t.c.strategy_id == SID, t.c.state == "sent")
        ).mappings().first()  # fmt: skip
    assert sent is not None, "the range must place an order, or this proves nothing"
    fewer = list(sent["broker_orders"])[:-1]
    with engine_for(home.url).begin() as conn:
        conn.execute(
            sa.update(t).where(t.c.order_ref == sent["order_ref"]).values(broker_orders=fewer)
        )
    try:
        code, out = verify_cli()
    finally:
        with engine_for(home.url).begin() as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.order_ref == sent["order_ref"])
                .values(broker_orders=sent["broker_orders"])
            )
    assert code == 1
    assert f"[orders] {sent['order_ref']}: record lists {len(fewer)} order(s)" in out


def test_an_unreachable_mlflow_is_a_discrepancy(home, verify_cli, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    code, out = verify_cli()
    assert code == 1
    assert "[services] MLflow http://127.0.0.1:9: unreachable" in out


def test_the_dagster_job_runs_the_same_checks(home):
    from ibkr_assets.verification.job import verify_job, verify_nightly

    config = {"strategy": SID, "start": str(START), "end": str(END)}
    run_config = {"ops": {"verify_records": {"config": config}}}
    result = verify_job.execute_in_process(instance=home.instance, run_config=run_config)
    assert result.success
    assert result.output_for_node("verify_records") == 0
    t = portfolio_snapshots
    with engine_for(home.url).begin() as conn:
        conn.execute(sa.update(t).where(t.c.account == SID).values(equity=t.c.equity + 1))
    try:
        failed = verify_job.execute_in_process(
            instance=home.instance, run_config=run_config, raise_on_error=False
        )
    finally:
        with engine_for(home.url).begin() as conn:
            conn.execute(sa.update(t).where(t.c.account == SID).values(equity=t.c.equity - 1))
    assert not failed.success
    recorded = latest_verifications(home.url, SID, limit=1)[0]
    assert recorded["triggered_by"] == f"dagster run {failed.run_id}"
    assert recorded["checks"]["portfolio"]["discrepancies"] == SESSIONS
    assert verify_nightly.default_status == dg.DefaultScheduleStatus.STOPPED


# --- the rules on their own -------------------------------------------------------------------


def test_orphans_are_judged_by_date_range_and_known_runs():
    keys = [
        "trading-data/s/AAPL/raw/2025-03-03_sample.json",
        "trading-data/s/AAPL/raw/2025-03-04_sample.0123456789abcdef.json",
        "trading-data/s/AAPL/raw/2025-04-01_sample.json",
        "manifests/s/order/run-1.json",
        "manifests/s/order/run-2.0123456789abcdef.json",
        "trading-data/s/notes.txt",
    ]
    referenced = {keys[0]}
    orphans = find_orphans(keys, referenced, {"run-1"}, dt.date(2025, 3, 1), dt.date(2025, 3, 31))
    assert orphans == [keys[1], keys[4], keys[5]]


def test_a_re_executed_row_keeps_its_earlier_runs_materialization():
    row = {
        "id": 1,
        "step_name": "order",
        "partition_key": "2025-03-03|AAPL",
        "run_id": "run-2",
        "status": "success",
        "output_data": {"object": {"sha256": "a" * 64}},
        "previous_attempts": [{"run_id": "run-1", "status": "success"}],
    }
    both = [Materialization("order", "2025-03-03|AAPL", r) for r in ("run-1", "run-2")]
    assert reconcile_materializations([row], both, ["order"]) == []
    wrong = {"2025-03-03|AAPL": {"sha256": "b" * 64}}
    found = reconcile_materializations(
        [row], [Materialization("order", "2025-03-03|AAPL", "run-2", wrong)], ["order"]
    )
    assert [d.detail[:30] for d in found] == ["the event's manifest has sha25"]
    assert json.dumps([d.to_json() for d in found])


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_object_stores_list_and_delete_keys(kind, tmp_path, request):
    from ibkr_assets.storage.object_store import LocalObjectStore, S3ObjectStore

    if kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        store = S3ObjectStore(f"verify-{uuid.uuid4().hex[:8]}", endpoint, "us-east-1")
    else:
        store = LocalObjectStore(tmp_path / "objects")
    for key in ("a/s/x/1.json", "a/s/2.json", "a/t/3.json", "b/s/4.json"):
        store.put(key, b"{}", "application/json")
    assert store.list_keys("a/s/") == ["a/s/2.json", "a/s/x/1.json"]
    assert store.list_keys("c/") == []
    store.delete("a/s/2.json")
    assert store.list_keys("a/") == ["a/s/x/1.json", "a/t/3.json"]
    assert not store.exists("a/s/2.json")
