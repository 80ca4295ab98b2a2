"""The analyst resource: which analyst reads the charts (offline rules or an OpenAI-compatible
model), which prompt template it gets, and how the replay cache is used."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import PrivateAttr

from ibkr_assets.resources.strategy_copies import copy_for_strategy
from ibkr_assets.strategies.config import StrategyConfig


class AnalystResource(dg.ConfigurableResource):
    """``provider="rules"`` (deterministic, not an LLM; the offline default) or ``"openai"``
    (the real client; ``base_url`` points it at vLLM, Ollama, LM Studio or any compatible server).

    ``timeout_s`` is the budget of one whole analysis call, retries and their waits included;
    ``max_retries`` bounds the retries within it.

    ``cache_mode``: ``normal`` reuses a stored response for the same (provider, model, template,
    prompt, images); ``refresh`` always calls and stores; ``replay`` never calls the network.
    Only valid proposals are stored.
    """

    provider: Literal["rules", "openai"] = "rules"
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 60.0  # seconds for the whole call, not per request
    max_retries: int = 3
    price_per_mtok_in: float = 0.0
    price_per_mtok_out: float = 0.0
    template_id: str = "chart_analysis"
    template_version: int | None = None
    cache_mode: Literal["normal", "refresh", "replay"] = "normal"
    concurrency: int = 4
    requests_per_minute: float = 0.0  # 0: no limit beyond ``concurrency``

    _analyst: object | None = PrivateAttr(default=None)
    _copies: dict = PrivateAttr(default_factory=dict)

    def for_strategy(self, strategy: StrategyConfig) -> AnalystResource:
        """The strategy's analyst and prompt; credentials, retries, cache and limits stay ours."""
        return copy_for_strategy(
            self,
            self._copies,
            strategy.id,
            provider=strategy.analyst.provider,
            model=strategy.analyst.model,
            base_url=strategy.analyst.base_url,
            template_id=strategy.prompt.template,
            template_version=strategy.prompt.version,
        )

    def get_analyst(self):
        if self._analyst is None:
            from ibkr_assets.analysis.analysts import OpenAIAnalyst, RulesAnalyst

            if self.provider == "openai":
                self._analyst = OpenAIAnalyst(
                    model=self.model,
                    api_key=self.api_key,
                    base_url=self.base_url,
                    timeout_s=self.timeout_s,
                    max_retries=self.max_retries,
                    price_per_mtok_in=self.price_per_mtok_in,
                    price_per_mtok_out=self.price_per_mtok_out,
                )
                if self.requests_per_minute > 0:
                    from ibkr_assets.analysis.rate_limit import RateLimitedAnalyst, RateLimiter

                    self._analyst = RateLimitedAnalyst(
                        self._analyst, RateLimiter(self.requests_per_minute)
                    )
            else:
                self._analyst = RulesAnalyst()
        return self._analyst

    def get_template(self):
        from ibkr_assets.analysis.prompts import load_template

        return load_template(self.template_id, self.template_version)
