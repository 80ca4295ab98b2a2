"""OpenLineage run events from ``workflow_lineage`` rows: pure, no Dagster, no I/O.

One OpenLineage run per step, strategy and partition of an execution (the root Dagster run):
its id is ``generate_static_uuid`` over those four values and the time of the row's first
attempt, so building the events again gives the same ids and the same payloads. Each attempt
of the row becomes a START and a COMPLETE (``success``, ``market_closed``, ``blocked``) or FAIL
(``error``) event; the job is ``{strategy}.{step}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    parent_run,
)
from openlineage.client.uuid import generate_static_uuid

from ibkr_assets.openlineage.facets import (
    DecisionRunFacet,
    LineageRowRunFacet,
    PartitionRunFacet,
    StoredObjectDatasetFacet,
)
from ibkr_assets.openlineage.naming import object_dataset, table_datasets

PRODUCER = "urn:ibkr-assets:openlineage-export"
_END_STATE = {"error": RunState.FAIL}  # success, market_closed and blocked steps completed

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Attempt:
    """One attempt of a lineage row; only the row's latest attempt has inputs and outputs."""

    row: Row
    number: int
    run_id: str
    status: str
    error: str | None
    duration_ms: int | None
    recorded_at: dt.datetime
    latest: bool


def utc(value: dt.datetime | str) -> dt.datetime:
    """A row's timestamp (aware, naive UTC or ISO text) as an aware UTC datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def attempts_in_run(row: Row, dagster_run_id: str) -> list[Attempt]:
    """The attempts of ``row`` made by the Dagster run ``dagster_run_id``, oldest first."""
    previous = list(row.get("previous_attempts") or [])
    found = [
        Attempt(row, n, a["run_id"], a["status"], a.get("error"), a.get("duration_ms"),
                utc(a["recorded_at"]), latest=False)
        for n, a in enumerate(previous, 1)
        if a.get("run_id") == dagster_run_id
    ]  # fmt: skip
    if row["run_id"] == dagster_run_id:
        found.append(
            Attempt(row, len(previous) + 1, row["run_id"], row["status"], row.get("error"),
                    row.get("duration_ms"), utc(row["recorded_at"]), latest=True)
        )  # fmt: skip
    return found


def run_uuid(row: Row) -> str:
    """The OpenLineage run id of a row: the same for every attempt and every export."""
    previous = row.get("previous_attempts") or []
    first = utc(previous[0]["recorded_at"]) if previous else utc(row["recorded_at"])
    key = (row["execution_id"], row["strategy_id"], row["step_name"], row["partition_key"])
    return str(generate_static_uuid(first, "\x1f".join(key).encode()))


def job_name(row: Row) -> str:
    return f"{row['strategy_id']}.{row['step_name']}"


def wanted_partitions(row: Row) -> list[str]:
    """The upstream partitions the row's step read: its own, or for a per-date step (the
    portfolio) the per-symbol partitions its inputs list."""
    key = row["partition_key"]
    if "|" in key:
        return [key]
    listed = (row.get("input_data") or {}).get("orders")
    return [k for k in listed if isinstance(k, str)] if isinstance(listed, list) else []


def stored_object(row: Row) -> Mapping[str, Any] | None:
    obj = (row.get("output_data") or {}).get("object")
    return obj if isinstance(obj, Mapping) and obj.get("uri") and obj.get("sha256") else None


def choose_input(row: Row, candidates: Iterable[Row]) -> Row | None:
    """The upstream row whose object ``row``'s step read: the one written in the same
    execution, else the latest recorded before ``row`` (what Dagster's latest
    materialization pointed at when the step loaded its input)."""
    stored = [c for c in candidates if stored_object(c) is not None]
    same = [c for c in stored if c["execution_id"] == row["execution_id"]]
    if not same:
        same = [c for c in stored if utc(c["recorded_at"]) <= utc(row["recorded_at"])]
    return max(same, key=lambda c: (utc(c["recorded_at"]), c["id"]), default=None)


def _object_facets(row: Row, obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=obj["sha256"], producer=PRODUCER
        ),
        "ibkr_assets_object": StoredObjectDatasetFacet(
            sha256=obj["sha256"], uri=obj["uri"], partitionKey=row["partition_key"],
            lineageRowId=row["id"], producer=PRODUCER,
        ),
    }  # fmt: skip


def input_datasets(upstream_rows: Sequence[Row]) -> list[InputDataset]:
    datasets = []
    for up in upstream_rows:
        obj = stored_object(up)
        if obj is not None:
            namespace, name = object_dataset(obj.get("latest_uri") or obj["uri"])
            datasets.append(InputDataset(namespace, name, facets=_object_facets(up, obj)))
    return datasets


def output_datasets(row: Row, database_url: str | None) -> list[OutputDataset]:
    datasets = []
    obj = stored_object(row)
    if obj is not None:
        namespace, name = object_dataset(obj.get("latest_uri") or obj["uri"])
        datasets.append(OutputDataset(namespace, name, facets=_object_facets(row, obj)))
    if row["status"] != "error":
        datasets += [
            OutputDataset(ns, name) for ns, name in table_datasets(database_url, row["step_name"])
        ]
    return datasets


def decision(row: Row) -> DecisionRunFacet | None:
    """The decision summary of the signal steps and the order, where the row has one."""
    out, step = row.get("output_data") or {}, row["step_name"]
    if step == "llm_analysis" and out.get("signal_action"):
        return DecisionRunFacet(signalAction=out["signal_action"], confidence=out.get("confidence"),
                                decisionFinal=out.get("final"), producer=PRODUCER)  # fmt: skip
    if step == "trading_signal" and out.get("action"):
        return DecisionRunFacet(signalAction=out["action"], confidence=out.get("confidence"),
                                decisionFinal=out.get("decision_final"), producer=PRODUCER)  # fmt: skip
    if step == "order" and out.get("decision"):
        signal = (row.get("input_data") or {}).get("trading_signal") or {}
        return DecisionRunFacet(
            signalAction=signal.get("action"), orderDecision=out["decision"],
            orderStatus=out.get("outcome"), reason=out.get("reason"), producer=PRODUCER,
        )  # fmt: skip
    return None


def _run_facets(attempt: Attempt, namespace: str, end: bool) -> dict[str, Any]:
    row = attempt.row
    facets: dict[str, Any] = {
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=attempt.run_id),
            job=parent_run.Job(namespace=namespace, name=row["workflow_id"]),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=row["execution_id"]),
                job=parent_run.RootJob(namespace=namespace, name=row["workflow_id"]),
            ),
            producer=PRODUCER,
        ),
        "ibkr_assets_partition": PartitionRunFacet(
            partitionKey=row["partition_key"], strategy=row["strategy_id"],
            symbol=row.get("symbol"), date=_date(row.get("partition_date")), producer=PRODUCER,
        ),
        "ibkr_assets_lineage": LineageRowRunFacet(
            lineageRowId=row["id"], executionId=row["execution_id"], dagsterRunId=attempt.run_id,
            status=attempt.status, attempt=attempt.number, codeVersion=row.get("code_version"),
            durationMs=attempt.duration_ms, error=attempt.error, producer=PRODUCER,
        ),
    }  # fmt: skip
    summary = decision(row) if attempt.latest and end else None
    if summary is not None:
        facets["ibkr_assets_decision"] = summary
    if end and attempt.status == "error":
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=attempt.error or "failed", programmingLanguage="python", producer=PRODUCER
        )
    return facets


def _date(value: Any) -> str | None:
    return None if value is None else str(value)[:10]


def attempt_events(
    attempt: Attempt,
    *,
    namespace: str,
    upstream_rows: Sequence[Row] = (),
    database_url: str | None = None,
) -> list[RunEvent]:
    """START and COMPLETE/FAIL of one attempt; ``upstream_rows`` are the rows whose objects it
    read (used for the latest attempt only: earlier attempts keep no inputs or outputs)."""
    row = attempt.row
    run_id = run_uuid(row)
    job = Job(
        namespace=namespace,
        name=job_name(row),
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="DAGSTER", jobType="ASSET", producer=PRODUCER
            )
        },
    )
    inputs = input_datasets(upstream_rows) if attempt.latest else []
    outputs = output_datasets(row, database_url) if attempt.latest else []
    end_time = attempt.recorded_at
    start_time = end_time - dt.timedelta(milliseconds=attempt.duration_ms or 0)
    return [
        RunEvent(
            eventType=RunState.START, eventTime=start_time.isoformat(), producer=PRODUCER,
            run=Run(runId=run_id, facets=_run_facets(attempt, namespace, end=False)),
            job=job, inputs=inputs, outputs=[],
        ),
        RunEvent(
            eventType=_END_STATE.get(attempt.status, RunState.COMPLETE),
            eventTime=end_time.isoformat(), producer=PRODUCER,
            run=Run(runId=run_id, facets=_run_facets(attempt, namespace, end=True)),
            job=job, inputs=inputs, outputs=outputs,
        ),
    ]  # fmt: skip
