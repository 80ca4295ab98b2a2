"""After-close schedules: a run per symbol once the session has closed, a reason otherwise.

Holidays and early closes come from exchange_calendars; the ticks below are evaluated the way
the daemon does (``evaluate_tick``), against the project's real date x symbol partitions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from ibkr_assets.partitions import strategy_partitions, symbols_partition_name
from ibkr_assets.schedules import build_schedule, closed_session_at
from ibkr_assets.strategies.config import ScheduleConfig, StrategyConfig

NY = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
JOB = "momentum_job"
SYMBOLS = ["AAPL", "MSFT", "NVDA"]
SYMBOL_PARTITIONS = symbols_partition_name("momentum")


def _strategy(symbols: list[str] = SYMBOLS, **schedule: object) -> StrategyConfig:
    return StrategyConfig(id="momentum", symbols=symbols, schedule=ScheduleConfig(**schedule))


@dg.asset(
    partitions_def=strategy_partitions("momentum"), key_prefix=["momentum"], group_name="momentum"
)
def market_data() -> None:
    """Stands in for the strategy's assets: only its partitions matter to the schedule."""


@pytest.fixture(scope="module")
def deployment() -> Iterator[tuple[dg.DagsterInstance, dg.RepositoryDefinition]]:
    """An instance with the symbols added, and a code location holding the job and schedule."""
    defs = dg.Definitions(
        assets=[market_data],
        jobs=[dg.define_asset_job(JOB, selection=[market_data])],
        schedules=[build_schedule(_strategy(), JOB)],
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SYMBOL_PARTITIONS, [*SYMBOLS, "TSLA"])
        yield instance, defs.get_repository_def()


def _tick(
    schedule: dg.ScheduleDefinition,
    when: dt.datetime,
    deployment: tuple[dg.DagsterInstance, dg.RepositoryDefinition] | None = None,
):
    instance, repository = deployment or (None, None)
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, repository_def=repository
    )
    return schedule.evaluate_tick(context)


def test_after_the_close_one_run_per_symbol(deployment) -> None:
    result = _tick(
        build_schedule(_strategy(), JOB), dt.datetime(2025, 1, 2, 16, 30, tzinfo=NY), deployment
    )
    assert result.skip_message is None
    assert [r.partition_key for r in result.run_requests] == [
        "2025-01-02|AAPL",
        "2025-01-02|MSFT",
        "2025-01-02|NVDA",
    ]
    assert [r.run_key for r in result.run_requests] == [
        "momentum:2025-01-02:AAPL",
        "momentum:2025-01-02:MSFT",
        "momentum:2025-01-02:NVDA",
    ]
    first = result.run_requests[0]
    assert first.tags["strategy"] == "momentum"
    assert first.tags["dagster/partition/date"] == "2025-01-02"
    assert first.tags["dagster/partition/symbol"] == "AAPL"
    assert first.tags["dagster/schedule_name"] == "momentum_after_close"


def test_weekend_tick_skips() -> None:
    result = _tick(build_schedule(_strategy(), JOB), dt.datetime(2025, 1, 4, 16, 30, tzinfo=NY))
    assert result.run_requests == []
    assert result.skip_message == "2025-01-04 (Saturday) is not a XNYS session (weekend)"


@pytest.mark.parametrize(
    ("day", "holiday"), [(dt.date(2025, 7, 4), "July 4th"), (dt.date(2025, 12, 25), "Christmas")]
)
def test_exchange_holiday_on_a_weekday_skips(day: dt.date, holiday: str) -> None:
    when = dt.datetime.combine(day, dt.time(16, 30), tzinfo=NY)
    result = _tick(build_schedule(_strategy(), JOB), when)
    assert result.run_requests == []
    assert f"{day} ({day:%A}) is not a XNYS session (holiday: {holiday})" == result.skip_message


def test_early_close_session_is_requested_after_its_1pm_close(deployment) -> None:
    schedule = build_schedule(_strategy(cron="30 13 * * 1-5"), JOB)
    result = _tick(schedule, dt.datetime(2025, 11, 28, 13, 30, tzinfo=NY), deployment)
    assert [r.partition_key for r in result.run_requests] == [f"2025-11-28|{s}" for s in SYMBOLS]


def test_early_close_session_before_its_close_skips() -> None:
    schedule = build_schedule(_strategy(cron="30 12 * * 1-5"), JOB)
    result = _tick(schedule, dt.datetime(2025, 11, 28, 12, 30, tzinfo=NY))
    assert result.run_requests == []
    assert result.skip_message == (
        "session 2025-11-28 has not closed yet (closes at 13:00 America/New_York)"
    )


def test_normal_day_at_1_30pm_has_not_closed() -> None:
    schedule = build_schedule(_strategy(cron="30 13 * * 1-5"), JOB)
    result = _tick(schedule, dt.datetime(2025, 11, 26, 13, 30, tzinfo=NY))
    assert result.run_requests == []
    assert result.skip_message == (
        "session 2025-11-26 has not closed yet (closes at 16:00 America/New_York)"
    )


def test_schedule_takes_name_cron_timezone_and_status_from_the_config() -> None:
    enabled = build_schedule(_strategy(cron="0 17 * * 1-5", timezone="UTC"), JOB)
    disabled = build_schedule(_strategy(enabled=False), JOB)
    assert enabled.name == "momentum_after_close"
    assert enabled.job_name == JOB
    assert enabled.cron_schedule == "0 17 * * 1-5"
    assert enabled.execution_timezone == "UTC"
    assert enabled.default_status == dg.DefaultScheduleStatus.RUNNING
    assert disabled.default_status == dg.DefaultScheduleStatus.STOPPED


def test_a_utc_schedule_finds_the_new_york_session(deployment) -> None:
    schedule = build_schedule(_strategy(["AAPL"], cron="0 1 * * 2-6", timezone="UTC"), JOB)
    result = _tick(schedule, dt.datetime(2025, 1, 3, 1, 0, tzinfo=UTC), deployment)
    assert [r.partition_key for r in result.run_requests] == ["2025-01-02|AAPL"]


def test_symbols_provider_replaces_the_configured_symbols(deployment) -> None:
    def instance_symbols(context: dg.ScheduleEvaluationContext) -> list[str]:
        return context.instance.get_dynamic_partitions(SYMBOL_PARTITIONS)

    schedule = build_schedule(_strategy(["AAPL"]), JOB, symbols_provider=instance_symbols)
    result = _tick(schedule, dt.datetime(2025, 1, 2, 16, 30, tzinfo=NY), deployment)
    assert [r.run_key for r in result.run_requests] == [
        f"momentum:2025-01-02:{s}" for s in [*SYMBOLS, "TSLA"]
    ]

    empty = build_schedule(_strategy(), JOB, symbols_provider=lambda context: [])
    skipped = _tick(empty, dt.datetime(2025, 1, 2, 16, 30, tzinfo=NY))
    assert (
        skipped.skip_message == "session 2025-01-02 closed, but strategy 'momentum' has no symbols"
    )


def test_partition_key_for_shapes_the_keys() -> None:
    schedule = build_schedule(
        _strategy(["AAPL"]), JOB, partition_key_for=lambda d, s: f"{s}/{d:%Y%m%d}"
    )
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2025, 1, 2, 16, 30, tzinfo=NY)
    )
    [request] = list(schedule(context))
    assert request.partition_key == "AAPL/20250102"
    assert request.run_key == "momentum:2025-01-02:AAPL"


# The decision itself, without Dagster ---------------------------------------------------------


def test_session_counts_as_closed_from_its_closing_minute() -> None:
    assert closed_session_at(dt.datetime(2025, 1, 2, 16, 0, tzinfo=NY)) == dt.date(2025, 1, 2)
    assert closed_session_at(dt.datetime(2025, 1, 2, 15, 59, tzinfo=NY)) == (
        "session 2025-01-02 has not closed yet (closes at 16:00 America/New_York)"
    )


def test_early_closes_come_from_the_calendar() -> None:
    assert closed_session_at(dt.datetime(2025, 12, 24, 13, 0, tzinfo=NY)) == dt.date(2025, 12, 24)
    assert closed_session_at(dt.datetime(2025, 7, 3, 12, 59, tzinfo=NY)) == (
        "session 2025-07-03 has not closed yet (closes at 13:00 America/New_York)"
    )


def test_today_is_the_date_in_the_exchange_time_zone_across_dst() -> None:
    # 20:30 UTC is 15:30 in New York before DST starts (2025-03-09) and 16:30 after.
    before_dst = closed_session_at(dt.datetime(2025, 3, 7, 20, 30, tzinfo=UTC))
    assert isinstance(before_dst, str) and before_dst.startswith("session 2025-03-07 has not")
    assert closed_session_at(dt.datetime(2025, 3, 10, 20, 30, tzinfo=UTC)) == dt.date(2025, 3, 10)
    # 01:00 UTC on the 3rd is still the evening of the 2nd in New York.
    assert closed_session_at(dt.datetime(2025, 1, 3, 1, 0, tzinfo=UTC)) == dt.date(2025, 1, 2)


def test_unscheduled_closures_are_holidays_too() -> None:
    # The exchange closed on 2025-01-09 (national day of mourning), a weekday with no rule.
    assert closed_session_at(dt.datetime(2025, 1, 9, 17, 0, tzinfo=NY)) == (
        "2025-01-09 (Thursday) is not a XNYS session (holiday: unscheduled closure)"
    )


def test_other_calendars_use_their_own_zone_and_closes() -> None:
    london = ZoneInfo("Europe/London")
    assert closed_session_at(dt.datetime(2025, 12, 24, 12, 45, tzinfo=london), "XLON") == dt.date(
        2025, 12, 24
    )
    assert closed_session_at(dt.datetime(2025, 12, 23, 12, 45, tzinfo=london), "XLON") == (
        "session 2025-12-23 has not closed yet (closes at 16:30 Europe/London)"
    )


def test_naive_time_and_dates_beyond_the_calendar_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        closed_session_at(dt.datetime(2025, 1, 2, 16, 30))
    beyond = closed_session_at(dt.datetime(2099, 1, 2, 16, 30, tzinfo=NY))
    assert isinstance(beyond, str) and "outside the XNYS calendar's known sessions" in beyond
