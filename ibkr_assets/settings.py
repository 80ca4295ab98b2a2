"""Configuration from environment variables (documented in the README's configuration table).

Read once, validated by pydantic; a wrong value fails with the variable's name and what is
allowed. Values that can hold secrets (database URLs) are never echoed in errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError, field_validator

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
    "IBKR_HOST": "ibkr_host",
    "IBKR_PORT": "ibkr_port",
    "IBKR_CLIENT_ID": "ibkr_client_id",
}
SECRET_FIELDS = {"database_url", "stock_data_url"}


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
    def object_root_path(self) -> Path:
        return Path(self.object_root).resolve() if self.object_root else self.home_path / "objects"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values = {field: env[var] for var, field in ENV_VARS.items() if env.get(var, "") != ""}
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
