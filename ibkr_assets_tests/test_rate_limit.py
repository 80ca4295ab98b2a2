"""The analyst rate limit spaces model calls; it is tested with a fake clock, not by timing."""

from __future__ import annotations

import threading

import pytest

from ibkr_assets.analysis.rate_limit import RateLimitedAnalyst, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(round(seconds, 6))


def test_calls_are_spaced_by_the_interval():
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock, sleep=clock.sleep)  # one a second
    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps == [1.0, 2.0]  # first at once, then 1 s and 2 s later


def test_time_that_passed_is_not_waited_again():
    clock = FakeClock()
    limiter = RateLimiter(30, clock=clock, sleep=clock.sleep)  # one every 2 s
    limiter.acquire()
    clock.now += 5.0
    limiter.acquire()
    assert clock.sleeps == []


def test_concurrent_threads_get_distinct_slots():
    clock = FakeClock()
    limiter = RateLimiter(120, clock=clock, sleep=clock.sleep)  # every 0.5 s
    threads = [threading.Thread(target=limiter.acquire) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(clock.sleeps) == [0.5, 1.0, 1.5]


def test_rate_limited_analyst_keeps_its_identity_and_waits_before_each_call():
    clock = FakeClock()

    class Analyst:
        provider, model, endpoint = "openai", "m", None

        def analyze(self, request):
            return ("answer", request)

    wrapped = RateLimitedAnalyst(Analyst(), RateLimiter(60, clock=clock, sleep=clock.sleep))
    assert (wrapped.provider, wrapped.model) == ("openai", "m")
    assert wrapped.analyze("r1") == ("answer", "r1")
    assert wrapped.analyze("r2") == ("answer", "r2")
    assert clock.sleeps == [1.0]


def test_a_non_positive_rate_is_refused():
    with pytest.raises(ValueError, match="must be positive"):
        RateLimiter(0)
