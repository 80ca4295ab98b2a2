"""The step kit: one asset's bookkeeping in one run, so the asset reads "load, call the domain,
record".

A ``Step`` walks the run's partitions, passes skipped ones through, and records each value: the
reference of the object the IO manager will store, its lineage row, its artifact row, its MLflow
run. ``records_failures`` wraps every asset: each output gets each partition's own metadata
(``per_partition``), and a failure is recorded on every partition of the step.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg
import pandas as pd

from ibkr_assets.assets import debug_info
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.resources.lineage import (
    LineageResource,
    StepRecorder,
    fail_step,
    open_recorder,
)
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource, object_ref
from ibkr_assets.tracking.mlflow_tracker import TrackingError

if TYPE_CHECKING:
    from ibkr_assets.tracking.mlflow_tracker import MlflowTracker

V = TypeVar("V")
DEBUG_STEP_FIELDS = ("strategy_id", "step_name", "execution_id", "run_id", "code_version")
VALIDATION_REPORT = "validation_report.json"  # the quality gates' report in a partition's run


def canonical_json(obj: Any) -> bytes:
    """``obj`` as JSON with sorted keys and a fixed layout: equal values, equal bytes."""
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


@dataclass
class Step:
    """Where one asset (``name``) of ``strategy_id``'s graph records each partition's value."""

    context: dg.AssetExecutionContext
    strategy_id: str
    name: str
    object_store: ObjectStoreResource | None  # None: a step that stores no objects (checks)
    recorder: StepRecorder
    tracker: MlflowTracker | None = None  # for steps that log to MLflow
    debug: bool = False  # debug mode: inputs and outputs logged, samples and info in MLflow

    @classmethod
    def open(
        cls,
        context: dg.AssetExecutionContext,
        strategy_id: str,
        name: str,
        object_store: ObjectStoreResource | None,
        lineage: LineageResource,
        mlflow: MlflowResource | None = None,
        *,
        asset_key: dg.AssetKey | None = None,
        step: str | None = None,
    ) -> Step:
        """``name``'s step in this run; ``step`` names the lineage step when it is not the
        asset's name, ``asset_key`` the asset when the step makes several."""
        recorder = lineage.recorder(context, step or name, strategy_id, asset_key)
        tracker = mlflow.get_tracker() if mlflow is not None else None
        return cls(context, strategy_id, name, object_store, recorder, tracker, lineage.debug)

    @property
    def keys(self) -> list[str]:
        """The run's partitions, in the order Dagster gives them."""
        return list(self.context.partition_keys)

    def each(self, make: Callable[[str], V]) -> dict[str, V]:
        """``{key: make(key)}`` over the run's partitions, in order."""
        return {key: make(key) for key in self.context.partition_keys}

    def ref(self, key: str, value: object) -> dict[str, str]:
        """Where the IO manager will store ``value`` for ``key`` (URI and sha256)."""
        return object_ref(self.object_store, self.strategy_id, self.name, key, value)

    def record(
        self,
        key: str,
        value: object,
        *,
        status: str,
        input_data: dict[str, Any],
        output_data: dict[str, Any] | None = None,
        links: dict[str, Any] | None = None,
        ref: dict[str, str] | None = None,
        sample: pd.DataFrame | None = None,
        **row: Any,
    ) -> dict[str, str]:
        """``key``'s lineage row for ``value``: ``output_data``, then the stored object, then
        ``links`` (MLflow runs); ``row`` holds ``metadata``, ``error``, ``duration_ms``.
        ``sample``: the step's data for the partition, sampled in debug mode.
        Returns the object's reference (``ref``, when already known)."""
        ref = ref or self.ref(key, value)
        output = {**(output_data or {}), "object": ref, **(links or {})}
        self.row(key, status=status, input_data=input_data, output_data=output, sample=sample,
                 **row)  # fmt: skip
        return ref

    def record_error(self, key: str, input_data: dict[str, Any], error: str, **row: Any) -> None:
        """``key``'s ``error`` row: no object."""
        self.row(key, status="error", input_data=input_data, output_data={}, error=error, **row)

    def row(
        self,
        key: str,
        *,
        status: str,
        input_data: dict,
        output_data: dict,
        sample: pd.DataFrame | None = None,
        **row: Any,
    ):
        """``key``'s lineage row when it points at no object (``row``: ``metadata``, ``error``,
        ``duration_ms``); in debug mode also its DEBUG log line and MLflow attachments."""
        self.recorder.add(key, status=status, input_data=input_data, output_data=output_data,
                          **row)  # fmt: skip
        if self.debug:
            self._debug(key, status, input_data, output_data, sample, row.get("duration_ms"))

    def _debug(self, key, status, input_data, output_data, sample, duration_ms) -> None:
        """Debug mode: the step's inputs and outputs at DEBUG; in the partition's MLflow run (for
        steps that log to MLflow, per symbol partition) ``debug/{step}_sample.csv`` from
        ``sample`` and ``debug/{step}_info.json`` (``assets.debug_info``)."""
        self.context.log.debug(f"{self.recorder.step} {key} [{status}] inputs: "
                               f"{debug_info.brief(input_data)}")  # fmt: skip
        self.context.log.debug(f"{self.recorder.step} {key} [{status}] outputs: "
                               f"{debug_info.brief(output_data)}")  # fmt: skip
        _, sep, symbol = key.partition("|")
        if self.tracker is None or not sep or self.tracker.unreachable:
            return
        try:
            self._debug_attachments(key, symbol, status, input_data, output_data, sample,
                                    duration_ms)  # fmt: skip
        except TrackingError as exc:  # debug mode never changes what a run does
            self.context.log.warning(f"debug attachments of {key} not stored in MLflow: {exc}")

    def _debug_attachments(self, key, symbol, status, input_data, output_data, sample,
                           duration_ms) -> None:  # fmt: skip
        run_id = self.mlflow_run(key, symbol)
        step = self.recorder.step
        if sample is not None and len(sample):
            self.tracker.log_bytes(run_id, f"debug/{step}_sample.csv",
                                   debug_info.sample_csv(sample))  # fmt: skip
        ran = {k: self.recorder.base[k] for k in DEBUG_STEP_FIELDS}
        info = debug_info.debug_info(
            {**ran, "partition_key": key, "status": status},
            {"partition_ms": duration_ms, "step_elapsed_ms": self.recorder.elapsed_ms()},
            {"inputs": input_data, "outputs": output_data},
        )
        self.tracker.log_bytes(run_id, f"debug/{step}_info.json", info)

    def skip(self, key: str, skipped: Skipped, input_data: dict[str, Any], **row: Any) -> Skipped:
        """Pass ``skipped`` through as ``key``'s value, recorded with its own status."""
        self.record(key, skipped, status=skipped.status, input_data=input_data,
                    output_data=skipped.summary(), **row)  # fmt: skip
        return skipped

    def artifact(self, key: str, ref: dict[str, str], *, name: str, type: str, **fields: Any):
        """``key``'s artifact row for the object at ``ref``."""
        self.recorder.add_artifact(key, name=name, type=type, uri=ref["uri"], sha256=ref["sha256"],
                                   **fields)  # fmt: skip

    def mlflow_run(self, key: str, symbol: str) -> str:
        """The MLflow run of ``key`` in this execution (made on first use)."""
        return self.tracker.run_for_partition(
            strategy_id=self.strategy_id,
            symbol=symbol,
            partition_key=key,
            execution_id=self.recorder.base["execution_id"],
            dagster_run_id=self.context.run.run_id,
        )

    def mlflow_runs(self, partitions: dict[str, str]) -> dict[str, str]:
        """The MLflow runs of ``{partition_key: symbol}`` in this execution, made at once."""
        if not partitions:
            return {}
        return self.tracker.runs_for_partitions(
            strategy_id=self.strategy_id,
            partitions=partitions,
            execution_id=self.recorder.base["execution_id"],
            dagster_run_id=self.context.run.run_id,
        )

    def attach(
        self, key: str, symbol: str, path: str, data: bytes, *, name: str, type: str, **fields: Any
    ) -> dict[str, str]:
        """``data`` as the artifact ``path`` of ``key``'s MLflow run, and its artifact row
        (``type``, ``name``, ``fields``) pointing at it; returns its URI and sha256."""
        run_id = self.mlflow_run(key, symbol)
        self.tracker.log_bytes(run_id, path, data)
        ref = {"uri": self.tracker.artifact_uri(run_id, path),
               "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
        self.artifact(key, ref, name=name, type=type, **fields,
                      **self.mlflow_fields(run_id, symbol))  # fmt: skip
        return ref

    def validation_reports(self, reports: dict[str, dict[str, Any] | None]) -> None:
        """Each partition's quality-gate report (``domain.quality.validation_report``; None:
        nothing was checked) in its MLflow run, with its ``validation`` artifact row. MLflow
        being unreachable is a warning, not the step's failure: the data is stored and the gates'
        verdicts are in the lineage rows and asset checks."""
        todo = {key: report for key, report in reports.items() if report is not None}
        try:
            self.mlflow_runs({key: report["symbol"] for key, report in todo.items()})
            for key, report in todo.items():
                self.validation_report(key, report)
        except TrackingError as exc:
            self.context.log.warning(f"validation reports not stored in MLflow: {exc}")

    def validation_report(self, key: str, report: dict[str, Any]) -> dict[str, str]:
        """``key``'s quality-gate report as ``validation_report.json`` in its MLflow run and a
        ``validation`` artifact row. The bytes are canonical JSON of the report alone, so a
        rerun on the same bars stores the same bytes."""
        symbol, day = report["symbol"], report["date"]
        failed = [g["name"] for g in report["gates"] if not g["passed"]]
        return self.attach(key, symbol, VALIDATION_REPORT, canonical_json(report),
                           name=f"{symbol} Validation Report {day}", type="validation",
                           metadata={"passed": report["passed"], "failed_gates": failed})  # fmt: skip

    def mlflow_fields(self, run_id: str, symbol: str) -> dict[str, str]:
        """An artifact row's MLflow run and experiment."""
        experiment = self.tracker.experiment_id(self.strategy_id, symbol)
        return {"mlflow_run_id": run_id, "mlflow_experiment_id": experiment}


def records_failures(fn, asset_keys: list[dg.AssetKey]):
    """``fn`` as a step of the graph: each output carries every partition's own metadata
    (``per_partition``), and any exception is recorded as the ``error`` of every partition of
    the step (``resources.lineage.fail_step``) before the step fails."""

    def guarded(context, events):
        try:
            for item in events:
                yield per_partition(context, item) if _is_asset_output(item) else item
        except Exception as exc:
            fail_step(context.run.run_id, asset_keys, exc)
            raise

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(context, *args, **kwargs):
            yield from guarded(context, fn(context, *args, **kwargs))

        return generator

    @functools.wraps(fn)
    def function(context, *args, **kwargs):
        try:
            result = fn(context, *args, **kwargs)
        except Exception as exc:
            fail_step(context.run.run_id, asset_keys, exc)
            raise
        if inspect.isgenerator(result):  # a step that yields its outputs as they are ready
            return guarded(context, result)
        return per_partition(context, result)

    return function


def _is_asset_output(item: object) -> bool:
    """An asset's output (not an asset check's, whose value is None)."""
    return isinstance(item, dg.Output) and item.value is not None


def per_partition(context: dg.AssetExecutionContext, output: dg.Output) -> dg.Output:
    """Give each partition's materialization its own metadata (from its lineage row: status,
    error, headline values, viewer link) and, in a range run, name the output's totals
    ``run_*``: Dagster copies an output's metadata onto every partition, where a total would
    read as the partition's own value."""
    asset_key = context.asset_key_for_output(output.output_name)
    recorder = open_recorder(context.run.run_id, asset_key)
    if recorder is not None:
        for key, meta in recorder.partition_metadata().items():
            context.add_asset_metadata(meta, partition_key=key, asset_key=asset_key)
    if len(context.partition_keys) <= 1:
        return output
    totals = {k if k == "partitions" else f"run_{k}": v for k, v in output.metadata.items()}
    return dg.Output(output.value, output_name=output.output_name, metadata=totals)


def by_partition(
    name: str, values: dict[str, object], partitions: int
) -> dict[str, dg.MetadataValue]:
    """``{name: values}`` as output metadata when the run has a single partition (``partitions``
    is the step's count), else ``{name}_count``: how many entries ``values`` has.

    Dagster copies a range run's output metadata onto each partition's materialization, so a
    map over the range would make every event grow with the range (and the event log with its
    square). The rows themselves are found by run and partition.
    """
    if partitions <= 1:
        return {name: dg.MetadataValue.json(values)}
    return {f"{name}_count": dg.MetadataValue.int(len(values))}
