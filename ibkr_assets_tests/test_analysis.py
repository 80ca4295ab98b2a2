"""LLM analysis: prompts, the rules analyst, the real ``openai`` client against a local stub,
fail-closed parsing and the replay cache."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import socket
import time
from collections.abc import Iterator

import pytest

from ibkr_assets.analysis import analysts
from ibkr_assets.analysis.analysts import (
    OpenAIAnalyst,
    RulesAnalyst,
    parse_response,
    proposal_json_schema,
)
from ibkr_assets.analysis.cache import ReplayMissError, ResponseCache, analyze
from ibkr_assets.analysis.prompts import (
    TemplateNotFoundError,
    build_request,
    load_template,
    render_prompt,
)
from ibkr_assets.domain.analysis import AnalysisRequest, AnalysisResult, cache_key
from ibkr_assets.domain.signal import SignalRules, build_signal
from ibkr_assets.storage.object_store import LocalObjectStore
from ibkr_assets_tests.openai_stub import (
    OpenAIStub,
    answer,
    error,
    hang,
    refusal,
    start_openai_stub,
)

SECRET = "sk-test-DO-NOT-LEAK-1234567890"
AS_OF = dt.date(2025, 1, 2)
IMAGES = {"weekly": b"\x89PNG\r\n\x1a\nweekly-chart", "daily": b"\x89PNG\r\n\x1a\ndaily-chart"}
BULLISH = {"sma_20": 101.0, "sma_50": 99.0, "macd_hist": 0.3, "rsi_14": 58.0, "atr_14": 2.0}
GOOD = {
    "action": "BUY",
    "confidence": 72,
    "entry_price": 103.0,
    "stop_loss": 99.5,
    "take_profit": 109.25,
    "reasoning": "Close above both SMAs, MACD histogram positive.",
}


@pytest.fixture
def openai_server() -> Iterator[OpenAIStub]:
    with start_openai_stub() as stub:
        yield stub


@pytest.fixture
def request_() -> AnalysisRequest:
    return build_request(
        symbol="AAPL",
        as_of=AS_OF,
        template=load_template("chart_analysis", 1),
        images=IMAGES,
        indicators=BULLISH,
        last_close=103.0,
    )


@pytest.fixture
def cache(tmp_path) -> ResponseCache:
    return ResponseCache(LocalObjectStore(tmp_path / "objects"))


def make_analyst(stub: OpenAIStub, **overrides) -> OpenAIAnalyst:
    options = dict(
        model="gpt-4o-mini",
        api_key=SECRET,
        base_url=stub.base_url,
        timeout_s=2.0,
        max_retries=1,
        price_per_mtok_in=2.5,
        price_per_mtok_out=10.0,
    )
    options.update(overrides)
    return OpenAIAnalyst(**options)


# --- prompts -------------------------------------------------------------------------------


def test_template_header_is_parsed_and_hashed():
    template = load_template("chart_analysis")
    assert (template.id, template.version) == ("chart_analysis", 1)
    assert load_template("chart_analysis", 1) == template
    assert not template.text.startswith("id:")  # the header is not part of the prompt
    assert template.sha256 == hashlib.sha256(template.text.encode()).hexdigest()


@pytest.mark.parametrize("template_id, version", [("no_such_prompt", None), ("chart_analysis", 99)])
def test_missing_template_lists_what_exists(template_id, version):
    with pytest.raises(TemplateNotFoundError, match="available: chart_analysis v1"):
        load_template(template_id, version)


def test_prompt_rendering_is_deterministic(request_):
    template = request_.template
    reordered = dict(reversed(list({**BULLISH, "bb_upper": None}.items())))
    first = render_prompt(
        template,
        symbol="AAPL",
        as_of=AS_OF,
        indicators={**BULLISH, "bb_upper": None},
        last_close=103.123456,
    )
    second = render_prompt(
        template, symbol="AAPL", as_of=AS_OF, indicators=reordered, last_close=103.123456
    )
    assert first == second
    assert "Last close: 103.1235" in first
    assert "| sma_20 | 101.0000 |" in first and "| bb_upper | n/a |" in first
    assert first.index("| sma_20 |") < first.index("| rsi_14 |")  # canonical column order
    assert "AAPL" in first and "2025-01-02" in first and "$" not in first
    assert "1. daily chart" in request_.prompt and "2. weekly chart" in request_.prompt


# --- parsing and the schema ------------------------------------------------------------------


def test_parse_response_accepts_schema_answers_and_fences():
    proposal, valid, error_ = parse_response("```json\n" + json.dumps(GOOD) + "\n```")
    assert valid and error_ is None and proposal.take_profit == 109.25


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("", "empty answer"),
        ("BUY at 103 please", "malformed JSON"),
        (json.dumps({**GOOD, "entry_price": "NaN"}).replace('"NaN"', "NaN"), "malformed JSON"),
        (json.dumps({**GOOD, "entry_price": 1.0}).replace("1.0", "1e999"), "must be finite"),
        (json.dumps([GOOD]), "schema violation"),
        (json.dumps({**GOOD, "confidence": 150}), "schema violation: confidence"),
        (json.dumps({**GOOD, "action": "STRONG_BUY"}), "schema violation: action"),
        (json.dumps({**GOOD, "leverage": 10}), "schema violation: leverage"),
    ],
)
def test_parse_response_fails_closed(raw, expected):
    proposal, valid, error_ = parse_response(raw)
    assert not valid and expected in error_
    assert proposal.action == "HOLD" and proposal.confidence == 0 and proposal.entry_price is None


def test_proposal_schema_is_strict_mode_compatible():
    schema = proposal_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(schema["properties"])
    assert set(schema["required"]) == {
        "action",
        "confidence",
        "entry_price",
        "stop_loss",
        "take_profit",
        "reasoning",
    }
    assert schema["properties"]["entry_price"]["type"] == ["number", "null"]
    assert schema["properties"]["action"]["enum"] == ["BUY", "SELL", "HOLD"]
    assert "0 and 100" in schema["properties"]["confidence"]["description"]
    unsupported = {"anyOf", "title", "minimum", "maximum", "default", "$defs"}
    for spec in schema["properties"].values():
        assert not unsupported & set(spec), spec


def test_proposal_schema_accepts_exactly_valid_proposals():
    jsonschema = pytest.importorskip("jsonschema")
    schema = proposal_json_schema()
    jsonschema.validate(GOOD, schema)
    jsonschema.validate(analysts.hold_proposal("x").model_dump(mode="json"), schema)
    for bad in ({**GOOD, "extra": 1}, {k: v for k, v in GOOD.items() if k != "stop_loss"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


# --- the rules analyst -----------------------------------------------------------------------


def test_rules_analyst_is_deterministic_and_names_itself(request_, monkeypatch):
    calls = []
    real_parse = analysts.parse_response
    monkeypatch.setattr(
        analysts, "parse_response", lambda raw: calls.append(raw) or real_parse(raw)
    )
    first, second = RulesAnalyst().analyze(request_), RulesAnalyst().analyze(request_)
    assert dataclasses.replace(first, latency_ms=0) == dataclasses.replace(second, latency_ms=0)
    assert calls == [first.raw_response, second.raw_response]  # the LLM validation path
    assert (first.provider, first.model) == ("rules", "rules-v1")
    assert "not an LLM" in first.proposal.reasoning
    assert (first.input_tokens, first.output_tokens, first.cost_usd) == (0, 0, 0.0)
    proposal = first.proposal
    assert first.valid and proposal.action == "BUY"
    assert (proposal.entry_price, proposal.stop_loss, proposal.take_profit) == (103.0, 99.0, 109.0)
    signal = build_signal(
        proposal, symbol="AAPL", as_of=AS_OF, last_close=103.0, rules=SignalRules()
    )
    assert signal.is_actionable and signal.risk_reward == 1.5


@pytest.mark.parametrize(
    "indicators, close, action",
    [
        (
            {"sma_20": 99.0, "sma_50": 101.0, "macd_hist": -0.3, "rsi_14": 42.0, "atr_14": 2.0},
            97.0,
            "SELL",
        ),
        ({**BULLISH, "rsi_14": 75.0}, 103.0, "HOLD"),  # overbought
        ({**BULLISH, "macd_hist": -0.1}, 103.0, "HOLD"),  # votes disagree
        ({**BULLISH, "atr_14": None}, 103.0, "HOLD"),  # not enough history
    ],
)
def test_rules_analyst_sells_and_holds(indicators, close, action):
    proposal = analysts.rules_proposal(indicators, close)
    assert proposal.action == action and "not an LLM" in proposal.reasoning
    if action == "SELL":
        assert (proposal.stop_loss, proposal.take_profit) == (close + 4.0, close - 6.0)
    else:
        assert proposal.entry_price is None


# --- the OpenAI analyst against the stub -------------------------------------------------------


def test_valid_answer_records_tokens_cost_and_sends_images_and_schema(openai_server, request_):
    openai_server.script(answer(json.dumps(GOOD)))
    result = make_analyst(openai_server).analyze(request_)
    assert result.valid and result.error is None and result.proposal.model_dump() == GOOD
    assert result.raw_response == json.dumps(GOOD)
    assert (result.provider, result.model) == ("openai", "gpt-4o-mini")
    assert (result.input_tokens, result.output_tokens, result.attempts) == (1200, 150, 1)
    assert result.cost_usd == pytest.approx(1200 * 2.5e-6 + 150 * 10e-6)
    assert result.latency_ms >= 0 and result.final

    [sent] = openai_server.requests
    assert sent["headers"]["authorization"] == f"Bearer {SECRET}"  # the key the caller gave
    body = sent["body"]
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "signal_proposal",
            "strict": True,
            "schema": proposal_json_schema(),
        },
    }
    parts = body["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": request_.prompt}
    urls = [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]
    prefix = "data:image/png;base64,"
    assert all(url.startswith(prefix) for url in urls)
    assert [base64.b64decode(url[len(prefix) :]) for url in urls] == [
        IMAGES["daily"],
        IMAGES["weekly"],
    ]


@pytest.mark.parametrize(
    "reply, expected, raw",
    [
        (answer("I think BUY around 103."), "malformed JSON", "I think BUY around 103."),
        (answer(json.dumps({**GOOD, "confidence": 101})), "schema violation", None),
        (
            refusal("I can't give trading advice."),
            "the model refused",
            "I can't give trading advice.",
        ),
        (answer(""), "empty answer", ""),
        (
            answer('{"action": "BUY", "conf', finish_reason="length"),
            "finish_reason=length",
            None,
        ),
    ],
)
def test_bad_answers_fail_closed_to_hold(openai_server, request_, reply, expected, raw):
    openai_server.script(reply)
    result = make_analyst(openai_server).analyze(request_)
    assert not result.valid and expected in result.error
    assert result.proposal.action == "HOLD" and expected in result.proposal.reasoning
    content = reply.body["choices"][0]["message"]["content"]
    assert result.raw_response == (raw if raw is not None else content)
    assert not result.final  # a later run asks again
    assert result.input_tokens == 1200  # tokens were spent all the same


@pytest.mark.parametrize("failure", [error(429, "slow down", retry_after="0"), error(500, "boom")])
def test_transient_error_then_success_is_retried(openai_server, request_, failure):
    openai_server.script(failure, answer(json.dumps(GOOD)))
    result = make_analyst(openai_server).analyze(request_)
    assert result.valid and result.attempts == 2 and openai_server.request_count == 2


def test_exhausted_rate_limit_fails_closed(openai_server, request_):
    openai_server.script(error(429, retry_after="0"), error(429, retry_after="0"))
    result = make_analyst(openai_server).analyze(request_)
    assert not result.valid and result.proposal.action == "HOLD"
    assert "rate limited (HTTP 429" in result.error and "after 2 attempts" in result.error
    assert result.attempts == 2 and not result.final and result.raw_response is None


def test_hang_past_the_budget_fails_closed_without_retrying(openai_server, request_):
    openai_server.script(hang(), hang())
    start = time.monotonic()
    result = make_analyst(openai_server, timeout_s=0.5).analyze(request_)
    assert time.monotonic() - start < 2.5  # the 0.5 s budget, not one per attempt
    assert not result.valid and result.proposal.action == "HOLD"
    assert "timed out: no complete answer within the 0.5s budget (1 attempt)" in result.error
    assert result.attempts == 1 == openai_server.request_count and not result.final


def test_connection_refused_fails_closed(request_):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the call: nothing listens
    analyst = OpenAIAnalyst(
        model="m", api_key=SECRET, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0
    )
    result = analyst.analyze(request_)
    assert not result.valid and result.attempts == 1 and not result.final
    assert f"the connection to http://127.0.0.1:{port}/v1 failed after 1 attempt" in result.error


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_names_the_variable_never_the_key(openai_server, request_, status):
    openai_server.script(error(status, f"Incorrect API key provided: {SECRET}"))
    analyst = make_analyst(openai_server)
    result = analyst.analyze(request_)
    assert not result.valid and "check OPENAI_API_KEY" in result.error
    assert result.attempts == 1 and not result.final
    assert SECRET not in json.dumps(result.to_json()) and SECRET not in repr(analyst)


def test_key_never_stored_in_a_successful_result(openai_server, request_):
    openai_server.script(answer(json.dumps(GOOD)))
    result = make_analyst(openai_server).analyze(request_)
    assert result.valid and SECRET not in json.dumps(result.to_json())


def test_missing_key_fails_closed_without_a_request(request_):
    result = OpenAIAnalyst(model="gpt-4o-mini", api_key=None).analyze(request_)
    assert not result.valid and "OPENAI_API_KEY" in result.error and result.attempts == 0


def test_result_json_round_trip_is_exact(openai_server, request_):
    openai_server.script(answer(json.dumps(GOOD)), answer("nope"))
    analyst = make_analyst(openai_server)
    for result in (analyst.analyze(request_), analyst.analyze(request_)):
        assert AnalysisResult.from_json(json.loads(json.dumps(result.to_json()))) == result
    with pytest.raises(ValueError, match="unknown analysis result fields: surprise"):
        AnalysisResult.from_json({**result.to_json(), "surprise": 1})


# --- the replay cache -----------------------------------------------------------------------


def test_cache_key_is_canonical(request_):
    base = dict(
        provider="openai",
        model="gpt-4o-mini",
        template_id="chart_analysis",
        template_version=1,
        prompt=request_.prompt,
        images=IMAGES,
    )
    key = cache_key(**base)
    assert key == cache_key(**{**base, "images": dict(reversed(list(IMAGES.items())))})
    for change in (
        {"model": "gpt-4o"},
        {"endpoint": "http://127.0.0.1:8000/v1"},
        {"template_version": 2},
        {"prompt": request_.prompt + " "},
        {"images": {**IMAGES, "daily": b"other"}},
        {"images": {"daily": IMAGES["daily"]}},
    ):
        assert cache_key(**{**base, **change}) != key, change
    rules_key = cache_key(**{**base, "provider": "rules", "model": "rules-v1"})
    assert RulesAnalyst().analyze(request_).cache_key == rules_key


def test_normal_mode_reuses_the_stored_answer_without_a_request(openai_server, request_, cache):
    openai_server.script(answer(json.dumps(GOOD)))
    analyst = make_analyst(openai_server)
    first = analyze(analyst, request_, cache, "normal")
    second = analyze(analyst, request_, cache, "normal")
    assert openai_server.request_count == 1
    assert not first.cache_hit and second.cache_hit
    assert second.proposal == first.proposal and second.raw_response == first.raw_response
    assert second.cost_usd == 0.0 and second.saved_cost_usd == first.cost_usd > 0
    assert second.cache_key == first.cache_key and cache.get(first.cache_key) == first


def test_replay_miss_raises_without_touching_the_network(openai_server, request_, cache):
    with pytest.raises(ReplayMissError) as raised:
        analyze(make_analyst(openai_server), request_, cache, "replay")
    message = str(raised.value)
    assert (
        "AAPL" in message
        and "2025-01-02" in message
        and make_analyst(openai_server).model in message
    )
    assert openai_server.request_count == 0


def test_replay_serves_what_normal_recorded(openai_server, request_, cache):
    openai_server.script(answer(json.dumps(GOOD)))
    recorded = analyze(make_analyst(openai_server), request_, cache, "normal")
    replayed = analyze(make_analyst(openai_server), request_, cache, "replay")
    assert replayed.cache_hit and replayed.proposal == recorded.proposal
    assert openai_server.request_count == 1


def test_refresh_always_calls_and_stores_the_new_answer(openai_server, request_, cache):
    newer = {**GOOD, "confidence": 90}
    openai_server.script(answer(json.dumps(GOOD)), answer(json.dumps(newer)))
    analyst = make_analyst(openai_server)
    analyze(analyst, request_, cache, "normal")
    refreshed = analyze(analyst, request_, cache, "refresh")
    assert openai_server.request_count == 2 and not refreshed.cache_hit
    assert analyze(analyst, request_, cache, "normal").proposal.confidence == 90


def test_transient_failures_are_not_cached(openai_server, request_, cache):
    openai_server.script(hang(), answer(json.dumps(GOOD)))
    analyst = make_analyst(openai_server)
    failed = analyze(analyst, request_, cache, "normal")
    assert not failed.valid and cache.get(failed.cache_key) is None
    with pytest.raises(ValueError, match="only a valid proposal is cached"):
        cache.put(failed)
    retried = analyze(analyst, request_, cache, "normal")
    assert retried.valid and not retried.cache_hit and openai_server.request_count == 2


def test_unknown_mode_is_rejected(request_, cache):
    with pytest.raises(ValueError, match="unknown cache mode"):
        analyze(RulesAnalyst(), request_, cache, "sometimes")  # type: ignore[arg-type]
