"""A requests-per-minute limit for analyst calls made concurrently in a range run.

Only calls that reach the model are limited: cache hits and replays cost nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class RateLimiter:
    """Spaces calls at least ``60 / requests_per_minute`` seconds apart, across threads."""

    def __init__(
        self,
        requests_per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_minute <= 0:
            raise ValueError("requests_per_minute must be positive")
        self.interval = 60.0 / requests_per_minute
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:  # reserve a slot, then wait for it outside the lock
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


class RateLimitedAnalyst:
    """An analyst whose ``analyze`` waits for the limiter first; otherwise the same analyst."""

    def __init__(self, analyst: Any, limiter: RateLimiter) -> None:
        self._analyst, self._limiter = analyst, limiter
        self.provider, self.model = analyst.provider, analyst.model
        self.endpoint = analyst.endpoint

    def analyze(self, request: Any) -> Any:
        self._limiter.acquire()
        return self._analyst.analyze(request)
