"""Analysts turn one request (prompt, charts, indicators) into a validated ``SignalProposal``.

Every analyst's answer is text that goes through the same ``parse_response``; whatever goes
wrong (bad JSON, a schema violation, a refusal, a timeout, exhausted retries) ends as a
fail-closed HOLD with ``valid=False`` and the error kept, never as an exception. The rules
analyst is the offline default and says it is not an LLM; ``OpenAIAnalyst`` talks to OpenAI
or any OpenAI-compatible server (vLLM, Ollama, LM Studio) through ``base_url``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from ibkr_assets.analysis.prompts import PromptTemplate, render_prompt
from ibkr_assets.domain.signal import SignalProposal, hold_proposal

if TYPE_CHECKING:
    import openai

RULES_PROVIDER = "rules"
RULES_MODEL = "rules-v1"
_MAX_ERROR_CHARS = 500
_CODE_FENCE = re.compile(r"^```(?:json)?\s*(?P<body>.*?)\s*```$", re.DOTALL | re.IGNORECASE)


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

    @classmethod
    def build(
        cls,
        *,
        symbol: str,
        as_of: dt.date,
        template: PromptTemplate,
        images: Mapping[str, bytes],
        indicators: Mapping[str, float | None],
        last_close: float,
    ) -> AnalysisRequest:
        """A request whose prompt is ``template`` rendered for these inputs."""
        prompt = render_prompt(
            template,
            symbol=symbol,
            as_of=as_of,
            indicators=indicators,
            last_close=last_close,
            timeframes=tuple(sorted(images)),  # the order the images are sent in
        )
        return cls(symbol, as_of, template, prompt, dict(images), dict(indicators), last_close)


@dataclass(frozen=True)
class AnalysisResult:
    """One analysis as recorded: what was asked, what came back, what it cost.

    ``cacheable`` is False for failures a later run may not repeat (timeouts, rate limits,
    server or connection errors, credentials): those must not be replayed from the cache.
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
    cacheable: bool = True
    saved_cost_usd: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_json`` rebuilds an equal result."""
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        data["proposal"] = self.proposal.model_dump(mode="json")
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AnalysisResult:
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown analysis result fields: {', '.join(unknown)}")
        values = dict(data)
        values["proposal"] = SignalProposal.model_validate(values["proposal"])
        return cls(**values)


class Analyst(Protocol):
    provider: str
    model: str
    endpoint: str | None  # the server's URL when not the provider's own API

    def analyze(self, request: AnalysisRequest) -> AnalysisResult: ...


def _fail(error: str) -> tuple[SignalProposal, bool, str]:
    error = error[:_MAX_ERROR_CHARS]
    return hold_proposal(f"Fail-closed HOLD: {error}"), False, error


def parse_response(raw: str) -> tuple[SignalProposal, bool, str | None]:
    """Validate an analyst's text answer: ``(proposal, valid, error)``; invalid means HOLD."""
    text = (raw or "").strip()
    fenced = _CODE_FENCE.match(text)  # some OpenAI-compatible servers wrap JSON in a fence
    if fenced:
        text = fenced["body"]
    if not text:
        return _fail("empty answer: the analyst returned no text")

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a valid JSON number")

    try:
        data = json.loads(text, parse_constant=reject_constant)
    except ValueError as exc:
        return _fail(f"malformed JSON: {exc}")
    try:
        proposal = SignalProposal.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        return _fail(f"schema violation: {problems}")
    prices = (proposal.entry_price, proposal.stop_loss, proposal.take_profit)
    if any(price is not None and not math.isfinite(price) for price in prices):
        return _fail("schema violation: prices must be finite numbers")
    return proposal, True, None


def _request_key(analyst: Analyst, request: AnalysisRequest) -> str:
    from ibkr_assets.analysis.cache import cache_key  # cache.py imports this module

    return cache_key(
        provider=analyst.provider,
        model=analyst.model,
        endpoint=analyst.endpoint,
        template_id=request.template.id,
        template_version=request.template.version,
        prompt=request.prompt,
        images=request.images,
    )


def _result(
    analyst: Analyst,
    request: AnalysisRequest,
    raw: str | None,
    parsed: tuple[SignalProposal, bool, str | None],
    *,
    latency_ms: int,
    attempts: int,
    cacheable: bool,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: float = 0.0,
) -> AnalysisResult:
    proposal, valid, error = parsed
    return AnalysisResult(
        provider=analyst.provider,
        model=analyst.model,
        template_id=request.template.id,
        template_version=request.template.version,
        prompt=request.prompt,
        raw_response=raw,
        proposal=proposal,
        valid=valid,
        error=error,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        latency_ms=latency_ms,
        attempts=attempts,
        cache_key=_request_key(analyst, request),
        cacheable=cacheable,
    )


def _elapsed_ms(start: float) -> int:
    return int(round((time.perf_counter() - start) * 1000))


# The indicator columns the rules analyst reads (a strategy using it must compute them).
RULES_INDICATORS = ("sma_20", "sma_50", "macd_hist", "rsi_14", "atr_14")


def rules_proposal(indicators: Mapping[str, float | None], last_close: float) -> SignalProposal:
    """The rules-v1 decision: trend (close vs SMA20 vs SMA50), MACD histogram sign, RSI zone.

    BUY when all three trend votes are bullish and RSI is in 50-70; SELL mirrored (RSI 30-50);
    entry = last close, stop = 2 ATR away, target = 3 ATR away (reward/risk 1.5).
    """
    name = f"Deterministic rules analyst ({RULES_MODEL}, not an LLM)"
    needed = RULES_INDICATORS
    missing = [key for key in needed if indicators.get(key) is None]
    if missing or not math.isfinite(last_close) or last_close <= 0:
        what = ", ".join(missing) if missing else "a positive last close"
        return hold_proposal(f"{name}: HOLD, not enough history ({what} unavailable).")
    close = last_close
    sma20, sma50 = float(indicators["sma_20"]), float(indicators["sma_50"])
    hist, rsi, atr = (float(indicators[k]) for k in ("macd_hist", "rsi_14", "atr_14"))
    facts = (
        f"close {close:.2f} vs SMA20 {sma20:.2f} vs SMA50 {sma50:.2f}, "
        f"MACD histogram {hist:.4f}, RSI {rsi:.1f}, ATR {atr:.2f}"
    )
    bullish = close > sma20 > sma50 and hist > 0
    bearish = close < sma20 < sma50 and hist < 0
    in_zone = (bullish and 50 <= rsi < 70) or (bearish and 30 < rsi <= 50)
    if atr <= 0 or not in_zone:
        if atr <= 0:
            why = "ATR is not positive, so no stop can be placed"
        elif bullish or bearish:
            why = f"trend is {'up' if bullish else 'down'} but RSI {rsi:.1f} is outside the entry zone"
        else:
            why = "trend, momentum and MACD do not agree"
        return SignalProposal(
            action="HOLD",
            confidence=50,
            entry_price=None,
            stop_loss=None,
            take_profit=None,
            reasoning=f"{name}: HOLD, {why}; {facts}.",
        )
    direction = 1 if bullish else -1
    strength = min(abs(close - sma50) / atr, 2.5)
    return SignalProposal(
        action="BUY" if bullish else "SELL",
        confidence=min(85, 60 + int(round(10 * strength))),
        entry_price=close,
        stop_loss=close - direction * 2 * atr,
        take_profit=close + direction * 3 * atr,
        reasoning=(
            f"{name}: {'BUY' if bullish else 'SELL'}, price and SMA20 are "
            f"{'above' if bullish else 'below'} SMA50 with MACD histogram "
            f"{'positive' if bullish else 'negative'} and RSI in the entry zone; {facts}. "
            "Stop 2 ATR, target 3 ATR from entry."
        ),
    )


class RulesAnalyst:
    """The offline default: deterministic, free, and named as what it is."""

    provider = RULES_PROVIDER
    endpoint = None
    model = RULES_MODEL

    def analyze(self, request: AnalysisRequest) -> AnalysisResult:
        start = time.perf_counter()
        proposal = rules_proposal(request.indicators, request.last_close)
        raw = json.dumps(proposal.model_dump(mode="json"), sort_keys=True)
        parsed = parse_response(raw)  # the same validation an LLM answer gets
        return _result(
            self, request, raw, parsed, latency_ms=_elapsed_ms(start), attempts=1, cacheable=True
        )


def proposal_json_schema() -> dict[str, Any]:
    """``SignalProposal`` as a JSON schema that OpenAI's strict structured output accepts.

    Strict mode wants every property required, ``additionalProperties: false`` and no
    numeric range keywords, so ranges move into the descriptions (pydantic still enforces
    them) and ``anyOf [number, null]`` becomes ``type: ["number", "null"]``.
    """
    source = SignalProposal.model_json_schema()
    properties: dict[str, Any] = {}
    for name, spec in source["properties"].items():
        prop: dict[str, Any] = {}
        if "anyOf" in spec:
            prop["type"] = [option["type"] for option in spec["anyOf"]]
        else:
            prop["type"] = spec["type"]
        if "enum" in spec:
            prop["enum"] = list(spec["enum"])
        description = spec.get("description", "")
        if "minimum" in spec or "maximum" in spec:
            bounds = f"between {spec.get('minimum')} and {spec.get('maximum')}"
            description = f"{description} ({bounds})" if description else bounds
        if description:
            prop["description"] = description
        properties[name] = prop
    return {
        "type": "object",
        "description": source.get("description", ""),
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


class OpenAIAnalyst:
    """An analyst backed by the OpenAI chat completions API (or a compatible server).

    The API key is passed in by the caller (from the environment) and kept only on this
    object: never logged, never put in a result or an error message.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = 60,
        max_retries: int = 3,
        price_per_mtok_in: float = 0.0,
        price_per_mtok_out: float = 0.0,
        provider: str = "openai",
    ) -> None:
        self.provider = provider
        self.model = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.price_per_mtok_in = price_per_mtok_in
        self.price_per_mtok_out = price_per_mtok_out
        self._api_key = api_key
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()
        self._local = threading.local()  # per-thread count of HTTP attempts

    @property
    def endpoint(self) -> str | None:
        """Part of the replay-cache key: the same model name on another server is another model."""
        return self.base_url

    def __repr__(self) -> str:
        return (
            f"OpenAIAnalyst(provider={self.provider!r}, model={self.model!r}, "
            f"base_url={self.base_url!r})"
        )

    def _count_attempt(self, _request: object) -> None:
        self._local.attempts = getattr(self._local, "attempts", 0) + 1

    def _get_client(self) -> openai.OpenAI:
        """The client, made on first use; every HTTP attempt (retries too) is counted."""
        with self._client_lock:
            if self._client is None:
                import openai

                # Local OpenAI-compatible servers ignore the key, but the client needs one.
                key = self._api_key or ("unused" if self.base_url else None)
                if not key:
                    raise _MissingKeyError
                self._client = openai.OpenAI(
                    api_key=key,
                    base_url=self.base_url,
                    timeout=self.timeout_s,
                    max_retries=self.max_retries,
                    http_client=openai.DefaultHttpxClient(
                        event_hooks={"request": [self._count_attempt]}
                    ),
                )
            return self._client

    def _messages(self, request: AnalysisRequest) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
        for name in sorted(request.images):
            encoded = base64.b64encode(request.images[name]).decode("ascii")
            content.append({"type": "text", "text": f"{name} chart:"})
            content.append(
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}}
            )
        return [{"role": "user", "content": content}]

    def _cost(self, input_tokens: int, output_tokens: int) -> float:
        cost = input_tokens * self.price_per_mtok_in + output_tokens * self.price_per_mtok_out
        return round(cost / 1_000_000, 10)

    def analyze(self, request: AnalysisRequest) -> AnalysisResult:
        """Ask the model; any failure becomes a fail-closed HOLD result, never an exception."""
        self._local.attempts = 0
        start = time.perf_counter()
        try:
            client = self._get_client()
            start = time.perf_counter()  # latency of the call, not of importing the client
            completion = client.chat.completions.create(
                model=self.model,
                messages=self._messages(request),  # type: ignore[arg-type]
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": "signal_proposal",
                        "strict": True,
                        "schema": proposal_json_schema(),
                    },
                },
            )
        except Exception as exc:  # fail closed on anything the call raises
            return _result(
                self,
                request,
                None,
                _fail(self._describe(exc)),
                latency_ms=_elapsed_ms(start),
                attempts=self._local.attempts,
                cacheable=False,
            )
        latency_ms = _elapsed_ms(start)
        usage = completion.usage
        input_tokens = usage.prompt_tokens if usage else 0
        output_tokens = usage.completion_tokens if usage else 0
        choice = completion.choices[0] if completion.choices else None
        message = choice.message if choice else None
        raw = message.content if message else None
        if message is not None and message.refusal:
            parsed = _fail(f"the model refused: {message.refusal}")
            raw = raw or message.refusal
            cacheable = True
        else:
            parsed = parse_response(raw or "")
            # An empty answer may be a glitch (or a token limit): let a later run try again.
            cacheable = parsed[1] or bool((raw or "").strip())
            if not parsed[1] and choice is not None and choice.finish_reason not in (None, "stop"):
                parsed = _fail(f"{parsed[2]} (finish_reason={choice.finish_reason})")
        return _result(
            self,
            request,
            raw,
            parsed,
            latency_ms=latency_ms,
            attempts=self._local.attempts,
            cacheable=cacheable,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=self._cost(input_tokens, output_tokens),
        )

    def _describe(self, exc: Exception) -> str:
        """A clear, key-free message for a failed call."""
        import openai

        attempts = self._local.attempts
        where = _without_credentials(self.base_url) if self.base_url else "the OpenAI API"
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(exc, _MissingKeyError):
            message = "no API key: set OPENAI_API_KEY to use the OpenAI analyst"
        elif isinstance(exc, openai.APITimeoutError):
            message = f"timed out after {tries} ({self.timeout_s}s each) at {where}"
        elif isinstance(exc, openai.APIConnectionError):
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            message = f"could not connect to {where} after {tries} ({cause})"
        elif isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            message = (
                f"{where} rejected the credentials (HTTP {exc.status_code}): check OPENAI_API_KEY "
                f"and that it may use model {self.model!r}"
            )
        elif isinstance(exc, openai.RateLimitError):
            code = f" ({exc.code})" if exc.code else ""
            message = f"rate limited (HTTP 429{code}) after {tries} at {where}"
        elif isinstance(exc, openai.APIStatusError):
            detail = exc.body.get("message") if isinstance(exc.body, dict) else None
            kind = "server error" if exc.status_code >= 500 else "request rejected"
            message = f"{kind} (HTTP {exc.status_code}) after {tries} at {where}"
            message += f": {detail}" if detail else ""
        else:
            message = f"{type(exc).__name__} calling {where}: {exc}"
        if self._api_key:
            message = message.replace(self._api_key, "***")
        return message


class _MissingKeyError(Exception):
    """No API key was configured for a server that needs one."""


def _without_credentials(url: str) -> str:
    """``url`` without user:password and query string (error texts end up in lineage rows)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
