"""``verify_job`` and its ``verify_nightly`` schedule (stopped until switched on): the same
checks as ``ibkr-assets verify``, for every strategy (or one) over the last ``days`` days.

Each strategy's result goes to ``verification_runs`` and, as a table, into the op's output
metadata (the run's page in the UI); any discrepancy fails the run with the table attached.
"""

# No ``from __future__ import annotations``: Dagster reads the op's config type at runtime.
import datetime as dt

import dagster as dg

VERIFY_JOB = "verify_job"


class VerifyConfig(dg.Config):
    strategy: str | None = None  # None: every strategy of the strategies file
    days: int = 30  # the range ends today and starts this many days earlier ...
    start: str | None = None  # ... unless start / end (YYYY-MM-DD) are given
    end: str | None = None
    delete_orphans: bool = False


@dg.op(description="Verify lineage rows, objects, Dagster events, orders and portfolio snapshots.")
def verify_records(context: dg.OpExecutionContext, config: VerifyConfig) -> dg.Output[int]:
    from ibkr_assets.settings import load_settings
    from ibkr_assets.strategies.config import load_strategies
    from ibkr_assets.verification.report import format_table
    from ibkr_assets.verification.run import verify

    settings = load_settings()
    strategies = [s for s in load_strategies() if config.strategy in (None, s.id)]
    if not strategies:
        raise dg.Failure(f"strategy {config.strategy!r} is not in the strategies file")
    end = dt.date.fromisoformat(config.end) if config.end else dt.date.today()
    start = (
        dt.date.fromisoformat(config.start)
        if config.start
        else end - dt.timedelta(days=config.days)
    )
    tables, failed = {}, 0
    for strategy in strategies:
        result = verify(
            settings,
            strategy,
            start,
            end,
            instance=context.instance,
            delete_orphans=config.delete_orphans,
            triggered_by=f"dagster run {context.run_id}",
        )
        tables[strategy.id] = format_table(result)
        context.log.info(tables[strategy.id])
        failed += len(result.discrepancies)
    metadata = {
        f"{sid}": dg.MetadataValue.md(f"```\n{table}\n```") for sid, table in tables.items()
    }
    if failed:
        raise dg.Failure(f"verify found {failed} discrepancy(ies)", metadata=metadata)
    return dg.Output(failed, metadata=metadata)


@dg.job(name=VERIFY_JOB, tags={"ibkr_assets/kind": "verify"})
def verify_job() -> None:
    verify_records()


verify_nightly = dg.ScheduleDefinition(
    name="verify_nightly",
    job=verify_job,
    cron_schedule="0 3 * * *",
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every night at 03:00 New York: verify every strategy's last 30 days.",
)
