"""The README's commands, run as a user runs them (subprocesses in a temporary folder)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests.helpers import add_symbols, run_command

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("IBKR_ASSETS_", "DAGSTER_HOME"))
    }
    env.update(
        {"DAGSTER_HOME": str(tmp_path / "dagster_home"), "IBKR_ASSETS_HOME": str(tmp_path / "home")}
    )
    env.update(extra)
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    return env


def _run(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    return run_command(args, cwd=tmp_path, env=_env(tmp_path, **extra), timeout=300)


def test_demo_materializes_and_prints_where_everything_is(tmp_path):
    done = _run([str(BIN / "ibkr-assets"), "demo", "--symbols", "AAPL", "--days", "2"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "momentum_workflow_job [AAPL]: run" in out
    assert "momentum_portfolio_job [portfolio]: run" in out
    assert "FAILED" not in out
    signal_lines = [line for line in out.splitlines() if "|AAPL " in line]
    assert len(signal_lines) == 2
    assert all(any(a in line for a in ("BUY", "SELL", "HOLD")) for line in signal_lines)
    assert f"{tmp_path / 'home' / 'objects'}" in out
    # 2 partitions x 8 steps + 2 portfolio snapshots; 2 x 7 artifacts (a validation report
    # each) + 2 portfolio artifacts
    assert "18 workflow_lineage rows and 16 artifacts rows" in out
    assert re.search(
        r"Portfolio \d{4}-\d\d-\d\d .*: equity [\d,.]+ = cash [\d,.]+ \+ positions", out
    )
    assert "mlflow ui --backend-store-uri sqlite:///" in out
    objects = tmp_path / "home/objects"
    assert list((objects / "trading-data/momentum/AAPL/processed").glob("*_indicators.json"))
    assert list(
        (objects / "ml-experiments/momentum/trading_workflow_AAPL/charts").glob("*_daily.png")
    )


def test_demo_refuses_an_unknown_symbol_before_it_becomes_a_partition(tmp_path):
    strategies = tmp_path / "strategies.yaml"
    strategies.write_text("strategies:\n  - {id: momentum, symbols: [AAPL, GOOGG]}\n")
    done = _run(
        [str(BIN / "ibkr-assets"), "demo", "--days", "1"],
        tmp_path,
        IBKR_ASSETS_STRATEGIES_FILE=str(strategies),
    )
    assert done.returncode == 2
    assert "strategy 'momentum': unknown symbol 'GOOGG'" in done.stderr
    from ibkr_assets.storage.symbol_registry import SymbolRegistry

    registry = SymbolRegistry(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    registry.create_schema()
    assert registry.get("GOOGG") is None  # refused symbols are never cached nor partitions
    lineage = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    lineage.create_schema()
    assert lineage.lineage_rows() == []


def test_demo_reports_wrong_configuration_by_variable_name(tmp_path):
    done = _run([str(BIN / "ibkr-assets"), "demo"], tmp_path, IBKR_ASSETS_OBJECT_STORE="ftp")
    assert done.returncode == 2
    assert "IBKR_ASSETS_OBJECT_STORE='ftp'" in done.stderr


def test_demo_reports_a_wrong_strategies_file_by_strategy_and_field(tmp_path):
    strategies = tmp_path / "strategies.yaml"
    strategies.write_text(
        "strategies:\n  - {id: momentum, symbols: [AAPL], market_data: {source: yahoo}}\n"
    )
    done = _run(
        [str(BIN / "ibkr-assets"), "demo"], tmp_path, IBKR_ASSETS_STRATEGIES_FILE=str(strategies)
    )
    assert done.returncode == 2
    assert "strategy 'momentum': market_data.source:" in done.stderr
    assert "Traceback" not in done.stderr


def test_dagster_definitions_validate_is_clean(tmp_path):
    done = _run(
        [str(BIN / "dagster"), "definitions", "validate", "-m", "ibkr_assets.definitions"], tmp_path
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Validation successful" in done.stdout + done.stderr


@pytest.mark.parametrize("how", ["partition", "partition-range"])
def test_dagster_cli_materializes_a_partition_and_a_single_run_range(tmp_path, how):
    import dagster as dg

    env = _env(tmp_path)
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        add_symbols(instance, ["AAPL"])
    target = "2025-03-14|AAPL" if how == "partition" else "2025-03-12|AAPL...2025-03-14|AAPL"
    done = run_command(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "ibkr_assets.definitions",
         "--select", "momentum/market_data,momentum/indicators", f"--{how}", target],
        cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    days = ["14"] if how == "partition" else ["12", "13", "14"]
    for day in days:
        assert (
            tmp_path
            / f"home/objects/trading-data/momentum/AAPL/processed/2025-03-{day}_indicators.json"
        ).is_file()
    assert "RUN_SUCCESS" in done.stderr


def test_backfill_of_a_postgres_strategy_reads_the_stock_data_table(tmp_path, postgres_url):
    """The CLI resolves symbols against the strategy's source with the URL from the environment."""
    import datetime as dt

    import sqlalchemy as sa

    from ibkr_assets.storage.tables import stock_data

    engine = sa.create_engine(postgres_url)
    days = [dt.date(2025, 3, d) for d in (6, 7, 10, 11, 12, 13, 14)]
    with engine.begin() as connection:
        stock_data.create(connection, checkfirst=True)
        connection.execute(sa.delete(stock_data).where(stock_data.c.symbol == "PGCLI"))
        connection.execute(
            sa.insert(stock_data),
            [
                {"symbol": "PGCLI", "date": d, "open": 10, "high": 11, "low": 9, "close": 10,
                 "volume": 1000}
                for d in days
            ],
        )  # fmt: skip
    strategies = tmp_path / "strategies.yaml"
    strategies.write_text(
        "strategies:\n  - id: table\n    symbols: [PGCLI]\n"
        "    market_data: {source: postgres, lookback_bars: 5}\n"
    )
    try:
        done = _run(
            [str(BIN / "ibkr-assets"), "backfill", "--no-progress", "--start", "2025-03-13",
             "--end", "2025-03-14"],
            tmp_path,
            IBKR_ASSETS_STRATEGIES_FILE=str(strategies),
            IBKR_ASSETS_STOCK_DATA_URL=postgres_url,
        )  # fmt: skip
    finally:  # the database is shared by the session's tests
        with engine.begin() as connection:
            connection.execute(sa.delete(stock_data).where(stock_data.c.symbol == "PGCLI"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Partitions: 2 done, 0 failed" in done.stdout
    rows = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}").lineage_rows(
        step_name="market_data"
    )
    assert {(r["strategy_id"], r["output_data"]["source"]) for r in rows} == {("table", "postgres")}
