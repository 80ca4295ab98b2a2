"""Configuration from environment variables (documented in the README's configuration table).

Read once, validated by pydantic; a wrong value fails with the variable's name and what is
allowed. Values that can hold secrets (database URLs) are never echoed in errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

# env var -> field name
ENV_VARS: dict[str, str] = {
    "IBKR_ASSETS_HOME": "home",
    "IBKR_ASSETS_DATABASE_URL": "database_url",
    "IBKR_ASSETS_OBJECT_STORE": "object_store",
    "IBKR_ASSETS_OBJECT_ROOT": "object_root",
    "IBKR_ASSETS_S3_BUCKET": "s3_bucket",
    "IBKR_ASSETS_S3_ENDPOINT_URL": "s3_endpoint_url",
    "AWS_REGION": "s3_region",
    "IBKR_ASSETS_MARKET_DATA_SOURCE": "market_data_source",
    "IBKR_ASSETS_LOOKBACK_BARS": "lookback_bars",
    "IBKR_ASSETS_CSV_DIR": "csv_dir",
    "IBKR_ASSETS_STOCK_DATA_URL": "stock_data_url",
    "IBKR_ASSETS_EXCHANGE_CALENDAR": "calendar",
    "IBKR_ASSETS_MAX_STALE_SESSIONS": "max_stale_sessions",
    "IBKR_ASSETS_SYMBOLS": "symbols",
    "IBKR_ASSETS_ANALYST": "analyst",
    "IBKR_ASSETS_LLM_MODEL": "llm_model",
    "IBKR_ASSETS_LLM_BASE_URL": "llm_base_url",
    "IBKR_ASSETS_LLM_TIMEOUT": "llm_timeout_s",
    "IBKR_ASSETS_LLM_MAX_RETRIES": "llm_max_retries",
    "IBKR_ASSETS_LLM_PRICE_IN": "llm_price_in",
    "IBKR_ASSETS_LLM_PRICE_OUT": "llm_price_out",
    "IBKR_ASSETS_LLM_CACHE_MODE": "llm_cache_mode",
    "IBKR_ASSETS_LLM_CONCURRENCY": "llm_concurrency",
    "IBKR_ASSETS_LLM_RPM": "llm_requests_per_minute",
    "IBKR_ASSETS_PROMPT_TEMPLATE": "prompt_template",
    "IBKR_ASSETS_PROMPT_VERSION": "prompt_version",
    "MLFLOW_TRACKING_URI": "mlflow_tracking_uri",
    "IBKR_ASSETS_MLFLOW_ARTIFACT_ROOT": "mlflow_artifact_root",
    "IBKR_ASSETS_CHART_WORKERS": "chart_workers",
    "IBKR_ASSETS_MIN_RISK_REWARD": "min_risk_reward",
    "IBKR_ASSETS_MAX_ENTRY_DISTANCE_PCT": "max_entry_distance_pct",
    "IBKR_ASSETS_MIN_CONFIDENCE": "min_confidence",
    "IBKR_ASSETS_STRATEGY": "strategy",
    "IBKR_ASSETS_BROKER": "broker",
    "IBKR_ASSETS_LIVE_TRADING": "live_trading",
    "IBKR_ASSETS_MAX_NOTIONAL": "max_notional",
    "IBKR_ASSETS_MAX_POSITION": "max_position",
    "IBKR_ASSETS_RISK_PER_TRADE_PCT": "risk_per_trade_pct",
    "IBKR_ASSETS_MAX_POSITION_PCT": "max_position_pct",
    "IBKR_ASSETS_ALLOW_SHORT": "allow_short",
    "IBKR_ASSETS_PAPER_STARTING_CASH": "paper_starting_cash",
    "IBKR_ASSETS_COMMISSION_PER_SHARE": "commission_per_share",
    "IBKR_ASSETS_COMMISSION_MIN": "commission_min",
    "IBKR_ASSETS_COMMISSION_MAX_PCT": "commission_max_pct",
    "IBKR_ASSETS_KILL_SWITCH_FILE": "kill_switch_file",
    "IBKR_ORDER_CLIENT_ID": "ibkr_order_client_id",
    "IBKR_HOST": "ibkr_host",
    "IBKR_PORT": "ibkr_port",
    "IBKR_CLIENT_ID": "ibkr_client_id",
}
SECRET_FIELDS = {"database_url", "stock_data_url", "mlflow_tracking_uri"}


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the environment variable."""


class Settings(BaseModel):
    home: str = ".ibkr_assets"
    database_url: str | None = None
    object_store: Literal["local", "s3"] = "local"
    object_root: str | None = None
    s3_bucket: str = "ibkr-assets"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    market_data_source: Literal["sample", "csv", "postgres", "ibkr"] = "sample"
    lookback_bars: int = 200
    csv_dir: str = "data"
    stock_data_url: str | None = None
    calendar: str = "XNYS"
    max_stale_sessions: int = 0
    symbols: list[str] = ["AAPL", "MSFT", "NVDA"]
    analyst: Literal["rules", "openai"] = "rules"
    llm_model: str = "gpt-4o-mini"
    llm_base_url: str | None = None
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_price_in: float = Field(default=0.15, ge=0)
    llm_price_out: float = Field(default=0.60, ge=0)
    llm_cache_mode: Literal["normal", "refresh", "replay"] = "normal"
    llm_concurrency: int = Field(default=4, ge=1, le=64)
    llm_requests_per_minute: float = Field(default=0.0, ge=0)
    prompt_template: str = "chart_analysis"
    prompt_version: int | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: str | None = None
    chart_workers: int | None = Field(default=None, ge=1)
    min_risk_reward: float = Field(default=1.5, gt=0)
    max_entry_distance_pct: float = Field(default=3.0, gt=0)
    min_confidence: int = Field(default=60, ge=0, le=100)
    strategy: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    broker: Literal["paper", "ibkr"] = "paper"
    live_trading: Literal["no", "yes"] = "no"
    max_notional: float | None = Field(default=None, gt=0)
    max_position: int | None = Field(default=None, gt=0)
    risk_per_trade_pct: float = Field(default=1.0, gt=0, le=100)
    max_position_pct: float = Field(default=10.0, gt=0, le=100)
    allow_short: bool = False
    paper_starting_cash: float = Field(default=100_000.0, gt=0)
    commission_per_share: float = Field(default=0.005, ge=0)
    commission_min: float = Field(default=1.0, ge=0)
    commission_max_pct: float = Field(default=1.0, ge=0)
    kill_switch_file: str | None = None
    ibkr_order_client_id: int = 18
    ibkr_host: str = "127.0.0.1"
    ibkr_port: int = 4002
    ibkr_client_id: int = 17

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip().upper() for s in value.split(",") if s.strip()]
        return value

    @field_validator("lookback_bars")
    @classmethod
    def _enough_bars(cls, value: int) -> int:
        if not 1 <= value <= 10_000:
            raise ValueError("must be between 1 and 10000")
        return value

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
    def artifact_root(self) -> str:
        return self.mlflow_artifact_root or (self.home_path / "mlartifacts").as_uri()

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


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values = {field: env[var] for var, field in ENV_VARS.items() if env.get(var, "") != ""}
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        by_field = {f: v for v, f in ENV_VARS.items()}
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            shown = "<hidden>" if field in SECRET_FIELDS else repr(values.get(field))
            problems.append(f"{by_field.get(field, field)}={shown}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    if settings.analyst == "openai" and not env.get("OPENAI_API_KEY") and not settings.llm_base_url:
        raise ConfigError(
            "invalid configuration: IBKR_ASSETS_ANALYST='openai' needs OPENAI_API_KEY "
            "(or IBKR_ASSETS_LLM_BASE_URL for a local OpenAI-compatible server)"
        )
    if settings.live_trading == "yes" and (
        settings.max_notional is None or settings.max_position is None
    ):
        raise ConfigError(
            "invalid configuration: IBKR_ASSETS_LIVE_TRADING='yes' needs pre-trade limits "
            "IBKR_ASSETS_MAX_NOTIONAL and IBKR_ASSETS_MAX_POSITION"
        )
    if settings.live_trading == "yes" and settings.broker != "ibkr":
        raise ConfigError(
            "invalid configuration: IBKR_ASSETS_LIVE_TRADING='yes' needs IBKR_ASSETS_BROKER='ibkr'"
        )
    return settings
