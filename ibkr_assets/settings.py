"""Configuration from environment variables (documented in the README's configuration table).

Read once, validated by pydantic; a wrong value fails with the variable's name and what is
allowed. Values that can hold secrets (database URLs) are never echoed in errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError

# env var -> field name
ENV_VARS: dict[str, str] = {
    "IBKR_ASSETS_HOME": "home",
    "IBKR_ASSETS_STRATEGIES_FILE": "strategies_file",
    "IBKR_ASSETS_DATABASE_URL": "database_url",
    "IBKR_ASSETS_OBJECT_STORE": "object_store",
    "IBKR_ASSETS_OBJECT_ROOT": "object_root",
    "IBKR_ASSETS_S3_BUCKET": "s3_bucket",
    "IBKR_ASSETS_S3_ENDPOINT_URL": "s3_endpoint_url",
    "AWS_REGION": "s3_region",
    "IBKR_ASSETS_CSV_DIR": "csv_dir",
    "IBKR_ASSETS_STOCK_DATA_URL": "stock_data_url",
    "IBKR_ASSETS_MAX_STALE_SESSIONS": "max_stale_sessions",
    "IBKR_ASSETS_LLM_TIMEOUT": "llm_timeout_s",
    "IBKR_ASSETS_LLM_MAX_RETRIES": "llm_max_retries",
    "IBKR_ASSETS_LLM_PRICE_IN": "llm_price_in",
    "IBKR_ASSETS_LLM_PRICE_OUT": "llm_price_out",
    "IBKR_ASSETS_LLM_CACHE_MODE": "llm_cache_mode",
    "IBKR_ASSETS_LLM_CONCURRENCY": "llm_concurrency",
    "IBKR_ASSETS_LLM_RPM": "llm_requests_per_minute",
    "MLFLOW_TRACKING_URI": "mlflow_tracking_uri",
    "IBKR_ASSETS_MLFLOW_ARTIFACT_ROOT": "mlflow_artifact_root",
    "IBKR_ASSETS_CHART_WORKERS": "chart_workers",
    "IBKR_ASSETS_LIVE_TRADING": "live_trading",
    "IBKR_ASSETS_COMMISSION_PER_SHARE": "commission_per_share",
    "IBKR_ASSETS_COMMISSION_MIN": "commission_min",
    "IBKR_ASSETS_COMMISSION_MAX_PCT": "commission_max_pct",
    "IBKR_ASSETS_KILL_SWITCH_FILE": "kill_switch_file",
    "IBKR_ASSETS_BOOK_LOCK_TIMEOUT": "book_lock_timeout_s",
    "IBKR_ORDER_CLIENT_ID": "ibkr_order_client_id",
    "IBKR_HOST": "ibkr_host",
    "IBKR_PORT": "ibkr_port",
    "IBKR_CLIENT_ID": "ibkr_client_id",
    "IBKR_ASSETS_VIEWER_TOKEN": "viewer_token",
    "IBKR_ASSETS_VIEWER_URL": "viewer_url",
    "IBKR_ASSETS_DAGSTER_URL": "dagster_url",
    "IBKR_ASSETS_MLFLOW_PUBLIC_URL": "mlflow_public_url",
    "IBKR_ASSETS_START_DATE": "start_date",
    "IBKR_ASSETS_ALERT_WEBHOOK_URL": "alert_webhook_url",
    "IBKR_ASSETS_KILL_SWITCH": "kill_switch",
    "OPENAI_API_KEY": "openai_api_key",
    "IBKR_ASSETS_DAGSTER_EVENT_LOG": "dagster_event_log",
    "IBKR_ASSETS_OPENLINEAGE_NAMESPACE": "openlineage_namespace",
    "IBKR_ASSETS_EXECUTOR": "executor",
    "IBKR_ASSETS_CELERY_BROKER": "celery_broker",
    "IBKR_ASSETS_CELERY_BACKEND": "celery_backend",
    "IBKR_ASSETS_DEBUG": "debug",
}
SECRET_FIELDS = {"database_url", "stock_data_url", "mlflow_tracking_uri", "viewer_token"}
SECRET_FIELDS |= {"alert_webhook_url", "openai_api_key"}
SECRET_FIELDS |= {"celery_broker", "celery_backend"}  # a broker URL may hold a password
_ON = {"1", "true", "yes", "on"}  # what turns the kill switch on


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the environment variable."""


class Settings(BaseModel):
    home: str = ".ibkr_assets"
    strategies_file: str | None = None  # read by ``strategies.config.load_strategies``
    database_url: str | None = None
    object_store: Literal["local", "s3"] = "local"
    object_root: str | None = None
    s3_bucket: str = "ibkr-assets"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    csv_dir: str = "data"
    stock_data_url: str | None = None
    max_stale_sessions: int = 0
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_price_in: float = Field(default=0.15, ge=0)
    llm_price_out: float = Field(default=0.60, ge=0)
    llm_cache_mode: Literal["normal", "refresh", "replay"] = "normal"
    llm_concurrency: int = Field(default=4, ge=1, le=64)
    llm_requests_per_minute: float = Field(default=0.0, ge=0)
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: str | None = None
    chart_workers: int | None = Field(default=None, ge=1)
    live_trading: Literal["no", "yes"] = "no"
    commission_per_share: float = Field(default=0.005, ge=0)
    commission_min: float = Field(default=1.0, ge=0)
    commission_max_pct: float = Field(default=1.0, ge=0)
    kill_switch_file: str | None = None
    book_lock_timeout_s: float = Field(default=600.0, ge=0)
    ibkr_order_client_id: int = 18
    ibkr_host: str = "127.0.0.1"
    ibkr_port: int = 4002
    ibkr_client_id: int = 17
    viewer_token: SecretStr | None = None  # never logged, echoed or returned
    viewer_url: str | None = None  # where ``ibkr-assets serve`` is reached, for links to it
    dagster_url: str | None = None  # the Dagster UI, for links to runs
    mlflow_public_url: str | None = None  # the MLflow UI as a browser reaches it (viewer links)
    start_date: str = "2024-01-02"  # the first date partition (``partitions.start_date`` checks it)
    alert_webhook_url: str | None = None  # failed runs are posted here
    kill_switch: str = ""  # 1/true/yes/on blocks new orders (read at call time: ``read_setting``)
    openai_api_key: SecretStr | None = None  # read by the openai client itself; checked here
    openlineage_namespace: str = Field(default="ibkr_assets", min_length=1)  # OpenLineage jobs
    # The event log of a DAGSTER_HOME the ibkr-assets command creates (dagster_home.py).
    dagster_event_log: Literal["dagster", "pooled"] = "dagster"
    # Where the jobs' steps run (jobs.job_executor): Dagster's default or Celery workers.
    executor: Literal["dagster", "celery"] = "dagster"
    celery_broker: str = "redis://127.0.0.1:6379/0"
    celery_backend: str | None = None  # None: the broker (a Redis URL is both)
    # SQL statements and each step's inputs and outputs at DEBUG, data samples and debug info in
    # each partition's MLflow run (``assets.step``).
    debug: bool = False

    @property
    def kill_switch_on(self) -> bool:
        return switched_on(self.kill_switch)

    @property
    def home_path(self) -> Path:
        return Path(self.home).resolve()

    @property
    def lineage_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_path / 'lineage.db'}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home_path / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str | None:
        """Where new MLflow experiments keep artifacts; None: the tracking server decides."""
        if self.mlflow_artifact_root:
            return self.mlflow_artifact_root
        if urlsplit(self.tracking_uri).scheme in ("http", "https"):
            return None
        return (self.home_path / "mlartifacts").as_uri()

    @property
    def kill_switch_path(self) -> Path:
        return (
            Path(self.kill_switch_file).resolve()
            if self.kill_switch_file
            else self.home_path / "KILL_SWITCH"
        )

    @property
    def object_root_path(self) -> Path:
        return Path(self.object_root).resolve() if self.object_root else self.home_path / "objects"


def shown_settings(settings: Settings) -> dict[str, Any]:
    """Every setting as JSON values fit to show: a secret is ``***`` when set (``None`` when
    not), and any other value has URL passwords and secret query parameters masked."""
    from ibkr_assets.redaction import MASK, redact

    shown = {}
    for field, value in settings.model_dump(mode="json").items():
        if field in SECRET_FIELDS:
            shown[field] = None if value is None else MASK
        else:
            shown[field] = redact(value)
    return shown


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    return _validated(
        {field: env[var] for var, field in ENV_VARS.items() if env.get(var, "") != ""}
    )


def read_setting(field: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting read from the environment now and validated alone: for values read at call
    time (a kill switch flipped while the process runs) and by modules that must not fail on
    another variable's mistake."""
    env = os.environ if environ is None else environ
    var = next(v for v, f in ENV_VARS.items() if f == field)
    return getattr(_validated({field: env[var]} if env.get(var, "") != "" else {}), field)


def switched_on(value: str) -> bool:
    """Whether a switch variable's value turns it on (1, true, yes or on, in any case)."""
    return value.strip().lower() in _ON


def is_set(var: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment sets ``var`` (one of ``ENV_VARS``) to a non-empty value."""
    if var not in ENV_VARS:
        raise KeyError(f"{var} is not a setting (settings.ENV_VARS)")
    return (os.environ if environ is None else environ).get(var, "") != ""


def _validated(values: dict[str, str]) -> Settings:
    try:
        return Settings(**values)
    except ValidationError as exc:
        by_field = {f: v for v, f in ENV_VARS.items()}
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            shown = "<hidden>" if field in SECRET_FIELDS else repr(values.get(field))
            problems.append(f"{by_field.get(field, field)}={shown}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
