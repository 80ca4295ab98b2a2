"""What debug mode (``IBKR_ASSETS_DEBUG``) attaches to a partition's MLflow run and logs: a CSV
sample of a step's data, the step's debug info, one-line summaries of its inputs and outputs.

Nothing here holds a secret: settings go through ``settings.shown_settings``, and every text
through ``redaction.redact``.
"""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

import pandas as pd

from ibkr_assets.redaction import redact, redact_text
from ibkr_assets.settings import load_settings, shown_settings

SAMPLE_ROWS = 5  # first and last rows of a step's frame in its sample
PACKAGES = ("dagster", "mlflow", "pandas", "ibkr_assets")
_BRIEF = 500  # characters of a summary in a DEBUG log line


def sample_csv(frame: pd.DataFrame) -> bytes:
    """The first and last ``SAMPLE_ROWS`` rows of ``frame`` (all of a short one) as CSV, with
    each row's position in the frame."""
    if len(frame) > 2 * SAMPLE_ROWS:
        frame = pd.concat([frame.head(SAMPLE_ROWS), frame.tail(SAMPLE_ROWS)])
    return frame.to_csv(index_label="row").encode("utf-8")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def debug_info(step: dict[str, Any], timings: dict[str, Any], rows: dict[str, Any]) -> bytes:
    """The step's debug info: what ran (``step``), settings with secrets hidden, package
    versions, timings, and the step's lineage input and output summaries (``rows``)."""
    info = {
        "step": step,
        "settings": shown_settings(load_settings()),
        "versions": package_versions(),
        "timings": timings,
        **redact(json.loads(json.dumps(rows, default=str))),
    }
    return (json.dumps(info, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def brief(data: Any) -> str:
    """``data`` as one short line for a DEBUG log (secrets masked, long values cut)."""
    text = redact_text(json.dumps(data, default=str, sort_keys=True))
    return text if len(text) <= _BRIEF else f"{text[:_BRIEF]}... ({len(text)} characters)"
