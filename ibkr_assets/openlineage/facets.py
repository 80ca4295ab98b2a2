"""The export's own facets (OpenLineage custom facets, keys prefixed ``ibkr_assets_``).

Their JSON schemas are below (``SCHEMAS``); each facet's ``_schemaURL`` names its definition there.
"""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.facet_v2 import DatasetFacet, RunFacet

SCHEMA_BASE = "urn:ibkr-assets:openlineage:facets:1-0-0"


def _schema_url(name: str) -> str:
    return f"{SCHEMA_BASE}#/$defs/{name}"


@attr.define
class PartitionRunFacet(RunFacet):
    """Which partition of which strategy the run processed."""

    partitionKey: str  # noqa: N815
    strategy: str
    symbol: str | None = None
    date: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("PartitionRunFacet")


@attr.define
class LineageRowRunFacet(RunFacet):
    """The ``workflow_lineage`` row the events were built from, and which attempt of it."""

    lineageRowId: int  # noqa: N815
    executionId: str  # noqa: N815
    dagsterRunId: str  # noqa: N815
    status: str
    attempt: int
    codeVersion: str | None = None  # noqa: N815
    durationMs: int | None = None  # noqa: N815
    error: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("LineageRowRunFacet")


@attr.define
class DecisionRunFacet(RunFacet):
    """What the step decided: the signal's action, the order's decision and outcome."""

    signalAction: str | None = None  # noqa: N815
    confidence: float | None = None
    decisionFinal: bool | None = None  # noqa: N815
    orderDecision: str | None = None  # noqa: N815
    orderStatus: str | None = None  # noqa: N815
    reason: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("DecisionRunFacet")


@attr.define
class StoredObjectDatasetFacet(DatasetFacet):
    """The exact stored version: its immutable URI, sha256, partition and the row recording it."""

    sha256: str
    uri: str
    partitionKey: str  # noqa: N815
    lineageRowId: int | None = None  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("StoredObjectDatasetFacet")


def _facet(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "allOf": [
            {"$ref": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/BaseFacet"},
            {"type": "object", "required": required, "properties": properties},
        ]
    }


_STR, _INT = {"type": "string"}, {"type": "integer"}
_OPT_STR = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_BASE,
    "$defs": {
        "PartitionRunFacet": _facet(
            ["partitionKey", "strategy"],
            {"partitionKey": _STR, "strategy": _STR, "symbol": _OPT_STR, "date": _OPT_STR},
        ),
        "LineageRowRunFacet": _facet(
            ["lineageRowId", "executionId", "dagsterRunId", "status", "attempt"],
            {
                "lineageRowId": _INT,
                "executionId": _STR,
                "dagsterRunId": _STR,
                "status": {"enum": ["success", "error", "market_closed", "blocked"]},
                "attempt": {"type": "integer", "minimum": 1},
                "codeVersion": _OPT_STR,
                "durationMs": {"type": ["integer", "null"]},
                "error": _OPT_STR,
            },
        ),
        "DecisionRunFacet": _facet(
            [],
            {
                "signalAction": _OPT_STR,
                "confidence": {"type": ["number", "null"]},
                "decisionFinal": {"type": ["boolean", "null"]},
                "orderDecision": _OPT_STR,
                "orderStatus": _OPT_STR,
                "reason": _OPT_STR,
            },
        ),
        "StoredObjectDatasetFacet": _facet(
            ["sha256", "uri", "partitionKey"],
            {
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "uri": {"type": "string", "format": "uri"},
                "partitionKey": _STR,
                "lineageRowId": {"type": ["integer", "null"]},
            },
        ),
    },
}
