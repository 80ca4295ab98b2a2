"""Links to the Dagster run and the MLflow run of a record, and redaction of secrets in text.

A base URL from configuration is shown without its user, password, query or fragment, so a
credential in ``IBKR_ASSETS_DAGSTER_URL``, ``IBKR_ASSETS_MLFLOW_PUBLIC_URL`` or
``MLFLOW_TRACKING_URI`` never reaches a response.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from starlette.responses import JSONResponse

from ibkr_assets.redaction import redact


class RedactedJSONResponse(JSONResponse):
    """JSON with every credential-looking part of a string masked (the API's answers)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(redact(content), ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")  # fmt: skip


def public_base(url: str | None) -> str | None:
    """An http(s) base URL without credentials, query or fragment; None for anything else."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class Links:
    """Where a record's Dagster run and MLflow run can be opened."""

    def __init__(
        self,
        dagster_url: str | None,
        mlflow_tracking_uri: str | None,
        mlflow_public_url: str | None = None,
    ) -> None:
        self.dagster = public_base(dagster_url)
        # The UI as the user's browser reaches it when given, else the tracking server (a file
        # or database store has no UI).
        self.mlflow_base = public_base(mlflow_public_url) or public_base(mlflow_tracking_uri)

    def dagster_run(self, run_id: str | None) -> str | None:
        if not self.dagster or not run_id:
            return None
        return f"{self.dagster}/runs/{quote(run_id, safe='')}"

    def mlflow_run(self, experiment_id: str | None, run_id: str | None) -> str | None:
        if not self.mlflow_base or not experiment_id or not run_id:
            return None
        exp, run = quote(str(experiment_id), safe=""), quote(run_id, safe="")
        return f"{self.mlflow_base}/#/experiments/{exp}/runs/{run}"

    def mlflow_info(self, experiment_id: str | None, run_id: str | None) -> dict[str, Any] | None:
        """The MLflow run as ids plus a link when the tracking store is a server."""
        if not run_id:
            return None
        return {"run_id": run_id, "experiment_id": experiment_id,
                "url": self.mlflow_run(experiment_id, run_id)}  # fmt: skip
