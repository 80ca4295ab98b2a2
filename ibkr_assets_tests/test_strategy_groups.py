"""Several strategies from one file coexist: each is its own asset group with its own partitions,
jobs, schedule and symbol sensor, and everything it records carries its id."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import yaml
from mlflow import MlflowClient

from ibkr_assets.definitions import build_definitions
from ibkr_assets.partitions import symbols_partition_name
from ibkr_assets.runs import run_workflow
from ibkr_assets.settings import ConfigError, load_settings
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets.strategies.checks import check_strategies
from ibkr_assets.strategies.config import StrategyConfig, load_strategies

pytestmark = pytest.mark.slow  # whole-graph runs of two strategies

STRATEGIES = {
    "strategies": [
        {"id": "momentum", "symbols": ["AAPL", "MSFT"]},
        {
            "id": "swing",
            "symbols": ["AAPL"],
            "market_data": {"lookback_bars": 120},
            "indicators": ["sma_20", "sma_50", "macd", "rsi_14", "atr_14"],
            "schedule": {"cron": "45 16 * * 1-5", "enabled": False},
            "risk": {"min_risk_reward": 2.5, "min_confidence": 75},
            "broker": {"starting_cash": 50000.0},
        },
    ]
}
DAY = dt.date(2025, 3, 14)


@pytest.fixture
def two_strategies(deployment, tmp_path) -> Path:
    path = tmp_path / "strategies.yaml"
    path.write_text(yaml.safe_dump(STRATEGIES))
    deployment(STRATEGIES_FILE=str(path))
    return tmp_path


def test_each_strategy_is_its_own_group_with_jobs_schedule_and_sensor(two_strategies):
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    for sid in ("momentum", "swing"):
        keys = {k for k in graph.get_all_asset_keys() if k.path[0] == sid}
        assert {k.path[1] for k in keys} == {
            "market_data", "indicators", "daily_chart", "weekly_chart", "llm_analysis",
            "trading_signal", "order", "portfolio_snapshot",
        }  # fmt: skip
        assert {graph.get(k).group_name for k in keys} == {sid}
        indicators = graph.get(dg.AssetKey([sid, "indicators"]))
        assert indicators.parent_keys == {dg.AssetKey([sid, "market_data"])}
        market_data = graph.get(dg.AssetKey([sid, "market_data"]))
        assert symbols_partition_name(sid) in str(market_data.partitions_def)
        for job in ("market_data_job", "workflow_job", "portfolio_job"):
            assert defs.resolve_job_def(f"{sid}_{job}")
        assert defs.resolve_sensor_def(f"{sid}_symbols_sensor")
    swing = defs.resolve_schedule_def("swing_after_close")
    assert swing.cron_schedule == "45 16 * * 1-5"
    assert swing.default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_schedule_def("momentum_after_close").job_name == "momentum_workflow_job"
    workflow = defs.resolve_job_def("swing_workflow_job")
    assert {k.path[0] for k in workflow.asset_layer.selected_asset_keys} == {"swing"}


def test_two_strategies_on_one_symbol_and_day_keep_their_own_records(two_strategies, instance):
    tmp_path = two_strategies
    defs = build_definitions()
    for sid in ("momentum", "swing"):
        outcomes = run_workflow(defs, instance, sid, ["AAPL"], DAY, DAY)
        assert all(o.success for o in outcomes), [o.errors for o in outcomes]

    store = LineageStore(load_settings().lineage_url)
    rows = store.lineage_rows(partition_key=f"{DAY}|AAPL")
    by = {(r["strategy_id"], r["step_name"]): r for r in rows}
    assert {sid for sid, _ in by} == {"momentum", "swing"}
    assert all(r["strategy_id"] for r in store.artifact_rows())

    # each strategy's own settings reached its steps
    assert by["momentum", "market_data"]["input_data"]["bars"] == 200
    assert by["swing", "market_data"]["input_data"]["bars"] == 120
    assert by["swing", "trading_signal"]["input_data"]["rules"]["min_risk_reward"] == 2.5
    assert by["momentum", "trading_signal"]["input_data"]["rules"]["min_risk_reward"] == 1.5
    swing_latest = by["swing", "indicators"]["output_data"]["latest"]
    assert swing_latest["bb_upper"] is None and swing_latest["ema_12"] is None
    assert swing_latest["sma_20"] is not None
    assert by["momentum", "indicators"]["output_data"]["latest"]["bb_upper"] is not None

    # objects never overwrite each other
    uris = {
        sid: by[sid, "indicators"]["output_data"]["object"]["uri"] for sid in ("momentum", "swing")
    }
    assert "/trading-data/momentum/AAPL/" in uris["momentum"]
    assert "/trading-data/swing/AAPL/" in uris["swing"]

    # separate paper accounts with their own starting cash
    snaps = {
        r["strategy_id"]: r["output_data"]
        for r in store.lineage_rows(step_name="portfolio_snapshot", partition_key=DAY.isoformat())
    }
    assert snaps["momentum"]["equity"] == pytest.approx(100_000.0)
    assert snaps["swing"]["equity"] == pytest.approx(50_000.0)

    # MLflow: one experiment per strategy and symbol, runs tagged with the strategy
    client = MlflowClient(tracking_uri=load_settings().tracking_uri)
    for sid in ("momentum", "swing"):
        experiment = client.get_experiment_by_name(f"{sid}/trading_workflow_AAPL")
        (run,) = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.partition_key = '{DAY}|AAPL' AND tags.execution_id = "
            f"'{by[sid, 'trading_signal']['execution_id']}'",
        )
        assert run.data.tags["strategy_id"] == sid
    order = json.loads(Path(tmp_path / "home" / "objects").joinpath(
        by["swing", "order"]["output_data"]["object"]["uri"].split("/objects/", 1)[1]
    ).read_text())  # fmt: skip
    assert order["order_ref"] == f"ibkr-assets:swing:AAPL:{DAY}"


def test_a_strategy_sensor_adds_only_its_own_symbols(two_strategies, instance):
    defs = build_definitions()
    with dg.build_sensor_context(
        instance=instance, resources={"market_data_source": defs.resources["market_data_source"]}
    ) as context:
        result = defs.resolve_sensor_def("swing_symbols_sensor")(context)
    (request,) = result.dynamic_partitions_requests
    assert request.partitions_def_name == "swing_symbols"
    assert list(request.partition_keys) == ["AAPL"]


def test_each_schedule_requests_its_own_job_and_symbols(two_strategies, instance):
    defs = build_definitions()
    instance.add_dynamic_partitions("momentum_symbols", ["AAPL", "MSFT"])
    instance.add_dynamic_partitions("swing_symbols", ["AAPL"])
    close = dt.datetime(2025, 3, 14, 16, 45, tzinfo=ZoneInfo("America/New_York"))
    requested = {}
    for sid in ("momentum", "swing"):
        schedule = defs.resolve_schedule_def(f"{sid}_after_close")
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=close,
            repository_def=defs.get_repository_def(),
        )
        result = schedule.evaluate_tick(context)
        requested[sid] = sorted(r.partition_key for r in result.run_requests)
        assert {r.tags["strategy"] for r in result.run_requests} == {sid}
        assert schedule.job_name == f"{sid}_workflow_job"
    assert requested == {
        "momentum": ["2025-03-14|AAPL", "2025-03-14|MSFT"],
        "swing": ["2025-03-14|AAPL"],
    }


def test_an_openai_strategy_without_a_key_is_refused_by_name(deployment, monkeypatch):
    deployment()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    strategy = StrategyConfig(id="llm", symbols=["AAPL"], analyst={"provider": "openai"})
    with pytest.raises(ConfigError, match="strategy 'llm' uses the openai analyst"):
        check_strategies(load_settings(), [strategy])
    local = StrategyConfig(
        id="llm",
        symbols=["AAPL"],
        analyst={"provider": "openai", "base_url": "http://127.0.0.1:9/v1"},
    )
    check_strategies(load_settings(), [local])  # a local server needs no key


def test_live_trading_needs_an_ibkr_strategy_with_a_share_cap(deployment):
    deployment(LIVE_TRADING="yes")
    paper = StrategyConfig(id="p", symbols=["AAPL"])
    with pytest.raises(ConfigError, match="needs a strategy with broker.kind: ibkr"):
        check_strategies(load_settings(), [paper])
    uncapped = StrategyConfig(id="live", symbols=["AAPL"], broker={"kind": "ibkr"})
    with pytest.raises(ConfigError, match="strategy 'live' trades through IBKR and needs risk"):
        check_strategies(load_settings(), [uncapped])
    capped = StrategyConfig(
        id="live", symbols=["AAPL"], broker={"kind": "ibkr"}, risk={"max_position": 100}
    )
    check_strategies(load_settings(), [capped])


def test_the_rules_analyst_needs_the_indicators_it_reads(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("strategies:\n  - {id: lean, symbols: [AAPL], indicators: [sma_20, rsi_14]}\n")
    with pytest.raises(ValueError, match="strategy 'lean': indicators: the rules analyst reads"):
        load_strategies(path)


def test_both_portfolios_in_one_run_keep_their_own_rows(two_strategies, instance):
    """Dagster's automation puts both strategies' snapshots of a date into one run."""
    defs = build_definitions()
    for sid in ("momentum", "swing"):
        assert all(o.success for o in run_workflow(defs, instance, sid, ["AAPL"], DAY, DAY))
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        partition_key=DAY.isoformat(),
        asset_selection=[
            dg.AssetKey(["momentum", "portfolio_snapshot"]),
            dg.AssetKey(["swing", "portfolio_snapshot"]),
        ],
    )
    assert result.success
    store = LineageStore(load_settings().lineage_url)
    rows = store.lineage_rows(execution_id=result.run_id, step_name="portfolio_snapshot")
    equity = {r["strategy_id"]: r["output_data"]["equity"] for r in rows}
    assert equity == {"momentum": pytest.approx(100_000.0), "swing": pytest.approx(50_000.0)}
    assert all(r["attempts"] == 1 for r in rows)
    artifacts = store.artifact_rows(execution_id=result.run_id, type="portfolio")
    assert sorted(a["strategy_id"] for a in artifacts) == ["momentum", "swing"]


def test_only_one_strategy_may_trade_through_ibkr(deployment):
    deployment()
    one, two = (
        StrategyConfig(id=sid, symbols=["AAPL"], broker={"kind": "ibkr"}) for sid in ("a", "b")
    )
    with pytest.raises(ConfigError, match="'a', 'b' all use broker.kind: ibkr"):
        check_strategies(load_settings(), [one, two])
    check_strategies(load_settings(), [one, StrategyConfig(id="b", symbols=["AAPL"])])


def test_an_unreachable_broker_does_not_stop_tracking_the_other_strategies(
    deployment, tmp_path, instance
):
    path = tmp_path / "strategies.yaml"
    path.write_text(
        "strategies:\n  - {id: momentum, symbols: [AAPL]}\n"
        "  - {id: gateway, symbols: [AAPL], broker: {kind: ibkr}}\n"
    )
    deployment(STRATEGIES_FILE=str(path), IBKR_PORT="9")  # nothing listens on port 9
    defs = build_definitions()
    with dg.build_sensor_context(
        instance=instance, resources={"broker": defs.resources["broker"]}
    ) as context:
        result = defs.resolve_sensor_def("order_tracking_sensor")(context)
    assert "momentum (paper): 0 order state change(s)" in result.skip_message
    assert "FAILED gateway:" in result.skip_message
