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

from ibkr_assets.jobs import portfolio_job_name, workflow_job_name
from ibkr_assets.partitions import symbols_partition_name

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@dataclass
class RunOutcome:
    job: str
    symbols: list[str]
    run_id: str
    success: bool
    errors: list[str] = field(default_factory=list)


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
    with collector_spares_the_loaded_heap():
        for block in contiguous_blocks(list(have), symbols):
            range_tags = {RANGE_START: f"{start}|{block[0]}", RANGE_END: f"{end}|{block[-1]}"}
            outcomes.append(
                _execute(workflow, instance, block, {**(tags or {}), **range_tags}, run_config)
            )
        range_tags = {RANGE_START: start.isoformat(), RANGE_END: end.isoformat()}
        outcomes.append(
            _execute(portfolio, instance, [], {**(tags or {}), **range_tags}, run_config)
        )
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
    result = job.execute_in_process(
        instance=instance, tags=tags, run_config=run_config, raise_on_error=False
    )
    errors = [
        f"{e.step_key}: {e.step_failure_data.error.message.strip()}"
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data.error
    ]
    return RunOutcome(job.name, symbols, result.run_id, result.success, errors)
