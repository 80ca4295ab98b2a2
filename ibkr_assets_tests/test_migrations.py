"""A database made by the previous release upgrades in place to what a new one gets.

The previous release's database is built from its own DDL (PostgreSQL: its ``sql/*.sql``, kept in
``data/sql_previous_release``; SQLite: the baseline revision, which is what its tables created),
filled with a few rows, upgraded by ``ensure_schema`` (what every store calls), then compared by
SQLAlchemy inspection with a database ``ensure_schema`` created new.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.migrations import VERSION_TABLE
from ibkr_assets.storage.schema import MIGRATIONS, alembic_config, ensure_schema, head_revision
from ibkr_assets.storage.tables import metadata

PREVIOUS_SQL = Path(__file__).resolve().parent / "data" / "sql_previous_release"
_VERSION = sa.table(VERSION_TABLE, sa.column("version_num"))
NOW = dt.datetime(2025, 3, 14, 21, tzinfo=dt.timezone.utc)


def _baseline_metadata() -> sa.MetaData:
    import importlib.util

    path = MIGRATIONS / "versions" / "0001_baseline.py"
    spec = importlib.util.spec_from_file_location("baseline_revision", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.baseline_metadata()


@pytest.fixture
def new_url(database_url: str, tmp_path: Path):
    """A factory of empty databases of the parametrized kind (PostgreSQL: fresh schemas)."""
    if database_url.startswith("sqlite"):
        yield lambda name: f"sqlite:///{tmp_path / name}.db"
        return
    created: list[str] = []

    def make(_name: str) -> str:
        schema = f"mig_{uuid.uuid4().hex[:8]}"
        with engine_for(database_url).begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        created.append(schema)
        url = sa.make_url(database_url).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    yield make
    with engine_for(database_url).begin() as conn:
        for schema in created:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


def _previous_release_database(url: str) -> None:
    engine = engine_for(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            for path in sorted(PREVIOUS_SQL.glob("*.sql")):
                conn.exec_driver_sql(path.read_text())
        else:
            _baseline_metadata().create_all(conn)
        _insert_rows(conn)


def _insert_rows(conn: sa.Connection) -> None:
    t = metadata.tables
    conn.execute(
        t["workflow_lineage"].insert().values(
            workflow_id="momentum_workflow_job", execution_id="run-1", run_id="run-1",
            step_name="market_data", step_number=1, partition_key="2025-03-14|AAPL",
            symbol="AAPL", partition_date=dt.date(2025, 3, 14), strategy_id="momentum",
            input_data={}, output_data={"bars_count": 3}, status="success", recorded_at=NOW,
        )
    )  # fmt: skip
    conn.execute(
        t["paper_accounts"].insert().values(
            account="momentum", starting_cash=100_000.0, cash=99_000.5, created_at=NOW,
            updated_at=NOW,
        )
    )  # fmt: skip
    conn.execute(
        t["symbols"].insert().values(
            symbol="AAPL", con_id=265598, exchange="SMART", primary_exchange="NASDAQ",
            currency="USD", name="Apple Inc", source="ibkr", resolved_at=NOW,
        )
    )  # fmt: skip


def _rows(url: str) -> dict[str, list[tuple]]:
    t = metadata.tables
    with engine_for(url).connect() as conn:
        return {
            "lineage": conn.execute(
                sa.select(t["workflow_lineage"].c["execution_id", "partition_key", "status",
                                                   "output_data", "attempts"])
            ).all(),
            "account": conn.execute(sa.select(t["paper_accounts"].c["account", "cash"])).all(),
            "symbols": conn.execute(sa.select(t["symbols"].c["symbol", "con_id"])).all(),
        }  # fmt: skip


def schema_shape(url: str) -> dict[str, dict]:
    """Tables, columns (type, nullability, default), keys, indexes and checks, as inspected."""
    engine = engine_for(url)
    with engine.connect() as conn:
        insp = sa.inspect(conn)
        schema = insp.default_schema_name
        shape = {}
        for table in sorted(insp.get_table_names()):
            columns = {
                c["name"]: (
                    c["type"].compile(dialect=conn.dialect),
                    c["nullable"],
                    (c["default"] or "").replace(f"{schema}.", ""),
                )
                for c in insp.get_columns(table)
            }
            indexes = sorted(
                (
                    i["name"],
                    tuple(i["column_names"]),
                    bool(i["unique"]),
                    tuple(i.get("include_columns") or ()),
                    str(i.get("dialect_options", {}).get(f"{engine.dialect.name}_where", "")),
                )
                for i in insp.get_indexes(table)
            )
            shape[table] = {
                "columns": columns,
                "primary_key": insp.get_pk_constraint(table)["constrained_columns"],
                "unique": sorted(
                    (u["name"], tuple(u["column_names"]))
                    for u in insp.get_unique_constraints(table)
                ),
                "indexes": indexes,
                "checks": sorted(
                    (c["name"], c["sqltext"]) for c in insp.get_check_constraints(table)
                ),
            }
    return shape


def _revision(url: str) -> str | None:
    with engine_for(url).connect() as conn:
        return conn.execute(sa.select(_VERSION.c.version_num)).scalar_one()


def test_a_previous_release_database_upgrades_in_place(new_url) -> None:
    old, new = new_url("old"), new_url("new")
    _previous_release_database(old)
    before = _rows(old)
    old_indexes = {i["name"] for i in sa.inspect(engine_for(old)).get_indexes("workflow_lineage")}
    assert "ix_workflow_lineage_step_recorded" in old_indexes  # really the previous schema

    ensure_schema(old)
    ensure_schema(new)

    assert schema_shape(old) == schema_shape(new)
    assert set(schema_shape(new)) == {*metadata.tables, VERSION_TABLE}
    assert _revision(old) == _revision(new) == head_revision()
    assert _rows(old) == before
    assert before["lineage"] and before["account"] and before["symbols"]


def test_a_partial_database_of_the_previous_release_gets_its_missing_tables(new_url) -> None:
    """The previous release created tables store by store: a home that never traded had only
    the lineage tables; upgrading it adds the rest at the newest schema."""
    old, new = new_url("old"), new_url("new")
    baseline = _baseline_metadata()
    with engine_for(old).begin() as conn:
        baseline.create_all(conn, tables=[baseline.tables["workflow_lineage"]])
    ensure_schema(old)
    ensure_schema(new)
    assert schema_shape(old) == schema_shape(new)


def test_the_migrations_from_nothing_build_the_tables_of_the_code(new_url) -> None:
    """``alembic upgrade head`` on an empty database gives what ``metadata`` creates."""
    migrated, created = new_url("migrated"), new_url("created")
    with engine_for(migrated).begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    ensure_schema(created)
    assert schema_shape(migrated) == schema_shape(created)


def test_ensure_schema_is_current_after_one_call_and_safe_to_repeat(new_url) -> None:
    url = new_url("db")
    ensure_schema(url)
    shape = schema_shape(url)
    ensure_schema(url)
    assert schema_shape(url) == shape
    assert _revision(url) == head_revision()


@pytest.mark.slow
def test_processes_started_together_create_the_schema_once(new_url) -> None:
    url = new_url("db")
    code = "import sys; from ibkr_assets.storage.schema import ensure_schema; ensure_schema(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    assert _revision(url) == head_revision()
    with engine_for(url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(_VERSION)).scalar_one() == 1


def test_the_schema_command_upgrades_a_database_and_names_its_revision(new_url, capsys) -> None:
    from ibkr_assets.storage.schema import main

    old = new_url("old")
    _previous_release_database(old)
    assert main([old]) == 0
    assert capsys.readouterr().out.strip().endswith(f"schema at revision {head_revision()}")
    assert _revision(old) == head_revision()


def test_another_tools_alembic_version_in_the_same_database_is_left_alone(new_url) -> None:
    """Dagster's and MLflow's stores keep their revision in ``alembic_version``; ours is apart."""
    url = new_url("shared")
    with engine_for(url).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('their_head')")
    ensure_schema(url)
    with engine_for(url).connect() as conn:
        theirs = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    assert theirs == "their_head"
    assert _revision(url) == head_revision()
