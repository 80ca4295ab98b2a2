"""Analysts turn one request (prompt, charts, indicators) into a validated ``SignalProposal``.

Every analyst's answer is text that goes through the same ``parse_response``; whatever goes
wrong (a body that is not a chat completion, bad JSON, a schema violation, a refusal, the
call's time budget running out, exhausted retries) ends as a fail-closed HOLD with
``valid=False`` and the error kept, never as an exception. Only a valid proposal is ``final``:
a decision made on anything else is taken again by a later run. The rules
analyst is the offline default and says it is not an LLM; ``OpenAIAnalyst`` talks to OpenAI
or any OpenAI-compatible server (vLLM, Ollama, LM Studio) through ``base_url``.

Longer than most modules: both analysts share the one parser and its fail-closed contract.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import math
import random
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ibkr_assets.domain.analysis import AnalysisRequest, AnalysisResult, Analyst, request_key
from ibkr_assets.domain.signal import SignalProposal, hold_proposal

if TYPE_CHECKING:
    import openai

RULES_PROVIDER = "rules"
RULES_MODEL = "rules-v1"
_MAX_ERROR_CHARS = 500
_INITIAL_RETRY_DELAY_S = 0.5
_MAX_RETRY_DELAY_S = 8.0
_CODE_FENCE = re.compile(r"^```(?:json)?\s*(?P<body>.*?)\s*```$", re.DOTALL | re.IGNORECASE)


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


def _result(
    analyst: Analyst,
    request: AnalysisRequest,
    raw: str | None,
    parsed: tuple[SignalProposal, bool, str | None],
    *,
    latency_ms: int,
    attempts: int,
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
        cache_key=request_key(analyst, request),
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
        return _result(self, request, raw, parsed, latency_ms=_elapsed_ms(start), attempts=1)


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

    ``timeout_s`` is the budget of the whole call: every attempt, retry and backoff wait ends
    by then, however slowly the server sends (each attempt runs under ``asyncio.wait_for``,
    which closes the connection at the deadline). The API key is passed in by the caller (from
    the environment) and kept only on this object: never logged, never put in a result or an
    error message.
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

    @property
    def endpoint(self) -> str | None:
        """Part of the replay-cache key: the same model name on another server is another model."""
        return self.base_url

    def __repr__(self) -> str:
        return (
            f"OpenAIAnalyst(provider={self.provider!r}, model={self.model!r}, "
            f"base_url={self.base_url!r})"
        )

    def _client(self) -> openai.AsyncOpenAI:
        """A client for one call (its connections belong to the call's event loop)."""
        import openai

        # Local OpenAI-compatible servers ignore the key, but the client needs one.
        key = self._api_key or ("unused" if self.base_url else None)
        if not key:
            raise _MissingKeyError
        return openai.AsyncOpenAI(
            api_key=key,
            base_url=self.base_url,
            timeout=self.timeout_s,
            max_retries=0,  # retries are ours, within the budget
            http_client=openai.DefaultAsyncHttpxClient(verify=_ssl_context()),
        )

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
        """Ask the model; anything but a valid proposal in time is a fail-closed HOLD result."""
        start = time.perf_counter()
        try:
            outcome, attempts = asyncio.run(self._call(self._messages(request)))
        except Exception as exc:  # e.g. called from a thread that runs an event loop
            outcome, attempts = exc, 0
        latency_ms = _elapsed_ms(start)
        if isinstance(outcome, Exception):
            parsed = _fail(self._describe(outcome, attempts))
            return _result(self, request, None, parsed, latency_ms=latency_ms, attempts=attempts)
        status, content_type, body = outcome
        try:
            completion = _read_completion(content_type, body)
        except _NotACompletionError as exc:
            parsed = _fail(f"not a chat completion: HTTP {status} with {exc}: {_snippet(body)}")
            return _result(self, request, None, parsed, latency_ms=latency_ms, attempts=attempts)
        raw = completion.content
        if completion.refusal:
            parsed = _fail(f"the model refused: {completion.refusal}")
            raw = raw or completion.refusal
        else:
            parsed = parse_response(raw or "")
            if not parsed[1] and completion.finish_reason not in (None, "stop"):
                parsed = _fail(f"{parsed[2]} (finish_reason={completion.finish_reason})")
        return _result(
            self,
            request,
            raw,
            parsed,
            latency_ms=latency_ms,
            attempts=attempts,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            cost_usd=self._cost(completion.input_tokens, completion.output_tokens),
        )

    async def _call(
        self, messages: list[dict[str, Any]]
    ) -> tuple[tuple[int, str, str] | Exception, int]:
        """``((status, content type, body) or the error that ended the call, HTTP attempts)``.

        Each attempt gets what is left of the budget; a retryable error (connection, 408, 409,
        429, 5xx) is retried after its backoff or Retry-After only if that wait ends in time.
        """
        import openai

        loop = asyncio.get_running_loop()
        attempts = 0
        try:
            async with self._client() as client:
                client.chat.completions  # noqa: B018 (imported lazily: not on the clock)
                deadline = loop.time() + self.timeout_s
                while True:
                    remaining = deadline - loop.time()
                    attempts += 1
                    call = client.with_options(timeout=remaining).chat.completions
                    try:
                        raw = await asyncio.wait_for(
                            call.with_raw_response.create(
                                model=self.model,
                                messages=messages,  # type: ignore[arg-type]
                                response_format={
                                    "type": "json_schema",
                                    "json_schema": {
                                        "name": "signal_proposal",
                                        "strict": True,
                                        "schema": proposal_json_schema(),
                                    },
                                },
                            ),
                            remaining,
                        )
                    except (asyncio.TimeoutError, openai.APITimeoutError):
                        return _DeadlineError(), attempts
                    except openai.APIError as exc:
                        delay = self._retry_delay(exc, attempts)
                        if delay is None or loop.time() + delay >= deadline:
                            return exc, attempts
                        await asyncio.sleep(delay)
                        continue
                    response = raw.http_response
                    return (
                        response.status_code,
                        response.headers.get("content-type", ""),
                        response.text,
                    ), attempts
        except Exception as exc:  # fail closed on anything else the call raises
            return exc, attempts

    def _retry_delay(self, exc: Exception, attempts: int) -> float | None:
        """Seconds to wait before another attempt after ``exc``; None: do not retry."""
        import openai

        if attempts > self.max_retries:
            return None
        if isinstance(exc, openai.APIStatusError):
            headers = exc.response.headers
            told = headers.get("x-should-retry")
            retryable = exc.status_code in (408, 409, 429) or exc.status_code >= 500
            if told == "false" or (told != "true" and not retryable):
                return None
            retry_after = _retry_after_s(headers)
            if retry_after is not None:
                return retry_after
        elif not isinstance(exc, openai.APIConnectionError):
            return None
        backoff = min(_INITIAL_RETRY_DELAY_S * 2 ** (attempts - 1), _MAX_RETRY_DELAY_S)
        return backoff * (1 - 0.25 * random.random())

    def _describe(self, exc: Exception, attempts: int) -> str:
        """A clear, key-free message for a failed call."""
        import openai

        where = _without_credentials(self.base_url) if self.base_url else "the OpenAI API"
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(exc, _MissingKeyError):
            message = "no API key: set OPENAI_API_KEY to use the OpenAI analyst"
        elif isinstance(exc, _DeadlineError):
            message = f"timed out: no complete answer within the {self.timeout_s:g}s budget"
            message += f" ({tries}) at {where}"
        elif isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            why = f"{type(cause).__name__}: {cause}" if cause else "connection error"
            message = f"the connection to {where} failed after {tries} ({why})"
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


@dataclass(frozen=True)
class _Completion:
    """The parts of a chat completion the analyst reads."""

    content: str | None
    refusal: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int


class _NotACompletionError(ValueError):
    """A 2xx body that is not a chat completion (a proxy's page, another JSON shape)."""


def _read_completion(content_type: str, body: str) -> _Completion:
    """The completion in a 2xx answer's body, checked by hand: any server may send anything."""
    media = content_type.partition(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise _NotACompletionError(f"content type {media or '(none)'}, not JSON")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise _NotACompletionError(f"a body that is not JSON ({exc})") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _NotACompletionError("JSON without choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise _NotACompletionError("a choice without a message")
    content, refusal = message.get("content"), message.get("refusal")
    if not all(isinstance(text, (str, type(None))) for text in (content, refusal)):
        raise _NotACompletionError("a message whose content is not text")
    finish_reason = choices[0].get("finish_reason")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}

    def tokens(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and value >= 0 else 0

    return _Completion(
        content,
        refusal,
        finish_reason if isinstance(finish_reason, str) else None,
        tokens("prompt_tokens"),
        tokens("completion_tokens"),
    )


def _snippet(body: str, limit: int = 160) -> str:
    text = " ".join(body.split())
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The server's Retry-After (or retry-after-ms) in seconds, when it is a number."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(name) or "nan") / scale
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every call's client (building one per call costs ~50 ms)."""
    return ssl.create_default_context()


class _DeadlineError(Exception):
    """The call's budget ran out."""


class _MissingKeyError(Exception):
    """No API key was configured for a server that needs one."""


def _without_credentials(url: str) -> str:
    """``url`` without user:password and query string (error texts end up in lineage rows)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
