"""The analyst resource: the deployment's credentials, retries, prices, replay cache and limits.

Which analyst reads a strategy's charts (offline rules or an OpenAI-compatible model) and which
prompt template it gets are the strategy's, passed as a value: ``analyst_for(strategy)``.
"""

from __future__ import annotations

import threading
from typing import Literal

import dagster as dg
from pydantic import PrivateAttr

from ibkr_assets.strategies.config import StrategyConfig

_LOCK = threading.Lock()  # one analyst per strategy even if two threads ask at once


class AnalystResource(dg.ConfigurableResource):
    """How analysts are called. A strategy's ``analyst.provider`` is ``rules`` (deterministic,
    not an LLM; the offline default) or ``openai`` (the real client; its ``base_url`` points it
    at vLLM, Ollama, LM Studio or any compatible server).

    ``timeout_s`` is the budget of one whole analysis call, retries and their waits included;
    ``max_retries`` bounds the retries within it.

    ``cache_mode``: ``normal`` reuses a stored response for the same (provider, model, template,
    prompt, images); ``refresh`` always calls and stores; ``replay`` never calls the network.
    Only valid proposals are stored.
    """

    api_key: str | None = None
    timeout_s: float = 60.0  # seconds for the whole call, not per request
    max_retries: int = 3
    price_per_mtok_in: float = 0.0
    price_per_mtok_out: float = 0.0
    cache_mode: Literal["normal", "refresh", "replay"] = "normal"
    concurrency: int = 4
    requests_per_minute: float = 0.0  # 0: no limit beyond ``concurrency``

    _analysts: dict = PrivateAttr(default_factory=dict)

    def analyst_for(self, strategy: StrategyConfig):
        """The strategy's analyst (one per strategy id for the life of the resource)."""
        with _LOCK:
            if strategy.id not in self._analysts:
                self._analysts[strategy.id] = self._build(strategy)
            return self._analysts[strategy.id]

    def _build(self, strategy: StrategyConfig):
        from ibkr_assets.analysis.analysts import OpenAIAnalyst, RulesAnalyst

        chosen = strategy.analyst
        if chosen.provider != "openai":
            return RulesAnalyst()
        analyst = OpenAIAnalyst(
            model=chosen.model,
            api_key=self.api_key,
            base_url=chosen.base_url,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            price_per_mtok_in=self.price_per_mtok_in,
            price_per_mtok_out=self.price_per_mtok_out,
        )
        if self.requests_per_minute <= 0:
            return analyst
        from ibkr_assets.analysis.rate_limit import RateLimitedAnalyst, RateLimiter

        return RateLimitedAnalyst(analyst, RateLimiter(self.requests_per_minute))
