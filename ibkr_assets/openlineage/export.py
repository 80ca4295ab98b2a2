"""Export the lineage of finished Dagster runs as OpenLineage events, from a cursor.

The cursor is the Dagster event log's storage id of the last run-end event (success, failure,
cancellation) whose events the client's transport all accepted, plus how many events of the
next run it already accepted (``"1234"`` or ``"1234:40"``). It moves only past what was
accepted: when the backend refuses or cannot be reached, the export stops there and the next
call resumes at the first event not accepted, so nothing is lost and nothing is sent twice.
The events come from the ``workflow_lineage`` rows the run wrote (see ``events``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.event_api import RunStatusChangeRecordsFilter
from openlineage.client import OpenLineageClient

from ibkr_assets.errors import describe_exception
from ibkr_assets.openlineage.events import (
    Attempt,
    attempt_events,
    attempts_in_run,
    choose_input,
    wanted_partitions,
)
from ibkr_assets.openlineage.rows import LineageRows

_log = logging.getLogger(__name__)

RUN_ENDS = (
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
)
# Steps that are not assets: the quality gates' step reads the market data.
CHECK_STEPS: dict[str, tuple[str, ...]] = {"market_data_quality": ("market_data",)}
Upstream = Mapping[tuple[str, str], Sequence[str]]  # (strategy, step) -> upstream steps


@dataclass(frozen=True)
class Cursor:
    after: int = 0  # storage id of the last run end whose events were all accepted
    sent: int = 0  # events of the next run end already accepted

    @classmethod
    def parse(cls, value: Cursor | str | int | None) -> Cursor:
        if isinstance(value, Cursor):
            return value
        if value is None or value == "":
            return cls()
        after, _, sent = str(value).partition(":")
        return cls(int(after), int(sent or 0))

    def __str__(self) -> str:
        return f"{self.after}:{self.sent}" if self.sent else str(self.after)


@dataclass(frozen=True)
class ExportResult:
    cursor: Cursor
    sent: int  # events the transport accepted in this call
    runs: int  # runs whose events are now all accepted
    error: str | None = None  # why the export stopped early (the backend, the database)


def upstream_steps(graph: Any) -> dict[tuple[str, str], tuple[str, ...]]:
    """``(strategy, step) -> upstream steps`` from an asset graph (``defs.resolve_asset_graph()``
    or a repository's ``asset_graph``; keys ``strategy/asset``)."""
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for key in graph.get_all_asset_keys():
        if len(key.path) == 2:
            parents = sorted(p.path[-1] for p in graph.get(key).parent_keys if len(p.path) == 2)
            found[(key.path[0], key.path[1])] = tuple(parents)
    for strategy in {s for s, _ in found}:
        for step, parents in CHECK_STEPS.items():
            found[(strategy, step)] = parents
    return found


def export_lineage(
    since_cursor: Cursor | str | int | None,
    *,
    instance: dg.DagsterInstance,
    database_url: str,
    upstream: Upstream,
    namespace: str = "ibkr_assets",
    client: OpenLineageClient | None = None,
    max_events: int = 5000,
    max_runs: int = 200,
) -> ExportResult:
    """Emit the events of the runs that ended after ``since_cursor`` (``0``: from the start).

    ``client`` defaults to ``OpenLineageClient()``, configured as the client configures itself
    (``OPENLINEAGE_URL``, ``OPENLINEAGE__TRANSPORT__*``, ``openlineage.yml``). Never raises for
    an unreachable backend or database: the result says where it stopped and why."""
    cursor = Cursor.parse(since_cursor)
    client = client or OpenLineageClient()
    rows = LineageRows(database_url)
    sent = runs = 0
    try:
        for record in _run_ends(instance, cursor.after, max_runs):
            events = _events_of_run(instance, rows, record.run_id, namespace, upstream, cursor.sent,
                                    max_events - sent)  # fmt: skip
            for event in events.events:
                client.emit(event)  # raises when the transport could not deliver it
                sent += 1
                cursor = Cursor(cursor.after, cursor.sent + 1)
            if not events.complete:
                return ExportResult(cursor, sent, runs)
            cursor, runs = Cursor(record.storage_id), runs + 1
    except Exception as exc:  # noqa: BLE001 - a dead backend or database is reported, not raised
        return ExportResult(cursor, sent, runs, describe_exception(exc))
    return ExportResult(cursor, sent, runs)


def _run_ends(instance: dg.DagsterInstance, after: int, limit: int) -> list[dg.EventLogRecord]:
    """Run-end records after storage id ``after``, oldest first: the first ``limit`` of the
    merged streams, cut where any stream may have more records not read yet."""
    merged: list[dg.EventLogRecord] = []
    horizon: int | None = None
    for event_type in RUN_ENDS:
        result = instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(event_type=event_type, after_storage_id=after),
            limit=limit,
            ascending=True,
        )
        merged += result.records
        if len(result.records) == limit:
            last = result.records[-1].storage_id
            horizon = last if horizon is None else min(horizon, last)
    merged.sort(key=lambda r: r.storage_id)
    return [r for r in merged if horizon is None or r.storage_id <= horizon][:limit]


@dataclass(frozen=True)
class _RunEvents:
    events: list[Any]
    complete: bool  # the events run to the end of the run's events


def _events_of_run(
    instance: dg.DagsterInstance,
    rows: LineageRows,
    run_id: str,
    namespace: str,
    upstream: Upstream,
    skip: int,
    budget: int,
) -> _RunEvents:
    """The run's events after the first ``skip``, at most ``budget`` of them (two an attempt)."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return _RunEvents([], True)
    execution = run.root_run_id or run.run_id
    attempts = [
        a for r in rows.of_execution(run.job_name, execution) for a in attempts_in_run(r, run_id)
    ]
    first, budget = skip // 2, max(budget, 0)
    chosen = attempts[first : first + budget // 2]
    inputs = _inputs(rows, chosen, upstream)
    events = []
    for attempt in chosen:
        events += attempt_events(
            attempt, namespace=namespace, upstream_rows=inputs.get(attempt.row["id"], []),
            database_url=rows.database_url,
        )  # fmt: skip
    return _RunEvents(events[skip % 2 :], complete=first + len(chosen) == len(attempts))


def _inputs(
    rows: LineageRows, attempts: Sequence[Attempt], upstream: Upstream
) -> dict[int, list[Mapping[str, Any]]]:
    """Row id -> the upstream rows whose objects its latest attempt read."""
    wanted: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for a in attempts:
        steps = upstream.get((a.row["strategy_id"], a.row["step_name"]), ())
        if a.latest and steps:
            wanted[a.row["strategy_id"]][0].update(steps)
            wanted[a.row["strategy_id"]][1].update(wanted_partitions(a.row))
    candidates: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for strategy, (steps, partitions) in wanted.items():
        for row in rows.upstream(strategy, steps, partitions):
            candidates[(strategy, row["step_name"], row["partition_key"])].append(row)
    found: dict[int, list[Mapping[str, Any]]] = {}
    for a in attempts:
        if not a.latest:
            continue
        strategy = a.row["strategy_id"]
        chosen = [
            choose_input(a.row, candidates[(strategy, step, key)])
            for step in upstream.get((strategy, a.row["step_name"]), ())
            for key in wanted_partitions(a.row)
        ]
        found[a.row["id"]] = [c for c in chosen if c is not None]
    return found
