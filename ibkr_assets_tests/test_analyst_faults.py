"""The analyst against a misbehaving OpenAI-compatible server (the real ``openai`` client on
127.0.0.1): any answer that is not a valid proposal is a fail-closed HOLD that is neither final
nor cached, and a call never outlives its time budget, however the server sends or asks to wait.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import pytest

from ibkr_assets.analysis.analysts import OpenAIAnalyst, RulesAnalyst
from ibkr_assets.analysis.cache import ReplayMissError, ResponseCache, analyze
from ibkr_assets.analysis.prompts import build_request, load_template
from ibkr_assets.domain.analysis import AnalysisRequest
from ibkr_assets.domain.signal import SignalProposal, SignalRules, build_signal
from ibkr_assets.storage.object_store import LocalObjectStore
from ibkr_assets_tests.openai_stub import (
    OpenAIStub,
    answer,
    drip,
    error,
    non_json,
    start_openai_stub,
    truncated,
)

AS_OF = dt.date(2025, 1, 2)
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
        images={"daily": b"\x89PNG daily", "weekly": b"\x89PNG weekly"},
        indicators={"sma_20": 101.0, "sma_50": 99.0},
        last_close=103.0,
    )


@pytest.fixture
def cache(tmp_path) -> ResponseCache:
    return ResponseCache(LocalObjectStore(tmp_path / "objects"))


def make_analyst(stub: OpenAIStub, **overrides) -> OpenAIAnalyst:
    options = dict(model="stub-model", api_key="sk-test", base_url=stub.base_url)
    return OpenAIAnalyst(**{**options, "timeout_s": 2.0, "max_retries": 1, **overrides})


def completion_json(**message) -> str:
    return json.dumps({"id": "x", "choices": [{"index": 0, "message": message}]})


# --- every answer that is not a proposal -------------------------------------------------------


@pytest.mark.parametrize(
    "reply, expected",
    [
        (non_json(), "HTTP 200 with content type text/html, not JSON: '<html><head>"),
        (
            non_json(json.dumps(answer(json.dumps(GOOD)).body), content_type="text/plain"),
            "content type text/plain, not JSON",
        ),
        (non_json("<html>502</html>", content_type="application/json"), "not JSON"),
        (
            non_json(
                json.dumps({"object": "error", "message": "loading"}),
                content_type="application/json",
            ),
            "JSON without choices",
        ),
        (
            non_json(completion_json(content=[{"type": "text"}]), content_type="application/json"),
            "content is not text",
        ),
    ],
)
def test_a_body_that_is_not_a_completion_fails_closed(openai_server, request_, reply, expected):
    openai_server.script(reply)
    result = make_analyst(openai_server).analyze(request_)  # never raises
    assert not result.valid and not result.final
    assert expected in result.error and result.error.startswith("not a chat completion")
    assert result.proposal.action == "HOLD" and expected in result.proposal.reasoning
    assert result.raw_response is None and openai_server.request_count == 1


def test_a_truncated_body_is_retried_then_fails_closed(openai_server, request_):
    cut = truncated(answer(json.dumps(GOOD)))
    openai_server.script(cut, cut)
    result = make_analyst(openai_server, max_retries=1).analyze(request_)
    assert not result.valid and not result.final and result.proposal.action == "HOLD"
    assert "failed after 2 attempts (RemoteProtocolError" in result.error
    assert result.attempts == 2 == openai_server.request_count


# --- one deadline for the whole call -----------------------------------------------------------


def test_a_dripping_server_is_cut_at_the_call_budget(openai_server, request_):
    # One byte a second: every read is well within a per-read timeout, 30 s in all.
    openai_server.script(drip(answer(json.dumps(GOOD)), seconds_per_byte=1.0, count=30))
    start = time.monotonic()
    result = make_analyst(openai_server, timeout_s=2.0, max_retries=3).analyze(request_)
    assert time.monotonic() - start < 6  # the 2 s budget, with a generous margin
    assert not result.valid and not result.final and result.proposal.action == "HOLD"
    assert "timed out: no complete answer within the 2s budget (1 attempt)" in result.error


def test_a_retry_after_beyond_the_budget_is_not_waited_for(openai_server, request_):
    openai_server.script(error(429, "slow down", retry_after="8"), answer(json.dumps(GOOD)))
    start = time.monotonic()
    result = make_analyst(openai_server, timeout_s=2.0, max_retries=3).analyze(request_)
    assert time.monotonic() - start < 5  # not the 8 s the server asked for
    assert "rate limited (HTTP 429) after 1 attempt" in result.error and not result.final
    assert openai_server.request_count == 1


def test_retries_stop_when_the_next_backoff_would_pass_the_budget(openai_server, request_):
    openai_server.script(*[error(500, "overloaded")] * 10)
    start = time.monotonic()
    result = make_analyst(openai_server, timeout_s=1.0, max_retries=10).analyze(request_)
    assert time.monotonic() - start < 4  # ten retries with backoff would take ~40 s
    # Backoff 0.5 s fits in the 1 s budget, the next (~1 s) does not.
    assert result.attempts == 2 == openai_server.request_count
    assert "server error (HTTP 500) after 2 attempts" in result.error and not result.final


# --- finality -----------------------------------------------------------------------------------


def test_a_valid_hold_is_final_and_a_failed_analysis_is_not(openai_server, request_):
    hold = RulesAnalyst().analyze(request_)  # not enough history for the rules: a valid HOLD
    assert hold.valid and hold.final and hold.proposal.action == "HOLD"
    openai_server.script(error(429, retry_after="0"), error(429, retry_after="0"))
    failed = make_analyst(openai_server).analyze(request_)
    assert not failed.valid and not failed.final and "rate limited" in failed.error
    for analysis in (hold, failed):
        signal = build_signal(
            analysis.proposal,
            symbol="AAPL",
            as_of=AS_OF,
            last_close=103.0,
            rules=SignalRules(),
            decision_final=analysis.final,
        )
        assert signal.action == "HOLD" and not signal.is_actionable
        assert signal.decision_final is analysis.final


def test_a_signal_whose_analysis_is_not_final_is_never_actionable():
    proposal = SignalProposal.model_validate(GOOD)
    kwargs = dict(symbol="AAPL", as_of=AS_OF, last_close=103.0, rules=SignalRules())
    assert build_signal(proposal, **kwargs).is_actionable
    signal = build_signal(proposal, **kwargs, decision_final=False)
    assert signal.action == "HOLD" and not signal.is_actionable and not signal.decision_final
    assert "the analysis failed, so the decision is not final" in signal.rejections


# --- the replay cache holds only valid proposals -----------------------------------------------


def test_invalid_answers_are_not_cached_and_a_rerun_asks_again(openai_server, request_, cache):
    openai_server.script(non_json(), answer("BUY, trust me"), answer(json.dumps(GOOD)))
    analyst = make_analyst(openai_server)
    for _ in range(2):
        failed = analyze(analyst, request_, cache, "normal")
        assert not failed.valid and not failed.cache_hit
        assert cache.get(failed.cache_key) is None
        with pytest.raises(ReplayMissError):
            analyze(analyst, request_, cache, "replay")
    recovered = analyze(analyst, request_, cache, "normal")
    assert recovered.valid and recovered.final and not recovered.cache_hit
    assert openai_server.request_count == 3
    replayed = analyze(analyst, request_, cache, "replay")
    assert replayed.cache_hit and replayed.final and replayed.proposal == recovered.proposal


def test_an_invalid_answer_stored_by_an_earlier_version_is_never_replayed(
    openai_server, request_, cache
):
    openai_server.script(answer("BUY, trust me"), answer(json.dumps(GOOD)))
    analyst = make_analyst(openai_server)
    invalid = analyst.analyze(request_)
    assert not invalid.valid
    legacy = {**invalid.to_json(), "cacheable": True}  # how earlier versions stored it
    key = cache.object_key(invalid.cache_key)
    cache.store.put(key, json.dumps(legacy).encode(), "application/json")
    assert cache.get(invalid.cache_key) is None
    with pytest.raises(ReplayMissError, match="no valid cached analysis"):
        analyze(analyst, request_, cache, "replay")
    fresh = analyze(analyst, request_, cache, "normal")
    assert fresh.valid and not fresh.cache_hit and openai_server.request_count == 2
    assert cache.get(invalid.cache_key) == fresh  # the valid answer replaced the stale one
