"""What one lineage row and one artifact row say, checked when built (not when written).

A lineage record is one attempt of one asset (``step_name``) for one partition of one Dagster
run tree (``execution_id`` = the root run id, shared by re-executions). Storing it again for the
same ``(execution_id, step_name, partition_key)`` replaces the row and keeps the replaced attempt
in ``previous_attempts`` (see ``LineageStore``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LINEAGE_STATUSES: tuple[str, ...] = ("success", "error", "market_closed", "blocked")
ARTIFACT_TYPES: tuple[str, ...] = (
    "market_data", "chart", "llm", "signal", "order", "portfolio", "validation",
)  # fmt: skip

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _require_text(owner: str, **fields: Any) -> None:
    for name, value in fields.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{owner}.{name} must be a non-empty string, got {value!r}")


def _require_step_identity(record: Any, **more_text: Any) -> str:
    """Check the fields that place ``record`` in a step of an execution; its class name."""
    owner = type(record).__name__
    _require_text(
        owner,
        **more_text,
        workflow_id=record.workflow_id,
        execution_id=record.execution_id,
        run_id=record.run_id,
        step_name=record.step_name,
    )
    if not isinstance(record.partition_key, str):
        raise ValueError(f"{owner}.partition_key must be a string ('' when unpartitioned)")
    return owner


def _require_mapping(owner: str, optional: bool, **fields: Any) -> None:
    for name, value in fields.items():
        if value is None and optional:
            continue
        if not isinstance(value, Mapping):
            raise TypeError(
                f"{owner}.{name} must be a mapping (a JSON object), got {type(value).__name__}"
            )


def _require_count(owner: str, name: str, value: Any, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{owner}.{name} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class LineageRecord:
    """One attempt of one asset for one partition: what went in, what came out, how it ended."""

    workflow_id: str  # Dagster job name
    execution_id: str  # root run id: re-executions of a run share it
    run_id: str  # the run that made this attempt
    step_name: str  # asset key, e.g. "market_data"
    step_number: int
    input_data: Mapping[str, Any]
    output_data: Mapping[str, Any]
    status: str = "success"
    partition_key: str = ""  # e.g. "2025-01-02|AAPL"; "" when unpartitioned
    symbol: str | None = None
    partition_date: dt.date | None = None
    strategy_id: str = ""  # "" when not a strategy's step
    code_version: str | None = None
    metadata: Mapping[str, Any] | None = None
    error: str | None = None
    duration_ms: int | None = None

    def __post_init__(self) -> None:
        owner = _require_step_identity(self)
        if self.status not in LINEAGE_STATUSES:
            raise ValueError(
                f"{owner}.status must be one of {', '.join(LINEAGE_STATUSES)}, got {self.status!r}"
            )
        _require_count(owner, "step_number", self.step_number, optional=False)
        _require_count(owner, "duration_ms", self.duration_ms, optional=True)
        _require_mapping(owner, False, input_data=self.input_data, output_data=self.output_data)
        _require_mapping(owner, True, metadata=self.metadata)
        if isinstance(self.partition_date, dt.datetime) or not isinstance(
            self.partition_date, (dt.date, type(None))
        ):
            raise ValueError(f"{owner}.partition_date must be a date, got {self.partition_date!r}")


@dataclass(frozen=True, kw_only=True)
class ArtifactRecord:
    """Something a step produced (bars, chart, LLM exchange, signal, order, portfolio snapshot).

    Unique per ``(execution_id, step_name, partition_key, type, name)``: writing it again
    replaces the row. ``prompt_length``/``response_length`` default to the text lengths.
    """

    name: str
    type: str
    workflow_id: str
    execution_id: str
    run_id: str
    step_name: str
    partition_key: str = ""
    symbol: str | None = None
    strategy_id: str = ""  # "" when not a strategy's step
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    prompt: str | None = None
    response: str | None = None
    image_path: str | None = None
    chart_data: Mapping[str, Any] | None = None
    signal_data: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None
    uri: str | None = None
    sha256: str | None = None
    prompt_length: int | None = None
    response_length: int | None = None
    model_name: str | None = None
    confidence_score: float | None = None  # 0..1

    def __post_init__(self) -> None:
        owner = _require_step_identity(self, name=self.name)
        if self.type not in ARTIFACT_TYPES:
            raise ValueError(
                f"{owner}.type must be one of {', '.join(ARTIFACT_TYPES)}, got {self.type!r}"
            )
        _require_mapping(
            owner,
            True,
            chart_data=self.chart_data,
            signal_data=self.signal_data,
            metadata=self.metadata,
        )
        if self.sha256 is not None and not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"{owner}.sha256 must be 64 lower-case hex digits")
        score = self.confidence_score
        if score is not None and (isinstance(score, bool) or not 0.0 <= float(score) <= 1.0):
            raise ValueError(f"{owner}.confidence_score must be within 0..1, got {score!r}")
        if self.prompt_length is None and self.prompt is not None:
            object.__setattr__(self, "prompt_length", len(self.prompt))
        if self.response_length is None and self.response is not None:
            object.__setattr__(self, "response_length", len(self.response))
        _require_count(owner, "prompt_length", self.prompt_length, optional=True)
        _require_count(owner, "response_length", self.response_length, optional=True)
