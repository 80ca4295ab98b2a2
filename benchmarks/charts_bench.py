"""Charts: time to render one chart, and a batch in processes against the same batch serially.

A chart is a 200-bar daily frame with every indicator, drawn at the default 1200 x 900 px and
120 bars shown. The first render in a process also loads fonts and warms caches, so one
untimed render comes first. The batch speedup carries the target: rendering is CPU-bound
Python, so it should scale with processes up to the cores available (and cannot on one core).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time

from ibkr_assets.charts.render import ChartSpec, render_chart, render_many
from ibkr_assets.domain.indicators import compute_indicators
from ibkr_assets.sources.sample import SAMPLE_UNIVERSE, SampleBarSource

CHARTS = 6
BARS = 200
AS_OF = dt.date(2024, 6, 28)
TARGET_SPEEDUP = 1.5


def _row(
    case: str, value: float, unit: str, target: str | None = None, ok: bool | None = None
) -> dict:
    return {
        "section": "charts",
        "case": case,
        "value": value,
        "unit": unit,
        "target": target,
        "ok": ok,
    }


def run(scale: float) -> list[dict]:
    count = max(1, round(CHARTS * scale))
    source = SampleBarSource()
    symbols = sorted(SAMPLE_UNIVERSE)
    jobs = [
        (
            compute_indicators(source.fetch_bars(symbol, AS_OF, BARS)),
            ChartSpec(symbol=symbol, as_of=AS_OF, timeframe="daily"),
        )
        for symbol in (symbols[i % len(symbols)] for i in range(2 * count))
    ]

    render_chart(*jobs[0])  # warm-up: imports, fonts
    single = []
    for frame, spec in jobs[:count]:
        started = time.perf_counter()
        render_chart(frame, spec)
        single.append(time.perf_counter() - started)

    started = time.perf_counter()
    serial = render_many(jobs, workers=1)
    serial_seconds = time.perf_counter() - started

    cpus = os.cpu_count() or 1
    started = time.perf_counter()
    parallel = render_many(jobs, workers=cpus)
    parallel_seconds = time.perf_counter() - started
    if [c.png for c in parallel] != [c.png for c in serial]:
        raise AssertionError("render_many in processes produced different PNGs than serially")

    speedup = serial_seconds / parallel_seconds
    batch = f"{len(jobs)} charts"
    return [
        _row(
            f"one chart, {BARS}-bar daily frame, 1200x900 (median of {count})",
            statistics.median(single) * 1e3,
            "ms",
        ),
        _row(f"{batch}, serial", serial_seconds, "s"),
        _row(f"{batch}, render_many with {cpus} processes", parallel_seconds, "s"),
        _row(
            f"batch speedup, {cpus} processes vs serial",
            speedup,
            "x",
            f">= {TARGET_SPEEDUP}x on 2 cores",
            None if cpus == 1 else speedup >= TARGET_SPEEDUP,
        ),
    ]
