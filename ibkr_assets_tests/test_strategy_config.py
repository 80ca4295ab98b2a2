"""The strategies file: the packaged default loads, and every mistake is named by file, strategy
and field, one line per problem."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import get_args

import pytest
import yaml
from pydantic import ValidationError

from ibkr_assets.domain.indicators import INDICATOR_COLUMNS
from ibkr_assets.partitions import MAX_PARTITIONS, partition_count
from ibkr_assets.strategies.config import (
    INDICATOR_GROUPS,
    STRATEGIES_FILE_ENV,
    IndicatorName,
    RiskConfig,
    StrategiesFile,
    StrategyConfig,
    StrategyConfigError,
    load_strategies,
)

TODAY = dt.date(2025, 1, 2)


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STRATEGIES_FILE_ENV, raising=False)
    monkeypatch.delenv("IBKR_ASSETS_START_DATE", raising=False)


def _strategy(**fields: object) -> dict[str, object]:
    return {"id": "momentum", "symbols": ["AAPL", "MSFT"], **fields}


def _write(tmp_path: Path, *strategies: dict[str, object], name: str = "strategies.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"strategies": list(strategies)}, sort_keys=False))
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(StrategyConfigError) as raised:
        load_strategies(path, today=TODAY)
    assert str(raised.value).splitlines() == raised.value.problems
    return raised.value.problems


def test_packaged_default_is_one_offline_momentum_strategy() -> None:
    [strategy] = load_strategies(today=TODAY)
    assert strategy.id == "momentum"
    assert strategy.symbols == ["AAPL", "MSFT", "NVDA"]
    assert strategy.market_data.source == "sample"
    assert strategy.analyst.provider == "rules"
    assert strategy.broker.kind == "paper"
    assert strategy.schedule.cron == "30 16 * * 1-5" and strategy.schedule.enabled
    assert strategy.indicator_columns == INDICATOR_COLUMNS


def test_commented_example_in_the_default_file_is_valid_once_uncommented(tmp_path: Path) -> None:
    text = resources.files("ibkr_assets.strategies").joinpath("default_strategies.yaml").read_text()
    head, marker, example = text.partition("# --- a second strategy")
    assert marker, "the default file lost its commented example"
    lines = [line[1:] for line in example.splitlines()[1:] if line.startswith("#")]
    path = tmp_path / "strategies.yaml"
    path.write_text(head + "\n".join(lines) + "\n")

    momentum, second = load_strategies(path, today=TODAY)
    assert momentum.id == "momentum"
    assert second.market_data.source == "csv"
    assert second.analyst.provider == "openai"
    assert second.broker.kind == "ibkr"
    assert second.symbols == ["JPM", "BRK.B", "XOM"]
    assert second.schedule.enabled is False


def test_indicator_names_cover_every_indicator_column() -> None:
    assert set(INDICATOR_GROUPS) == set(get_args(IndicatorName))
    columns = [c for group in INDICATOR_GROUPS.values() for c in group]
    assert sorted(columns) == sorted(INDICATOR_COLUMNS)


def test_symbols_are_upper_cased_and_indicators_select_their_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _strategy(
            symbols=["aapl", " brk.b "],
            indicators=["macd", "rsi_14"],
            analyst={"provider": "openai"},  # the rules analyst would need more indicators
        ),
    )
    [strategy] = load_strategies(path, today=TODAY)
    assert strategy.symbols == ["AAPL", "BRK.B"]
    assert strategy.indicator_columns == ["macd", "macd_signal", "macd_hist", "rsi_14"]


def test_risk_section_becomes_the_domain_limits_and_rules() -> None:
    risk = RiskConfig(risk_per_trade_pct=0.5, min_confidence=70, min_risk_reward=2.0)
    assert risk.risk_limits().risk_per_trade_pct == 0.5
    assert risk.risk_limits().min_confidence == 70
    assert risk.signal_rules().min_risk_reward == 2.0
    assert risk.signal_rules().min_confidence == 70


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"id": "Momentum"},
            "strategies[0]: id: 'Momentum' is not a strategy id: a lowercase letter",
        ),
        (
            {"indicators": ["sma_20", "vwap"]},
            "strategy 'momentum': indicators[1]: Input should be 'sma_20'",
        ),
        (
            {"schedule": {"cron": "61 16 * * *"}},
            "strategy 'momentum': schedule.cron: '61 16 * * *' is not a cron expression",
        ),
        (
            {"schedule": {"timezone": "Mars/Olympus"}},
            "strategy 'momentum': schedule.timezone: 'Mars/Olympus' is not an IANA time zone",
        ),
        (
            {"schedule": {"calendar": "NOPE"}},
            "strategy 'momentum': schedule.calendar: 'NOPE' is not an exchange_calendars calendar",
        ),
        (
            {"prompt": {"template": "no_such_prompt"}},
            "strategy 'momentum': prompt: no prompt template no_such_prompt; available: "
            "chart_analysis v1",
        ),
        (
            {"risk": {"risk_per_trade_pct": -1}},
            "strategy 'momentum': risk.risk_per_trade_pct: Input should be greater than 0 (got -1)",
        ),
        (
            {"risk": {"max_position_pct": 150}},
            "strategy 'momentum': risk.max_position_pct: Input should be less than or equal to 100",
        ),
        (
            {"risk": {"max_postion_pct": 5}},
            "strategy 'momentum': risk.max_postion_pct: unknown field (check the spelling)",
        ),
        (
            {"market_data": {"source": "cvs"}},
            "strategy 'momentum': market_data.source: Input should be 'sample', 'csv', "
            "'postgres' or 'ibkr' (got 'cvs')",
        ),
        (
            {"symbols": ["AAPL", "BRK/B"]},
            "strategy 'momentum': symbols[1]: 'BRK/B' is not a ticker",
        ),
        (
            {"symbols": ["AAPL", "aapl"]},
            "strategy 'momentum': symbols: listed more than once: AAPL",
        ),
        (
            {"symbols": ["AAPL", True]},
            "strategy 'momentum': symbols[1]: YAML read this as the boolean True: put it in quotes",
        ),
    ],
)
def test_invalid_field_names_file_strategy_and_field(
    tmp_path: Path, fields: dict[str, object], expected: str
) -> None:
    path = _write(tmp_path, _strategy(**fields))
    [problem] = _problems(path)
    assert problem.startswith(_line(path, expected)), problem


def _line(path: Path, text: str) -> str:
    return f"{path}: {text}"


def test_every_problem_is_reported_at_once_one_line_each(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _strategy(risk={"max_position_pct": 150}, schedule={"timezone": "Nowhere"}),
        {"id": "Bad-Id", "symbols": ["MSFT"], "broker": {"kind": "live"}},
    )
    problems = _problems(path)
    assert len(problems) == 4
    assert problems[0].startswith(_line(path, "strategy 'momentum': schedule.timezone: "))
    assert problems[1].startswith(_line(path, "strategy 'momentum': risk.max_position_pct: "))
    assert problems[2].startswith(_line(path, "strategies[1]: id: 'Bad-Id' is not"))
    assert problems[3].startswith(_line(path, "strategies[1]: broker.kind: "))


def test_an_api_key_in_the_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = _write(tmp_path, _strategy(analyst={"provider": "openai", "api_key": "sk-not-here"}))
    [problem] = _problems(path)
    assert problem.startswith(_line(path, "strategy 'momentum': analyst.api_key: unknown field"))
    assert "OPENAI_API_KEY" in problem
    assert "sk-not-here" not in problem


def test_duplicated_ids_name_both_positions(tmp_path: Path) -> None:
    path = _write(tmp_path, _strategy(), _strategy(symbols=["NVDA"]))
    assert _problems(path) == [
        _line(
            path,
            "strategy 'momentum': id: used by strategies[0] and strategies[1]; ids must be "
            "unique (each names an asset group)",
        )
    ]


def test_strategies_file_model_refuses_duplicated_ids() -> None:
    strategy = StrategyConfig(id="momentum", symbols=["AAPL"])
    with pytest.raises(ValidationError, match=r"'momentum' is used by strategies\[0\] and"):
        StrategiesFile(strategies=[strategy, strategy])


def test_duplicated_ids_are_reported_with_the_other_problems(tmp_path: Path) -> None:
    path = _write(tmp_path, _strategy(), _strategy(symbols=[]))
    problems = _problems(path)
    assert problems[0].startswith(_line(path, "strategy 'momentum' (strategies[1]): symbols: "))
    assert problems[1].startswith(_line(path, "strategy 'momentum': id: used by strategies[0]"))


def test_unknown_top_level_key_and_missing_strategies(tmp_path: Path) -> None:
    path = tmp_path / "strategies.yaml"
    path.write_text("strategy:\n  - id: momentum\n")
    assert _problems(path) == [
        _line(path, "strategies: Field required"),
        _line(path, "strategy: unknown field (check the spelling)"),
    ]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "strategies.yaml"
    path.write_text("strategies:\n  - id: momentum\n    symbols: [AAPL\n  - id: other\n")
    [problem] = _problems(path)
    assert problem.startswith(_line(path, "line 4, column 7: invalid YAML: "))
    assert "started at line 3" in problem


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "strategies.yaml"
    path.write_text(
        "strategies:\n  - id: momentum\n    symbols: [AAPL]\n    risk: {}\n    risk: {}\n"
    )
    assert _problems(path) == [
        _line(path, "line 5, column 5: invalid YAML: key 'risk' appears twice in one mapping")
    ]


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert _problems(empty) == [_line(empty, "the file is empty; expected a 'strategies:' list")]
    missing = tmp_path / "missing.yaml"
    assert _problems(missing) == [_line(missing, "no such strategies file")]


def test_environment_variable_chooses_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, _strategy(id="from_env", symbols=["SPY"]))
    monkeypatch.setenv(STRATEGIES_FILE_ENV, str(path))
    assert [s.id for s in load_strategies(today=TODAY)] == ["from_env"]

    explicit = _write(tmp_path, _strategy(id="explicit"), name="other.yaml")
    assert [s.id for s in load_strategies(explicit, today=TODAY)] == ["explicit"]

    monkeypatch.setenv(STRATEGIES_FILE_ENV, str(tmp_path / "gone.yaml"))
    with pytest.raises(StrategyConfigError, match=f"from {STRATEGIES_FILE_ENV}"):
        load_strategies(today=TODAY)


def test_partition_limit_is_enforced_per_strategy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IBKR_ASSETS_START_DATE", "1990-01-02")
    assert partition_count(10, today=TODAY) <= MAX_PARTITIONS < partition_count(11, today=TODAY)
    symbols = [f"S{i}" for i in range(11)]

    fits = _write(tmp_path, _strategy(symbols=symbols[:10]))
    assert len(load_strategies(fits, today=TODAY)) == 1

    too_many = _write(tmp_path, _strategy(symbols=symbols), name="too_many.yaml")
    [problem] = _problems(too_many)
    count = partition_count(11, today=TODAY)
    assert problem.startswith(
        _line(too_many, f"strategy 'momentum': symbols: 11 symbols x {count // 11:,} weekdays")
    )
    assert f"= {count:,} partitions per asset" in problem
    assert "IBKR_ASSETS_START_DATE" in problem


def test_bad_start_date_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, _strategy())
    monkeypatch.setenv("IBKR_ASSETS_START_DATE", "last year")
    assert _problems(path) == [
        _line(path, "IBKR_ASSETS_START_DATE='last year' is not a date like 2024-01-02")
    ]
