"""LineageStore on SQLite and PostgreSQL, the SQL scripts against tables.py, the postgres source.

The PostgreSQL database is shared by the whole test session, so every test writes under its own
execution id and reads back only that.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from ibkr_assets.domain.bars import BAR_COLUMNS
from ibkr_assets.sources.base import BarSource, SourceUnavailableError, UnknownSymbolError
from ibkr_assets.sources.postgres_table import StockDataTableSource
from ibkr_assets.storage import ddl
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.lineage_store import LineageStore, LineageStoreError
from ibkr_assets.storage.records import ArtifactRecord, LineageRecord
from ibkr_assets.storage.tables import artifacts, metadata, stock_data, workflow_lineage

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
SECRET = "hunter2-not-for-logs"


def _step(execution_id: str, **overrides) -> LineageRecord:
    fields = {
        "workflow_id": "trading_signal_job",
        "execution_id": execution_id,
        "run_id": execution_id,
        "step_name": "market_data",
        "step_number": 1,
        "partition_key": "2025-01-02|AAPL",
        "symbol": "AAPL",
        "partition_date": dt.date(2025, 1, 2),
        "input_data": {"symbol": "AAPL", "end": "2025-01-02", "bars": 200},
        "output_data": {"bars": 200, "latest_price": 243.85},
    }
    fields.update(overrides)
    return LineageRecord(**fields)


def _artifact(execution_id: str, **overrides) -> ArtifactRecord:
    fields = {
        "name": "AAPL LLM Analysis",
        "type": "llm",
        "workflow_id": "trading_signal_job",
        "execution_id": execution_id,
        "run_id": execution_id,
        "step_name": "llm_analysis",
        "partition_key": "2025-01-02|AAPL",
        "symbol": "AAPL",
        "prompt": "Analyse AAPL",
        "response": "HOLD",
        "model_name": "test-model",
        "confidence_score": 0.7,
    }
    fields.update(overrides)
    return ArtifactRecord(**fields)


@pytest.fixture
def store(database_url: str) -> LineageStore:
    store = LineageStore(database_url)
    store.create_schema()
    store.create_schema()  # idempotent
    return store


@pytest.fixture
def execution_id() -> str:
    return f"run-{uuid.uuid4()}"


# --- LineageStore, on both databases -----------------------------------------------------


def test_record_step_round_trips_every_field(store: LineageStore, execution_id: str) -> None:
    payload = {
        "text": "Zürich ✓",
        "nested": {"list": [1, 2.5, None, True], "empty": {}},
        "price": 243.85,
    }
    rec = _step(
        execution_id,
        input_data=payload,
        metadata={"dagster/partition": "2025-01-02|AAPL"},
        strategy_id="sma-cross",
        code_version="abc123",
        duration_ms=42,
    )
    row_id = store.record_step(rec)

    [row] = store.lineage_rows(execution_id=execution_id)
    assert row["id"] == row_id
    assert row["input_data"] == payload
    assert row["output_data"] == rec.output_data
    assert row["metadata"] == {"dagster/partition": "2025-01-02|AAPL"}
    assert row["partition_date"] == dt.date(2025, 1, 2)
    assert (row["status"], row["attempts"], row["previous_attempts"]) == ("success", 1, [])
    assert (row["code_version"], row["duration_ms"]) == ("abc123", 42)
    assert row["strategy_id"] == "sma-cross"
    assert row["recorded_at"].tzinfo is not None
    assert abs(row["recorded_at"] - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    assert row["updated_at"] is None


def test_rerun_updates_in_place_and_keeps_the_failed_attempt(
    store: LineageStore, execution_id: str
) -> None:
    failed = _step(execution_id, run_id="run-a", status="error", error="broker down", duration_ms=7)
    first_id = store.record_step(failed)
    [first] = store.lineage_rows(execution_id=execution_id)

    second_id = store.record_step(_step(execution_id, run_id="run-b", duration_ms=9))
    third_id = store.record_step(_step(execution_id, run_id="run-c", status="market_closed"))

    rows = store.lineage_rows(execution_id=execution_id)
    assert first_id == second_id == third_id
    assert len(rows) == 1
    row = rows[0]
    assert (row["run_id"], row["status"], row["error"]) == ("run-c", "market_closed", None)
    assert row["attempts"] == 3
    assert [a["run_id"] for a in row["previous_attempts"]] == ["run-a", "run-b"]
    lost = row["previous_attempts"][0]
    assert (lost["status"], lost["error"], lost["duration_ms"]) == ("error", "broker down", 7)
    assert dt.datetime.fromisoformat(lost["recorded_at"]) == first["recorded_at"]
    assert row["updated_at"] == row["recorded_at"] > first["recorded_at"]


def test_other_execution_or_partition_adds_a_row(store: LineageStore, execution_id: str) -> None:
    other_execution = f"{execution_id}-other"
    ids = {
        store.record_step(_step(execution_id)),
        store.record_step(_step(execution_id, partition_key="2025-01-02|MSFT", symbol="MSFT")),
        store.record_step(_step(execution_id, step_name="indicators", step_number=2)),
        store.record_step(_step(other_execution)),
    }
    assert len(ids) == 4
    assert len(store.lineage_rows(execution_id=execution_id)) == 3
    assert len(store.lineage_rows(execution_id=execution_id, symbol="MSFT")) == 1
    assert len(store.lineage_rows(execution_id=execution_id, step_name="indicators")) == 1
    assert [r["attempts"] for r in store.lineage_rows(execution_id=other_execution)] == [1]


def test_record_steps_writes_a_batch_in_input_order(store: LineageStore, execution_id: str) -> None:
    recs = [
        _step(execution_id, partition_key=f"2025-01-02|S{i:03d}", symbol=f"S{i:03d}")
        for i in range(300)
    ]
    repeat = _step(execution_id, partition_key=recs[5].partition_key, run_id="again")
    ids = store.record_steps([*recs, repeat])

    rows = store.lineage_rows(execution_id=execution_id)
    assert len(rows) == 300
    by_id = {r["id"]: r for r in rows}
    assert [by_id[i]["partition_key"] for i in ids[:300]] == [r.partition_key for r in recs]
    assert ids[300] == ids[5]
    assert (by_id[ids[5]]["run_id"], by_id[ids[5]]["attempts"]) == ("again", 2)
    assert store.record_steps([]) == []


def test_a_batch_is_all_or_nothing(store: LineageStore, execution_id: str) -> None:
    good = [_step(execution_id, partition_key=f"p{i}") for i in range(3)]
    bad = _step(execution_id, partition_key="p-bad")
    object.__setattr__(bad, "status", "exploded")  # bypass the record check: the DB refuses it

    with pytest.raises(LineageStoreError, match="write failed"):
        store.record_steps([*good, bad])
    assert store.lineage_rows(execution_id=execution_id) == []


def test_artifacts_upsert_on_their_key(store: LineageStore, execution_id: str) -> None:
    first_id = store.record_artifact(_artifact(execution_id, signal_data=None))
    [before] = store.artifact_rows(execution_id=execution_id)
    changed = _artifact(execution_id, response="BUY", confidence_score=0.12345)
    again_id = store.record_artifact(changed)
    chart_id, signal_id = store.record_artifacts(
        [
            _artifact(execution_id, type="chart", name="AAPL Daily Chart", uri="s3://b/c.png"),
            _artifact(execution_id, type="signal", name="AAPL BUY", signal_data={"action": "BUY"}),
        ]
    )

    assert again_id == first_id
    assert len({first_id, chart_id, signal_id}) == 3
    [llm] = store.artifact_rows(execution_id=execution_id, type="llm")
    assert (llm["response"], llm["response_length"], llm["prompt_length"]) == ("BUY", 3, 12)
    assert llm["confidence_score"] == pytest.approx(0.1235)  # NUMERIC(5,4) on both databases
    assert llm["created_at"] == before["created_at"]
    assert before["updated_at"] is None and llm["updated_at"] > llm["created_at"]
    assert llm["signal_data"] is None
    [signal] = store.artifact_rows(execution_id=execution_id, type="signal", symbol="AAPL")
    assert signal["signal_data"] == {"action": "BUY"}
    assert len(store.artifact_rows(execution_id=execution_id)) == 3


def test_payloads_are_stored_as_plain_json(store: LineageStore, execution_id: str) -> None:
    np = pytest.importorskip("numpy")
    output = {
        "price": decimal.Decimal("243.85"),
        "asof": dt.date(2025, 1, 2),
        "rsi": float("nan"),
        "volume": np.int64(12),
        "window": (1, 2),
    }
    store.record_step(_step(execution_id, output_data=output))

    [row] = store.lineage_rows(execution_id=execution_id)
    assert row["output_data"] == {
        "price": 243.85,
        "asof": "2025-01-02",
        "rsi": None,
        "volume": 12,
        "window": [1, 2],
    }


def test_bad_input_is_rejected_before_anything_is_written(
    store: LineageStore, execution_id: str
) -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        _step(execution_id, status="done")
    with pytest.raises(ValueError, match="run_id must be a non-empty string"):
        _step(execution_id, run_id="")
    with pytest.raises(TypeError, match="input_data must be a mapping"):
        _step(execution_id, input_data=["not", "an", "object"])
    with pytest.raises(ValueError, match="step_number must be a non-negative integer"):
        _step(execution_id, step_number=-1)
    with pytest.raises(ValueError, match="type must be one of"):
        _artifact(execution_id, type="video")
    with pytest.raises(ValueError, match="confidence_score must be within 0..1"):
        _artifact(execution_id, confidence_score=87.0)

    unserializable = _step(execution_id, output_data={"frame": {"df": object()}})
    with pytest.raises(TypeError, match=r"output_data\.frame\.df: object cannot be stored as JSON"):
        store.record_steps([_step(execution_id, partition_key="ok"), unserializable])
    too_long = _step(execution_id, step_name="x" * 101)
    with pytest.raises(ValueError, match="step_name is 101 characters; the limit is 100"):
        store.record_step(too_long)  # PostgreSQL would refuse it; SQLite must too
    assert store.lineage_rows(execution_id=execution_id) == []


def test_unreachable_database_error_hides_the_password() -> None:
    store = LineageStore(f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:1/nowhere")
    with pytest.raises(LineageStoreError) as caught:
        store.record_step(_step("run-x"))
    message = str(caught.value)
    assert "127.0.0.1:1/nowhere" in message and "***" in message
    assert SECRET not in message and SECRET not in repr(store)
    with pytest.raises(ValueError, match="cannot be parsed") as unparseable:
        LineageStore(f"postgres ql://postgres:{SECRET}@127.0.0.1/db")
    assert SECRET not in str(unparseable.value)


# --- sql/*.sql against tables.py (PostgreSQL) --------------------------------------------


def _apply_sql(conn: sa.Connection, *names: str) -> None:
    for name in names:
        conn.exec_driver_sql((SQL_DIR / name).read_text())


def _schema_shape(conn: sa.Connection, schema: str) -> dict[str, dict]:
    """Everything the DDL decides, per table, with the schema name taken out."""
    insp = sa.inspect(conn)
    shape = {}
    for table in insp.get_table_names(schema=schema):
        columns = {
            c["name"]: (
                c["type"].compile(dialect=conn.dialect),
                c["nullable"],
                (c["default"] or "").replace(f"{schema}.", ""),
            )
            for c in insp.get_columns(table, schema=schema)
        }
        shape[table] = {
            "columns": columns,
            "primary_key": insp.get_pk_constraint(table, schema=schema)["constrained_columns"],
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in insp.get_unique_constraints(table, schema=schema)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table, schema=schema)
            ),
            "checks": sorted(
                (c["name"], c["sqltext"]) for c in insp.get_check_constraints(table, schema=schema)
            ),
        }
    return shape


@pytest.fixture
def schemas(postgres_url: str):
    """Two new, empty schemas in the test database, dropped afterwards."""
    names = [f"ddl_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    engine = engine_for(postgres_url)
    with engine.begin() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    yield names
    with engine.begin() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')


def ddl_shapes(
    postgres_url: str, schemas: list[str], sql_files: list[str], tables: list[sa.Table]
) -> tuple[dict, dict]:
    """The shape ``sql_files`` give one empty schema and ``tables`` (SQLAlchemy) the other."""
    from_sql, from_metadata = schemas
    engine = engine_for(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'SET LOCAL search_path TO "{from_sql}"')
        _apply_sql(conn, *sql_files, *sql_files)  # twice: every script is safe to re-run
    with engine.begin() as conn:
        metadata.create_all(
            conn.execution_options(schema_translate_map={None: from_metadata}), tables=tables
        )
    with engine.connect() as conn:
        return _schema_shape(conn, from_sql), _schema_shape(conn, from_metadata)


def test_sql_ddl_matches_tables(postgres_url: str, schemas: list[str]) -> None:
    sql_shape, metadata_shape = ddl_shapes(
        postgres_url,
        schemas,
        ["001_lineage.sql", "002_stock_data.sql"],
        [workflow_lineage, artifacts, stock_data],
    )
    assert set(sql_shape) == {"workflow_lineage", "artifacts", "stock_data"}
    assert sql_shape == metadata_shape


def test_sql_folder_creates_exactly_the_tables_the_code_defines(
    postgres_url: str, schemas: list[str]
) -> None:
    """Every table of the shared metadata is in sql/, and sql/ holds no table the code lacks."""
    files = sorted(p.name for p in SQL_DIR.glob("*.sql") if "sample" not in p.name)
    sql_shape, metadata_shape = ddl_shapes(
        postgres_url, schemas, files, list(metadata.sorted_tables)
    )
    assert set(sql_shape) == set(metadata.tables)
    assert sql_shape == metadata_shape


def test_sql_files_are_generated_from_the_tables() -> None:
    """The checked-in sql/ is what ``python -m ibkr_assets.storage.ddl`` writes now."""
    stale = [name for name in ddl.FILES if (SQL_DIR / name).read_text() != ddl.file_text(name)]
    assert not stale, f"stale: {stale}; run python -m ibkr_assets.storage.ddl"
    generated = set(ddl.FILES)
    by_hand = {p.name for p in SQL_DIR.glob("*.sql")} - generated
    assert by_hand == {"003_sample_stock_data.sql"}  # data, not schema


def test_ddl_command_writes_every_file(tmp_path: Path) -> None:
    assert ddl.main([str(tmp_path)]) == 0
    for name in ddl.FILES:
        assert (tmp_path / name).read_text() == (SQL_DIR / name).read_text()


def test_schema_comparison_notices_a_column_added_to_one_side(
    postgres_url: str, schemas: list[str]
) -> None:
    left, right = schemas
    with engine_for(postgres_url).begin() as conn:
        for schema in schemas:
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
            _apply_sql(conn, "001_lineage.sql")
        conn.exec_driver_sql(f'ALTER TABLE "{right}".artifacts ADD COLUMN extra TEXT')
        assert _schema_shape(conn, left) != _schema_shape(conn, right)
        assert "extra" in _schema_shape(conn, right)["artifacts"]["columns"]


# --- StockDataTableSource against the real PostgreSQL ------------------------------------


@pytest.fixture
def stock_db(postgres_url: str) -> str:
    """The test database with sql/002 and sql/003 applied (twice: both are idempotent)."""
    with engine_for(postgres_url).begin() as conn:
        _apply_sql(conn, "002_stock_data.sql", "003_sample_stock_data.sql")
        _apply_sql(conn, "002_stock_data.sql", "003_sample_stock_data.sql")
    return postgres_url


def test_postgres_source_sample_data_is_plausible(stock_db: str) -> None:
    query = "SELECT symbol, date, open, high, low, close, volume FROM stock_data"
    with engine_for(stock_db).connect() as conn:
        frame = pd.read_sql_query(sa.text(query), conn)
    assert frame.groupby("symbol").size().to_dict() == {"NVDA": 23, "TSLA": 23}
    dates = pd.to_datetime(frame["date"])
    assert dates.min() == pd.Timestamp("2025-10-03") and dates.max() == pd.Timestamp("2025-11-04")
    assert (dates.dt.day_of_week < 5).all()
    prices = frame[["open", "high", "low", "close"]].astype(float)
    assert (prices["high"] >= prices[["open", "close"]].max(axis=1)).all()
    assert (prices["low"] <= prices[["open", "close"]].min(axis=1)).all()
    assert (frame["volume"] > 0).all()


def test_postgres_source_reads_the_tsla_window(stock_db: str) -> None:
    source = StockDataTableSource(stock_db)
    assert isinstance(source, BarSource)
    assert (source.name, source.synthetic) == ("postgres", False)

    window = source.fetch_bars("tsla", dt.date(2025, 10, 10), 5)

    assert list(window.columns) == BAR_COLUMNS
    assert list(window["date"].dt.date) == [dt.date(2025, 10, d) for d in (6, 7, 8, 9, 10)]
    assert all(dtype == "float64" for dtype in window.dtypes.iloc[1:])
    assert window.iloc[-1][["open", "high", "low", "close", "volume"]].tolist() == pytest.approx(
        [422.89, 434.32, 419.13, 433.56, 123815752.0]
    )
    everything = source.fetch_bars("TSLA", dt.date(2025, 11, 4), 500)
    assert len(everything) == 23 and everything["date"].is_monotonic_increasing


def test_postgres_source_never_returns_a_bar_after_end(stock_db: str) -> None:
    source = StockDataTableSource(stock_db)
    saturday = dt.date(2025, 11, 1)
    window = source.fetch_bars("NVDA", saturday, 10)
    assert len(window) == 10
    assert window["date"].max() == pd.Timestamp("2025-10-31")
    assert (window["date"] <= pd.Timestamp(saturday)).all()
    before_history = source.fetch_bars("NVDA", dt.date(2025, 9, 30), 10)
    assert before_history.empty and list(before_history.columns) == BAR_COLUMNS


def test_postgres_source_unknown_symbol_names_symbol_table_and_database(stock_db: str) -> None:
    url = sa.make_url(stock_db).set(password=SECRET)  # trust auth ignores the password
    source = StockDataTableSource(url.render_as_string(hide_password=False))
    with pytest.raises(UnknownSymbolError) as caught:
        source.fetch_bars("ZZZZ", dt.date(2025, 11, 4), 10)
    message = str(caught.value)
    assert "'ZZZZ'" in message and "stock_data" in message and url.database in message
    assert SECRET not in message and "***" in message


def test_postgres_source_unavailable_errors_are_clear(postgres_url: str) -> None:
    down = StockDataTableSource(f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:1/market")
    with pytest.raises(SourceUnavailableError, match="cannot read stock_data from") as caught:
        down.fetch_bars("TSLA", dt.date(2025, 11, 4), 10)
    assert SECRET not in str(caught.value)

    no_table = sa.make_url(postgres_url).update_query_dict({"options": "-csearch_path=missing"})
    source = StockDataTableSource(no_table.render_as_string(hide_password=False))
    with pytest.raises(SourceUnavailableError, match="table stock_data does not exist"):
        source.fetch_bars("TSLA", dt.date(2025, 11, 4), 10)


def test_nan_is_not_a_valid_confidence_score() -> None:
    with pytest.raises(ValueError):
        _artifact("run-x", confidence_score=math.nan)
