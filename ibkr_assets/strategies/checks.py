"""What the strategies ask of the deployment, checked once the definitions load."""

from __future__ import annotations

from ibkr_assets.settings import ConfigError, Settings
from ibkr_assets.strategies.config import StrategyConfig


def check_strategies(settings: Settings, strategies: list[StrategyConfig]) -> None:
    """What the strategies ask of the deployment: an API key for OpenAI, limits for live trading."""
    env_key = settings.openai_api_key is not None
    problems = []
    for s in strategies:
        if s.analyst.provider == "openai" and not env_key and not s.analyst.base_url:
            problems.append(
                f"strategy {s.id!r} uses the openai analyst: set OPENAI_API_KEY (or analyst.base_url "
                "for a local OpenAI-compatible server)"
            )
        if (
            settings.live_trading == "yes"
            and s.broker.kind == "ibkr"
            and s.risk.max_position is None
        ):
            problems.append(
                f"IBKR_ASSETS_LIVE_TRADING='yes': strategy {s.id!r} trades through IBKR and needs "
                "risk.max_position (shares) as a pre-trade limit"
            )
    ibkr = [s.id for s in strategies if s.broker.kind == "ibkr"]
    if len(ibkr) > 1:
        problems.append(
            f"strategies {', '.join(map(repr, ibkr))} all use broker.kind: ibkr; one IB account "
            "has one set of positions, so only one strategy may trade through IBKR (give the "
            "others broker.kind: paper)"
        )
    if settings.live_trading == "yes" and not ibkr:
        problems.append("IBKR_ASSETS_LIVE_TRADING='yes' needs a strategy with broker.kind: ibkr")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
