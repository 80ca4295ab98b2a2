"""The replay cache: one stored analysis per exact question, so runs can be repeated for free.

The key (``domain.analysis.request_key``) covers everything that decides the answer: provider,
model, template id and version, the rendered prompt and the chart bytes. ``normal`` reuses a
stored answer, ``refresh`` always asks again, ``replay`` only reads and never touches the
network (a miss is an error). Only valid proposals are stored and served: a fail-closed HOLD (a
timeout, a rate limit, a body that is not a proposal, a refusal) is never replayed as an answer,
so a later run asks again.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Literal, get_args

from ibkr_assets.domain.analysis import AnalysisRequest, AnalysisResult, Analyst, request_key
from ibkr_assets.storage.object_store import ObjectStore

CacheMode = Literal["normal", "refresh", "replay"]
DEFAULT_PREFIX = "ml-experiments/llm-cache"


class ReplayMissError(LookupError):
    """Replay mode found no stored analysis for a request."""


class ResponseCache:
    """Analyses in an object store, one JSON object per key under ``prefix``."""

    def __init__(self, store: ObjectStore, prefix: str = DEFAULT_PREFIX) -> None:
        self.store = store
        self.prefix = prefix.rstrip("/")

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}.json"

    def get(self, key: str) -> AnalysisResult | None:
        """The stored valid result of the original call for ``key``, or None.

        An invalid result stored by an earlier version is not an answer: None.
        """
        object_key = self.object_key(key)
        if not self.store.exists(object_key):
            return None
        stored = AnalysisResult.from_json(json.loads(self.store.get(object_key)))
        return stored if stored.valid else None

    def put(self, result: AnalysisResult) -> None:
        """Store ``result`` as the answer for its key (only a valid proposal)."""
        if not result.valid:
            raise ValueError(f"only a valid proposal is cached, not: {result.error}")
        data = json.dumps(result.to_json(), sort_keys=True, indent=2).encode("utf-8")
        self.store.put(self.object_key(result.cache_key), data, "application/json")


def _as_hit(stored: AnalysisResult) -> AnalysisResult:
    return dataclasses.replace(stored, cache_hit=True, cost_usd=0.0, saved_cost_usd=stored.cost_usd)


def analyze(
    analyst: Analyst, request: AnalysisRequest, cache: ResponseCache, mode: CacheMode = "normal"
) -> AnalysisResult:
    """Run ``analyst`` on ``request`` through ``cache`` in ``mode`` (see the module docstring)."""
    if mode not in get_args(CacheMode):
        raise ValueError(
            f"unknown cache mode {mode!r}; use one of {', '.join(get_args(CacheMode))}"
        )
    key = request_key(analyst, request)
    if mode != "refresh":
        stored = cache.get(key)
        if stored is not None:
            return _as_hit(stored)
        if mode == "replay":
            raise ReplayMissError(
                f"replay mode: no valid cached analysis for {request.symbol} on "
                f"{request.as_of.isoformat()} ({analyst.provider}/{analyst.model}, template "
                f"{request.template.id} v{request.template.version}, cache key {key} at "
                f"{cache.store.uri(cache.object_key(key))}); run in 'normal' or 'refresh' "
                "mode first to record it"
            )
    result = analyst.analyze(request)
    if result.valid:
        cache.put(result)
    return result
