"""Everything the API and the pages read through, built once per app from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ibkr_assets.settings import ConfigError, Settings
from ibkr_assets.viewer.database import ReadOnlyDatabase
from ibkr_assets.viewer.links import Links, public_base
from ibkr_assets.viewer.objects import ObjectReader
from ibkr_assets.viewer.queries import LineageQueries
from ibkr_assets.viewer.trading_queries import TradingQueries


def mlflow_public_url(value: str | None) -> str | None:
    """Where a user's browser reaches the MLflow UI (``IBKR_ASSETS_MLFLOW_PUBLIC_URL``), for the
    viewer's links to MLflow runs when the tracking URI names a host only the services resolve
    (``http://mlflow:5000`` in docker). Unset: links follow ``MLFLOW_TRACKING_URI``."""
    value = (value or "").strip()
    if not value:
        return None
    if public_base(value) is None:  # the value itself is not echoed: it may hold a password
        raise ConfigError("IBKR_ASSETS_MLFLOW_PUBLIC_URL must be an http(s) URL of the MLflow "
                          "UI, e.g. http://127.0.0.1:5000")  # fmt: skip
    return value


@dataclass
class ViewerContext:
    settings: Settings
    db: ReadOnlyDatabase
    lineage: LineageQueries
    trading: TradingQueries
    objects: ObjectReader
    links: Links

    @classmethod
    def from_settings(
        cls, settings: Settings, objects: ObjectReader | None = None
    ) -> ViewerContext:
        """The context for ``settings``."""
        public = mlflow_public_url(settings.mlflow_public_url)
        links = Links(settings.dagster_url, settings.tracking_uri, public)
        db = ReadOnlyDatabase(settings.lineage_url)
        return cls(
            settings=settings,
            db=db,
            lineage=LineageQueries(db),
            trading=TradingQueries(db),
            objects=objects or ObjectReader(settings),
            links=links,
        )

    def configured_strategies(self) -> dict[str, Any]:
        """The strategies file's strategies by id ({} when it cannot be read: the viewer still
        shows what the database holds)."""
        try:
            from ibkr_assets.strategies.config import load_strategies

            return {s.id: s for s in load_strategies(self.settings.strategies_file)}
        except Exception:
            return {}

    def strategy_ids(self) -> list[str]:
        """Configured strategies and every strategy with lineage rows."""
        return sorted(set(self.configured_strategies()) | set(self.lineage.strategy_ids()))

    def close(self) -> None:
        self.db.engine.dispose()
