"""What an analysis is asked and what it answers, as stored: the values under the analysts.

``AnalysisRequest`` is everything an analyst sees for one symbol and session (its prompt
rendered from a ``PromptTemplate``); ``AnalysisResult`` is one analysis as recorded (stored as
JSON, keyed by ``cache_key``). ``request_key`` is the one place that key is computed from a
request and the analyst asked: the analysts stamp it on their results, the replay cache looks
it up before asking.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ibkr_assets.domain.signal import SignalProposal

_KEY_FORMAT = 2  # bump when the canonical encoding of ``cache_key`` changes


@dataclass(frozen=True)
class PromptTemplate:
    """One version of a prompt: ``text`` is the body after the header."""

    id: str
    version: int
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AnalysisRequest:
    """Everything an analyst sees for one symbol and session."""

    symbol: str
    as_of: dt.date
    template: PromptTemplate
    prompt: str
    images: dict[str, bytes]  # chart PNGs by timeframe: "daily", "weekly"
    indicators: dict[str, float | None]
    last_close: float


@dataclass(frozen=True)
class AnalysisResult:
    """One analysis as recorded: what was asked, what came back, what it cost.

    On a cache hit ``cost_usd`` is 0 and ``saved_cost_usd`` holds the original call's cost;
    tokens, latency and attempts describe the original call.
    """

    provider: str
    model: str
    template_id: str
    template_version: int
    prompt: str
    raw_response: str | None
    proposal: SignalProposal
    valid: bool
    error: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: int
    attempts: int
    cache_key: str
    cache_hit: bool = False
    saved_cost_usd: float = 0.0

    @property
    def final(self) -> bool:
        """Whether a decision may rest on this analysis for good: only a valid proposal.

        A fail-closed HOLD (timeout, rate limit, connection or server error, a body that is
        not a proposal, a refusal) is not: it is neither cached nor final, so a later run
        asks again and decides again.
        """
        return self.valid

    def as_made(self) -> AnalysisResult:
        """This analysis as the original call made it: a replay from the cache (``cache_hit``,
        cost 0, ``saved_cost_usd``) becomes the same value, hence the same stored bytes."""
        if not self.cache_hit:
            return self
        return dataclasses.replace(
            self, cache_hit=False, cost_usd=self.saved_cost_usd, saved_cost_usd=0.0
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_json`` rebuilds an equal result."""
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        data["proposal"] = self.proposal.model_dump(mode="json")
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AnalysisResult:
        names = {field.name for field in dataclasses.fields(cls)}
        # ``cacheable``: written by earlier versions, replaced by ``final``.
        values = {name: value for name, value in data.items() if name != "cacheable"}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown analysis result fields: {', '.join(unknown)}")
        values["proposal"] = SignalProposal.model_validate(values["proposal"])
        return cls(**values)


class Analyst(Protocol):
    provider: str
    model: str
    endpoint: str | None  # the server's URL when not the provider's own API

    def analyze(self, request: AnalysisRequest) -> AnalysisResult: ...


def cache_key(
    *,
    provider: str,
    model: str,
    endpoint: str | None = None,
    template_id: str,
    template_version: int,
    prompt: str,
    images: Mapping[str, bytes],
) -> str:
    """sha256 over a canonical JSON encoding; images are hashed and sorted by name."""
    canonical = {
        "format": _KEY_FORMAT,
        "provider": provider,
        "model": model,
        "endpoint": endpoint,  # None: the provider's own API
        "template_id": template_id,
        "template_version": template_version,
        "prompt": prompt,
        "images": sorted((name, hashlib.sha256(data).hexdigest()) for name, data in images.items()),
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def request_key(analyst: Analyst, request: AnalysisRequest) -> str:
    """The cache key of ``request`` asked of ``analyst``: computed here only."""
    return cache_key(
        provider=analyst.provider,
        model=analyst.model,
        endpoint=analyst.endpoint,
        template_id=request.template.id,
        template_version=request.template.version,
        prompt=request.prompt,
        images=request.images,
    )
