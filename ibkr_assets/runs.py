"""Running a strategy's workflow for symbols x dates in as few runs as possible (the CLI's).

A single-run range over the ``date|symbol`` partitions is a rectangle: every date in the range
times every symbol between the first and last in the strategy's ``{id}_symbols`` partition
order. Symbols that are contiguous in that order share one run; the portfolio then gets one run
for the dates.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

from ibkr_assets.dead_runs import run_process_tags
from ibkr_assets.errors import first_line, one_line
from ibkr_assets.jobs import portfolio_job_name, workflow_job_name
from ibkr_assets.partitions import symbols_partition_name

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@dataclass
class RunOutcome:
    """One run's result. ``failed_steps`` maps each failed step (``market_data``) to its root
    cause in one line (``Class: message``); ``errors`` has them as ``step: cause`` lines;
    ``partition_keys`` are the partitions the run was asked to materialize."""

    job: str
    symbols: list[str]
    run_id: str
    success: bool
    failed_steps: dict[str, str] = field(default_factory=dict)
    partition_keys: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [f"{step}: {cause}" for step, cause in self.failed_steps.items()]


def contiguous_blocks(order: list[str], wanted: list[str]) -> list[list[str]]:
    """Split ``wanted`` into runs of symbols that are adjacent in ``order``."""
    positions = sorted(order.index(s) for s in set(wanted))
    blocks: list[list[str]] = []
    for pos in positions:
        if blocks and order.index(blocks[-1][-1]) == pos - 1:
            blocks[-1].append(order[pos])
        else:
            blocks.append([order[pos]])
    return blocks


def run_workflow(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    strategy_id: str,
    symbols: list[str],
    start: dt.date,
    end: dt.date,
    *,
    run_config: dict | None = None,
    tags: dict[str, str] | None = None,
) -> list[RunOutcome]:
    """Materialize the strategy's per-symbol graph, then its portfolio, for ``start`` .. ``end``."""
    partitions = symbols_partition_name(strategy_id)
    have = instance.get_dynamic_partitions(partitions)
    missing = [s for s in symbols if s not in have]
    if missing:
        instance.add_dynamic_partitions(partitions, missing)
        have = instance.get_dynamic_partitions(partitions)
    outcomes = []
    workflow = defs.resolve_job_def(workflow_job_name(strategy_id))
    portfolio = defs.resolve_job_def(portfolio_job_name(strategy_id))
    days = [
        day.isoformat()
        for day in (start + dt.timedelta(i) for i in range((end - start).days + 1))
        if day.weekday() < 5  # the date partitions are weekdays
    ]
    with collector_spares_the_loaded_heap():
        for block in contiguous_blocks(list(have), symbols):
            range_tags = {RANGE_START: f"{start}|{block[0]}", RANGE_END: f"{end}|{block[-1]}"}
            outcome = _execute(
                workflow, instance, block, {**(tags or {}), **range_tags}, run_config
            )
            outcome.partition_keys = [f"{day}|{symbol}" for day in days for symbol in block]
            outcomes.append(outcome)
        range_tags = {RANGE_START: start.isoformat(), RANGE_END: end.isoformat()}
        outcome = _execute(portfolio, instance, [], {**(tags or {}), **range_tags}, run_config)
        outcome.partition_keys = days
        outcomes.append(outcome)
    return outcomes


@contextmanager
def collector_spares_the_loaded_heap(first_generation: int = 500_000) -> Iterator[None]:
    """Python's cyclic garbage collector, tuned for one long run in a loaded process.

    A range run allocates millions of short-lived objects, and every full collection would
    also walk all that was imported and built before it (Dagster, MLflow, pandas, the
    definitions): about a tenth of a range run's time here. Frozen, those objects are skipped,
    and a larger first-generation threshold makes collections rarer, so more objects are freed
    by reference counting before a collection ever looks at them (at the price of up to tens of
    megabytes of cyclic garbage waiting a little longer). Both are undone on exit.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(first_generation, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _execute(job, instance, symbols, tags, run_config) -> RunOutcome:
    result = job.execute_in_process(  # tagged with this process, see ibkr_assets.dead_runs
        instance=instance,
        tags={**tags, **run_process_tags()},
        run_config=run_config,
        raise_on_error=False,
    )
    failed = {
        _step_name(e.step_key): root_cause(e.step_failure_data.error)
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data.error
    }
    if not result.success and not failed:  # the run failed outside any step
        failure = next((e for e in result.all_events if e.is_pipeline_failure), None)
        error = failure.pipeline_failure_data.error if failure else None
        failed["run"] = root_cause(error) if error else "failed"
    return RunOutcome(job.name, symbols, result.run_id, result.success, failed)


def _step_name(step_key: str | None) -> str:
    """``momentum__market_data`` -> ``market_data``."""
    return (step_key or "run").split("__")[-1]


def root_cause(error: SerializableErrorInfo) -> str:
    """The error under Dagster's wrappers ("Error occurred while executing op ..."), one line:
    ``Class: message`` of the first error in the chain that is not Dagster's own."""
    while error.cls_name and error.cls_name.startswith("Dagster"):
        inner = error.cause or error.context
        if inner is None:
            break
        error = inner
    return one_line(error.cls_name or "Error", error.message)


def failed_partitions(outcomes: list[RunOutcome], rows: list[dict]) -> dict[str, list[str]]:
    """``{cause: [partition keys]}``: each failed partition under its first cause.

    A partition failed when one of its lineage rows is an ``error`` (the cause is that step and
    its error). A failed step that wrote no ``error`` row failed as a whole (a store or a
    database down): every partition of its run without an earlier cause failed with it, even
    one whose rows say ``success``, since the step's output was not stored. Any other partition
    of a failed run that has no row of its last step (``order``, or ``portfolio_snapshot`` for
    a date) was not reached because of the run's failed steps.
    """
    causes: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: r.get("step_number") or 0):
        if row["status"] == "error" and row["partition_key"] not in causes:
            error = first_line(row.get("error")) or "error"
            causes[row["partition_key"]] = f"{row['step_name']}: {error}"
    finished = {
        r["partition_key"]
        for r in rows
        if r["step_name"] == ("order" if "|" in r["partition_key"] else "portfolio_snapshot")
        and r["status"] != "error"
    }
    for outcome in outcomes:
        if not outcome.failed_steps:
            continue
        keys = set(outcome.partition_keys)
        recorded = {
            r["step_name"] for r in rows if r["status"] == "error" and r["partition_key"] in keys
        }
        for step, cause in outcome.failed_steps.items():
            if step not in recorded:
                for key in outcome.partition_keys:
                    causes.setdefault(key, f"{step}: {cause}")
        for key in outcome.partition_keys:
            if key not in finished:
                causes.setdefault(key, f"not reached ({'; '.join(outcome.errors)})")
    grouped: dict[str, list[str]] = {}
    for key in sorted(causes, key=lambda k: ("|" not in k, k)):  # dates (portfolio) last
        grouped.setdefault(causes[key], []).append(key)
    return grouped
